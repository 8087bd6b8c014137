"""custlist against its peers, measured side by side in one run.

    bash bench/run.sh            # full run (about 5 minutes on 2 cores)
    bash bench/run.sh --smoke    # every part at tiny size: proves it runs, times nothing

The decode table is also given in callgrind instruction counts (bench/icount.py),
which stay repeatable on a busy machine.

Tables: decode only, end to end against nginx, prefetch, memory, and
fan-out over many accounts (bench/fanout.py).  Medians over several runs;
ratios are peer / custlist (above 1: custlist is ahead).
"""
from __future__ import annotations

import argparse
import http.server
import json
import os
import pathlib
import platform
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(1, str(pathlib.Path(__file__).resolve().parents[1]))
import fanout  # noqa: E402
import peers  # noqa: E402

import custlist  # noqa: E402
from custlist import commenda, natural, pyng  # noqa: E402
from custlist.testing import data as gen  # noqa: E402

WORK = pathlib.Path(__file__).resolve().parent / ".work"
TOKEN = "bench-token"
HEADERS = {"Authorization": "Bearer " + TOKEN, "Pyng-Api-Version": pyng.API_VERSION,
           "Accept": "application/json"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def median_time(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def table(title, head, rows):
    print(f"\n### {title}\n")
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for r in rows:
        print("| " + " | ".join(str(c) for c in r) + " |")


def verdict(ok: bool, smoke: bool) -> str:
    return "(smoke)" if smoke else ("PASS" if ok else "FAIL")


# ---- pages ---------------------------------------------------------------

def page_items(kind: str, rng, n: int):
    if kind == "pyng":
        return gen.pyng_customers(rng, n)
    if kind == "natural":
        return gen.natural_customers(rng, n)
    if kind == "invitations":
        return gen.natural_invitations(rng, n)
    return gen.commenda_customers(rng, n, "corp_1")


def render(kind: str, items, nxt, base: str) -> bytes:
    if kind == "pyng":
        data = {"items": items, "totalItems": 10 ** 6}
        if nxt is not None:
            data["nextHref"] = f"{base}/pyng/billing/sites/site_1/customers?limit=100&cursor={nxt}"
        doc = {"data": data, "traceId": "9ae2e340-b983-4274-b400-c974a9ab40ab"}
    elif kind == "natural":
        doc = {"data": items, "meta": {"pagination": {"has_more": nxt is not None,
                                                      "next_cursor": None if nxt is None else str(nxt)}}}
    elif kind == "invitations":
        doc = {"data": items, "meta": {"pagination": {"hasMore": nxt is not None,
                                                      "nextCursor": None if nxt is None else str(nxt)}}}
    else:
        doc = {"customers": items, "total_customers": 10 ** 6,
               "cursor": None if nxt is None else str(nxt)}
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def write_site(kind: str, pages: int, base: str, rng) -> None:
    """pages files p.json (first), p1.json ... served by nginx by cursor."""
    folder = WORK / "www" / kind
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    items = page_items(kind, rng, 100)
    for n in range(pages):
        nxt = n + 1 if n + 1 < pages else None
        body = render(kind, items, nxt, base)
        (folder / ("p.json" if n == 0 else f"p{n}.json")).write_bytes(body)


# request path -> folder of www/ whose p<cursor>.json files answer it
ROUTES = {"/pyng/billing/sites/site_1/customers": "pyng", "/natural/customers": "natural",
          "/natural/customers/invitations": "invitations", "/commenda/customers": "commenda"}


class Nginx:
    def __init__(self, port: int, work: pathlib.Path = WORK, routes: dict = ROUTES):
        self.port, self.work = port, work
        conf = work / "nginx.conf"
        root = work / "www"
        locations = "\n".join(f"        location = {path} {{ try_files /{folder}/p$arg_cursor.json =404; }}"
                              for path, folder in routes.items())
        conf.write_text(f"""
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 256; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    sendfile on; tcp_nodelay on;
    client_body_temp_path {work}/tmp; proxy_temp_path {work}/tmp; fastcgi_temp_path {work}/tmp;
    uwsgi_temp_path {work}/tmp; scgi_temp_path {work}/tmp;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        default_type application/json;
{locations}
    }}
}}
""")
        (work / "tmp").mkdir(exist_ok=True)
        self.conf = conf

    def __enter__(self):
        subprocess.run(["nginx", "-c", str(self.conf), "-p", str(self.work)], check=True)
        deadline = time.time() + 5
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not start")

    def __exit__(self, *exc):
        subprocess.run(["nginx", "-c", str(self.conf), "-p", str(self.work), "-s", "stop"], check=False)
        time.sleep(0.2)


# ---- 1. decode only --------------------------------------------------------

def bench_decode(smoke: bool):
    rng = random.Random(1)
    endpoints = {"pyng": pyng.CUSTOMERS, "natural": natural.CUSTOMERS,
                 "invitations": natural.INVITATIONS, "commenda": commenda.CUSTOMERS}
    loops, runs = (20, 2) if smoke else (400, 7)
    rows = []
    for kind, ep in endpoints.items():
        body = render(kind, page_items(kind, rng, 100), 1, "http://127.0.0.1:1")
        assert len(ep.decode(body).items) == 100
        cands = {
            "custlist": lambda: ep.decode(body),
            "msgspec Structs": lambda: peers.MSGSPEC[kind](body),
            "orjson + dataclasses": lambda: peers.orjson_dataclasses(kind, body),
            "json + dataclasses": lambda: peers.json_dataclasses(kind, body),
        }
        # results are dropped as they come: a decoder's speed, not the GC's
        t = {name: median_time(lambda f=f: [f() and None for _ in range(loops)], runs) / loops
             for name, f in cands.items()}
        base = t["custlist"]
        for name, v in t.items():
            goal = {"msgspec Structs": 1.3, "orjson + dataclasses": 4.0}.get(name)
            ratio = v / base
            rows.append([kind, name, f"{v * 1e6:.1f} µs", f"{ratio:.2f}x",
                         "" if goal is None else f">= {goal}x " + verdict(ratio >= goal, smoke)])
    table("Decode only: one 100-record page, bytes -> typed records",
          ["endpoint", "library", "median per page", "peer/custlist", "target"], rows)


def bench_decode_icount(smoke: bool):
    """The same decode, counted in instructions by callgrind: repeatable on a
    busy machine, where the medians above are not."""
    import icount
    if shutil.which("valgrind") is None:
        print("\n(valgrind not installed: no instruction-count table)")
        return
    kinds = icount.KINDS[:1] if smoke else icount.KINDS
    rows = icount.rows(kinds, 1 if smoke else 20, lambda ok: verdict(ok, smoke))
    table("Decode only, instructions per 100-record page (callgrind)",
          ["endpoint", "library", "instructions per page", "peer/custlist", "target"], rows)


MEM_RECORDS = """
import random, sys, tracemalloc
sys.path[:0] = sys.argv[1:3]
import bench, peers
from custlist import commenda, natural, pyng
kind, pages = sys.argv[3], int(sys.argv[4])
ep = {"pyng": pyng.CUSTOMERS, "natural": natural.CUSTOMERS,
      "invitations": natural.INVITATIONS, "commenda": commenda.CUSTOMERS}[kind]
bodies = [bench.render(kind, bench.page_items(kind, random.Random(n), 100), 1, "http://127.0.0.1:1")
          for n in range(pages)]
libs = {"custlist": lambda b: ep.decode(b).items,
        "msgspec Structs": lambda b: peers.MSGSPEC[kind](b),
        "dataclasses(slots=True)": lambda b: peers.orjson_dataclasses(kind, b)}
for name, f in libs.items():
    f(bodies[0])                             # lazy imports and caches outside the count
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = [f(b) for b in bodies]
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    print(name, (after - before) / (100 * pages))
    del kept
"""


def bench_record_memory(smoke: bool):
    """Bytes per decoded record held in memory (every object a record keeps
    alive, its page's share of the list included), from tracemalloc."""
    pages = 2 if smoke else 50
    here = pathlib.Path(__file__).resolve()
    rows = []
    for kind in KINDS:
        out = subprocess.run([sys.executable, "-c", MEM_RECORDS, str(here.parent), str(here.parents[1]),
                              kind, str(pages)], check=True, capture_output=True, text=True).stdout
        per = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in out.splitlines()}
        base = per["custlist"]
        for name, v in per.items():
            rows.append([kind, name, f"{v:.0f} B", f"{v / base:.2f}x"])
    table(f"Records' memory: bytes per record, {pages} pages x 100 records kept (tracemalloc)",
          ["endpoint", "records", "bytes per record", "peer/custlist"], rows)


# ---- 2. end to end -----------------------------------------------------------

KINDS = ("pyng", "natural", "invitations", "commenda")
E2E_PATHS = {"pyng": "/pyng/billing/sites/site_1/customers?limit=100",
             "natural": "/natural/customers?limit=100",
             "invitations": "/natural/customers/invitations?limit=100",
             "commenda": "/commenda/customers?corporation_id=corp_1&limit=100"}
NEXT_KEYS = {"pyng": "nextHref", "natural": "next_cursor", "invitations": "nextCursor",
             "commenda": "cursor"}


def custlist_loop(kind: str, base: str):
    """A function that lists every record of `kind` from the site at `base`."""
    if kind == "pyng":
        c = custlist.Pyng(token=TOKEN, base_url=base + "/pyng")
        return lambda: sum(1 for _ in c.customers(site_id="site_1", limit=100))
    if kind == "commenda":
        m = custlist.Commenda(TOKEN, base_url=base + "/commenda")
        return lambda: sum(1 for _ in m.customers("corp_1", limit=100))
    n = custlist.Natural(TOKEN, base_url=base + "/natural")
    if kind == "natural":
        return lambda: sum(1 for _ in n.customers(limit=100))
    return lambda: sum(1 for _ in n.customer_invitations(limit=100))


def cpu_of_child(cmd):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), out


def bench_e2e(base: str, pages: int, smoke: bool):
    runs = 1 if smoke else 3
    rows = []
    for kind in KINDS:
        first = base + E2E_PATHS[kind]
        run_custlist = custlist_loop(kind, base)
        cands = {
            "custlist": run_custlist,
            "requests + json": lambda k=kind: peers.requests_loop(k, first, HEADERS),
            "httpx + json": lambda k=kind: peers.httpx_loop(k, first, HEADERS),
            "pycurl + orjson": lambda k=kind: peers.pycurl_loop(k, first, HEADERS),
        }
        res = {}
        for name, fn in cands.items():
            walls, cpus = [], []
            for _ in range(runs):
                c0, t0 = time.process_time(), time.perf_counter()
                n = fn()
                walls.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
                assert n == pages * 100, (name, n)
            res[name] = (statistics.median(walls), statistics.median(cpus))
        walls, cpus = [], []
        for _ in range(runs):
            w, c, out = cpu_of_child([str(WORK / "fetch_only"), "href" if kind == "pyng" else "cursor",
                                      first, NEXT_KEYS[kind]])
            assert int(out.split()[0]) == pages, out
            walls.append(w)
            cpus.append(c)
        res["libcurl C loop, download only"] = (statistics.median(walls), statistics.median(cpus))
        n = pages * 100
        bw, bc = res["custlist"]
        for name, (w, c) in res.items():
            goal = ""
            if name == "requests + json":
                goal = ">= 5x CPU " + verdict(c / bc >= 5, smoke)
            elif name == "pycurl + orjson":
                goal = ">= 2x CPU " + verdict(c / bc >= 2, smoke)
            elif name.startswith("libcurl"):
                goal = "custlist wall <= 1.2x " + verdict(bw <= 1.2 * w, smoke)
            rows.append([kind, name, f"{w:.3f} s", f"{c / n * 1e6:.2f} µs", f"{c / bc:.2f}x",
                         f"{w / bw:.2f}x", goal])
    table(f"End to end: {pages} pages x 100 records from nginx on loopback (client CPU per record)",
          ["endpoint", "client", "wall", "CPU/record", "CPU peer/custlist", "wall peer/custlist",
           "target"], rows)


# ---- 3. prefetch -------------------------------------------------------------

class SlowPages(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    bodies: dict = {}
    latency = 0.02

    def log_message(self, *a):
        pass

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self):
        cursor = self.path.partition("cursor=")[2] or "0"
        body = self.bodies[int(cursor)]
        time.sleep(self.latency)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def bench_prefetch(smoke: bool):
    pages, work = (5, 0.02) if smoke else (50, 0.02)
    rng = random.Random(3)
    items = page_items("natural", rng, 100)
    bodies = {n: render("natural", items, n + 1 if n + 1 < pages else None, "").decode()
              for n in range(pages)}
    pages_file = WORK / "slow_pages.json"
    pages_file.write_text(json.dumps(bodies))
    port = free_port()
    # its own process: a server thread here would wait for the consumer's GIL
    server = subprocess.Popen([sys.executable, __file__, "--serve-slow", str(port), str(pages_file)])
    deadline = time.time() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    rows, results = [], {}
    for prefetch in (True, False):
        client = custlist.Natural(TOKEN, base_url=base, prefetch=prefetch)
        t = time.perf_counter()
        for page in client.customers(limit=100).pages():
            end = time.perf_counter() + work       # the consumer's work on the page
            while time.perf_counter() < end:
                pass
        results[prefetch] = time.perf_counter() - t
    server.terminate()
    server.wait()
    ideal = pages * max(work, SlowPages.latency)
    for prefetch, total in results.items():
        goal = ("<= 1.15x ideal " + verdict(total <= 1.15 * ideal, smoke)) if prefetch else ""
        rows.append([f"prefetch={prefetch}", f"{total:.3f} s", f"{total / ideal:.2f}x", goal])
    table(f"Prefetch: {pages} pages, {SlowPages.latency * 1000:.0f} ms server latency, "
          f"{work * 1000:.0f} ms consumer work per page (ideal {ideal:.2f} s)",
          ["custlist", "total", "vs max(fetch, consume)", "target"], rows)


# ---- 4. memory ---------------------------------------------------------------

MEM_CHILD = """
import resource, sys, custlist
base = sys.argv[1]
client = custlist.Pyng(token="t", base_url=base + "/pyng")
first = sum(1 for _ in client.customers(site_id="site_1", limit=100))   # warm: buffers, caches
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
n = 0
for _ in range(int(sys.argv[2])):
    n += sum(1 for _ in client.customers(site_id="site_1", limit=100))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(n, before, after)
"""


def bench_memory(base: str, pages: int, smoke: bool):
    repeat = 1 if smoke else max(1, 1_000_000 // (pages * 100))
    out = subprocess.run([sys.executable, "-c", MEM_CHILD, base, str(repeat)], check=True,
                         capture_output=True, text=True).stdout.split()
    n, before, after = int(out[0]), int(out[1]), int(out[2])
    growth = (after - before) / 1024
    table(f"Memory: streaming {n:,} records (peak RSS above the warmed-up interpreter)",
          ["records", "baseline", "peak", "growth", "target"],
          [[f"{n:,}", f"{before / 1024:.1f} MiB", f"{after / 1024:.1f} MiB", f"{growth:.1f} MiB",
            "<= 64 MiB " + verdict(growth <= 64, smoke)]])


def serve_slow(port: int, pages_file: str) -> None:
    SlowPages.bodies = {int(k): v.encode() for k, v in json.loads(pathlib.Path(pages_file).read_text()).items()}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), SlowPages)
    server.daemon_threads = True
    server.serve_forever()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--serve-slow", nargs=2, metavar=("PORT", "PAGES"))
    args = ap.parse_args()
    if args.serve_slow:
        return serve_slow(int(args.serve_slow[0]), args.serve_slow[1])
    smoke = args.smoke
    pages = 5 if smoke else 1000
    WORK.mkdir(exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    rng = random.Random(2)
    for kind in KINDS:
        write_site(kind, pages, base, rng)
    print("# custlist benchmark" + (" (smoke run: sizes are tiny, timings mean nothing)" if smoke else ""))
    print(f"\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores; Python {platform.python_version()}; libcurl "
          f"{custlist._core.libcurl_version}; custlist {custlist.__version__}")
    bench_decode(smoke)
    bench_decode_icount(smoke)
    bench_record_memory(smoke)
    with Nginx(port):
        bench_e2e(base, pages, smoke)
        bench_memory(base, pages, smoke)
    bench_prefetch(smoke)
    fanout.run(smoke)


if __name__ == "__main__":
    main()
