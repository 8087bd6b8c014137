# Shared by the sanitizer scripts (.ci/asan.sh, .ci/tsan.sh): sourced from the
# repository root.  Sets PY (the interpreter itself: VPY or PYTHON, default
# .venv/bin/python, else python3) and root, and defines apt_install (installs
# Debian packages, running apt-get update once) and say.
root=$PWD
PY=${VPY:-${PYTHON:-.venv/bin/python}}
[ -x "$PY" ] || command -v "$PY" >/dev/null 2>&1 || PY=python3
PY=$("$PY" -c 'import sys; print(sys.executable)')       # the interpreter itself, not a shim
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
apt_updated=
apt_install() {
    [ -n "$apt_updated" ] || { $SUDO apt-get update -qq; apt_updated=1; }
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}
say() { printf '\n== %s: %s\n' "$(basename "$0")" "$*"; }
