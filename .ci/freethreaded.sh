#!/usr/bin/env bash
# make test-freethreaded (not part of .ci/run: the CPython build is too long
# for it cold): a free-threaded CPython 3.13 (--disable-gil) built from the
# upstream tarball in Debian 13's python3.13 source package, cached under
# $CUSTLIST_CACHE/py313t; then custlist built against it (-Werror) and the
# threading and fork tests run on it, first as shipped (the extension
# declares Py_MOD_GIL_USED, so importing it turns the GIL back on), then with
# PYTHON_GIL=0 forcing the GIL off, which shows what the engine's shared state
# does without it.
#   .ci/freethreaded.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${CUSTLIST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/custlist}
source .ci/chroot.sh
root=$(bash .ci/roots.sh trixie-ft)
mkdir -p "$CACHE/py313t" "$root/build"
mount --bind "$CACHE/py313t" "$root/build"
trap 'umount -l "$root/build"; unmount_root "$root"' EXIT
py=/build/prefix/bin/python3.13t

if [ ! -f "$CACHE/py313t/prefix/.done" ]; then
    start=$(date +%s)
    in_root "$root" sh -ec '
        sed -n "s/^deb /deb-src /p" /etc/apt/sources.list >/etc/apt/sources.list.d/src.list
        apt-get update -qq
        rm -rf /build/src /build/prefix; mkdir -p /build/src; cd /build/src
        apt-get source --download-only -qq python3.13 >/dev/null 2>&1
        tar -xJf python3.13_*.orig.tar.xz
        cd Python-3.13*/
        ./configure -q --disable-gil --prefix=/build/prefix --with-ensurepip=install >/build/configure.log 2>&1
        make -s -j"$(nproc)" >/build/make.log 2>&1
        make -s install >>/build/make.log 2>&1'
    echo "freethreaded: CPython built in $(( $(date +%s) - start ))s" | tee "$CACHE/py313t/build-time.txt"
    touch "$CACHE/py313t/prefix/.done"
fi
cp "${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}" "$root/tmp/host-ca.crt"
[ -x "$CACHE/py313t/prefix/bin/pytest" ] \
    || in_root "$root" env PIP_CERT=/tmp/host-ca.crt $py -m pip install -q pytest setuptools packaging

copy_tree "$root/src"
in_root "$root" sh -ec "cd /src && $py -VV && CUSTLIST_CFLAGS=-Werror $py setup.py -q build_ext --inplace >/dev/null"
tests="${*:-tests/test_lifecycle.py tests/test_engine.py tests/test_reliability.py}"
# As shipped: the GIL comes back when custlist is imported, with a
# RuntimeWarning saying so (expected here, so filtered: tests check stderr).
echo "freethreaded: as shipped (the GIL comes back for custlist)"
rc=0
in_root "$root" sh -ec "cd /src && $py -c 'import sys, custlist; assert sys._is_gil_enabled()' 2>/dev/null
    PYTHONWARNINGS='ignore:The global interpreter lock (GIL) has been enabled' $py -m pytest -q -p no:cacheprovider $tests" || rc=1
echo "freethreaded: PYTHON_GIL=0 (the GIL forced off: not a supported mode, a probe)"
in_root "$root" sh -ec "cd /src && PYTHON_GIL=0 $py -m pytest -q -p no:cacheprovider $tests" \
    || echo "freethreaded: failures with the GIL off (see above)"
exit $rc
