# Sourced by the arm64 scripts (.ci/wheel-arm64.sh, .ci/wheel-check-arm64.sh)
# from the repository root: the arm64 (aarch64) CPythons, the Debian arm64
# roots they come from, and how to run their programs on this x86-64 host.
#
# No arm64 root is ever entered (no binfmt here, so no chroot): each is a
# tree of Debian arm64 packages unpacked without running their scripts, which
# is all a cross compiler's sysroot or qemu-user's -L prefix needs.  apt
# resolves each root's packages through a configuration of its own under the
# cache (arm64 only, the suite's lists, an empty dpkg status), so the host's
# apt setup is neither needed nor touched.
#
#   arm64_versions                    every arm64 CPython, oldest first
#   arm64_suite VERSION               the Debian suite whose python3.X it is
#   arm64_root KIND SUITE             a cached root; prints its path.  KIND:
#       build  glibc and the headers and libraries libcurl links (Debian 12:
#              its glibc 2.36 is what every arm64 wheel needs)
#       run    the suite's python3.X (and its venv module) for every version
#              of that suite: no compiler, no headers, no libcurl
#   arm64_headers VERSION             only that CPython's headers (libpython3.X-dev,
#                                     without its dependencies); prints the include dir
#   arm64_python ROOT VERSION ARGS... run ROOT's python3.X under qemu
CACHE=${CUSTLIST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/custlist}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
ARM64_TRIPLE=aarch64-linux-gnu
ARM64_BUILD_SUITE=bookworm

# version  suite: the Debian arm64 releases that carry each CPython.
_arm64_table="3.11 bookworm
3.13 trixie
3.14 sid
3.15 sid"
arm64_versions() { echo "$_arm64_table" | awk '{ print $1 }'; }
arm64_suite() {
    echo "$_arm64_table" | awk -v v="$1" '$1 == v { print $2; f = 1 } END { exit !f }' \
        || { echo "arm64: no arm64 CPython $1" >&2; return 1; }
}

# Host tools: the cross compiler and qemu-user.
arm64_host_tools() {
    local missing=() p
    for p in gcc-aarch64-linux-gnu qemu-user-static binutils-aarch64-linux-gnu; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
    fi
}

# apt-get or apt-cache for the arm64 packages of SUITE; its lists are refreshed once a day.
# A moving suite's Release file can be past its Valid-Until on a machine
# whose clock runs ahead of the mirror.
_arm64_apt() {   # apt-get or apt-cache, suite, archives dir, its args...
    local tool=$1 suite=$2 archives=$3 d=$CACHE/arm64/apt-$2; shift 3
    mkdir -p "$d/lists/partial" "$archives/partial"
    [ -f "$d/status" ] || : >"$d/status"
    echo "deb [arch=arm64] $MIRROR $suite main" >"$d/sources.list"
    local opts=(-o APT::Architecture=arm64 -o APT::Architectures=arm64
        -o Dir::Etc::SourceList="$d/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null
        -o Dir::State="$d" -o Dir::State::Lists="$d/lists" -o Dir::State::status="$d/status"
        -o Dir::Cache="$d" -o Dir::Cache::archives="$archives" -o Debug::NoLocking=1
        -o Acquire::Check-Valid-Until=false -o APT::Sandbox::User=root)
    if [ -z "$(find "$d/lists" -name '*Packages*' -mtime -1 2>/dev/null)" ]; then
        apt-get "${opts[@]}" update -qq >&2
    fi
    "$tool" "${opts[@]}" "$@"
}

# The version of a package that SUITE's arm64 lists give (epoch left out).
_arm64_version() {   # suite, package
    local v
    v=$(_arm64_apt apt-cache "$1" "$CACHE/arm64/apt-$1/archives" show "$2" 2>/dev/null | sed -n 's/^Version: //p' | head -1)
    [ -n "$v" ] || { echo "arm64: no $2 in $1" >&2; return 1; }
    echo "${v#*:}"
}

# Unpack every .deb of DIR into ROOT, whose /bin, /sbin and /lib are links
# into /usr as on every current Debian (packages of Debian 12 still ship
# files under /lib: they land in /usr/lib).
_arm64_unpack() {   # debs dir, root
    local f
    mkdir -p "$2/usr/bin" "$2/usr/sbin" "$2/usr/lib" "$2/etc" "$2/tmp"
    for f in bin sbin lib; do [ -e "$2/$f" ] || ln -s "usr/$f" "$2/$f"; done
    for f in "$1"/*.deb; do
        dpkg-deb --fsys-tarfile "$f" | tar -x --keep-directory-symlink -C "$2"
    done
    # Absolute links (libz.so -> /lib/...so.1) would point into the host:
    # made relative, inside the root.
    find "$2" -type l -lname '/*' | while read -r f; do
        ln -sfn "$(realpath -m --relative-to="$(dirname "$f")" "$2$(readlink "$f")")" "$f"
    done
}

arm64_root() {   # kind, suite
    local kind=$1 suite=$2 pkgs v name cached
    case $kind in
    build) pkgs="libc6-dev libssl-dev libnghttp2-dev zlib1g-dev" ;;
    run)   pkgs=libstdc++6       # as every Debian system has (numpy needs it)
        for v in $(arm64_versions); do
            [ "$(arm64_suite "$v")" != "$suite" ] || pkgs="$pkgs python$v python$v-venv"
        done
        [ -n "$pkgs" ] || { echo "arm64: no CPython from $suite" >&2; return 1; } ;;
    *) echo "arm64: unknown root kind $kind" >&2; return 2 ;;
    esac
    # Named after the suite, the versions of its CPythons (a moving suite's
    # new CPython makes a new root) and a digest of the package list.
    name=$kind-$suite
    [ "$kind" != run ] || for v in $(arm64_versions); do
        [ "$(arm64_suite "$v")" != "$suite" ] || name=$name-$(_arm64_version "$suite" "python$v") || return 1
    done
    name=$name-$(echo "$suite $pkgs relative-links" | sha256sum | cut -c1-10)
    cached=$CACHE/arm64/roots/$name
    if [ ! -f "$cached/.custlist-root" ]; then
        echo "arm64: making the $kind root of $suite ($pkgs)" >&2
        rm -rf "$cached.new" "$cached.debs"; mkdir -p "$cached.new"
        _arm64_apt apt-get "$suite" "$cached.debs" install -y -qq --download-only --no-install-recommends \
            $pkgs >"$cached.log" 2>&1 || { tail -20 "$cached.log" >&2; return 1; }
        _arm64_unpack "$cached.debs" "$cached.new"
        rm -rf "$cached.debs" "$cached"
        touch "$cached.new/.custlist-root"
        mv "$cached.new" "$cached"
    fi
    echo "$cached"
}

arm64_headers() {   # version
    local v=$1 suite dir
    suite=$(arm64_suite "$v") || return 1
    dir=$CACHE/arm64/headers/python$v-$suite-$(_arm64_version "$suite" "libpython$v-dev") || return 1
    if [ ! -f "$dir/.done" ]; then
        rm -rf "$dir.new"; mkdir -p "$dir.new/debs"
        (cd "$dir.new/debs" && _arm64_apt apt-get "$suite" "$dir.new/debs" download -qq "libpython$v-dev") \
            >"$dir.log" 2>&1 || { tail -20 "$dir.log" >&2; return 1; }
        _arm64_unpack "$dir.new/debs" "$dir.new/root"
        rm -rf "$dir.new/debs" "$dir"
        touch "$dir.new/.done"; mv "$dir.new" "$dir"
    fi
    [ -f "$dir/root/usr/include/python$v/Python.h" ] || { echo "arm64: no Python.h for $v in $dir" >&2; return 1; }
    echo "$dir/root/usr/include"
}

arm64_python() {   # root, version, args...
    local root=$1 v=$2; shift 2
    qemu-aarch64-static -L "$root" "$root/usr/bin/python$v" "$@"
}
