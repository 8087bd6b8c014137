#!/usr/bin/env bash
# make wheel-check-arm64: the arm64 wheels of `make wheel-arm64` proven under
# qemu-user on this x86-64 host, each with its own arm64 CPython from a
# Debian arm64 root that has no compiler, no libcurl and no headers:
#   1. installed into a fresh venv of that CPython (made without pip; the
#      root's own pip wheel installs it, from the wheel file alone) and
#      .ci/wheel_smoke.py run there against the sandbox on loopback, over
#      http and over https with a CA made here;
#   2. on one of them (ARM64_TEST_VERSION, default 3.13) the decode, scan and
#      Arrow test files, with pytest, pyarrow, pandas, polars and duckdb's
#      aarch64 wheels from PyPI (cached), from a copy of tests/ beside no
#      source tree;
#   3. the JSON scans agree across their block steps: tests/decode_outcomes.py
#      prints the same bytes for the arm64 wheel (NEON), the x86-64 build of
#      the developer venv (SSE2) and an x86-64 build with -DCL_SCALAR_SCAN
#      (the portable steps), whose decode and scan tests also run here.
#   .ci/wheel-check-arm64.sh [VERSION...]     (default: every arm64 CPython)
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/arm64.sh
VPY=${VPY:-.venv/bin/python}
work=$CACHE/wheel-check-arm64
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=($(arm64_versions))
test_version=${ARM64_TEST_VERSION:-3.13}
# Under qemu (ten times slower): the files of the decode, scan and Arrow
# paths, less the Arrow interop scripts that only start other libraries in
# subprocesses.  The corpus is compared in step 3 (its values on x86-64 are
# held to a reference decoder by tests/test_corpus.py).
test_files=(tests/test_scan.py tests/test_values.py tests/test_decode_framing.py tests/test_arrow.py)
test_deselect="not duckdb and not missing_extra and not ctrl_c"
scalar_files=(tests/test_scan.py tests/test_values.py tests/test_decode_framing.py tests/test_corpus.py)
arm64_host_tools
# Under qemu every import costs: the roots' and the test packages' compiled
# modules are kept (in the cache) for the next run.
unset PYTHONDONTWRITEBYTECODE
say() { printf '== wheel-check-arm64: %s (%d s)\n' "$*" "$SECONDS"; }

rm -rf "$work"; mkdir -p "$work/tls" "$work/src"
# A CA and a server certificate for 127.0.0.1 that it signs.
source .ci/testca.sh
make_test_ca "$work/tls" "custlist arm64 check CA"
# The tests and the tools they import, without the source package beside them.
cp -r tests pyproject.toml "$work/src/"
cp .ci/wheel_smoke.py "$work/"

# A venv of ROOT's python3.X with the wheel installed: printed.  Its python
# is a host script that runs the arm64 interpreter under qemu as that very
# path (qemu -0 sets its argv[0], so sys.executable is the script): the
# interpreter runs as a venv's, and the tests' subprocesses of
# sys.executable run under qemu too, without binfmt.
venv_with_wheel() {   # root, version, wheel
    local root=$1 v=$2 wheel=$3 venv=$work/venv-cp${2/./} pip f
    arm64_python "$root" "$v" -m venv --without-pip "$venv"
    for f in python python3 "python$v"; do
        rm -f "$venv/bin/$f"
        printf '#!/bin/sh\nexec %s -0 "$0" -L %s %s "$@"\n' "$(command -v qemu-aarch64-static)" \
            "$root" "$root/usr/bin/python$v" >"$venv/bin/$f"
        chmod +x "$venv/bin/$f"
    done
    # The root's own pip, unpacked once into the cache (its modules compiled
    # there once: from the zip they were compiled anew on every run).
    pip=$(ls "$root"/usr/share/python-wheels/pip-*.whl)
    unpacked=$CACHE/arm64/$(basename "$pip" .whl)
    if [ ! -f "$unpacked/.done" ]; then
        rm -rf "$unpacked"; $VPY -m zipfile -e "$pip" "$unpacked"; touch "$unpacked/.done"
    fi
    PYTHONPATH=$unpacked "$venv/bin/python" -m pip install -q --no-index --disable-pip-version-check \
        --no-compile "$wheel" >&2
    echo "$venv"
}

# The wheels of `make wheel`, unless one is missing or older than the sources.
for v in "${versions[@]}"; do
    w=$(ls dist/custlist-*-cp${v/./}-cp${v/./}-manylinux*_aarch64.whl 2>/dev/null | head -1)
    if [ -z "$w" ] || [ -n "$(find csrc custlist setup.py pyproject.toml -newer "$w" ! -name "*.so" ! -name "*.pyc" -type f -print -quit)" ]; then
        VPY=$VPY bash .ci/wheel-arm64.sh "${versions[@]}"
        break
    fi
done

declare -A venvs roots
for v in "${versions[@]}"; do
    tag=cp${v/./}
    wheel=$(ls "$PWD"/dist/custlist-*-"$tag"-"$tag"-manylinux*_aarch64.whl)
    root=$(arm64_root run "$(arm64_suite "$v")")
    # Bare: no compiler, no libcurl, no CPython headers.
    if ls "$root"/usr/bin/*gcc* "$root"/usr/bin/cc "$root"/usr/lib/*/libcurl* "$root"/usr/include/python3* \
            >/dev/null 2>&1; then
        echo "wheel-check-arm64: $root is not bare" >&2; exit 1
    fi
    venv=$(venv_with_wheel "$root" "$v" "$wheel")
    venvs[$v]=$venv; roots[$v]=$root
    (cd "$work" && env -u PYTHONPATH "$venv/bin/python" wheel_smoke.py \
        --https tls/ca.pem tls/server.pem tls/server.key)
    say "$(basename "$wheel") works on arm64 CPython $(arm64_python "$root" "$v" -c 'import platform; print(platform.python_version(), platform.machine())')"
done

# pytest and pyarrow for the arm64 CPython that runs the tests: PyPI's
# aarch64 wheels, fetched by the host's pip once per list.
[ -n "${venvs[$test_version]:-}" ] || { echo "wheel-check-arm64: $test_version is not checked" >&2; exit 1; }
reqs=("pytest>=8.1" "pyarrow>=15" "pandas>=2.0" "polars>=1.0" "duckdb>=1.1")
deps=$CACHE/arm64/testdeps-cp${test_version/./}-$(printf '%s\n' "${reqs[@]}" | sha256sum | cut -c1-10)
if [ ! -f "$deps/.done" ]; then
    rm -rf "$deps"
    $VPY -m pip install -q --target "$deps" --only-binary=:all: --implementation cp \
        --python-version "$test_version" --abi "cp${test_version/./}" \
        --platform manylinux_2_28_aarch64 --platform manylinux2014_aarch64 "${reqs[@]}"
    touch "$deps/.done"
fi
root=${roots[$test_version]} venv=${venvs[$test_version]}
(cd "$work/src" && PYTHONPATH=$deps "$venv/bin/python" -m pytest \
    -q -x -p no:cacheprovider -k "$test_deselect" "${test_files[@]}")
say "the decode, scan and Arrow tests pass on arm64 CPython $test_version"

# The same decode outcomes from every kind of block step.
(cd "$work/src" && "$venv/bin/python" tests/decode_outcomes.py \
    --scan neon -o "$work/outcomes-neon.txt")
PYTHONSAFEPATH=1 $VPY tests/decode_outcomes.py --scan sse2 -o "$work/outcomes-sse2.txt"
scalar=$work/scalar
CUSTLIST_CFLAGS="${CUSTLIST_CFLAGS:-} -DCL_SCALAR_SCAN" \
    $VPY setup.py -q build_ext --build-lib "$scalar/lib" --build-temp "$scalar/tmp" >"$work/scalar-build.log" 2>&1 \
    || { cat "$work/scalar-build.log"; exit 1; }
(cd custlist && find . -name '*.py' -o -name '*.pyi' -o -name py.typed) | while read -r f; do
    mkdir -p "$scalar/lib/custlist/$(dirname "$f")"
    cp "custlist/$f" "$scalar/lib/custlist/$f"
done
(cd "$work/src" && PYTHONSAFEPATH=1 PYTHONPATH=$scalar/lib $OLDPWD/$VPY tests/decode_outcomes.py \
    --scan scalar -o "$work/outcomes-scalar.txt")
$VPY tests/decode_outcomes.py --compare "$work/outcomes-sse2.txt" "$work/outcomes-neon.txt"
$VPY tests/decode_outcomes.py --compare "$work/outcomes-sse2.txt" "$work/outcomes-scalar.txt"
(cd "$work/src" && PYTHONSAFEPATH=1 PYTHONPATH=$scalar/lib $OLDPWD/$VPY -m pytest -q -x -p no:cacheprovider \
    "${scalar_files[@]}")
say "the scalar, SSE2 and NEON scans give the same values and errors"
