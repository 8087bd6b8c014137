#!/usr/bin/env bash
# custlist against its peers, side by side:  bash bench/run.sh [--smoke]
# A full run (about 13-14 minutes) also counts the decode table in instructions
# when valgrind is installed (bench/icount.py); --smoke (under a minute) never does.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${VPY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
mkdir -p bench/.work
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light; }
"$PY" -c "import requests, httpx, pycurl, orjson, msgspec, pyarrow, polars" 2>/dev/null || \
    "$PY" -m pip install -q requests httpx pycurl orjson msgspec pyarrow polars
cc -O2 -Wall -o bench/.work/fetch_only bench/fetch_only.c $(curl-config --cflags --libs)
"$PY" bench/bench.py "$@"
exec "$PY" bench/arrow_bench.py "$@"
