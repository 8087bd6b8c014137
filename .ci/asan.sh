#!/usr/bin/env bash
# The C core under the sanitizers:   bash .ci/asan.sh [extra pytest args]
#
# 1. builds custlist._core with gcc, AddressSanitizer + UndefinedBehavior-
#    Sanitizer, into .ci/.asan/lib (the in-place build is left alone), beside a
#    copy of the Python package;
# 2. runs the whole test suite (tests/) against that build, with the ASan and
#    UBSan runtimes preloaded into the (uninstrumented) interpreter; any
#    sanitizer report fails the run, and so does any failing test;
# 3. builds the core again without sanitizers (.ci/.asan/plain) and runs a
#    workload -- every corpus file through every decode path, schemas built and
#    dropped, pages fetched from a local server with errors, retries and early
#    stops -- under valgrind; a definite leak (or a memory error) whose stack
#    passes through custlist's C code fails the run.
#
# Interpreter: VPY or PYTHON, default .venv/bin/python, else python3.  What is
# missing (pytest, valgrind, gcc's sanitizer runtimes) is installed first.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/lib.sh
out=.ci/.asan

# --- what it needs -----------------------------------------------------------
command -v gcc >/dev/null 2>&1 || apt_install gcc
command -v curl-config >/dev/null 2>&1 || apt_install libcurl4-openssl-dev
command -v valgrind >/dev/null 2>&1 || apt_install valgrind
libasan=$(gcc -print-file-name=libasan.so)
libubsan=$(gcc -print-file-name=libubsan.so)
if [ ! -f "$libasan" ] || [ ! -f "$libubsan" ]; then
    apt_install "libgcc-$(gcc -dumpversion | cut -d. -f1)-dev"     # brings libasan, libubsan
    libasan=$(gcc -print-file-name=libasan.so)
    libubsan=$(gcc -print-file-name=libubsan.so)
fi
"$PY" -c "import pytest" 2>/dev/null || "$PY" -m pip install -q pytest
"$PY" -c "import setuptools" 2>/dev/null || "$PY" -m pip install -q setuptools

stage() {   # stage DIR CFLAGS LDFLAGS: the package with a _core built with these flags
    local dir=$1
    rm -rf "$dir"
    mkdir -p "$dir"
    CC=gcc LDSHARED="gcc -shared" CUSTLIST_CFLAGS="$2" CUSTLIST_LDFLAGS="$3" \
        "$PY" setup.py -q build_ext --build-lib "$dir/lib" --build-temp "$dir/tmp" \
        >"$dir/build.log" 2>&1 || { cat "$dir/build.log"; exit 2; }
    (cd custlist && find . -name __pycache__ -prune -o -type f ! -name '*.so' -print) |
        while read -r f; do
            mkdir -p "$dir/lib/custlist/$(dirname "$f")"
            cp "custlist/$f" "$dir/lib/custlist/$f"
        done
}

# --- 1. the sanitized build ------------------------------------------------------
say "building with -fsanitize=address,undefined"
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
stage "$out/san" "-Werror -O1 -g -fno-omit-frame-pointer $san" "$san"
lib=$root/$out/san/lib

# A pytest plugin that imports custlist before anything else, so the tests
# cannot pick up the source tree's in-place build, and says which it got.
cat >"$lib/_asan_guard.py" <<EOF
import custlist._core

def pytest_report_header(config):
    return "custlist._core: " + custlist._core.__file__

assert custlist._core.__file__.startswith("$lib/"), custlist._core.__file__
EOF

# --- 2. the test suite under ASan + UBSan -----------------------------------------
reports=$root/$out/reports
rm -rf "$reports"
mkdir -p "$reports"
export LD_PRELOAD="$libasan $libubsan"
export PYTHONPATH="$lib" PYTHONSAFEPATH=1 PYTHONMALLOC=malloc PYTHONDONTWRITEBYTECODE=1
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=87:log_path=$reports/ubsan"
asan_common="detect_leaks=0:halt_on_error=1:exitcode=86:log_path=$reports/asan:malloc_context_size=30"
export ASAN_OPTIONS=$asan_common
"$PY" -c "import custlist._core as c; assert c.__file__.startswith('$lib/'), c.__file__; print('sanitized core:', c.__file__)"

# Every test file but test_leaks.py (below, on its own) and those that drive
# the command line, notebooks, dlt and Dask in child processes: the C paths
# they reach are the ones the rest reach, and each child under ASan costs
# seconds.
suite=()
for f in tests/test_*.py; do
    case $(basename "$f") in
    test_leaks.py|test_cli.py|test_cli_output.py|test_export.py|test_export_rerun.py|\
    test_dlt.py|test_dask.py|test_progress_notebook.py|test_readme.py|test_usability.py) ;;
    *) suite+=("$f") ;;
    esac
done
status=0
say "tests/ (but test_leaks.py and the command-line, notebook, dlt and Dask files) under ASan + UBSan"
ASAN_OPTIONS="$asan_common:detect_stack_use_after_return=1:check_initialization_order=1" \
    "$PY" -m pytest -q -p _asan_guard -p no:cacheprovider --import-mode=append "${suite[@]}" "$@" \
    || status=$?
if [ -f tests/test_leaks.py ]; then
    # The RSS checks need freed memory to be reused at once: no quarantine.
    say "tests/test_leaks.py under ASan + UBSan, no quarantine"
    ASAN_OPTIONS="$asan_common:quarantine_size_mb=0:thread_local_quarantine_size_kb=0" \
        "$PY" -m pytest -q -p _asan_guard -p no:cacheprovider --import-mode=append \
        tests/test_leaks.py "$@" || status=$?
fi
unset LD_PRELOAD UBSAN_OPTIONS ASAN_OPTIONS PYTHONMALLOC
if compgen -G "$reports/*" >/dev/null; then
    say "SANITIZER REPORTS"
    cat "$reports"/*
    exit 1
fi
if [ "$status" -ne 0 ]; then
    say "the test suite failed under the sanitizers (exit $status), no sanitizer report"
    exit "$status"
fi

# --- 3. leak check under valgrind -----------------------------------------------
say "building without sanitizers for valgrind"
stage "$out/plain" "-Werror -O1 -g -fno-omit-frame-pointer" ""
plainlib=$root/$out/plain/lib
cat >"$out/leakcheck.py" <<'EOF'
"""A workload for valgrind: every decode path, schema builds, paging."""
import http.server
import json
import pathlib
import sys
import threading
import urllib.parse

import custlist
from custlist import commenda, natural, pyng

root = pathlib.Path(sys.argv[1])
assert custlist._core.__file__.startswith(sys.argv[2]), custlist._core.__file__
sys.path.append(str(root / "tests"))
import decode_targets as fd                                  # noqa: E402

# Every corpus file through its target, one-pass and deferred, typed and raw.
corpus = sorted((root / "tests" / "corpus").glob("*/*/*.bin"))
for _ in range(2):
    for f in corpus:
        body = f.read_bytes()
        target = fd.BY_NAME[f.parent.name]
        for t in [target] + [fd.BY_NAME[n] for n in (target.name + "-raw",) if n in fd.BY_NAME]:
            for decode in (t.decode, t.decode_deferred) if t.endpoint else (t.decode,):
                for depth in (64, 3):
                    try:
                        decode(body, depth)
                    except Exception:
                        pass
for _ in range(20):                          # schemas compiled and freed
    for name, spec in fd.SCHEMA_SPECS:
        custlist.Schema(spec)
    for ep in (pyng.CUSTOMERS, natural.CUSTOMERS, natural.INVITATIONS, commenda.CUSTOMERS):
        custlist.Schema(ep.paging.page_spec(("list", fd.type_spec(ep.item))))
for bad in [("list",), ("record", None, -1, ()), ("union", "t", {"a": ("nope",)}, None),
            ("enum", []), ("record", int, 1, ())]:
    try:
        custlist.Schema(bad)
    except (TypeError, ValueError):
        pass

# Paging against a local server: three pages per vendor, errors, retries.
hits = {}


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        hits[url.path] = hits.get(url.path, 0) + 1
        n = int(q.get("cursor") or q.get("page") or 0)
        base = f"http://127.0.0.1:{self.server.server_port}"
        status, doc = 200, None
        if url.path.endswith("/missing/customers"):
            status, doc = 404, {"errors": [{"code": "not_found", "displayMessage": "no"}]}
        elif url.path.endswith("/flaky/customers") and hits[url.path] % 2:
            status, doc = 503, {"error": "busy"}
        elif url.path.endswith("/bad/customers") and n == 1:
            body = b'{"data":{"items":[{"customerReference":"\xff"}]}}'
        elif "/billing/" in url.path:
            doc = {"data": {"items": [{"customerReference": f"r{n}-{i}", "state": "linked",
                                       "invitedAt": 1777852800000 + i} for i in range(5)],
                            "totalItems": 15,
                            "nextHref": f"{base}{url.path}?page={n + 1}" if n < 2 else None},
                   "traceId": "t"}
        elif url.path.startswith("/natural/"):
            doc = {"data": [{"type": "party", "id": f"pty_{n}_{i}", "attributes": {
                "status": "ACTIVE", "permissions": ["a", "b"], "created_at": "2026-01-04T15:30:00Z",
                "wallet_available_dollars": "1.50"}} for i in range(4)],
                "meta": {"pagination": {"has_more": n < 2, "next_cursor": str(n + 1) if n < 2 else None}}}
        else:
            doc = {"data": {"customers": [{"id": f"c{n}{i}", "created_at": 0,
                                           "shipping_address": {"address_line_1": "x"}}
                                          for i in range(4)],
                            "cursor": str(n + 1) if n < 2 else None, "total_customers": 12}}
        if doc is not None:
            body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
base = f"http://127.0.0.1:{server.server_port}"
fast = dict(backoff=0.01, backoff_max=0.02, max_retries=2)
for prefetch in (True, False):
    p = custlist.Pyng(token="t", base_url=base, prefetch=prefetch, **fast)
    n = custlist.Natural("sk_ntl_x", base_url=base + "/natural", prefetch=prefetch, **fast)
    c = custlist.Commenda("tok", base_url=base + "/commenda", prefetch=prefetch, **fast)
    for raw in (False, True):
        assert len(list(p.customers("s1", raw=raw))) == 15
        assert len(list(n.customers(raw=raw))) == 12
        assert len(list(c.customers("corp", raw=raw))) == 12
        assert len(list(p.customers("flaky", raw=raw))) == 15
    pager = p.customers("s1")
    next(pager)
    pager.close()                                  # early stop, maybe a prefetch in flight
    for site, exc in (("missing", custlist.NotFoundError), ("bad", custlist.DecodeError)):
        try:
            list(p.customers(site))
            raise AssertionError("no error")
        except exc:
            pass
    pages = list(p.customers("s1").pages())
    assert len(pages) == 3
# Arrow streams through their release callbacks: whole, moved, in part,
# never consumed, failing (tests/arrow_c.py drives them with ctypes).
import arrow_c                                               # noqa: E402
for pager, total in ((p.customers("s1"), 15), (n.customers(), 12), (c.customers("corp"), 12)):
    assert sum(arrow_c.drain(pager.__arrow_c_stream__(), move=True)[1]) == total
assert arrow_c.drain(n.customers().__arrow_c_stream__(), batches=1)[1] == [4]
p.customers("s1").__arrow_c_stream__()
assert arrow_c.drain(p.customers("bad").__arrow_c_stream__())[2] is not None
server.shutdown()
print("leak check workload done")
EOF
say "leak check under valgrind"
vlog=$out/valgrind.log
rm -f "$vlog"
vstatus=0
PYTHONPATH="$plainlib" PYTHONSAFEPATH=1 PYTHONMALLOC=malloc \
    valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite \
    --errors-for-leak-kinds=definite --num-callers=50 --log-file="$vlog" \
    "$PY" "$out/leakcheck.py" "$root" "$plainlib/" || vstatus=$?
# Blocks of the log: a definite leak or a memory error, and its stack.  Only
# those passing through custlist's C code count (CPython and libcurl keep
# memory of their own at exit).
if ! awk -v vstatus="$vstatus" '
    function flush() { if (block != "" && keep && block ~ /(csrc\/|_core\.cpython)/) { print block "\n"; bad = 1 } block = ""; keep = 0 }
    { sub(/^==[0-9]+== ?/, "") }
    /^$/ { flush(); next }
    block == "" && (/definitely lost in loss record/ || /^(Invalid|Conditional jump|Use of uninitialised|Syscall param|Mismatched|Source and destination)/) { keep = 1 }
    { block = block "\n" $0 }
    END { flush(); exit bad }' "$vlog"; then
    say "valgrind: definite leaks or memory errors in custlist's C code (above; log $vlog)"
    exit 1
fi
if [ "$vstatus" -ne 0 ]; then
    tail -n 40 "$vlog"
    say "valgrind: the workload failed (exit $vstatus); log $vlog"
    exit 1
fi
grep -E "definitely lost|ERROR SUMMARY" "$vlog" | sed 's/^==[0-9]*== /valgrind: /'
say "no sanitizer report, no leak in the C core"
