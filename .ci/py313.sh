#!/usr/bin/env bash
# make test-py313: the whole suite on CPython 3.13 (Debian 13's python3,
# libcurl headers from Debian 13), with the C core built -Werror and Python's
# deprecation warnings as errors, in a fresh Debian 13 root from .ci/roots.sh.
#   .ci/py313.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/chroot.sh
root=$(bash .ci/roots.sh trixie-dev)
trap 'unmount_root "$root"' EXIT

copy_tree "$root/src"

# Deprecations are errors (the interpreter's and the tests').
warn="-W error::DeprecationWarning -W error::PendingDeprecationWarning"
# Installed in place (as make test does), so its command line is on PATH too.
in_root "$root" sh -c 'cd /src && /venv/bin/python -V && CUSTLIST_CFLAGS=-Werror /venv/bin/pip install -q --no-build-isolation --no-deps -e . >/tmp/build.log 2>&1 || { cat /tmp/build.log; exit 1; }'
in_root "$root" sh -c "cd /src && PATH=/venv/bin:\$PATH /venv/bin/python $warn -m pytest -q -p no:cacheprovider $warn $*"
