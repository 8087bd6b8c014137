#!/usr/bin/env bash
# Fuzz the JSON decoder for a bounded time:   bash fuzz/run.sh [seconds]   (default 60)
#
# The C core is built apart, in fuzz/.work/build (the in-place build is left
# alone), with clang: coverage for libFuzzer (-fsanitize=fuzzer-no-link) plus
# AddressSanitizer and UndefinedBehaviorSanitizer.  fuzz/decode_fuzzer.py runs
# under atheris, seeded from tests/corpus (each file prefixed with the
# selector byte of its target directory) and from what earlier runs kept in
# fuzz/.work/corpus.  A finding -- a crash, a sanitizer report, an exception
# other than DecodeError, a wrong value, a hang -- exits non-zero and leaves
# the input in fuzz/.work/ (crash-*, timeout-*, oom-*); replay it with
#   python fuzz/decode_fuzzer.py --replay fuzz/.work/crash-...
# and, once fixed, add its body to tests/corpus/<hostile|valid>/<target>/.
#
# Environment: VPY or PYTHON (the interpreter; default .venv/bin/python, else
# python3), FUZZ_JOBS (parallel fuzzing processes, default 1),
# FUZZ_PLAIN=1 (skip the sanitizers: a plain build, Python-level checks only).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
secs=${1:-60}
PY=${VPY:-${PYTHON:-.venv/bin/python}}
[ -x "$PY" ] || command -v "$PY" >/dev/null 2>&1 || PY=python3
PY=$("$PY" -c 'import sys; print(sys.executable)')       # the interpreter itself, not a shim
work=fuzz/.work
mkdir -p "$work/corpus"
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo

apt_install() {   # apt-get update only when something is missing
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

"$PY" -c "import atheris" 2>/dev/null || "$PY" -m pip install -q atheris
plain=${FUZZ_PLAIN:-0}
if [ "$plain" != 1 ] && ! command -v clang >/dev/null 2>&1; then
    apt_install clang || true
fi
command -v clang >/dev/null 2>&1 || plain=1
asan_rt=$("$PY" -c 'import atheris, os; print(os.path.join(atheris.path(), "asan_with_fuzzer.so"))')
[ -f "$asan_rt" ] || plain=1

# --- the build ------------------------------------------------------------
build=$work/build
rm -rf "$build"
mkdir -p "$build"
if [ "$plain" = 1 ]; then
    echo "fuzz: plain build (no sanitizers)" >&2
    CUSTLIST_CFLAGS="-O1 -g" CUSTLIST_LDFLAGS="" \
        "$PY" setup.py -q build_ext --build-lib "$build" --build-temp "$build/tmp" >"$work/build.log" 2>&1 \
        || { cat "$work/build.log"; exit 2; }
else
    san="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
    CC=clang LDSHARED="clang -shared" \
    CUSTLIST_CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link $san" \
    CUSTLIST_LDFLAGS="$san" \
        "$PY" setup.py -q build_ext --build-lib "$build" --build-temp "$build/tmp" >"$work/build.log" 2>&1 \
        || { cat "$work/build.log"; exit 2; }
fi
# The rest of the package beside the instrumented extension.
(cd custlist && find . -name '*.py' -o -name '*.pyi' -o -name py.typed) | while read -r f; do
    mkdir -p "$build/custlist/$(dirname "$f")"
    cp "custlist/$f" "$build/custlist/$f"
done

# --- seeds: tests/corpus/<kind>/<target>/<case>.bin -> selector + body ------
seeds=$work/seeds
rm -rf "$seeds"
mkdir -p "$seeds"
export PYTHONPATH="$root/$build" PYTHONSAFEPATH=1 PYTHONDONTWRITEBYTECODE=1
if [ "$plain" != 1 ]; then
    export LD_PRELOAD="$asan_rt"
    export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=1:detect_stack_use_after_return=1
    export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
fi
"$PY" - "$seeds" "$work/json.dict" <<'EOF'
import hashlib, pathlib, sys
sys.path.insert(0, "tests")
import custlist._core
assert "/fuzz/.work/build/" in custlist._core.__file__, custlist._core.__file__
import decode_targets as fd
seeds, names = pathlib.Path(sys.argv[1]), set()
for f in sorted(pathlib.Path("tests/corpus").glob("*/*/*.bin")):
    if f.parent.name not in fd.BY_NAME:
        sys.exit(f"{f}: no fuzz target called {f.parent.name!r}")
    data = bytes([fd.selector(f.parent.name)]) + f.read_bytes()
    (seeds / hashlib.sha1(data).hexdigest()).write_bytes(data)
# A dictionary: JSON tokens and every key and enum value the schemas know.
words = {'"', ":", ",", "{", "}", "[", "]", "true", "false", "null", "-", "0", "e", "E", ".",
         "\\u", "\\ud83d\\ude80", "\\\\", "\\\"", "\\n", "1e999", "-0", "9007199254740993",
         "T00:00:00Z", "+01:00", "2026-01-04", "9500.00", "\xef\xbb\xbf"}
def walk(spec):
    kind = spec[0]
    if kind == "list":
        walk(spec[1])
    elif kind == "enum":
        words.update(spec[1])
    elif kind == "record":
        for path, _, sub in spec[3]:
            words.update(path)
            walk(sub)
    elif kind == "union":
        words.add(spec[1]); words.update(spec[2])
        for sub in spec[2].values():
            walk(sub)
        if spec[3] is not None:
            walk(spec[3])
for t in fd.TARGETS:
    walk(t.spec)
def quote(w):
    b = w.encode("utf-8") if not w.startswith("\xef") else w.encode("latin-1")
    return '"' + "".join(chr(c) if 32 <= c < 127 and c not in (34, 92) else "\\x%02x" % c
                         for c in b) + '"'
pathlib.Path(sys.argv[2]).write_text("".join(quote(w) + "\n" for w in sorted(words)) +
                                     "".join(quote('"%s"' % w) + "\n" for w in sorted(words)
                                             if w.isidentifier()))
print(f"fuzz: {len(list(seeds.iterdir()))} seeds, core {custlist._core.__file__}")
EOF

# --- the run -----------------------------------------------------------------
log=$work/fuzz.log
jobs=${FUZZ_JOBS:-1}
extra=()
[ "$jobs" -gt 1 ] && extra=(-fork="$jobs" -ignore_crashes=0)
status=0
start=$(date +%s)
"$PY" fuzz/decode_fuzzer.py "${extra[@]}" -max_total_time="$secs" -max_len=16384 -timeout=10 \
    -rss_limit_mb=3072 -detect_leaks=0 -dict="$work/json.dict" -artifact_prefix="$work/" \
    -print_final_stats=1 "$work/corpus" "$seeds" >"$log" 2>&1 || status=$?
elapsed=$(( $(date +%s) - start ))
if [ "$status" -ne 0 ]; then
    tail -n 80 "$log"
    echo "fuzz: FINDING after ${elapsed} s (exit $status); log $log; inputs:" >&2
    ls -1t "$work"/crash-* "$work"/timeout-* "$work"/oom-* "$work"/leak-* 2>/dev/null | head -5 >&2 || true
    exit "$status"
fi
grep -E "^(Done|stat::number_of_executed_units|stat::new_units_added)" "$log" || true
echo "fuzz: no finding in ${elapsed} s ($( [ "$plain" = 1 ] && echo plain || echo ASan+UBSan ) build)"
