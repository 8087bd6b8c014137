#!/usr/bin/env bash
# The C core without the GIL, under ThreadSanitizer:
#   bash .ci/tsan-ft.sh [pytest args...]     (no test named: the threaded tests below)
#
# .ci/tsan.sh preloads TSan into an uninstrumented GIL interpreter, where the
# GIL orders nearly everything.  Here the interpreter is free-threaded
# CPython 3.13 built with its own TSan support (.ci/pyft.sh 3.13 tsan:
# --disable-gil --with-thread-sanitizer, so its critical sections, PyMutex
# and reference counts are seen by TSan as what they are), the core is
# compiled with gcc -fsanitize=thread against it, and the tests that drive
# threads run with PYTHON_GIL=0: decoding with one schema in many threads,
# many pagers and fan-outs in many threads, close from another thread, the
# rate limiter, fork, interpreter exit, asyncio, parallel pages, HTTP/2
# multiplexing, the fetch thread's locating pass.  Subprocesses the tests
# start are the same interpreter with the same options, so their scenarios
# run under TSan too.  Any report, in any process, fails the run
# (halt_on_error, and the reports directory must stay empty).
# .ci/tsan-ft.supp may silence reports inside CPython, libcurl or OpenSSL
# only, never a frame of csrc/.
#
# It runs in a private overlay of the trixie-dev root (.ci/roots.sh), whose
# python3.13 source the interpreter is built from, with a venv of that
# interpreter holding pytest and setuptools alone (the tests below need
# nothing else), cached under $CUSTLIST_CACHE/venvs.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${CUSTLIST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/custlist}
source .ci/chroot.sh
source .ci/tree.sh
start=$(date +%s)
say() { printf '\n== tsan-ft.sh: %s (%ss)\n' "$*" "$(( $(date +%s) - start ))"; }

source .ci/pyft.sh 3.13 tsan                      # PYFT, pyft_dir, bind_pyft
py=$PYFT/bin/python3.13t
lower=$(bash .ci/roots.sh --cached-only trixie-dev)
root=$CACHE/roots/py3.13t-tsan-run
out=$root.out                                     # on the host: the build log, the reports
# what the venv holds: pytest and setuptools (to build the core), no more
reqs="'pytest>=8.1' 'setuptools>=77'"     # words of a shell line
venv=$CACHE/venvs/$(basename "$pyft_dir")-$(echo "$reqs" | sha256sum | cut -c1-10)
cleanup() {
    umount -l "$root/venv-tsan" 2>/dev/null || true
    umount -l "$root/out" 2>/dev/null || true
    unbind_pyft "$root"; unmount_root "$root"
}
cleanup
rm -rf --one-file-system "$root" "$root.upper" "$root.work" "$out"
mkdir -p "$root" "$root.upper" "$root.work" "$out/reports"
# A private overlay: trixie-dev itself may be in use by another run.
mount -t overlay overlay -o "lowerdir=$lower,upperdir=$root.upper,workdir=$root.work" "$root" 2>/dev/null \
    || cp -a "$lower/." "$root/"
trap cleanup EXIT
bind_pyft "$root"
mkdir -p "$venv" "$root/venv-tsan" "$root/out"
mount --bind "$venv" "$root/venv-tsan"
mount --bind "$out" "$root/out"

# The interpreter's own start-up (pip, compileall) is no test of custlist:
# no reports while the venv is made and the core is built.
quiet=TSAN_OPTIONS=report_bugs=0
if [ ! -f "$venv/.done" ]; then
    say "a venv of $(basename "$pyft_dir") with $reqs"
    find "$venv" -mindepth 1 -delete
    cp "${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}" "$root/tmp/host-ca.crt"
    in_root "$root" env $quiet sh -ec "$py -m venv /venv-tsan
        PIP_CERT=/tmp/host-ca.crt /venv-tsan/bin/python -m pip install -q --disable-pip-version-check $reqs"
    touch "$venv/.done"
fi
copy_tree "$root/src"
rm -rf "$root/src/.ci/.tsan"

# gcc's -Wtsan: TSan does not model atomic_thread_fence.  The key maps'
# sequence lock (csrc/scan.h) orders its fields with fences, but
# every field it orders is itself read and written atomically, so TSan has
# nothing to report there either way: the warning is kept, not made an error.
say "building the core with gcc -fsanitize=thread against $(basename "$pyft_dir")"
tsan="-fsanitize=thread"
in_root "$root" env $quiet CC=gcc LDSHARED="gcc -shared" \
    CUSTLIST_CFLAGS="-Werror -Wno-error=tsan -O1 -g -fno-omit-frame-pointer $tsan" \
    CUSTLIST_LDFLAGS="$tsan" \
    sh -c "cd /src && /venv-tsan/bin/python setup.py -q build_ext --inplace >/out/build.log 2>&1" \
    || { cat "$out/build.log"; exit 2; }
in_root "$root" env $quiet PYTHON_GIL=0 sh -ec "cd /src && /venv-tsan/bin/python -c '
import sys, sysconfig, custlist._core as c
assert sysconfig.get_config_var(\"Py_GIL_DISABLED\") and \"--with-thread-sanitizer\" in sysconfig.get_config_var(\"CONFIG_ARGS\")
assert c.__file__.startswith(\"/src/custlist/\"), c.__file__
assert not sys._is_gil_enabled()
print(sys.version.replace(chr(10), \" \"), c.__file__)'"

# No test named (no arguments, or options alone): the threaded tests.  The
# venv has no pyarrow, tqdm or IPython (uninstrumented native code in a TSan
# process reports what is not there): the few tests that need them are left
# out (those named or parametrised to_arrow, and the ones below);
# tests/test_freethreading.py reads Arrow through ctypes instead.
if [ $# -eq 0 ] || [ "${1#-}" != "$1" ]; then
    set -- tests/test_freethreading.py tests/test_lifecycle.py tests/test_ratelimit.py \
        tests/test_fanout.py tests/test_fanout_errors.py tests/test_engine_chain.py \
        tests/test_async.py tests/test_async_agree.py tests/test_parallel_pages.py \
        tests/test_http2.py tests/test_pipeline.py tests/test_driver.py \
        tests/test_async_chain.py tests/test_oauth_engine.py tests/test_oauth_chain.py \
        tests/test_fanout_chain.py \
        "tests/test_reliability.py::test_one_client_many_threads" \
        "tests/test_reliability.py::test_other_threads_run_while_a_page_downloads" \
        "tests/test_reliability.py::test_one_pager_from_two_threads_is_refused" \
        "tests/test_reliability.py::test_keyboard_interrupt_stops_a_slow_transfer_promptly" \
        "tests/test_reliability.py::test_prefetch_overlaps_fetch_and_consumption" \
        "tests/test_reliability.py::test_stopping_early_closes_cleanly" \
        "tests/test_values.py::test_repeated_values_decode_correctly_from_many_threads_at_once" \
        -k "not to_arrow" \
        --deselect tests/test_async.py::test_async_for_in_a_notebook_cell \
        --deselect tests/test_async_agree.py::test_cancelled_mid_listing_resumes_from_the_checkpoint_exactly \
        --deselect tests/test_async_agree.py::test_a_401_renews_the_token_once_for_every_listing_off_the_loop \
        --deselect tests/test_async_agree.py::test_a_failed_token_request_ends_the_listing_as_in_for \
        --deselect tests/test_async_agree.py::test_a_progress_bar_ends_with_an_async_listing_that_failed \
        "$@"
fi
say "the threaded tests, GIL off, under ThreadSanitizer: $*"
status=0
in_root "$root" env PYTHON_GIL=0 PYTHONDONTWRITEBYTECODE=1 PATH=/venv-tsan/bin:/usr/local/bin:/usr/bin:/bin \
    TSAN_OPTIONS="halt_on_error=1:exitcode=66:second_deadlock_stack=1:log_path=/out/reports/tsan:suppressions=/src/.ci/tsan-ft.supp" \
    sh -c 'cd /src && exec /venv-tsan/bin/python -m pytest -q -p no:cacheprovider "$@"' sh "$@" \
    || status=$?
if compgen -G "$out/reports/*" >/dev/null; then
    say "THREADSANITIZER REPORTS"
    cat "$out"/reports/*
    exit 1
fi
if [ "$status" -ne 0 ]; then
    say "the threaded tests failed under TSan (exit $status), no TSan report"
    exit "$status"
fi
say "no ThreadSanitizer report"
