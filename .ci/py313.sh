#!/usr/bin/env bash
# make test-py313: the whole suite on CPython 3.13 (Debian 13's python3,
# libcurl headers from Debian 13), with the C core built -Werror and Python
# warnings as errors, in a fresh Debian 13 root from .ci/roots.sh.
#   .ci/py313.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/chroot.sh
root=$(bash .ci/roots.sh trixie-dev)
trap 'unmount_root "$root"' EXIT

# This tree as it is (committed or not), without build products or caches.
mkdir -p "$root/src"
tar -c --exclude=./.git --exclude=./.cache --exclude=./.venv --exclude=./build --exclude=./dist \
    --exclude='*.so' --exclude='*.egg-info' --exclude=__pycache__ --exclude='./*/.work' \
    --exclude=./.ci/.asan --exclude=./.pytest_cache . | tar -C "$root/src" -x

in_root "$root" sh -c 'cd /src && /venv/bin/python -V && CUSTLIST_CFLAGS=-Werror /venv/bin/python setup.py -q build_ext --inplace 2>&1 | grep -v "^$" || true; test -f custlist/_core.cpython-313-*.so'
in_root "$root" sh -c "cd /src && /venv/bin/python -W error -m pytest -q -p no:cacheprovider -W error $*"
