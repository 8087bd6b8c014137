#!/usr/bin/env bash
# A free-threaded CPython X.Y (--disable-gil) built from the upstream tarball
# in Debian's pythonX.Y source package (3.14: unstable; 3.13: Debian 13),
# for the cpXYt wheel and the suite on it.  Built once inside a private
# overlay of the Debian root that carries pythonX.Y (.ci/roots.sh: sid-dev,
# trixie-dev; -j2, no PGO, ensurepip, the ssl module) and installed with the
# prefix /opt/pyXYt, so that the same install can be bound into that root
# (building, the suite) and the bare root of the same release (the wheel's
# smoke test), whose libraries it links against.  Cached under
# $CUSTLIST_CACHE/pyX.Yt-<Debian version>/prefix.
#   .ci/pyft.sh X.Y            ->  prints the cached install's directory
#   source .ci/pyft.sh X.Y     ->  also sets PYFT (its prefix inside a root),
#                                  pyft_dir, and defines bind_pyft ROOT /
#                                  unbind_pyft ROOT
#   .ci/pyft.sh X.Y tsan       ->  a second build of the same source with
#                                  CPython's own ThreadSanitizer support
#                                  (--with-thread-sanitizer: the interpreter,
#                                  mimalloc and the stdlib's C modules are
#                                  instrumented), for .ci/tsan-ft.sh; cached
#                                  as pyX.Yt-tsan-<Debian version>, prefix
#                                  /opt/pyXYt-tsan
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CACHE=${CUSTLIST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/custlist}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
ftv=$1
ft_variant=${2:-}
case $ft_variant in
'')   ft_tag=t;      ft_configure= ;;
tsan) ft_tag=t-tsan; ft_configure=--with-thread-sanitizer ;;
*) echo "pyft: no variant $ft_variant (only tsan)" >&2; exit 2 ;;
esac
case $ftv in
3.13) ft_suite=trixie; ft_root=trixie-dev ;;
3.14) ft_suite=sid;    ft_root=sid-dev ;;
*) echo "pyft: no free-threaded build for CPython $ftv" >&2; exit 2 ;;
esac
PYFT=/opt/py${ftv/./}$ft_tag          # the install's prefix inside every root
source .ci/chroot.sh

bind_pyft() {
    mkdir -p "$1$PYFT"
    mountpoint -q "$1$PYFT" || mount --bind "$pyft_dir/prefix" "$1$PYFT"
}
unbind_pyft() { if mountpoint -q "$1$PYFT"; then umount -l "$1$PYFT"; fi; return 0; }

# One run at a time finds or builds the install (the lanes of .ci/run: the
# wheel check and the suite may both ask for it on a cold cache); the lock
# is let go once it is there.
mkdir -p "$CACHE"
exec {pyft_lock}>"$CACHE/py${ftv}t.lock"
flock "$pyft_lock"

# apt with only that suite's source packages (as .ci/libcurl.sh keeps them).
apt_dir=$CACHE/apt-src-$ft_suite
APT=(-o Dir::Etc::SourceList="$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
     -o Dir::State::Lists="$apt_dir/lists" -o Dir::Cache="$apt_dir/cache"
     -o Acquire::Check-Valid-Until=false)
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache"
[ -f "$apt_dir/sources.list" ] || echo "deb-src $MIRROR $ft_suite main" >"$apt_dir/sources.list"
if [ -z "$(find "$apt_dir/lists" -name '*Sources*' -mtime -1 2>/dev/null)" ]; then
    apt-get "${APT[@]}" update -qq >&2 || true       # a stale list still names a version
fi
# The newest python$ftv the lists name whose build is cached, else the
# newest one the mirror serves (a mirror can list a version it lacks yet).
ft_versions=$(apt-cache "${APT[@]}" showsrc python$ftv | sed -n "s/^Version: //p" | sort -u \
           | sort -rV)
[ -n "$ft_versions" ] || { echo "pyft: no python$ftv source package in $ft_suite's lists" >&2; exit 1; }
pyft_dir=
for ft_v in $ft_versions; do
    if [ -f "$CACHE/py${ftv}$ft_tag-$ft_v/prefix/.done" ]; then pyft_dir=$CACHE/py${ftv}$ft_tag-$ft_v; break; fi
done

build() {
    local v dir root lower start
    for v in $ft_versions; do
        dir=$CACHE/py${ftv}$ft_tag-$v
        rm -rf "$dir"; mkdir -p "$dir/dl" "$dir/prefix"
        if (cd "$dir/dl" && apt-get "${APT[@]}" source --download-only -qq "python$ftv=$v" >"$dir/download.log" 2>&1); then
            break
        fi
        echo "pyft: python$ftv $v is listed in $ft_suite but not served" >&2
        rm -rf "$dir"; dir=
    done
    [ -n "$dir" ] || { echo "pyft: no python$ftv source could be downloaded" >&2; exit 1; }
    echo "pyft: building free-threaded CPython ${ft_variant:+($ft_variant) }from python$ftv $v (cold: about 15 minutes on 2 cores${ft_variant:+, more with TSan})" >&2
    lower=$(bash .ci/roots.sh --cached-only $ft_root)
    # A private overlay: the shared root name may be in use by another run.
    root=$CACHE/roots/py${ftv}$ft_tag-build
    unbind_pyft "$root"; unmount_root "$root"
    rm -rf --one-file-system "$root" "$root.upper" "$root.work"
    mkdir -p "$root" "$root.upper" "$root.work"
    mount -t overlay overlay -o "lowerdir=$lower,upperdir=$root.upper,workdir=$root.work" "$root" 2>/dev/null \
        || cp -a "$lower/." "$root/"
    trap 'umount -l "$root/build" 2>/dev/null; unbind_pyft "$root"; unmount_root "$root"' EXIT
    mkdir -p "$root/build"; mount --bind "$dir" "$root/build"
    pyft_dir=$dir; bind_pyft "$root"
    start=$(date +%s)
    # A TSan interpreter runs during its own build (the build's scripts,
    # ensurepip, compileall): races inside CPython are not this build's
    # business, so it reports none there (.ci/tsan-ft.sh turns them on).
    in_root "$root" env TSAN_OPTIONS=report_bugs=0 sh -ec '
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            xz-utils libssl-dev zlib1g-dev libffi-dev libbz2-dev liblzma-dev libsqlite3-dev \
            uuid-dev libzstd-dev >/build/deps.log 2>&1
        rm -rf /build/src; mkdir /build/src; cd /build/src
        tar -xJf /build/dl/python'"$ftv"'_*.orig.tar.xz
        cd Python-'"$ftv"'*/
        ./configure -q --disable-gil '"$ft_configure"' --prefix='"$PYFT"' --with-ensurepip=install >/build/configure.log 2>&1
        make -s -j2 >/build/make.log 2>&1
        make -s install >>/build/make.log 2>&1
        '"$PYFT"'/bin/python'"$ftv"'t -c "import ssl, zlib, ctypes, sysconfig, sys; assert sysconfig.get_config_var(\"Py_GIL_DISABLED\"); print(sys.version)"' >&2 \
        || { tail -30 "$dir/make.log" >&2; exit 1; }
    echo "CPython $v free-threaded${ft_variant:+ ($ft_variant)} built in $(( $(date +%s) - start ))s on $(nproc) cores" | tee "$dir/build-time.txt" >&2
    rm -rf "$dir/src"
    touch "$dir/prefix/.done"
    umount -l "$root/build"; unbind_pyft "$root"; unmount_root "$root"
    rm -rf --one-file-system "$root" "$root.upper" "$root.work"
    trap - EXIT
}

[ -n "$pyft_dir" ] || build
exec {pyft_lock}>&-
if [ "${BASH_SOURCE[0]}" = "$0" ]; then echo "$pyft_dir"; fi
