#!/usr/bin/env bash
# A trimmed static libcurl for custlist's wheels, built from Debian's source
# package of curl: the upstream tarball plus Debian's fixes to the library
# (its build-system and packaging patches are left out, so no autoreconf).
# Only what custlist uses is built in: HTTP/1.1, HTTP/2 (nghttp2), HTTPS
# (OpenSSL), gzip/deflate (zlib), proxies.  No CA path is baked in: custlist
# resolves the CA bundle at run time.
#   .ci/libcurl.sh   ->  prints the install prefix (bin/curl-config, lib/libcurl.a)
# The build is cached under $CUSTLIST_CACHE/libcurl/<version>-<flags hash>.
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
    --disable-manual --disable-libcurl-option --disable-versioned-symbols
    --disable-dependency-tracking --enable-optimize --disable-debug
)

# Host build dependencies (Debian): the libraries libcurl links, and apt's
# deb-src entries to fetch the source package from.
host_deps() {
    local missing=()
    for p in libssl-dev libnghttp2-dev zlib1g-dev pkg-config make gcc dpkg-dev; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    local src=/etc/apt/sources.list.d/custlist-src.sources
    if [ ! -f "$src" ] && ! grep -rqs '^Types:.*deb-src\|^deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources >"$src"
        missing+=(update-only)
    fi
    if [ ${#missing[@]} -gt 0 ]; then
        apt-get update -qq >&2
        missing=("${missing[@]/update-only}")
        local pkgs=(${missing[@]})
        [ ${#pkgs[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >&2
    fi
}

host_deps
version=$(apt-cache showsrc curl | sed -n 's/^Version: //p' | sort -V | tail -1)
[ -n "$version" ] || { echo "libcurl.sh: no source package for curl (deb-src missing?)" >&2; exit 1; }
key=$version-$(printf '%s\n' "${CONFIGURE_FLAGS[@]}" | sha256sum | cut -c1-12)
top=$CACHE/libcurl/$key
prefix=$top/prefix
if [ -f "$prefix/.done" ]; then echo "$prefix"; exit 0; fi

echo "libcurl.sh: building curl $version ($key)" >&2
rm -rf "$top"; mkdir -p "$top/dl"
(cd "$top/dl" && apt-get source --download-only -qq "curl=$version" >/dev/null 2>&1)
orig=$(ls "$top"/dl/curl_*.orig.tar.gz)
upstream=$(basename "$orig" .orig.tar.gz); upstream=${upstream#curl_}
tar -C "$top" -xzf "$orig"
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

(
    cd "$src"
    ./configure --prefix="$prefix" "${CONFIGURE_FLAGS[@]}" CFLAGS="-O2 -g0 -ffunction-sections -fdata-sections" >"$top/configure.log" 2>&1 \
        || { tail -40 "$top/configure.log" >&2; exit 1; }
    make -j"$(nproc)" -C lib >"$top/make.log" 2>&1 || { tail -40 "$top/make.log" >&2; exit 1; }
    make -C lib install >>"$top/make.log" 2>&1
    make -C include install >>"$top/make.log" 2>&1
    make install-binSCRIPTS install-pkgconfigDATA >>"$top/make.log" 2>&1
)
touch "$prefix/.done"
echo "$prefix"
