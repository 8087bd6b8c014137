#!/usr/bin/env bash
# make wheel: a binary wheel in dist/ for every CPython of .ci/pythons, each
# with the trimmed static libcurl of .ci/libcurl.sh and the static OpenSSL 3
# of .ci/openssl.sh linked in and repaired by auditwheel (which bundles
# nghttp2) to the most widely compatible manylinux tag it allows.
# All are compiled in a Debian 11 root (BUILD_ROOT, glibc 2.31: the wheels
# are manylinux_2_31), libcurl and OpenSSL too, so all need only that glibc:
# each with its own CPython's headers (pyenv's builds, the venv's, or a
# Debian root's python3.X-dev), mounted into the root read-only, never the
# other headers of where they come from (glibc's, libcurl's).
#   .ci/wheel.sh [VERSION...]     (default: every version of .ci/pythons)
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${CUSTLIST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/custlist}
VPY=${VPY:-.venv/bin/python}
work=$CACHE/wheel
BUILD_ROOT=bullseye-build
source .ci/chroot.sh
source .ci/tree.sh
source .ci/pythons.sh
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=($(python_versions))

# The Debian roots (headers and wheel-check's bare roots) are made while
# libcurl builds: they wait on the network and the disk, not the CPU.
command -v debootstrap >/dev/null || {
    apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap; }
mkdir -p "$CACHE"
roots=$(for v in "${versions[@]}"; do python_field "$v" build; python_field "$v" smoke; done |
        sed -n 's/^root://p; /-bare$/p'; echo "$BUILD_ROOT"; echo bullseye-bare)
roots=$(printf '%s\n' $roots | sort -u)
# Roots of one Debian release share its package cache: made one after another.
pids=()
for suite in $(printf '%s\n' $roots | sed 's/-.*//' | sort -u); do
    for r in $roots; do
        [ "${r%%-*}" != "$suite" ] || bash .ci/roots.sh --cached-only "$r"
    done >"$CACHE/roots-$suite.log" 2>&1 & pids+=($!)
done
for p in "${pids[@]}"; do
    wait "$p" || { cat "$CACHE"/roots-*.log; exit 1; }
done
openssl=$(bash .ci/openssl.sh "$BUILD_ROOT")
prefix=$(CUSTLIST_CURL_ROOT=$BUILD_ROOT CUSTLIST_CURL_OPENSSL=$openssl bash .ci/libcurl.sh)
# build makes the sdist and wheel retags; auditwheel runs in the build root.
$VPY -c 'import build, wheel' 2>/dev/null || $VPY -m pip install -q build wheel

rm -rf "$work"; mkdir -p "$work/sdist" dist
for v in "${versions[@]}"; do rm -f dist/custlist-*-cp${v/./}-*.whl; done
# Wheels are built from the sdist, so each build starts from clean sources.
build_sdist "$work/sdist" >"$work/sdist.log" 2>&1 || { cat "$work/sdist.log"; exit 1; }
sdist=$(ls "$work"/sdist/custlist-*.tar.gz)

# The build root sees the sdist, the outputs ($work), libcurl and OpenSSL at
# the same paths as here; its /venv has setuptools, wheel and auditwheel.
root=$(bash .ci/roots.sh "$BUILD_ROOT")
mounted=("$root")
release() {
    local i
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
        if [ "${mounted[i]}" = "$root" ]; then unmount_root "$root"; else umount -l "${mounted[i]}"; fi
    done
}
trap release EXIT
bind() {    # host dir, dir inside the root, [ro]
    mkdir -p "$root$2"
    mount --bind "$1" "$root$2"; mounted+=("$root$2")
    [ -z "${3:-}" ] || mount -o remount,bind,ro "$root$2"
}
bind "$work" "$work"
bind "$prefix" "$prefix" ro
bind "$openssl" "$openssl" ro
venv_version=$($VPY -c 'import sys; print("%d.%d" % sys.version_info[:2])')
for v in "${versions[@]}"; do
    tag=cp${v/./}
    raw=$work/raw$tag
    mkdir -p "$raw" "$work/repaired$tag"
    build=$(python_field "$v" build)
    case $build in
    venv)    [ "$venv_version" = "$v" ] \
                 || { echo "wheel: .ci/pythons builds $v with the venv's interpreter, which is $venv_version" >&2; exit 1; }
             inc=$(dirname "$($VPY -c 'import sysconfig; print(sysconfig.get_config_var("INCLUDEPY"))')") ;;
    pyenv:*) inc=$(pyenv_prefix "${build#pyenv:}")/include ;;
    root:*)  inc=$(bash .ci/roots.sh --cached-only "${build#root:}")/usr/include ;;
    ft:*)    inc=$(bash .ci/pyft.sh "${v%t}")/prefix/include ;;    # python3.Yt
    esac
    # Only this CPython's headers: its include directory (and Debian's
    # multiarch one, with pyconfig.h), mounted read-only at /cpython/$tag.
    [ -f "$inc/python$v/Python.h" ] || { echo "wheel: no CPython $v headers in $inc" >&2; exit 1; }
    hdr=/cpython/$tag
    bind "$inc/python$v" "$hdr/python$v" ro
    [ ! -d "$inc/x86_64-linux-gnu/python$v" ] || bind "$inc/x86_64-linux-gnu/python$v" "$hdr/x86_64-linux-gnu/python$v" ro
    # The root's interpreter (3.9) runs the build for the target's headers,
    # so its version check is not the target's.
    in_root "$root" env PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$openssl/lib/pkgconfig" CUSTLIST_LIBCURL_STATIC=1 \
        CUSTLIST_LDFLAGS=-Wl,--strip-all CUSTLIST_CFLAGS="${CUSTLIST_CFLAGS:-}" \
        CUSTLIST_PYTHON_INCLUDE="$hdr/python$v:$hdr" CUSTLIST_EXT_SUFFIX=".cpython-${v/./}-x86_64-linux-gnu.so" \
        /venv/bin/pip wheel -q --no-deps --no-build-isolation --ignore-requires-python -w "$raw" "$sdist" \
        >"$work/build-$tag.log" 2>&1 || { cat "$work/build-$tag.log"; exit 1; }
    # (a free-threaded build: cpXY-cpXYt)
    $VPY -m wheel tags --remove --python-tag "${tag%t}" --abi-tag "$tag" "$raw"/*.whl >/dev/null
    # Repaired in the root, so the nghttp2 it bundles is Debian 11's (zlib is
    # the system's: manylinux allows it).
    in_root "$root" env PATH=/venv/bin:/usr/bin:/bin auditwheel repair -w "$work/repaired$tag" "$raw"/*.whl >"$work/repair-$tag.log" 2>&1 \
        || { cat "$work/repair-$tag.log"; exit 1; }
    cp "$work/repaired$tag"/*.whl dist/
done

for w in $(for v in "${versions[@]}"; do ls dist/custlist-*-cp${v/./}-*.whl; done); do
    in_root "$root" env PATH=/venv/bin:/usr/bin:/bin auditwheel show "$work"/repaired*/"$(basename "$w")" >"$work/show-$(basename "$w").txt" 2>&1 \
        || { cat "$work/show-$(basename "$w").txt"; exit 1; }
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
