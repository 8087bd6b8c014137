"""custlist against its peers, measured side by side in one run.

    bash bench/run.sh            # full run (about 13-14 minutes on 2 cores, Arrow included)
    bash bench/run.sh --smoke    # every table at tiny size (about 50 s): proves it runs, times nothing

Every table covers the four endpoints (Pyng, Natural customers, Natural
invitations, Commenda): decode only (CPU time, and callgrind instructions
when valgrind is installed: repeatable on a busy machine), records'
memory, end to end against nginx with hand-offs (context switches) per
page, end to end against its parts (decode only + download only), peak
memory over 1,000,000 records, prefetch, then fan-out (bench/fanout.py).

Times on a shared machine: other work only ever adds to a measured time,
so CPU and wall times are the minimum of several repetitions.  Ratios are
peer / custlist (above 1: custlist is ahead).  The output is markdown,
pasteable into bench/RESULTS.md as it is.
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
import subprocess
import sys
import threading
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(1, str(pathlib.Path(__file__).resolve().parents[1]))
import fanout  # noqa: E402

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


def wait_for_port(port: int, seconds: float) -> bool:
    """True once a server accepts on 127.0.0.1:port, False after `seconds`."""
    deadline = time.time() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            if time.time() > deadline:
                return False
            time.sleep(0.05)


def ensure_fetch_only() -> pathlib.Path:
    """bench/fetch_only.c built into WORK once (bench/run.sh builds it too)."""
    exe = WORK / "fetch_only"
    if not exe.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        flags = subprocess.run(["curl-config", "--cflags", "--libs"], check=True,
                               capture_output=True, text=True).stdout.split()
        src = pathlib.Path(__file__).resolve().parent / "fetch_only.c"
        subprocess.run(["cc", "-O2", "-o", str(exe), str(src), *flags], check=True)
    return exe


def min_cpu(fn, runs: int) -> float:
    """The least CPU time (this process, every thread) of `runs` calls."""
    best = float("inf")
    for _ in range(runs):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine_line() -> str:
    """CPU, cores, memory, OS and the versions that matter, in one line."""
    def first(path, key):
        try:
            for line in pathlib.Path(path).read_text().splitlines():
                if line.startswith(key):
                    return line.split(":" if ":" in line else "=", 1)[1].strip().strip('"')
        except OSError:
            pass
        return "?"
    mem = first("/proc/meminfo", "MemTotal")
    mem = f"{int(mem.split()[0]) / 2 ** 20:.0f} GiB" if mem != "?" else "? GiB"
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    try:
        nv = subprocess.run([nginx, "-v"], capture_output=True, text=True).stderr.strip()
        nv = nv.rpartition("/")[2] or "?"
    except OSError:
        nv = "?"
    return (f"Machine: {first('/proc/cpuinfo', 'model name')}, {os.cpu_count()} cores, {mem}; "
            f"{first('/etc/os-release', 'PRETTY_NAME')}; Python {platform.python_version()}; "
            f"libcurl {custlist._core.libcurl_version}; nginx {nv}; custlist {custlist.__version__}")


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


def render(kind: str, items, nxt, base: str, total: int = 10 ** 6) -> bytes:
    """One page; `total` is what the page states (a listing served from
    these pages must state its own size: a short listing is an error)."""
    if kind == "pyng":
        data = {"items": items, "totalItems": total}
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
        doc = {"customers": items, "total_customers": total,
               "cursor": None if nxt is None else str(nxt)}
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def site_bodies(kind: str, pages: int, base: str) -> list:
    """The pages of a listing: the same 100 records (those bench/icount.py
    decodes) on every page, each page with its own next cursor or link."""
    items = page_items(kind, random.Random(1), 100)
    return [render(kind, items, n + 1 if n + 1 < pages else None, base, total=pages * 100)
            for n in range(pages)]


def write_site(kind: str, pages: int, base: str) -> list:
    """pages files p.json (first), p1.json ... served by nginx by cursor;
    returns their bodies."""
    folder = WORK / "www" / kind
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    bodies = site_bodies(kind, pages, base)
    for n, body in enumerate(bodies):
        (folder / ("p.json" if n == 0 else f"p{n}.json")).write_bytes(body)
    return bodies


# request path -> folder of www/ whose p<cursor>.json files answer it
ROUTES = {"/pyng/billing/sites/site_1/customers": "pyng", "/natural/customers": "natural",
          "/natural/customers/invitations": "invitations", "/commenda/customers": "commenda"}


def nginx_workers(work: pathlib.Path) -> list[pathlib.Path]:
    """/proc/PID of each worker process of the nginx whose pid file is in
    `work` (its master's children); none if it cannot be read."""
    try:
        master = int((work / "nginx.pid").read_text())
    except (OSError, ValueError):
        return []
    out = []
    for d in pathlib.Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == master:
                out.append(d)
        except (OSError, ValueError, IndexError):
            continue
    return out


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
        if wait_for_port(self.port, 5):
            return self
        raise RuntimeError("nginx did not start")

    def __exit__(self, *exc):
        subprocess.run(["nginx", "-c", str(self.conf), "-p", str(self.work), "-s", "stop"], check=False,
                       capture_output=True)         # its "signal process started" notice
        time.sleep(0.2)


# ---- endpoints ---------------------------------------------------------------

KINDS = ("pyng", "natural", "invitations", "commenda")
E2E_PATHS = {"pyng": "/pyng/billing/sites/site_1/customers?limit=100",
             "natural": "/natural/customers?limit=100",
             "invitations": "/natural/customers/invitations?limit=100",
             "commenda": "/commenda/customers?corporation_id=corp_1&limit=100"}
NEXT_KEYS = {"pyng": "nextHref", "natural": "next_cursor", "invitations": "nextCursor",
             "commenda": "cursor"}


def endpoint(kind: str):
    return {"pyng": pyng.CUSTOMERS, "natural": natural.CUSTOMERS,
            "invitations": natural.INVITATIONS, "commenda": commenda.CUSTOMERS}[kind]


def custlist_pagers(kind: str, base: str, prefetch: bool = True):
    """A function that starts a new listing of every record of `kind` from
    the site at `base` (one client for all of them)."""
    if kind == "pyng":
        c = custlist.Pyng(token=TOKEN, base_url=base + "/pyng", prefetch=prefetch)
        return lambda: c.customers(site_id="site_1", limit=100)
    if kind == "commenda":
        m = custlist.Commenda(TOKEN, base_url=base + "/commenda", prefetch=prefetch)
        return lambda: m.customers("corp_1", limit=100)
    n = custlist.Natural(TOKEN, base_url=base + "/natural", prefetch=prefetch)
    if kind == "natural":
        return lambda: n.customers(limit=100)
    return lambda: n.customer_invitations(limit=100)


def custlist_loop(kind: str, base: str, prefetch: bool = True):
    """A function that lists every record of `kind` and returns how many."""
    start = custlist_pagers(kind, base, prefetch)
    return lambda: sum(1 for _ in start())


# ---- 1. decode only --------------------------------------------------------

DECODE_GOALS = {"msgspec Structs": 1.3, "orjson + dataclasses": 4.0}


def bench_decode(sites: dict, smoke: bool) -> dict:
    """CPU time per page (least of several runs, over the pages nginx serves)
    and, in a full run with valgrind, instructions per page.  Returns
    custlist's decode-only CPU per record of each endpoint, over every page
    of its listing: one term of the end-to-end budget."""
    import peers  # the peers' packages (msgspec, orjson...): not on every interpreter
    sample, runs = (5, 2) if smoke else (100, 7)
    counts = None
    if smoke:
        # no valgrind at smoke size: the child callgrind would count runs once, bare
        subprocess.run([sys.executable, str(pathlib.Path(__file__).resolve().parent / "icount.py"),
                        "pyng", "custlist", "1"], check=True)
    elif shutil.which("valgrind"):
        import icount
        counts = icount.counts(KINDS, 20)
    rows, per_record = [], {}
    for kind in KINDS:
        ep, bodies = endpoint(kind), sites[kind]
        some = bodies[:sample]
        assert len(ep.decode(some[0]).items) == 100
        cands = {
            "custlist": ep.decode,
            "msgspec Structs": peers.MSGSPEC[kind],
            "orjson + dataclasses": lambda b, k=kind: peers.orjson_dataclasses(k, b),
            "json + dataclasses": lambda b, k=kind: peers.json_dataclasses(k, b),
        }
        for f in cands.values():
            f(some[0])                          # lazy imports and caches before any timing
        # results are dropped as they come: a decoder's cost, not the GC's
        t = {name: min_cpu(lambda f=f: [f(b) and None for b in some], runs) / len(some)
             for name, f in cands.items()}
        per_record[kind] = min_cpu(lambda: [ep.decode(b) and None for b in bodies], runs) / (100 * len(bodies))
        n = counts[kind] if counts else {}
        for name, v in t.items():
            goal = DECODE_GOALS.get(name)
            ratio = v / t["custlist"]
            row = [kind, name, f"{v * 1e6:.1f} µs", f"{ratio:.2f}x",
                   "" if goal is None else f">= {goal}x " + verdict(ratio >= goal, smoke)]
            if name in n:
                iratio = n[name] / n["custlist"]
                row += [f"{n[name] / 1e3:,.0f} k", f"{iratio:.2f}x",
                        "" if goal is None else f">= {goal}x " + verdict(iratio >= goal, smoke)]
            else:
                row += ["", "", ""]
            rows.append(row)
    how = ("instructions: callgrind, (20 decodes - none) / 20 in one process, PYTHONHASHSEED=0"
           if counts else "instructions: not counted (" + ("smoke run" if smoke else "valgrind not installed") + ")")
    table(f"Decode only: one 100-record page, bytes -> typed records (CPU: least of {runs} runs over "
          f"{len(some)} served pages; {how})",
          ["endpoint", "library", "CPU per page", "peer/custlist (CPU)", "target (CPU)",
           "instructions per page", "peer/custlist (instructions)", "target (instructions)"], rows)
    return per_record


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
    import peers  # the peers' packages (msgspec, orjson...): not on every interpreter
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

def switches() -> tuple:
    """Context switches so far: voluntary (a thread blocked and handed over)
    and involuntary (preempted) of the whole process, every thread summed
    (exited ones too), and voluntary of the calling (consumer) thread."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_nvcsw, r.ru_nivcsw, resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw


def least_in_process(fn, runs: int, expect: int) -> dict:
    """wall, CPU and context switches of fn(), each the least of `runs`
    (vcs_consumer: the voluntary switches of the thread that calls fn)."""
    best = {"wall": float("inf"), "cpu": float("inf"), "vcs": float("inf"), "ics": float("inf"),
            "vcs_consumer": float("inf")}
    for _ in range(runs):
        v0, i0, m0 = switches()
        c0, t0 = time.process_time(), time.perf_counter()
        n = fn()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        v1, i1, m1 = switches()
        assert n == expect, n
        for key, v in (("wall", wall), ("cpu", cpu), ("vcs", v1 - v0), ("ics", i1 - i0),
                       ("vcs_consumer", m1 - m0)):
            best[key] = min(best[key], v)
    return best


def least_fetch_only(kind: str, first: str, runs: int, pages: int) -> dict:
    """The libcurl C loop, which times its download loop itself."""
    best = {"wall": float("inf"), "cpu": float("inf"), "vcs": float("inf"), "ics": float("inf"),
            "vcs_consumer": float("inf")}
    for _ in range(runs):
        out = subprocess.run([str(WORK / "fetch_only"), "href" if kind == "pyng" else "cursor",
                              first, NEXT_KEYS[kind]], check=True, capture_output=True, text=True).stdout
        got, _bytes, wall, cpu, vcs, ics = out.split()
        assert int(got) == pages, out
        for key, v in (("wall", float(wall)), ("cpu", float(cpu)), ("vcs", int(vcs)), ("ics", int(ics)),
                       ("vcs_consumer", int(vcs))):
            best[key] = min(best[key], v)
    return best


def bench_e2e(base: str, pages: int, smoke: bool) -> dict:
    """Every client lists every endpoint; returns custlist's and the C
    loop's measures per endpoint."""
    import peers  # the peers' packages (msgspec, orjson...): not on every interpreter
    fast, slow = (1, 1) if smoke else (5, 3)
    rows, out = [], {}
    for kind in KINDS:
        first = base + E2E_PATHS[kind]
        cands = {
            "custlist": (custlist_loop(kind, base), fast),
            "custlist, prefetch=False": (custlist_loop(kind, base, prefetch=False), fast),
            "requests + json": (lambda k=kind: peers.requests_loop(k, first, HEADERS), slow),
            "httpx + json": (lambda k=kind: peers.httpx_loop(k, first, HEADERS), slow),
            "pycurl + orjson": (lambda k=kind: peers.pycurl_loop(k, first, HEADERS), fast),
        }
        res = {name: least_in_process(fn, runs, pages * 100) for name, (fn, runs) in cands.items()}
        res["libcurl C loop, download only"] = least_fetch_only(kind, first, fast, pages)
        out[kind] = res
        n = pages * 100
        bw, bc = res["custlist"]["wall"], res["custlist"]["cpu"]
        for name, m in res.items():
            goal = ""
            if name == "requests + json":
                goal = ">= 5x CPU " + verdict(m["cpu"] / bc >= 5, smoke)
            elif name == "pycurl + orjson":
                goal = ">= 2x CPU " + verdict(m["cpu"] / bc >= 2, smoke)
            rows.append([kind, name, f"{m['wall']:.3f} s", f"{m['cpu'] / n * 1e6:.2f} µs",
                         f"{m['cpu'] / bc:.2f}x", f"{m['wall'] / bw:.2f}x",
                         f"{m['vcs'] / pages:.2f}", f"{m['vcs_consumer'] / pages:.2f}",
                         f"{m['ics'] / pages:.2f}", goal])
    table(f"End to end: {pages} pages x 100 records from nginx on loopback (client CPU per record; "
          f"wall, CPU and switches each the least of {fast} runs, {slow} for requests and httpx)",
          ["endpoint", "client", "wall", "CPU/record", "CPU peer/custlist", "wall peer/custlist",
           "voluntary switches/page", "of which the consumer thread", "involuntary switches/page",
           "target"], rows)
    return out


def bench_parts(decode: dict, e2e: dict, pages: int, smoke: bool) -> None:
    """What the pipeline adds: custlist end to end against decode only (the
    same pages, in this process) plus download only (the libcurl C loop)."""
    rows = []
    n = pages * 100
    for kind in KINDS:
        dec = decode[kind]
        dl = e2e[kind]["libcurl C loop, download only"]
        cl = e2e[kind]["custlist"]
        parts = dec + dl["cpu"] / n
        ratio = cl["cpu"] / n / parts
        wall = cl["wall"] / dl["wall"]
        rows.append([kind, f"{dec * 1e6:.2f} µs", f"{dl['cpu'] / n * 1e6:.2f} µs", f"{parts * 1e6:.2f} µs",
                     f"{cl['cpu'] / n * 1e6:.2f} µs", f"{ratio:.2f}x", "<= 1.15x " + verdict(ratio <= 1.15, smoke),
                     f"{wall:.2f}x", "<= 1.2x " + verdict(wall <= 1.2, smoke)])
    table("End to end against its parts: CPU per record (each the least of its runs above; decode only "
          "over every page of the listing, in this process)",
          ["endpoint", "decode only", "download only (libcurl C loop)", "decode + download",
           "custlist end to end", "end to end / (decode + download)", "target",
           "custlist wall / download-only wall", "target"], rows)


# ---- 3. prefetch -------------------------------------------------------------

class SlowPages(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    bodies: dict = {}                # (kind, cursor) -> body
    latency = 0.02

    def log_message(self, *a):
        pass

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self):
        path, _, query = self.path.partition("?")
        cursor = query.partition("cursor=")[2].partition("&")[0] or "0"
        body = self.bodies.get((ROUTES.get(path), int(cursor)))
        time.sleep(self.latency)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def bench_prefetch(smoke: bool):
    pages, work = (5, 0.02) if smoke else (50, 0.02)
    runs = 1 if smoke else 3              # prefetch=False, which has no target, runs once
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    pages_file = WORK / "slow_pages.json"
    pages_file.write_text(json.dumps({kind: [b.decode() for b in site_bodies(kind, pages, base)]
                                      for kind in KINDS}))
    # its own process: a server thread here would wait for the consumer's GIL
    server = subprocess.Popen([sys.executable, __file__, "--serve-slow", str(port), str(pages_file)])
    try:
        if not wait_for_port(port, 10):
            raise RuntimeError("the slow server did not start")
        ideal = pages * max(work, SlowPages.latency)
        rows = []
        for kind in KINDS:
            for prefetch in (True, False):
                start = custlist_pagers(kind, base, prefetch)
                best = float("inf")
                for _ in range(runs if prefetch else 1):
                    t = time.perf_counter()
                    got = 0
                    for page in start().pages():
                        got += 1
                        end = time.perf_counter() + work       # the consumer's work on the page
                        while time.perf_counter() < end:
                            pass
                    best = min(best, time.perf_counter() - t)
                    assert got == pages, got
                goal = ("<= 1.15x ideal " + verdict(best <= 1.15 * ideal, smoke)) if prefetch else ""
                rows.append([kind, f"prefetch={prefetch}", f"{best:.3f} s", f"{best / ideal:.2f}x", goal])
    finally:
        server.terminate()
        server.wait()
    table(f"Prefetch: {pages} pages, {SlowPages.latency * 1000:.0f} ms server latency, "
          f"{work * 1000:.0f} ms consumer work (busy, holding the GIL) per page; ideal {ideal:.2f} s; "
          f"least of {runs} runs (prefetch=False: one)",
          ["endpoint", "custlist", "total", "vs max(fetch, consume)", "target"], rows)


def serve_slow(port: int, pages_file: str) -> None:
    SlowPages.bodies = {(kind, n): body.encode()
                        for kind, bodies in json.loads(pathlib.Path(pages_file).read_text()).items()
                        for n, body in enumerate(bodies)}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), SlowPages)
    server.daemon_threads = True
    server.serve_forever()


# ---- 4. memory ---------------------------------------------------------------

# Peak RSS is VmHWM, the high-water mark of this process's own memory map:
# ru_maxrss would also count the parent's resident size, which a spawned
# child starts from (so a child smaller than this benchmark's process,
# which holds every page body, would show no growth whatever it did).
MEM_CHILD = """
import sys
sys.path[:0] = sys.argv[1:3]
import bench

def peak_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

kind, base, repeat = sys.argv[3], sys.argv[4], int(sys.argv[5])
run = bench.custlist_loop(kind, base)
start = peak_kib()
run()                                   # warm: buffers, caches
before = peak_kib()
n = sum(run() for _ in range(repeat))
after = peak_kib()
print(n, start, before, after)
"""


def bench_memory(base: str, pages: int, smoke: bool):
    repeat = 1 if smoke else max(1, 1_000_000 // (pages * 100))
    here = pathlib.Path(__file__).resolve()
    rows = []
    for kind in KINDS:
        out = subprocess.run([sys.executable, "-c", MEM_CHILD, str(here.parent), str(here.parents[1]),
                              kind, base, str(repeat)], check=True, capture_output=True, text=True).stdout.split()
        n, start, before, after = (int(v) for v in out)
        growth = (after - before) / 1024
        rows.append([kind, f"{n:,}", f"{start / 1024:.1f} MiB", f"{before / 1024:.1f} MiB",
                     f"{after / 1024:.1f} MiB", f"{growth:.1f} MiB", "<= 64 MiB " + verdict(growth <= 64, smoke)])
    table(f"Memory: streaming {repeat * pages * 100:,} records per endpoint, one process each "
          f"(peak RSS, VmHWM; growth over the peak after one warm-up listing of {pages * 100:,})",
          ["endpoint", "records", "peak before listing", "peak after warm-up", "peak after all",
           "growth", "target"], rows)


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
    sites = {kind: write_site(kind, pages, base) for kind in KINDS}
    started = time.time()
    print("# custlist benchmark" + (" (smoke run: sizes are tiny, timings mean nothing)" if smoke else ""))
    print(f"\n{machine_line()}\n\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"load average at the start {load()} (1, 5, 15 min) on {os.cpu_count()} cores.  "
          "Times are the least of several runs: other work on the machine only adds to them.")
    decode = bench_decode(sites, smoke)
    bench_record_memory(smoke)
    with Nginx(port):
        e2e = bench_e2e(base, pages, smoke)
        bench_parts(decode, e2e, pages, smoke)
        bench_memory(base, pages, smoke)
    bench_prefetch(smoke)
    fanout.run(smoke)
    print(f"\nload average at the end {load()}; this part of the run took {time.time() - started:.0f} s "
          f"({time.strftime('%H:%M UTC', time.gmtime())})")


if __name__ == "__main__":
    main()
