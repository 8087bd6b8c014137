# Sourced by the .ci scripts that use a Debian root of .ci/roots.sh.

# Run a command inside a root with /proc and /dev bound and the host's resolver.
in_root() {
    local root=$1; shift
    mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
    mountpoint -q "$root/dev" || mount --bind /dev "$root/dev"
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    chroot "$root" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 "$@"
}

# Release a root: /proc and /dev, then its overlay (.ci/roots.sh).
unmount_root() {
    local root=$1 m
    # A run's own overlay (.ci/roots.sh) may hold what a killed run bound in.
    case $root in
    */roots/run/*)
        awk -v r="$root/" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r \
            | while read -r m; do umount -l "$m" 2>/dev/null || true; done ;;
    esac
    for m in dev proc; do
        if mountpoint -q "$root/$m"; then umount -l "$root/$m"; fi
    done
    if mountpoint -q "$root"; then umount -l "$root"; fi
    # A run's own overlay (.ci/roots.sh) goes with it, once nothing is
    # mounted inside it any more (what a caller bound in, it unbinds first).
    case $root in
    */roots/run/*)
        if ! grep -qF " $root/" /proc/mounts && ! grep -qF " $root " /proc/mounts; then
            rm -rf --one-file-system "$root.upper" "$root.work"
            rmdir "$root" 2>/dev/null || true
        fi ;;
    esac
    return 0
}
