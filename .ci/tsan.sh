#!/usr/bin/env bash
# The threaded paths of the C core under ThreadSanitizer:
#   bash .ci/tsan.sh [extra pytest args]
#
# Builds custlist._core with gcc -fsanitize=thread into .ci/.tsan/lib (the
# in-place build is left alone) beside a copy of the Python package, then
# runs the tests that drive threads -- close() from another thread, many
# pagers in many threads closed at random, fork, interpreter exit with a
# daemon thread, one client shared by threads, Ctrl-C -- with the TSan
# runtime preloaded into the (uninstrumented) interpreter.  Subprocesses the
# tests start inherit the preload, so their scenarios run under TSan too.
# Any report fails the run.  .ci/tsan.supp may silence races inside CPython
# or libcurl only, never a frame of csrc/.
#
# Interpreter: VPY or PYTHON, default .venv/bin/python, else python3.  What is
# missing (gcc's TSan runtime, pytest) is installed first.  gcc, not clang:
# clang 14's TSan runtime (Debian bookworm) crashes at start-up when
# preloaded into CPython, before any of our code runs; gcc 12's does not.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/lib.sh
out=.ci/.tsan

command -v gcc >/dev/null 2>&1 || apt_install gcc
command -v curl-config >/dev/null 2>&1 || apt_install libcurl4-openssl-dev
rt=$(gcc -print-file-name=libtsan.so)
if [ ! -f "$rt" ]; then
    apt_install "libgcc-$(gcc -dumpversion | cut -d. -f1)-dev"      # brings libtsan
    rt=$(gcc -print-file-name=libtsan.so)
fi
[ -f "$rt" ] || { echo "tsan.sh: no TSan runtime for gcc ($rt)" >&2; exit 2; }
"$PY" -c "import pytest" 2>/dev/null || "$PY" -m pip install -q pytest
"$PY" -c "import setuptools" 2>/dev/null || "$PY" -m pip install -q setuptools

say "building with gcc -fsanitize=thread"
rm -rf "$out"
mkdir -p "$out/lib" "$out/reports"
tsan="-fsanitize=thread"
CC=gcc LDSHARED="gcc -shared" \
    CUSTLIST_CFLAGS="-Werror -O1 -g -fno-omit-frame-pointer $tsan" \
    CUSTLIST_LDFLAGS="$tsan" \
    "$PY" setup.py -q build_ext --build-lib "$out/lib" --build-temp "$out/tmp" \
    >"$out/build.log" 2>&1 || { cat "$out/build.log"; exit 2; }
(cd custlist && find . -name __pycache__ -prune -o -type f ! -name '*.so' -print) |
    while read -r f; do
        mkdir -p "$out/lib/custlist/$(dirname "$f")"
        cp "custlist/$f" "$out/lib/custlist/$f"
    done
lib=$root/$out/lib
cat >"$lib/_tsan_guard.py" <<GUARD
import custlist._core

def pytest_report_header(config):
    return "custlist._core: " + custlist._core.__file__

assert custlist._core.__file__.startswith("$lib/"), custlist._core.__file__
GUARD

reports=$root/$out/reports
export LD_PRELOAD="$rt"
export PYTHONPATH="$lib" PYTHONSAFEPATH=1 PYTHONMALLOC=malloc PYTHONDONTWRITEBYTECODE=1
export TSAN_OPTIONS="halt_on_error=1:exitcode=66:second_deadlock_stack=1:log_path=$reports/tsan:suppressions=$root/.ci/tsan.supp"
"$PY" -c "import custlist._core as c; assert c.__file__.startswith('$lib/'), c.__file__"

say "threaded tests under ThreadSanitizer"
status=0
"$PY" -m pytest -q -p _tsan_guard -p no:cacheprovider --import-mode=append \
    tests/test_lifecycle.py \
    "tests/test_reliability.py::test_one_client_many_threads" \
    "tests/test_reliability.py::test_other_threads_run_while_a_page_downloads" \
    "tests/test_reliability.py::test_one_pager_from_two_threads_is_refused" \
    "tests/test_reliability.py::test_keyboard_interrupt_stops_a_slow_transfer_promptly" \
    "tests/test_reliability.py::test_keyboard_interrupt_during_retry_backoff" \
    "tests/test_reliability.py::test_prefetch_overlaps_fetch_and_consumption" \
    "tests/test_reliability.py::test_stopping_early_closes_cleanly" \
    tests/test_fanout.py tests/test_ratelimit.py \
    tests/test_driver.py tests/test_async_chain.py tests/test_oauth_engine.py \
    tests/test_oauth_chain.py tests/test_fanout_chain.py \
    "$@" || status=$?
unset LD_PRELOAD TSAN_OPTIONS PYTHONMALLOC
if compgen -G "$reports/*" >/dev/null; then
    say "THREADSANITIZER REPORTS"
    cat "$reports"/*
    exit 1
fi
if [ "$status" -ne 0 ]; then
    say "the threaded tests failed under TSan (exit $status), no TSan report"
    exit "$status"
fi
say "no ThreadSanitizer report"
