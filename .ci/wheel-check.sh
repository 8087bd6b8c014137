#!/usr/bin/env bash
# make wheel-check: each wheel of `make wheel` installed into a bare Debian
# root of its own release (cp311: Debian 12; cp313: Debian 13) that has
# python3 and pip but no compiler, no libcurl and no headers, and run there
# (.ci/wheel_smoke.py) against the sandbox over http and over https from a
# loopback TLS server with a CA made here.  Also: the source build in the
# Debian 12 root fails with the message naming libcurl's headers.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${CUSTLIST_CACHE:-$PWD/.cache}
VPY=${VPY:-.venv/bin/python}
work=$CACHE/wheel-check
source .ci/chroot.sh
mounted=()
trap 'for r in "${mounted[@]}"; do unmount_root "$r"; done' EXIT

rm -rf "$work"; mkdir -p "$work/tls"
# A CA and a server certificate for 127.0.0.1 that it signs.
(
    cd "$work/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=custlist wheel check CA" -keyout ca.key -out ca.pem \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
        -keyout server.key -out server.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile ext -out server.pem 2>/dev/null
)
# The sdist and the build backend it asks for, for the source-build check.
$VPY -m build -q --sdist --no-isolation -o "$work/sdist" . >/dev/null 2>&1
mkdir -p "$CACHE/pydist"
ls "$CACHE"/pydist/setuptools-*.whl >/dev/null 2>&1 \
    || $VPY -m pip download -q -d "$CACHE/pydist" "setuptools>=77" wheel

check() {   # root name, wheel tag
    local name=$1 tag=$2 root wheel
    wheel=$(ls dist/custlist-*-"$tag"-"$tag"-manylinux*.whl)
    root=$(bash .ci/roots.sh "$name")
    mounted+=("$root")
    mkdir -p "$root/tmp/check"
    cp "$wheel" .ci/wheel_smoke.py "$work"/tls/{ca.pem,server.pem,server.key} "$root/tmp/check/"
    # Bare: no compiler, no libcurl, no Python headers.
    in_root "$root" sh -c '! command -v gcc && ! command -v cc && ! ls /usr/lib/*/libcurl* && ! ls /usr/include/python3*' >/dev/null 2>&1 \
        || { echo "wheel-check: $name is not bare" >&2; return 1; }
    in_root "$root" python3 -m pip install -q --no-index --break-system-packages "/tmp/check/$(basename "$wheel")"
    in_root "$root" sh -c 'cd /tmp && python3 /tmp/check/wheel_smoke.py --https /tmp/check/ca.pem /tmp/check/server.pem /tmp/check/server.key'
    echo "wheel-check: $(basename "$wheel") works in $name"
}

check bookworm-bare cp311
check trixie-bare cp313

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
