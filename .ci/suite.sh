#!/usr/bin/env bash
# make test-pyXY: the suite on CPython X.Y as .ci/pythons says (its build
# column gives the interpreter, its suite column full or the files of
# .ci/subset), with the C core built -Werror and deprecation warnings as
# errors (the interpreter's and the tests').
#   pyenv:X.Y.Z  on this host: a venv of pyenv's CPython holding the test
#                extra (cached under $CUSTLIST_CACHE/venvs, keyed by the
#                version and the extra), custlist installed into it from a
#                copy of this tree, the tests run from that copy
#   root:NAME    in a fresh Debian root NAME (.ci/roots.sh), installed in
#                place in the root's venv of python3.X (/venv-X.Y, or /venv
#                for the root's python3)
#   ft:NAME      likewise in a fresh root NAME, on the free-threaded CPython
#                of .ci/pyft.sh mounted in, from a venv of it holding the
#                test extra (cached as for pyenv:; wheels preferred: a few
#                small C packages build from source), with the GIL held off
#                for the whole run (PYTHON_GIL=0: no extension the tests
#                import can turn it back on)
#   .ci/suite.sh X.Y [pytest args...]
#   .ci/suite.sh X.Yt --run SCRIPT [args...]   (free-threaded: a script instead)
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${CUSTLIST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/custlist}
source .ci/chroot.sh
source .ci/tree.sh
source .ci/pythons.sh
v=$1; shift
build=$(python_field "$v" build)
case $(python_field "$v" suite) in
full)   tests=() ;;
subset) tests=($(sed 's/#.*//' .ci/subset)) ;;
*) echo "suite: no suite for CPython $v in .ci/pythons" >&2; exit 2 ;;
esac
# dlt and a Jupyter kernel have no wheels for CPython 3.14+ yet, so the test
# extra leaves them out there (pyproject.toml): so does the suite there.
# The README's examples use dlt too: they are run on the other CPythons.
case $v in
3.1[4-9]|3.1[4-9]t) [ "$(python_field "$v" suite)" = full ] \
              && tests+=(--ignore=tests/test_dlt.py --ignore=tests/test_progress_notebook.py
                         --deselect
                         tests/test_readme.py::test_python_examples_run_alone_and_print_what_they_say) ;;
esac
# Free-threaded CPython: polars, duckdb and dlt ship no free-threaded build
# (abi3 or Rust sources only) and nbclient's kernel stack does not install,
# so the test extra goes without them there (ft_without) and so do the tests
# that need them: those named after polars or duckdb, the dlt and notebook
# files, the README examples (dlt), and the Ctrl-C test that reads with
# polars; tests/test_arrow.py reads CUSTLIST_TESTS_WITHOUT for the rest.
ft_without="polars duckdb dlt nbclient"
case $build in
ft:*) tests+=(--ignore=tests/test_dlt.py --ignore=tests/test_progress_notebook.py
              --deselect tests/test_readme.py::test_python_examples_run_alone_and_print_what_they_say
              --deselect tests/test_arrow_errors.py::test_ctrl_c_during_pyarrow_table_reaches_the_caller_as_keyboard_interrupt
              -k "'not polars and not duckdb'") ;;
esac
# A Debian root has /dev bound without /dev/pts: no pseudo-terminal there for
# the one test that draws a progress bar on a terminal (run on the host).
case $build in
root:*|ft:*) [ "$(python_field "$v" suite)" = full ] \
            && tests+=(--deselect
                       tests/test_export_rerun.py::test_the_bar_is_drawn_on_a_terminal_without_asking) ;;
esac
warn="-W error::DeprecationWarning -W error::PendingDeprecationWarning"
echo "suite: CPython $v ($build): ${tests[*]:-every test file}"

case $build in
pyenv:*)
    prefix=$(pyenv_prefix "${build#pyenv:}")
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    # The build backend, custlist's dependencies and the test extra, one
    # requirement a line (some carry markers).
    python3 -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; print("\n".join(["setuptools>=77", "wheel"] + p["dependencies"] + p["optional-dependencies"]["test"]))' \
        >"$tmp/requirements.txt"
    venv=$CACHE/venvs/py${build#pyenv:}-$(sha256sum <"$tmp/requirements.txt" | cut -c1-10)
    if [ ! -f "$venv/.done" ]; then
        rm -rf "$venv"
        "$prefix/bin/python$v" -m venv "$venv"
        "$venv/bin/python" -m pip install -q --upgrade pip
        "$venv/bin/python" -m pip install -q -r "$tmp/requirements.txt"
        touch "$venv/.done"
    fi
    copy_tree "$tmp/src"
    CUSTLIST_CFLAGS=-Werror "$venv/bin/python" -m pip install -q --no-build-isolation --no-deps --force-reinstall "$tmp/src" \
        >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; exit 1; }
    cd "$tmp/src"
    rm -rf custlist          # the tests import the installed package, never these sources
    "$venv/bin/python" -VV
    PATH=$venv/bin:$PATH "$venv/bin/python" $warn -m pytest -q -p no:cacheprovider $warn "${tests[@]}" "$@"
    ;;
root:*)
    root=$(bash .ci/roots.sh "${build#root:}")
    trap 'unmount_root "$root"' EXIT
    venv=/venv-$v
    [ -d "$root$venv" ] || venv=/venv
    copy_tree "$root/src"
    # Installed in place (as make test does), so its command line is on PATH too.
    in_root "$root" sh -c "cd /src && $venv/bin/python -VV && CUSTLIST_CFLAGS=-Werror $venv/bin/pip install -q --no-build-isolation --no-deps -e . >/tmp/build.log 2>&1 || { cat /tmp/build.log; exit 1; }"
    in_root "$root" sh -c "cd /src && PATH=$venv/bin:\$PATH $venv/bin/python $warn -m pytest -q -p no:cacheprovider $warn ${tests[*]} $*"
    ;;
ft:*)
    source .ci/pyft.sh "${v%t}"
    tmp=$(mktemp -d)
    python3 -c 'import re, sys, tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; print("\n".join(r for r in ["setuptools>=77", "wheel"] + p["dependencies"] + p["optional-dependencies"]["test"] if re.match(r"[\w.-]+", r).group() not in sys.argv[1:]))' \
        $ft_without >"$tmp/requirements.txt"
    venv=$CACHE/venvs/$(basename "$pyft_dir")-$(sha256sum <"$tmp/requirements.txt" | cut -c1-10)
    root=$(bash .ci/roots.sh "${build#ft:}")
    trap 'umount -l "$root/venv-ft" 2>/dev/null; unbind_pyft "$root"; unmount_root "$root"; rm -rf "$tmp"' EXIT
    bind_pyft "$root"
    mkdir -p "$venv" "$root/venv-ft"
    mount --bind "$venv" "$root/venv-ft"
    if [ ! -f "$venv/.done" ]; then
        cp "$tmp/requirements.txt" "$root/tmp/requirements.txt"
        cp "${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}" "$root/tmp/host-ca.crt"
        find "$venv" -mindepth 1 -delete
        in_root "$root" sh -ec "$PYFT/bin/python$v -m venv /venv-ft
            PIP_CERT=/tmp/host-ca.crt /venv-ft/bin/python -m pip install -q --prefer-binary \
                --only-binary=numpy,pandas,pyarrow -r /tmp/requirements.txt"
        touch "$venv/.done"
    fi
    copy_tree "$root/src"
    in_root "$root" sh -c "cd /src && /venv-ft/bin/python -VV && CUSTLIST_CFLAGS=-Werror /venv-ft/bin/pip install -q --no-build-isolation --no-deps -e . >/tmp/build.log 2>&1 || { cat /tmp/build.log; exit 1; }"
    if [ "${1:-}" = --run ]; then
        # .ci/suite.sh X.Yt --run SCRIPT [ARGS...]: a script of the tree (a
        # benchmark) on that interpreter, the GIL off, instead of the suite
        shift
        in_root "$root" sh -c "cd /src && PYTHON_GIL=0 PATH=/venv-ft/bin:/usr/sbin:\$PATH /venv-ft/bin/python $*"
    else
        in_root "$root" sh -c "cd /src && PYTHON_GIL=0 CUSTLIST_TESTS_WITHOUT=${ft_without// /,} PATH=/venv-ft/bin:\$PATH /venv-ft/bin/python $warn -m pytest -q -p no:cacheprovider $warn ${tests[*]} $*"
    fi
    ;;
*) echo "suite: CPython $v is built by $build: its suite is make test" >&2; exit 2 ;;
esac
