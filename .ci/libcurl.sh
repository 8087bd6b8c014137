#!/usr/bin/env bash
# A trimmed static libcurl for custlist's wheels, built from Debian's source
# package of curl in Debian unstable (the current curl 8; CUSTLIST_CURL_SUITE
# picks another suite, e.g. bookworm for 7.88.1): the upstream tarball plus
# Debian's fixes to the library (its build-system and packaging patches are
# left out, so no autoreconf).  The source package is fetched with apt,
# through a sources list and package lists of its own under the cache, so
# the host's apt configuration is neither needed nor touched.
# Only what custlist uses is built in: HTTP/1.1, HTTP/2 (nghttp2), HTTPS
# (OpenSSL), gzip/deflate (zlib), proxies.  No CA path is baked in: custlist
# resolves the CA bundle at run time.
#   .ci/libcurl.sh   ->  prints the install prefix (bin/curl-config, lib/libcurl.a)
# The build is cached under $CUSTLIST_CACHE/libcurl/<version>-<flags hash>.
# CUSTLIST_CURL_ROOT=NAME compiles it inside that Debian root of .ci/roots.sh
# (an older glibc: the wheels' floor), which provides the compiler and the
# nghttp2 and zlib headers; CUSTLIST_CURL_OPENSSL=PREFIX links that OpenSSL
# (.ci/openssl.sh) instead of the system's.  Both are part of the cache key.
# Cross-built for another machine when CUSTLIST_CURL_HOST names its GNU
# triple (aarch64-linux-gnu): with that triple's gcc against the Debian
# sysroot CUSTLIST_CURL_SYSROOT (its OpenSSL, nghttp2 and zlib), cached
# under <version>-<flags hash>-<triple>.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${CUSTLIST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/custlist}

CONFIGURE_FLAGS=(
    --disable-shared --enable-static --with-pic
    --with-openssl --with-nghttp2 --with-zlib
    --without-brotli --without-zstd --without-libidn2 --without-libpsl
    --without-librtmp --without-libssh2 --without-libssh --without-gssapi
    --without-libgsasl --without-hyper --without-ngtcp2 --without-nghttp3
    --without-quiche --without-msh3
    --without-ca-bundle --without-ca-path --without-ca-fallback
    --disable-openssl-auto-load-config
    --disable-ldap --disable-ldaps --disable-ftp --disable-file --disable-dict
    --disable-telnet --disable-tftp --disable-pop3 --disable-imap --disable-smtp
    --disable-gopher --disable-mqtt --disable-rtsp --disable-smb
    --disable-ntlm --disable-ntlm-wb --disable-tls-srp --disable-cookies
    --disable-doh --disable-mime --disable-netrc --disable-alt-svc --disable-hsts
    --disable-websockets --disable-unix-sockets --disable-get-easy-options
    --disable-aws --disable-ipfs --disable-kerberos-auth --disable-negotiate-auth
    --disable-headers-api --disable-form-api
    --disable-manual --disable-libcurl-option --disable-versioned-symbols
    --disable-dependency-tracking --enable-optimize --disable-debug
)
# The last --with-openssl given is the one configure uses.
[ -z "${CUSTLIST_CURL_OPENSSL:-}" ] || CONFIGURE_FLAGS+=(--with-openssl="$CUSTLIST_CURL_OPENSSL")
build_root=
[ -z "${CUSTLIST_CURL_ROOT:-}" ] || build_root=$(basename "$(bash .ci/roots.sh --cached-only "$CUSTLIST_CURL_ROOT")")

CROSS=()
if [ -n "${CUSTLIST_CURL_HOST:-}" ]; then
    sysroot=${CUSTLIST_CURL_SYSROOT:?CUSTLIST_CURL_SYSROOT: the sysroot for $CUSTLIST_CURL_HOST}
    CROSS=(--host="$CUSTLIST_CURL_HOST" CC="$CUSTLIST_CURL_HOST-gcc --sysroot=$sysroot"
           PKG_CONFIG_LIBDIR="$sysroot/usr/lib/$CUSTLIST_CURL_HOST/pkgconfig:$sysroot/usr/share/pkgconfig"
           PKG_CONFIG_SYSROOT_DIR="$sysroot")
fi

SUITE=${CUSTLIST_CURL_SUITE:-sid}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

# Host build dependencies (Debian): the libraries libcurl links.
host_deps() {
    [ -z "$build_root" ] || return 0     # the root has them
    local missing=()
    for p in libssl-dev libnghttp2-dev zlib1g-dev pkg-config make gcc dpkg-dev; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
    fi
}

# apt with only $SUITE's source packages; its lists are refreshed once a day.
# A moving suite's Release file can be past its Valid-Until on a machine
# whose clock runs ahead of the mirror.
apt_dir=$CACHE/apt-src-$SUITE
APT=(-o Dir::Etc::SourceList="$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
     -o Dir::State::Lists="$apt_dir/lists" -o Dir::Cache="$apt_dir/cache"
     -o Acquire::Check-Valid-Until=false)
source_lists() {
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache"
    echo "deb-src $MIRROR $SUITE main" >"$apt_dir/sources.list"
    if [ -z "$(find "$apt_dir/lists" -name '*Sources*' -mtime -1 2>/dev/null)" ]; then
        apt-get "${APT[@]}" update -qq >&2
    fi
}

host_deps
source_lists
# The suite's versions of curl, newest first (Debian's ordering: ~rc before
# the release).  The newest one the mirror serves is built: a mirror can list
# a version whose files it does not have yet.
versions=()
for v in $(apt-cache "${APT[@]}" showsrc curl | sed -n 's/^Version: //p' | sort -u); do
    i=${#versions[@]}
    while [ "$i" -gt 0 ] && dpkg --compare-versions "$v" gt "${versions[i-1]}"; do
        versions[i]=${versions[i-1]}; i=$((i - 1))
    done
    versions[i]=$v
done
[ ${#versions[@]} -gt 0 ] || { echo "libcurl.sh: no source package for curl in $SUITE" >&2; exit 1; }
flags_key=$(printf '%s\n' "${CONFIGURE_FLAGS[@]}" $build_root "${CROSS[@]}" | sha256sum | cut -c1-12)
for version in "${versions[@]}"; do
    key=$version-$flags_key${CUSTLIST_CURL_HOST:+-$CUSTLIST_CURL_HOST}
    top=$CACHE/libcurl/$key
    prefix=$top/prefix
    if [ -f "$prefix/.done" ]; then echo "$prefix"; exit 0; fi
    rm -rf "$top"; mkdir -p "$top/dl"
    if (cd "$top/dl" && apt-get "${APT[@]}" source --download-only -qq "curl=$version" >"$top/download.log" 2>&1); then
        break
    fi
    echo "libcurl.sh: curl $version is listed in $SUITE but not served: $(grep -m1 '^E:' "$top/download.log")" >&2
    rm -rf "$top"
    version=
done
[ -n "$version" ] || { echo "libcurl.sh: no version of curl could be downloaded from $SUITE" >&2; exit 1; }

echo "libcurl.sh: building curl $version ($key)" >&2
orig=$(ls "$top"/dl/curl_*.orig.tar.* | grep -v "\.asc$")
upstream=$(basename "$orig"); upstream=${upstream%.orig.tar.*}; upstream=${upstream#curl_}
tar -C "$top" -xf "$orig"
tar -C "$top/dl" -xJf "$top"/dl/curl_*.debian.tar.xz
src=$top/curl-$upstream
# Debian's fixes, in its order; patches to the build system or for other TLS
# back ends are packaging, not fixes, and would need autoreconf.
while read -r p; do
    case $p in ''|'#'*) continue ;; esac
    f=$top/dl/debian/patches/$p
    if grep -qE '^\+\+\+ .*(configure\.ac|Makefile\.am|ltmain\.sh|\.vers\.in)' "$f"; then
        echo "libcurl.sh: skip packaging patch $p" >&2; continue
    fi
    patch -d "$src" -p1 -s --no-backup-if-mismatch -i "$f" >&2
done <"$top/dl/debian/patches/series"

build() (
    cd "$src"
    ./configure --prefix="$prefix" "${CONFIGURE_FLAGS[@]}" "${CROSS[@]}" CFLAGS="-O2 -g0 -ffunction-sections -fdata-sections" >"$top/configure.log" 2>&1 \
        || { tail -40 "$top/configure.log" >&2; exit 1; }
    make -j"$(nproc)" -C lib >"$top/make.log" 2>&1 || { tail -40 "$top/make.log" >&2; exit 1; }
    make -C lib install >>"$top/make.log" 2>&1
    make -C include install >>"$top/make.log" 2>&1
    make install-binSCRIPTS install-pkgconfigDATA >>"$top/make.log" 2>&1
)
if [ -z "$build_root" ]; then
    build
else
    # The same commands in a fresh copy of the root, which sees the build
    # tree (and the OpenSSL to link) at the same paths as here.
    source .ci/chroot.sh
    root=$(bash .ci/roots.sh "$CUSTLIST_CURL_ROOT")
    binds=("$top")
    [ -z "${CUSTLIST_CURL_OPENSSL:-}" ] || binds+=("$CUSTLIST_CURL_OPENSSL")
    for d in "${binds[@]}"; do mkdir -p "$root$d"; mount --bind "$d" "$root$d"; done
    trap 'for d in "${binds[@]}"; do umount -l "$root$d"; done; unmount_root "$root"' EXIT
    in_root "$root" bash -ec "$(declare -p src prefix top CONFIGURE_FLAGS); $(declare -f build); build"
fi
touch "$prefix/.done"
echo "$prefix"
