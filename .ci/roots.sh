#!/usr/bin/env bash
# Debian roots for testing custlist on other systems and Python versions:
#   .ci/roots.sh NAME                ->  prints the path of a fresh root NAME
#   .ci/roots.sh --cached-only NAME  ->  only makes its tarball; prints its path
# NAME is one of
#   bookworm-bare  Debian 12, python3 (3.11) and pip; no compiler, no libcurl, no headers
#   trixie-bare    Debian 13, python3 (3.13) and pip; likewise bare
#   trixie-dev     Debian 13 with gcc, python3.13 headers, libcurl headers, pytest
# A root is made once with debootstrap from Debian's mirror and kept as a
# tarball under $CUSTLIST_CACHE/roots; later runs unpack the tarball afresh,
# so every run starts from the same clean root.  Runs as root (chroot).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${CUSTLIST_CACHE:-$PWD/.cache}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
only_cache=
if [ "$1" = --cached-only ]; then only_cache=1; shift; fi
name=$1
dir=$CACHE/roots/$name
mkdir -p "$CACHE/roots" "$CACHE/debs"

log() { echo "roots: $*" >&2; }
source .ci/chroot.sh

need_host_tools() {
    command -v debootstrap >/dev/null || {
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2; }
}

bootstrap() {   # suite, root dir, packages
    local suite=$1 root=$2 include=$3
    need_host_tools
    log "debootstrap $suite into $root (cold: a few minutes)"
    debootstrap --variant=minbase --include="$include" --cache-dir="$CACHE/debs" \
        "$suite" "$root" "$MIRROR" >"$root.log" 2>&1 || { tail -30 "$root.log" >&2; exit 1; }
}

case $name in
bookworm-bare) suite=bookworm; base=python3,python3-pip,python3-venv; extra= ;;
trixie-bare)   suite=trixie;   base=python3,python3-pip,python3-venv; extra= ;;
trixie-dev)    suite=trixie;   base=python3,python3-pip,python3-venv
    extra="gcc libc6-dev make pkg-config python3-dev python3-setuptools libcurl4-openssl-dev python3-pytest python3-ipython openssl ca-certificates" ;;
*) echo "unknown root $name" >&2; exit 2 ;;
esac
# The tarball's name carries what is in it, so a changed list makes a new one.
tarball=$CACHE/roots/$name-$(echo "$suite $base $extra" | sha256sum | cut -c1-10).tar

make_root() {
    local root=$1
    bootstrap "$suite" "$root" "$base"
    if [ -n "$extra" ]; then
        in_root "$root" apt-get update -qq
        in_root "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            $extra >"$root.log" 2>&1 || { unmount_root "$root"; tail -30 "$root.log" >&2; exit 1; }
        in_root "$root" apt-get clean
    fi
    unmount_root "$root"
}

if [ ! -f "$tarball" ]; then
    rm -rf --one-file-system "$dir.new"; mkdir -p "$dir.new"
    make_root "$dir.new"
    tar -C "$dir.new" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf --one-file-system "$dir.new"
fi
if [ -n "$only_cache" ]; then echo "$tarball"; exit 0; fi
# A fresh copy of the cached root every time.
if [ -d "$dir" ]; then unmount_root "$dir"; rm -rf --one-file-system "$dir"; fi
mkdir -p "$dir"
tar -C "$dir" -xf "$tarball"
echo "$dir"
