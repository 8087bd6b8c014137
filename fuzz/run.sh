#!/usr/bin/env bash
# Fuzz the JSON decoder for a bounded time:  bash fuzz/run.sh [seconds]
# The C core is rebuilt with clang for coverage (-fsanitize=fuzzer-no-link)
# plus AddressSanitizer and UndefinedBehaviorSanitizer; the fuzzer starts
# from the checked-in corpus.  A finding exits non-zero and leaves the input
# in fuzz/.work/ (add it to tests/corpus once fixed).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
PY=${VPY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
work=fuzz/.work
mkdir -p "$work/corpus"

if ! command -v clang >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang
    # the sanitizer runtimes ship apart on some releases; harmless where bundled
    ver=$(clang -dumpversion | cut -d. -f1)
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "libclang-rt-$ver-dev" 2>/dev/null || true
fi
"$PY" -c "import atheris" 2>/dev/null || "$PY" -m pip install -q atheris

rm -rf "$work/build"
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
CC=clang LDSHARED="clang -shared" \
CUSTLIST_CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link $san" \
CUSTLIST_LDFLAGS="$san" \
    "$PY" setup.py -q build_ext --build-lib "$work/build" --build-temp "$work/build/tmp" >/dev/null
cp custlist/*.py "$work/build/custlist/"
cp -r custlist/testing "$work/build/custlist/"

export LD_PRELOAD="$("$PY" -c 'import atheris, os; print(os.path.join(atheris.path(), "asan_with_fuzzer.so"))')"
export ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export PYTHONPATH="$PWD/$work/build:$PWD/fuzz" PYTHONSAFEPATH=1
"$PY" -c "import custlist._core as c; assert '/fuzz/.work/' in c.__file__, c.__file__"
log="$work/fuzz.log"
status=0
"$PY" fuzz/fuzz_decode.py -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=4096 \
    -artifact_prefix="$work/" -print_final_stats=1 \
    "$work/corpus" tests/corpus/hostile tests/corpus/valid >"$log" 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
    cat "$log"
    echo "fuzz: FINDING (exit $status); the input is in $work/" >&2
    exit "$status"
fi
grep -E "^(Done|stat::)" "$log"
echo "fuzz: no finding in ${secs} s"
