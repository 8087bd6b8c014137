#!/usr/bin/env bash
# A CPython that runs on the wheels' glibc floor (Debian 11, glibc 2.31), for
# .ci/wheel-check.sh to install a wheel into a bare Debian 11 root: Debian 11
# carries only CPython 3.9, which no wheel is for, and the host's pyenv builds
# need the host's newer glibc.  Built in the bullseye-py root from the
# upstream tarball in Debian 12's python3.11 source package (OpenSSL, zlib and
# libffi of Debian 11, which a bare Debian 11 root has), cached under
# $CUSTLIST_CACHE/oldpython/<version>-<root>.
#   .ci/oldpython.sh   ->  prints the install prefix (bin/python3.11)
# Runs as root (chroot).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${CUSTLIST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/custlist}
SUITE=bookworm PACKAGE=python3.11
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
source .ci/chroot.sh

apt_dir=$CACHE/apt-src-$SUITE
APT=(-o Dir::Etc::SourceList="$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
     -o Dir::State::Lists="$apt_dir/lists" -o Dir::Cache="$apt_dir/cache")
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache"
echo "deb-src $MIRROR $SUITE main" >"$apt_dir/sources.list"
if [ -z "$(find "$apt_dir/lists" -name '*Sources*' -mtime -7 2>/dev/null)" ]; then
    apt-get "${APT[@]}" update -qq >&2
fi
version=$(apt-cache "${APT[@]}" showsrc "$PACKAGE" | sed -n 's/^Version: //p' | sort -V | tail -1)
root_cached=$(bash .ci/roots.sh --cached-only bullseye-py)
top=$CACHE/oldpython/$version-$(basename "$root_cached")
prefix=$top/prefix
if [ -f "$prefix/.done" ]; then echo "$prefix"; exit 0; fi

echo "oldpython.sh: building $PACKAGE $version in bullseye-py" >&2
rm -rf "$top"; mkdir -p "$top/dl"
(cd "$top/dl" && apt-get "${APT[@]}" source --download-only -qq "$PACKAGE=$version" >"$top/download.log" 2>&1) \
    || { cat "$top/download.log" >&2; exit 1; }
tar -C "$top" -xf "$(ls "$top"/dl/"$PACKAGE"_*.orig.tar.* | grep -v "\.asc$")"
src=$(ls -d "$top"/Python-*/)
root=$(bash .ci/roots.sh bullseye-py)
mkdir -p "$root$top"
mount --bind "$top" "$root$top"
trap 'umount -l "$root$top"; unmount_root "$root"' EXIT
start=$(date +%s)
in_root "$root" sh -ec "cd '$src'
    ./configure -q --prefix='$prefix' --with-ensurepip=install >'$top/configure.log' 2>&1
    make -s -j\$(nproc) >'$top/make.log' 2>&1
    make -s install >>'$top/make.log' 2>&1" \
    || { tail -30 "$top/configure.log" "$top/make.log" >&2; exit 1; }
in_root "$root" "$prefix/bin/python3.11" -c 'import ssl, zlib, ctypes, venv' \
    || { echo "oldpython.sh: the build lacks a module the smoke test needs" >&2; exit 1; }
rm -rf "$src"
echo "oldpython.sh: built in $(( $(date +%s) - start ))s" >&2
touch "$prefix/.done"
echo "$prefix"
