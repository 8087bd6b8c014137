#!/usr/bin/env bash
# A static OpenSSL 3 for the wheels' libcurl, built inside a Debian root of an
# older glibc (default bullseye-build, Debian 11: glibc 2.31), whose own
# OpenSSL (1.1.1) is past its end of life.  Built from the upstream tarball in
# Debian's source package of an OpenSSL 3 LTS release (CUSTLIST_OPENSSL_SUITE,
# default trixie: 3.5), fetched with apt through lists of its own under the
# cache as .ci/libcurl.sh does; Debian's patches are packaging (paths,
# targets, man pages) and are left out.  Position-independent, so it links
# into the extension; what custlist's libcurl does not use is left out.
#   .ci/openssl.sh [ROOT]   ->  prints the install prefix (lib/libssl.a,
#                               lib/libcrypto.a, lib/pkgconfig, include)
# Cached under $CUSTLIST_CACHE/openssl/<version>-<options and root hash>.
# Runs as root (chroot).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${CUSTLIST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/custlist}
SUITE=${CUSTLIST_OPENSSL_SUITE:-trixie}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
ROOT_NAME=${1:-bullseye-build}
source .ci/chroot.sh

OPTIONS=(
    no-shared no-module no-tests no-docs
    no-legacy no-engine no-comp no-ssl3 no-dtls no-srp no-quic
    -fPIC -ffunction-sections -fdata-sections
)

apt_dir=$CACHE/apt-src-$SUITE
APT=(-o Dir::Etc::SourceList="$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
     -o Dir::State::Lists="$apt_dir/lists" -o Dir::Cache="$apt_dir/cache"
     -o Acquire::Check-Valid-Until=false)
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache"
echo "deb-src $MIRROR $SUITE main" >"$apt_dir/sources.list"
if [ -z "$(find "$apt_dir/lists" -name '*Sources*' -mtime -1 2>/dev/null)" ]; then
    apt-get "${APT[@]}" update -qq >&2
fi
root_cached=$(bash .ci/roots.sh --cached-only "$ROOT_NAME")
opts_key=$(printf '%s\n' "${OPTIONS[@]}" "$(basename "$root_cached")" | sha256sum | cut -c1-12)
# The newest version the mirror serves (it can list one whose files it does
# not have yet).
built=
for version in $(apt-cache "${APT[@]}" showsrc openssl | sed -n 's/^Version: //p' | sort -u | sort -rV); do
    key=$version-$opts_key
    top=$CACHE/openssl/$key
    prefix=$top/prefix
    if [ -f "$prefix/.done" ]; then echo "$prefix"; exit 0; fi
    rm -rf "$top"; mkdir -p "$top/dl"
    if (cd "$top/dl" && apt-get "${APT[@]}" source --download-only -qq "openssl=$version" >"$top/download.log" 2>&1); then
        built=$version; break
    fi
    echo "openssl.sh: OpenSSL $version is listed in $SUITE but not served" >&2
    rm -rf "$top"
done
[ -n "$built" ] || { echo "openssl.sh: no version of openssl could be downloaded from $SUITE" >&2; exit 1; }
echo "openssl.sh: building OpenSSL $version in $ROOT_NAME ($key)" >&2
orig=$(ls "$top"/dl/openssl_*.orig.tar.* | grep -v "\.asc$")
tar -C "$top" -xf "$orig"
src=$(ls -d "$top"/openssl-*/)
root=$(bash .ci/roots.sh "$ROOT_NAME")
mkdir -p "$root$top"
mount --bind "$top" "$root$top"
trap 'umount -l "$root$top"; unmount_root "$root"' EXIT
start=$(date +%s)
in_root "$root" sh -ec "cd '$src'
    ./Configure linux-x86_64 --prefix='$prefix' --libdir=lib --openssldir=/usr/lib/ssl \
        ${OPTIONS[*]} -O2 -g0 >'$top/configure.log' 2>&1
    make -j\$(nproc) build_libs >'$top/make.log' 2>&1
    make install_dev >>'$top/make.log' 2>&1" \
    || { tail -30 "$top/configure.log" "$top/make.log" >&2; exit 1; }
rm -rf "$src"
echo "openssl.sh: built in $(( $(date +%s) - start ))s" >&2
touch "$prefix/.done"
echo "$prefix"
