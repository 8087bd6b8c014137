#!/usr/bin/env bash
# Every benchmark of the engine-owned listing, before and after, in one run:
#
#   bash bench/before_after.sh [--smoke] [BEFORE_REV]      (default 8ed6bdc)
#
# BEFORE_REV is built in bench/.work/before (git archive of that revision,
# with this tree's bench/ copied over its own, so both builds run the same
# measuring code), with the developer venv's interpreter.  Then each
# benchmark runs under the before build and at once under this tree's, one
# after the other, so that the load of the machine moves both alike:
#
#   bench/run.sh        decode (CPU and instructions), end to end against
#                       peers and against its parts, memory, prefetch,
#                       fan-out, Arrow (bench.py, arrow_bench.py)
#   bench/chain.py      the per-page hand-off, nginx and a 5 ms server, with
#                       requests + json + dataclasses beside it
#   bench/arrow_gil.py  Arrow beside a Python thread, against its parts, and
#                       fan_out(...).to_arrow() on several cores
#   bench/floor.py      decode against its floor, in instructions
#   bench/e2e_icount.py end to end against its parts, in instructions, per
#                       thread, from nginx and from the 5 ms server
#
# BENCHES="chain floor" runs only those (names as in the outputs' files),
# LABELS=after only under this tree's build.
#
# Each output goes to bench/.work/before_after/{before,after}-NAME.md; the
# custlist each run imported is the first line of each file.  Needs a quiet
# machine (about 60 minutes), nginx and valgrind.  --smoke runs every
# benchmark at tiny size (to check that both builds run them).
set -euo pipefail
cd "$(dirname "$0")/.."
tree=$(pwd)
smoke=()
chain=(--runs 5)
if [ "${1:-}" = --smoke ]; then
    smoke=(--smoke)
    chain=(--runs 1 --pages 3 --slow-pages 3)
    shift
fi
rev=${1:-8ed6bdc}
PY=${VPY:-$tree/.venv/bin/python}
out=$tree/bench/.work/before_after
before=$tree/bench/.work/before
mkdir -p "$out"

if [ "$(cat "$before/.rev" 2>/dev/null)" != "$(git rev-parse "$rev")" ]; then
    rm -rf "$before"
    mkdir -p "$before"
    git archive "$rev" | tar -x -C "$before"
    (cd "$before" && "$PY" setup.py -q build_ext --inplace >/dev/null)
    git rev-parse "$rev" >"$before/.rev"
fi
# its own bench/ replaced by this tree's, its .work/ (sites, nginx) kept
mkdir -p "$before/bench"
find "$before/bench" -mindepth 1 -maxdepth 1 ! -name .work -exec rm -rf {} +
tar -C "$tree/bench" --exclude=.work -cf - . | tar -C "$before/bench" -xf -

run() {     # run LABEL DIR NAME ARGS...: one benchmark under the build in DIR
    local label=$1 dir=$2 name=$3; shift 3
    local file="$out/$label-$name.md" start
    start=$(date +%s)
    echo "== $label: $name $*" >&2
    (
        cd "$dir"
        export PYTHONPATH="$dir" VPY="$PY"
        echo "custlist from $("$PY" -c 'import custlist, os; print(os.path.dirname(custlist.__file__))')" \
            "($label, $(cat .rev 2>/dev/null || git -C "$tree" rev-parse HEAD))"
        "$@"
    ) >"$file" 2>"$out/$label-$name.err" || echo "   FAILED: $out/$label-$name.err" >&2
    echo "   $(( $(date +%s) - start )) s" >&2
}

for name in ${BENCHES:-run chain arrow_gil floor e2e_icount}; do
    for label in ${LABELS:-before after}; do
        dir=$tree
        [ "$label" = before ] && dir=$before
        case $name in
            run) run "$label" "$dir" run bash bench/run.sh "${smoke[@]}" ;;
            chain) run "$label" "$dir" chain "$PY" bench/chain.py "${chain[@]}" ;;
            arrow_gil) run "$label" "$dir" arrow_gil "$PY" bench/arrow_gil.py "${smoke[@]}" ;;
            floor) run "$label" "$dir" floor "$PY" bench/floor.py "${smoke[@]}" ;;
            e2e_icount)
                if [ ${#smoke[@]} -gt 0 ]; then
                    run "$label" "$dir" e2e_icount "$PY" bench/e2e_icount.py --pages 3 natural
                else
                    run "$label" "$dir" e2e_icount "$PY" bench/e2e_icount.py
                fi ;;
        esac
    done
done
echo "outputs in $out" >&2
