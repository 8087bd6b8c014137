"""Customer lists to an Arrow table: custlist's to_arrow() against the ways
people do it today, side by side in one run.

    python bench/arrow_bench.py            # 1,000,000 records per endpoint
    python bench/arrow_bench.py --smoke    # 1,000 records: proves it runs, times nothing

Every variant runs once per endpoint in a fresh subprocess, which reports
its wall time, the table it built (rows, nbytes) and its peak RSS above the
interpreter with every library imported.  custlist and from_pylist of its
records list over HTTP from nginx on loopback (100 records a page, the
vendors' largest); the msgspec peer decodes the same page bodies from memory
(no HTTP); pyarrow.json and polars read the same records as one
newline-delimited JSON file (from the page cache).
"""
from __future__ import annotations

import argparse
import enum
import json
import os
import pathlib
import platform
import random
import shutil
import subprocess
import sys
import time

# numpy, which pyarrow imports, starts OpenBLAS's threads, and they spin on a
# core for their first tens of milliseconds: a fresh process's first Arrow
# work would share the two cores with them.  Nothing measured here uses BLAS.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

WORK = HERE / ".work" / "arrow"
TOKEN = "bench-token"
PAGE = 100
KINDS = ("pyng", "natural", "invitations", "commenda")
VARIANTS = ("custlist to_arrow()", "from_pylist(r.to_dict())", "msgspec -> from_pylist",
            "pyarrow.json 1 thread", "pyarrow.json threads", "polars.read_ndjson")


# ---- data: pages for nginx and the same records as NDJSON ------------------

def distinct_items(kind: str, n: int):
    from bench import page_items
    return page_items(kind, random.Random(7), n)


def render(kind: str, items, nxt, total: int, base: str) -> bytes:
    if kind == "pyng":
        data = {"items": items, "totalItems": total}
        if nxt is not None:
            data["nextHref"] = f"{base}/pyng/billing/sites/site_1/customers?limit={PAGE}&cursor={nxt}"
        doc = {"data": data, "traceId": "9ae2e340-b983-4274-b400-c974a9ab40ab"}
    elif kind in ("natural", "invitations"):
        more = nxt is not None
        cur = None if nxt is None else str(nxt)
        pag = ({"has_more": more, "next_cursor": cur} if kind == "natural"
               else {"hasMore": more, "nextCursor": cur})
        doc = {"data": items, "meta": {"pagination": pag}}
    else:
        doc = {"customers": items, "total_customers": total, "cursor": None if nxt is None else str(nxt)}
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def write_data(kind: str, n: int, base: str) -> None:
    """n records in pages p.json, p1.json ... and in records.ndjson.  A
    thousand distinct records (fewer when smoke), cycled."""
    folder = WORK / "www" / kind
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    pool = distinct_items(kind, min(n, 1000))
    pages = n // PAGE
    blocks = len(pool) // PAGE
    with open(WORK / f"{kind}.ndjson", "wb") as nd:
        for p in range(pages):
            items = pool[(p % blocks) * PAGE:(p % blocks + 1) * PAGE]
            nxt = p + 1 if p + 1 < pages else None
            (folder / ("p.json" if p == 0 else f"p{p}.json")).write_bytes(render(kind, items, nxt, n, base))
            nd.write(b"".join(json.dumps(it, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
                              for it in items))


ROUTES = {"/pyng/billing/sites/site_1/customers": "pyng", "/natural/customers": "natural",
          "/natural/customers/invitations": "invitations", "/commenda/customers": "commenda"}


# ---- the variants (each in its own process) ----------------------------------

def pager(kind: str, base: str):
    import custlist
    if kind == "pyng":
        return custlist.Pyng(token=TOKEN, base_url=base + "/pyng").customers(site_id="site_1", limit=PAGE)
    if kind == "natural":
        return custlist.Natural(TOKEN, base_url=base + "/natural").customers(limit=PAGE)
    if kind == "invitations":
        return custlist.Natural(TOKEN, base_url=base + "/natural").customer_invitations(limit=PAGE)
    return custlist.Commenda(TOKEN, base_url=base + "/commenda").customers("corp_1", limit=PAGE)


def msgspec_rows(kind: str, body: bytes) -> list:
    """One page decoded into msgspec Structs, then plain rows for from_pylist
    (Structs are not something pyarrow reads)."""
    import msgspec
    import peers
    if kind == "pyng":
        page = peers._pyng_dec.decode(body)
        return [{"customer_reference": c.customerReference, "state": c.state,
                 "invited_at": peers.from_ms(c.invitedAt), "expires_at": peers.from_ms(c.expiresAt),
                 "linked_at": peers.from_ms(c.linkedAt)} for c in page.data.items]
    page = peers.MSGSPEC[kind](body)
    items = page.customers if kind == "commenda" else page.data

    def plain(v):
        if isinstance(v, msgspec.Struct):
            return {k: plain(x) for k, x in msgspec.structs.asdict(v).items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, enum.Enum):           # the peers' enums: their wire value
            return v.value
        return v
    return [plain(it) for it in items]


def run_variant(variant: str, kind: str, base: str) -> dict:
    import msgspec  # noqa: F401  (every library imported before the baseline)
    import polars as pl
    import pyarrow as pa
    import pyarrow.json as pj

    import custlist  # noqa: F401
    import peers  # noqa: F401
    ndjson = WORK / f"{kind}.ndjson"
    with open("/proc/self/statm") as f:
        baseline = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    t = time.perf_counter()
    if variant == "custlist to_arrow()":
        table = pager(kind, base).to_arrow()
    elif variant == "from_pylist(r.to_dict())":
        table = pa.Table.from_pylist([r.to_dict() for r in pager(kind, base)])
    elif variant == "msgspec -> from_pylist":
        folder = WORK / "www" / kind
        npages = len(os.listdir(folder))
        bodies = [(folder / ("p.json" if p == 0 else f"p{p}.json")).read_bytes() for p in range(npages)]
        t = time.perf_counter()                # reading the files is not counted
        rows = []
        for body in bodies:
            rows.extend(msgspec_rows(kind, body))
        table = pa.Table.from_pylist(rows)
        del rows
    elif variant.startswith("pyarrow.json"):
        table = pj.read_json(ndjson, read_options=pj.ReadOptions(use_threads="threads" in variant))
    else:
        table = pl.read_ndjson(ndjson)
    wall = time.perf_counter() - t
    # VmHWM: this process's own peak; ru_maxrss would start from the parent's size
    with open("/proc/self/status") as f:
        peak = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) * 1024
    if isinstance(table, pl.DataFrame):
        rows, nbytes = table.height, table.estimated_size()
    else:
        rows, nbytes = table.num_rows, table.nbytes
    return {"wall": wall, "rows": rows, "nbytes": nbytes, "baseline": baseline, "peak": peak}


# ---- the run ------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--records", type=int)
    ap.add_argument("--child", nargs=3, metavar=("VARIANT", "KIND", "BASE"))
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_variant(*args.child)))
        return
    from bench import Nginx, free_port
    smoke = args.smoke
    n = args.records or (1_000 if smoke else 1_000_000)
    WORK.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    for kind in KINDS:
        write_data(kind, n, base)
    import custlist
    print("\n# custlist to Arrow" + (" (smoke run: sizes are tiny, timings mean nothing)" if smoke else ""))
    load = os.getloadavg()
    print(f"\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.machine()}, "
          f"{os.cpu_count()} cores; Python {platform.python_version()}; custlist {custlist.__version__}; "
          f"load average before the run {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    rows_out = []
    verdicts = {}
    with Nginx(port, WORK, ROUTES):
        for kind in KINDS:
            res = {}
            for v in VARIANTS:
                out = subprocess.run([sys.executable, __file__, "--child", v, kind, base], check=True,
                                     stdout=subprocess.PIPE, text=True).stdout
                res[v] = json.loads(out.strip().splitlines()[-1])
                assert res[v]["rows"] == n, (kind, v, res[v])
            cl = res["custlist to_arrow()"]
            for v, r in res.items():
                grow = max(r["peak"] - r["baseline"], 0)
                goal = ""
                if v == "from_pylist(r.to_dict())":
                    ok = r["wall"] >= 10 * cl["wall"]
                    goal = ">= 10x " + ("(smoke)" if smoke else "PASS" if ok else "FAIL")
                    verdicts.setdefault("10x from_pylist", []).append((kind, r["wall"] / cl["wall"]))
                elif v == "pyarrow.json 1 thread":
                    goal = "> 1x " + ("(smoke)" if smoke else "PASS" if r["wall"] > cl["wall"] else "FAIL")
                    verdicts.setdefault("read_json 1 thread", []).append((kind, r["wall"] / cl["wall"]))
                elif v == "custlist to_arrow()":
                    ratio = grow / cl["nbytes"]
                    goal = "memory <= 2x " + ("(smoke)" if smoke else "PASS" if ratio <= 2 else "FAIL")
                    verdicts.setdefault("memory", []).append((kind, ratio))
                rows_out.append([kind, v, f"{r['wall']:.3f} s", f"{r['wall'] / cl['wall']:.2f}x",
                                 f"{r['nbytes'] / 2**20:.1f} MiB", f"{grow / 2**20:.1f} MiB",
                                 f"{grow / max(r['nbytes'], 1):.2f}x", goal])
    load = os.getloadavg()
    print(f"\n### To an Arrow table: {n:,} records per endpoint, each variant in its own process\n")
    head = ["endpoint", "variant", "wall", "wall / custlist", "table (nbytes)", "peak RSS growth",
            "growth / table", "target"]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for r in rows_out:
        print("| " + " | ".join(r) + " |")
    print(f"\nload average after the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("\nratios: " + "; ".join(f"{k}: " + ", ".join(f"{kind} {x:.2f}x" for kind, x in v)
                                     for k, v in verdicts.items()))


if __name__ == "__main__":
    main()
