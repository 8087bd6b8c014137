#!/usr/bin/env bash
# make wheel-check: each wheel of `make wheel` installed into a fresh venv of
# its own CPython inside a bare Debian root (.ci/pythons: its smoke column)
# that has no compiler, no libcurl and no headers, and run there
# (.ci/wheel_smoke.py) against the sandbox over http and over https from a
# loopback TLS server with a CA made here.  A pyenv CPython is mounted into
# the root read-only at its own path, its include directory hidden.  Also:
# the wheels' glibc floor, a wheel in a bare Debian 11 root (glibc 2.31),
# and the source build in the Debian 12 root fails with the message naming
# libcurl's headers.
#   .ci/wheel-check.sh [VERSION...]     (default: every version of .ci/pythons)
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${CUSTLIST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/custlist}
VPY=${VPY:-.venv/bin/python}
work=$CACHE/wheel-check
source .ci/chroot.sh
source .ci/tree.sh
source .ci/pythons.sh
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=($(python_versions))
mounted=()       # roots and mounts inside them, released last first
release() {
    local i
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
        case ${mounted[i]} in
        mount:*) umount -l "${mounted[i]#mount:}" 2>/dev/null || true ;;
        *) unmount_root "${mounted[i]}" ;;
        esac
    done
    mounted=()
}
trap release EXIT

rm -rf "$work"; mkdir -p "$work/tls"
# A CA and a server certificate for 127.0.0.1 that it signs.
source .ci/testca.sh
make_test_ca "$work/tls" "custlist wheel check CA"
$VPY -c 'import packaging' 2>/dev/null || $VPY -m pip install -q packaging
# The sdist and the build backend it asks for, for the source-build check.
build_sdist "$work/sdist" >/dev/null 2>&1
mkdir -p "$CACHE/pydist"
ls "$CACHE"/pydist/setuptools-*.whl >/dev/null 2>&1 \
    || $VPY -m pip download -q -d "$CACHE/pydist" "setuptools>=77" wheel
deps_key=$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"])' | sha256sum | cut -c1-10)

check() {   # version [root, interpreter: .ci/pythons's smoke and build columns, or prefix:DIR]
    local v=$1 tag=cp${1/./} name build root wheel py=python$1 prefix
    name=${2:-$(python_field "$v" smoke)}
    build=${3:-$(python_field "$v" build)}
    wheel=$(ls dist/custlist-*-"${tag%t}"-"$tag"-manylinux*_x86_64.whl)
    # What the wheel requires on this version (typing_extensions and
    # exceptiongroup on 3.10), from PyPI once per list of dependencies.
    # (pip download --python-version judges environment markers by the
    # running interpreter, so they are evaluated here for $v.)
    deps=$CACHE/pydist/deps-$tag-$deps_key
    if [ ! -f "$deps/.done" ]; then
        rm -rf "$deps"; mkdir -p "$deps"
        reqs=$($VPY - "$v" <<'PY'
import sys, tomllib
from packaging.requirements import Requirement
v = sys.argv[1].rstrip("t")
env = {"python_version": v, "python_full_version": v + ".0"}
for line in tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]:
    req = Requirement(line)
    if req.marker is None or req.marker.evaluate(env):
        req.marker = None
        print(req)
PY
)
        [ -z "$reqs" ] || $VPY -m pip download -q --only-binary=:all: --python-version "${v%t}" -d "$deps" $reqs
        touch "$deps/.done"
    fi
    root=$(bash .ci/roots.sh "$name")
    mounted+=("$root")
    mkdir -p "$root/tmp/check"
    cp "$wheel" .ci/wheel_smoke.py "$work"/tls/{ca.pem,server.pem,server.key} "$root/tmp/check/"
    find "$deps" -name '*.whl' -exec cp {} "$root/tmp/check/" \;
    if [[ $build == pyenv:* || $build == prefix:* ]]; then
        # pyenv's CPython (or another) at its own path (its libpython is
        # found there), read-only, with an empty directory over its headers.
        prefix=${build#prefix:}
        [[ $build != pyenv:* ]] || prefix=$(pyenv_prefix "${build#pyenv:}")
        py=$prefix/bin/python$v
        mkdir -p "$root$prefix"
        mount --bind "$prefix" "$root$prefix"; mounted+=("mount:$root$prefix")
        mount -o remount,bind,ro "$root$prefix"
        mount -t tmpfs -o ro,size=1m tmpfs "$root$prefix/include"; mounted+=("mount:$root$prefix/include")
    fi
    if [[ $build == ft:* ]]; then
        # The free-threaded CPython of .ci/pyft.sh, likewise (built in the
        # -dev root of the same Debian release, whose libraries it links).
        prefix=$(bash .ci/pyft.sh "${v%t}")/prefix
        py=/opt/py${v/./}/bin/python$v
        mkdir -p "$root/opt/py${v/./}"
        mount --bind "$prefix" "$root/opt/py${v/./}"; mounted+=("mount:$root/opt/py${v/./}")
        mount -o remount,bind,ro "$root/opt/py${v/./}"
        mount -t tmpfs -o ro,size=1m tmpfs "$root/opt/py${v/./}/include"; mounted+=("mount:$root/opt/py${v/./}/include")
    fi
    # Bare: no compiler, no libcurl, no Python headers (Debian's or the
    # interpreter's own).
    in_root "$root" sh -c "! command -v gcc && ! command -v cc && ! ls /usr/lib/*/libcurl* && ! ls /usr/include/python3* \
        && [ ! -e \"\$($py -c 'import sysconfig; print(sysconfig.get_paths()[\"include\"])')/Python.h\" ]" >/dev/null 2>&1 \
        || { echo "wheel-check: $name is not bare for $py" >&2; return 1; }
    in_root "$root" "$py" -m venv /tmp/venv
    in_root "$root" /tmp/venv/bin/python -m pip install -q --no-index --find-links /tmp/check \
        "/tmp/check/$(basename "$wheel")"
    in_root "$root" sh -c 'cd /tmp && /tmp/venv/bin/python -VV && /tmp/venv/bin/python /tmp/check/wheel_smoke.py --https /tmp/check/ca.pem /tmp/check/server.pem /tmp/check/server.key'
    echo "wheel-check: $(basename "$wheel") works in $name ($py)"
    release
}

for v in "${versions[@]}"; do
    check "$v"
done

# The floor: built in Debian 11, the wheels need only its glibc (2.31).  Its
# python3 is 3.9, which no wheel is for; a CPython 3.11 built there
# (.ci/oldpython.sh) takes the cp311 wheel in the bare root.
if [[ " ${versions[*]} " == *" 3.11 "* ]]; then
    check 3.11 bullseye-bare "prefix:$(bash .ci/oldpython.sh)"
fi

# The source build without libcurl's headers: pip fails with custlist's message.
root=$(bash .ci/roots.sh bookworm-bare)
mounted+=("$root")
mkdir -p "$root/tmp/check"
cp "$work"/sdist/custlist-*.tar.gz "$CACHE"/pydist/*.whl "$root/tmp/check/"
if in_root "$root" python3 -m pip install --no-index --find-links /tmp/check --break-system-packages \
        /tmp/check/"$(basename "$work"/sdist/custlist-*.tar.gz)" >"$work/source.log" 2>&1; then
    echo "wheel-check: the source build succeeded without libcurl" >&2; exit 1
fi
grep -q "custlist needs libcurl's development headers" "$work/source.log" \
    || { cat "$work/source.log"; echo "wheel-check: no clear message for missing headers" >&2; exit 1; }
echo "wheel-check: the source build without libcurl headers stops with custlist's message"
