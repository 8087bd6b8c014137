#!/usr/bin/env bash
# The whole test suite against a build of the C core instrumented with
# AddressSanitizer + UndefinedBehaviorSanitizer, then a LeakSanitizer run
# that fails on any leak whose allocation stack passes through csrc/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${VPY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
out=.ci/.asan
rm -rf "$out"
mkdir -p "$out"

san="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
CUSTLIST_CFLAGS="-Werror -O1 -g -fno-omit-frame-pointer $san" CUSTLIST_LDFLAGS="$san" \
    "$PY" setup.py -q build_ext --build-lib "$out" --build-temp "$out/tmp" 2>&1 | grep -v "^running" || true
cp custlist/*.py custlist/*.pyi custlist/py.typed "$out/custlist/"
cp -r custlist/testing "$out/custlist/"

export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export PYTHONPATH="$out" PYTHONMALLOC=malloc PYTHONSAFEPATH=1   # no cwd on sys.path
# --import-mode=append keeps the instrumented package ahead of the source tree.
ASAN_OPTIONS=detect_leaks=0:halt_on_error=1 "$PY" -c \
    "import custlist._core as c, sys; assert c.__file__.startswith('$out') or '/.asan/' in c.__file__, c.__file__; print('sanitized core:', c.__file__)"
ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:detect_stack_use_after_return=1 \
    "$PY" -m pytest -q -p no:cacheprovider --import-mode=append tests --ignore=tests/test_leaks.py
# The RSS checks need freed memory to be reusable: no quarantine for them.
ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:quarantine_size_mb=0:thread_local_quarantine_size_kb=0 \
    "$PY" -m pytest -q -p no:cacheprovider --import-mode=append tests/test_leaks.py

# Leak check: CPython itself keeps memory at exit, so only leaks allocated
# through the engine count.
log="$out/lsan"
ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 LSAN_OPTIONS=exitcode=0:log_path="$log" \
    "$PY" .ci/leakcheck.py
reports=$(cat "$log".* 2>/dev/null || true)
if printf '%s\n' "$reports" | awk '/^(Direct|Indirect) leak/{block=$0; next} {block=block"\n"$0} /^$/{ if (block ~ /csrc\//) {print block; bad=1} block="" } END{exit bad}'; then
    echo "leak check: no leak through csrc/"
else
    echo "leak check: leaks allocated by the C engine (above)" >&2
    exit 1
fi
