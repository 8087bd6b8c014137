"""Fan-out: many accounts' listings at once, custlist against its peers.

    python bench/fanout.py [--smoke]     (bench/bench.py runs it too)

On each of the four endpoints (Pyng sites, Natural customers and
invitations of many instances, Commenda corporations): 200 accounts x 5
pages of 50 records, each page in its endpoint's own shape and paging
(bench.render: Pyng's nextHref, Natural's cursors, Commenda's cursor),
every request answered after 20 ms by a lean asyncio server in its own
process (pre-rendered bodies; its CPU is measured and shown, so that it is
seen not to be the bottleneck).  Each client runs in its own process;
wall time and CPU are its own, over the listing alone (imports, start-up
and the clients' construction excluded).  Then the same with the server
limiting each token to RATE requests a second (429 + Retry-After,
X-RateLimit-* headers), counting the 429s each client drew.  Every client
runs on every endpoint, custlist through its fan-out API for that vendor
(customers_many for Pyng and Commenda; custlist.fan_out over one Natural
client per instance, sharing one token and one rate limiter).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import pathlib
import random
import socket
import subprocess
import sys
import threading
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

LATENCY = 0.020
RECORDS = 50
RATE = 400                         # requests per second per token, when limited


# ---- the server ----------------------------------------------------------------

def account_ids(kind: str, accounts: int) -> list:
    prefix = {"pyng": "site", "commenda": "corp"}.get(kind, "inst")
    return [f"{prefix}_{a}" for a in range(accounts)]


def page_bodies(port: int, accounts: int, pages: int) -> dict:
    """(kind, page) -> body, and for Pyng (kind, site, page) -> body: its
    nextHref names the site.  bench.py's records and rendering, RECORDS a page."""
    import bench
    base = f"http://127.0.0.1:{port}"
    bodies = {}
    for kind in bench.KINDS:
        items = bench.page_items(kind, random.Random(3), RECORDS)
        for p in range(pages):
            body = bench.render(kind, items, p + 1 if p + 1 < pages else None, base,
                                total=pages * RECORDS)
            if kind != "pyng":
                bodies[(kind, str(p))] = body
                continue
            for site in account_ids(kind, accounts):
                bodies[(kind, site, str(p))] = body.replace(
                    b"/site_1/customers?limit=100&", b"/%s/customers?limit=%d&" % (site.encode(), RECORDS))
    return bodies


def route(path: str) -> tuple:
    """The endpoint of a request path, and for Pyng its site."""
    if path.startswith("/pyng/"):
        return "pyng", path.split("/")[4]
    if path == "/natural/customers/invitations":
        return "invitations", None
    return ("natural" if path == "/natural/customers" else "commenda"), None


def serve(port: int, sites: int, pages: int, latency: float, rate: int) -> None:
    bodies = page_bodies(port, sites, pages)
    windows: dict = {}
    throttled: dict = {}

    def answer(writer, status, body, extra=b""):
        writer.write(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                     % (status, len(body)) + extra + b"\r\n" + body)

    async def handle(reader, writer):
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                token = b""
                while True:
                    h = await reader.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    if h[:14].lower() == b"authorization:":
                        token = h[14:].strip()
                target = line.split(b" ")[1].decode()
                if target.startswith("/stats"):
                    answer(writer, 200, json.dumps({k.decode(): v for k, v in throttled.items()}).encode())
                    await writer.drain()
                    continue
                path, _, query = target.partition("?")
                kind, site = route(path)
                page = dict(kv.split("=") for kv in query.split("&") if kv).get("cursor", "0")
                key = (kind, page) if site is None else (kind, site, page)
                extra = b""
                if rate:
                    now = time.monotonic()
                    start, count = windows.get(token, (now, 0))
                    if now - start >= 1.0:
                        start, count = now, 0
                    windows[token] = (start, count + 1)
                    reset = max(1, math.ceil(start + 1.0 - now))
                    extra = (b"X-RateLimit-Limit: %d\r\nX-RateLimit-Remaining: %d\r\n"
                             b"X-RateLimit-Reset: %d\r\n" % (rate, max(rate - count - 1, 0), reset))
                    if count + 1 > rate:
                        throttled[token] = throttled.get(token, 0) + 1
                        answer(writer, 429, b'{"errors":[]}', extra + b"Retry-After: %d\r\n" % reset)
                        await writer.drain()
                        continue
                await asyncio.sleep(latency)
                answer(writer, 200, bodies[key], extra)
                await writer.drain()
        except (ConnectionError, IndexError, KeyError):
            pass
        finally:
            writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# ---- the clients (one per process) ----------------------------------------------

def first_url(kind: str, base: str, account: str) -> str:
    """bench.py's first request of `kind`, for this account, RECORDS a page."""
    import bench
    path = bench.E2E_PATHS[kind].replace("limit=100", f"limit={RECORDS}")
    return base + path.replace("site_1", account).replace("corp_1", account)


def custlist_listings(kind: str, base: str, token: str, ids: list) -> tuple:
    """(start, many): start(account) is a pager of one account's listing;
    many(accounts, conc) lists them all at once the way custlist's API is
    meant to be used for `kind`."""
    import custlist
    retries = {"retry_after_max": 10, "max_retries": 20}
    if kind == "pyng":
        c = custlist.Pyng(token=token, base_url=base + "/pyng", **retries)
        return (lambda s: c.customers(s, limit=RECORDS),
                lambda ids, conc: c.customers_many(ids, limit=RECORDS, concurrency=conc))
    if kind == "commenda":
        m = custlist.Commenda(token, base_url=base + "/commenda", **retries)
        return (lambda s: m.customers(s, limit=RECORDS),
                lambda ids, conc: m.customers_many(ids, limit=RECORDS, concurrency=conc))
    # Natural: a client per instance (account), one token and one limiter shared by all
    limiter = custlist.RateLimiter(0, 1.0, 10)
    clients = {i: custlist.Natural(token, instance_id=i, base_url=base + "/natural",
                                   rate_limit=limiter, **retries) for i in ids}

    def start(i):
        n = clients[i]
        return n.customers(limit=RECORDS) if kind == "natural" else n.customer_invitations(limit=RECORDS)
    return start, lambda ids, conc: custlist.fan_out({i: start(i) for i in ids}, conc)


def run_client(kind: str, name: str, base: str, sites: int, conc: int, token: str) -> dict:
    import peers
    from custlist import pyng
    ids = account_ids(kind, sites)
    build = peers.BUILDERS[kind]

    def headers(account):
        h = {"Authorization": "Bearer " + token, "Pyng-Api-Version": pyng.API_VERSION,
             "Accept": "application/json"}
        if kind in ("natural", "invitations"):
            h["X-Instance-ID"] = account
        return h
    if name.startswith("custlist"):
        start, many = custlist_listings(kind, base, token, ids)   # clients made outside the timing
    first_url(kind, base, ids[0])                      # bench imported outside the timing
    t0, c0 = time.perf_counter(), time.process_time()
    n = 0
    if name == "custlist fan-out":
        for _ in many(ids, conc):
            n += 1
    elif name == "custlist pagers, ThreadPoolExecutor":
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(conc) as pool:
            n = sum(pool.map(lambda s: sum(1 for _ in start(s)), ids))
    elif name == "requests, ThreadPoolExecutor":
        import requests
        from concurrent.futures import ThreadPoolExecutor
        local = threading.local()

        def one(s):
            if not hasattr(local, "session"):
                local.session = requests.Session()
            got, first, h = 0, first_url(kind, base, s), headers(s)
            url = first
            while url:
                r = local.session.get(url, headers=h)
                if r.status_code == 429:            # what a polite requests user writes
                    time.sleep(float(r.headers.get("Retry-After", "1")))
                    continue
                items, nxt = build(r.json())
                url = peers.next_url(kind, first, nxt)
                got += len(items)
            return got
        with ThreadPoolExecutor(conc) as pool:
            n = sum(pool.map(one, ids))
    elif name == "httpx.AsyncClient, asyncio":
        import httpx

        async def main():
            limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
            gate = asyncio.Semaphore(conc)          # conc requests at a time, as httpx's docs do
            async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(60.0, pool=None)) as c:
                async def one(s):
                    got, first, h = 0, first_url(kind, base, s), headers(s)
                    url = first
                    while url:
                        async with gate:
                            r = await c.get(url, headers=h)
                        if r.status_code == 429:
                            await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
                            continue
                        items, nxt = build(r.json())
                        url = peers.next_url(kind, first, nxt)
                        got += len(items)
                    return got
                return sum(await asyncio.gather(*(one(s) for s in ids)))
        n = asyncio.run(main())
    else:
        raise SystemExit(f"unknown client {name}")
    return {"records": n, "wall": time.perf_counter() - t0, "cpu": time.process_time() - c0}


# ---- the run -----------------------------------------------------------------------

def proc_cpu(pid: int) -> float:
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, sites, pages, latency, rate):
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, __file__, "serve", str(self.port), str(sites),
                                      str(pages), str(latency), str(rate)])
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        self.base = f"http://127.0.0.1:{self.port}"

    def throttled(self, token: str) -> int:
        import urllib.request
        with urllib.request.urlopen(self.base + "/stats") as r:
            return json.load(r).get("Bearer " + token, 0)

    def close(self):
        self.proc.terminate()
        self.proc.wait()


CLIENTS = [("custlist fan-out", 8), ("custlist fan-out", 32),
           ("custlist pagers, ThreadPoolExecutor", 32), ("httpx.AsyncClient, asyncio", 32),
           ("requests, ThreadPoolExecutor", 32)]


def measure(server, kind, name, conc, sites, pages, token):
    before = proc_cpu(server.proc.pid)
    out = subprocess.run([sys.executable, __file__, "client", kind, name, server.base, str(sites),
                          str(conc), token], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"{kind} {name}: {out.stderr[-2000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["server_cpu"] = proc_cpu(server.proc.pid) - before
    assert res["records"] == sites * pages * RECORDS, (kind, name, res)
    return res


def run(smoke: bool = False) -> None:
    import bench
    sites, pages, latency = (4, 2, 0.005) if smoke else (200, 5, LATENCY)
    requests_n = sites * pages
    rows = []
    server = Server(sites, pages, latency, 0)
    try:
        for kind in bench.KINDS:
            res = [(name, conc, measure(server, kind, name, conc, sites, pages,
                                        f"{kind}-{name}-{conc}".replace(" ", "_").replace(",", "")))
                   for name, conc in CLIENTS]
            per = {(name, conc): r["cpu"] / r["records"] for name, conc, r in res}
            ref = per[("custlist fan-out", 32)]
            for name, conc, r in res:
                ideal = requests_n * latency / conc
                goal = ""
                if name == "custlist fan-out":
                    goal = "wall <= 1.2x ideal " + bench.verdict(r["wall"] / ideal <= 1.2, smoke)
                elif name.startswith(("httpx", "requests")):
                    goal = ">= 3x CPU " + bench.verdict(per[(name, conc)] / ref >= 3, smoke)
                rows.append([kind, name, conc, f"{r['wall']:.3f} s", f"{ideal:.3f} s",
                             f"{r['wall'] / ideal:.2f}x", f"{per[(name, conc)] * 1e6:.2f} µs",
                             f"{per[(name, conc)] / ref:.2f}x",
                             f"{r['server_cpu'] / r['wall'] * 100:.0f}%", goal])
    finally:
        server.close()
    bench.table(f"Fan-out: {sites} accounts x {pages} pages of {RECORDS} records per endpoint, "
                f"{latency * 1000:.0f} ms server latency per request (one client process each)",
                ["endpoint", "client", "concurrency", "wall", "ideal (requests x latency / concurrency)",
                 "wall/ideal", "client CPU/record", "CPU/record vs fan-out 32", "server CPU busy",
                 "target"], rows)
    rate = 20 if smoke else RATE
    limited = []
    server = Server(sites, pages, latency, rate)
    try:
        for kind in bench.KINDS:
            for name, conc in CLIENTS[1:]:
                token = f"{kind}-{name}-{conc}-limited".replace(" ", "_").replace(",", "")
                r = measure(server, kind, name, conc, sites, pages, token)   # a token (window) each
                limited.append([kind, name, conc, f"{r['wall']:.3f} s", server.throttled(token)])
    finally:
        server.close()
    windows = math.ceil(requests_n / rate)
    bench.table(f"The same with the server limiting each token to {rate} requests a second "
                f"(fixed 1 s windows; 429 + Retry-After, X-RateLimit-* headers): {requests_n} requests "
                f"per endpoint need {windows} windows, just over {windows - 1} s",
                ["endpoint", "client", "concurrency", "wall", "429s received"], limited)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]),
              int(sys.argv[6]))
    elif len(sys.argv) > 1 and sys.argv[1] == "client":
        print(json.dumps(run_client(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]),
                                    int(sys.argv[6]), sys.argv[7])))
    else:
        ap = argparse.ArgumentParser()
        ap.add_argument("--smoke", action="store_true")
        run(ap.parse_args().smoke)
