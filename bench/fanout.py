"""Fan-out: many accounts' listings at once, custlist against its peers.

    python bench/fanout.py [--smoke]     (bench/bench.py runs it too)

200 Pyng sites x 5 pages of 50 records, every request answered after 20 ms
by a lean asyncio server in its own process (pre-rendered bodies; its CPU
is measured and shown, so that it is seen not to be the bottleneck).  Each
client runs in its own process; wall time and CPU are its own, over the
listing alone (imports and start-up excluded).  Then the same with the
server limiting each token to RATE requests a second (429 + Retry-After,
X-RateLimit-* headers), counting the 429s each client drew.
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

def serve(port: int, sites: int, pages: int, latency: float, rate: int) -> None:
    from custlist.testing import data as gen
    items = json.dumps(gen.pyng_customers(random.Random(3), RECORDS),
                       separators=(",", ":")).encode()
    base = f"http://127.0.0.1:{port}/pyng/billing/sites/"
    bodies = {}
    for s in range(sites):
        for p in range(pages):
            nxt = (f',"nextHref":"{base}site_{s}/customers?limit={RECORDS}&cursor={p + 1}"'
                   if p + 1 < pages else "")
            bodies[(f"site_{s}", str(p))] = (b'{"data":{"items":' + items + b',"totalItems":'
                                             + str(pages * RECORDS).encode() + nxt.encode()
                                             + b'},"traceId":"t"}')
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
                site = path.split("/")[4]
                page = dict(kv.split("=") for kv in query.split("&") if kv).get("cursor", "0")
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
                answer(writer, 200, bodies[(site, page)], extra)
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

HEADERS_PEER = {"Pyng-Api-Version": "urn:pyng:api:billing:version:v1", "Accept": "application/json"}


def first_url(base: str, site: int) -> str:
    return f"{base}/pyng/billing/sites/site_{site}/customers?limit={RECORDS}"


def run_client(name: str, base: str, sites: int, conc: int, token: str) -> dict:
    import peers
    import custlist
    ids = [f"site_{s}" for s in range(sites)]
    auth = {"Authorization": "Bearer " + token, **HEADERS_PEER}
    if name.startswith("custlist"):
        client = custlist.Pyng(token=token, base_url=base + "/pyng", retry_after_max=10,
                               max_retries=20)
    t0, c0 = time.perf_counter(), time.process_time()
    n = 0
    if name == "custlist fan-out":
        for _ in client.customers_many(ids, limit=RECORDS, concurrency=conc):
            n += 1
    elif name == "custlist pagers, ThreadPoolExecutor":
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(conc) as pool:
            n = sum(pool.map(lambda s: len(list(client.customers(s, limit=RECORDS))), ids))
    elif name == "requests, ThreadPoolExecutor":
        import requests
        from concurrent.futures import ThreadPoolExecutor
        local = threading.local()

        def one(s):
            if not hasattr(local, "session"):
                local.session = requests.Session()
            got, url = 0, first_url(base, s)
            while url:
                r = local.session.get(url, headers=auth)
                if r.status_code == 429:            # what a polite requests user writes
                    time.sleep(float(r.headers.get("Retry-After", "1")))
                    continue
                items, url = peers.build_pyng(r.json())
                got += len(items)
            return got
        with ThreadPoolExecutor(conc) as pool:
            n = sum(pool.map(one, range(sites)))
    elif name == "httpx.AsyncClient, asyncio":
        import httpx

        async def main():
            limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
            gate = asyncio.Semaphore(conc)          # conc requests at a time, as httpx's docs do
            async with httpx.AsyncClient(headers=auth, limits=limits,
                                         timeout=httpx.Timeout(60.0, pool=None)) as c:
                async def one(s):
                    got, url = 0, first_url(base, s)
                    while url:
                        async with gate:
                            r = await c.get(url)
                        if r.status_code == 429:
                            await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
                            continue
                        items, url = peers.build_pyng(r.json())
                        got += len(items)
                    return got
                return sum(await asyncio.gather(*(one(s) for s in range(sites))))
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


def measure(server, name, conc, sites, pages, token):
    before = proc_cpu(server.proc.pid)
    out = subprocess.run([sys.executable, __file__, "client", name, server.base, str(sites),
                          str(conc), token], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"{name}: {out.stderr[-2000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["server_cpu"] = proc_cpu(server.proc.pid) - before
    assert res["records"] == sites * pages * RECORDS, (name, res)
    return res


def run(smoke: bool = False) -> None:
    sites, pages, latency = (4, 2, 0.005) if smoke else (200, 5, LATENCY)
    requests_n = sites * pages
    table = []
    server = Server(sites, pages, latency, 0)
    try:
        for name, conc in CLIENTS:
            r = measure(server, name, conc, sites, pages, f"{name}-{conc}".replace(" ", "_"))
            ideal = requests_n * latency / conc
            table.append([name, conc, f"{r['wall']:.3f} s", f"{ideal:.3f} s",
                          f"{r['wall'] / ideal:.2f}x", f"{r['cpu'] / r['records'] * 1e6:.2f} µs",
                          f"{r['server_cpu'] / r['wall'] * 100:.0f}%"])
    finally:
        server.close()
    custlist_cpu = float(table[1][5].split()[0])
    print(f"\n### Fan-out: {sites} sites x {pages} pages of {RECORDS} records, {latency * 1000:.0f} ms "
          "server latency per request (one client process each)\n")
    print("| client | concurrency | wall | ideal (requests x latency / concurrency) | wall/ideal "
          "| client CPU/record | CPU/record vs fan-out 32 | server CPU busy |")
    print("|---|---|---|---|---|---|---|---|")
    for row in table:
        ratio = float(row[5].split()[0]) / custlist_cpu
        print("| " + " | ".join(map(str, row[:6])) + f" | {ratio:.2f}x | {row[6]} |")
    rate = 20 if smoke else RATE
    limited = []
    server = Server(sites, pages, latency, rate)
    try:
        for name, conc in CLIENTS[1:]:
            token = f"{name}-{conc}-limited".replace(" ", "_")
            r = measure(server, name, conc, sites, pages, token)
            limited.append([name, conc, f"{r['wall']:.3f} s", server.throttled(token)])
            time.sleep(1.1)                        # a fresh window for the next one
    finally:
        server.close()
    windows = math.ceil(requests_n / rate)
    print(f"\n### The same with the server limiting each token to {rate} requests a second "
          f"(fixed 1 s windows; 429 + Retry-After, X-RateLimit-* headers): {requests_n} requests "
          f"need {windows} windows, just over {windows - 1} s\n")
    print("| client | concurrency | wall | 429s received |")
    print("|---|---|---|---|")
    for row in limited:
        print("| " + " | ".join(map(str, row)) + " |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]),
              int(sys.argv[6]))
    elif len(sys.argv) > 1 and sys.argv[1] == "client":
        print(json.dumps(run_client(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]),
                                    sys.argv[6])))
    else:
        ap = argparse.ArgumentParser()
        ap.add_argument("--smoke", action="store_true")
        run(ap.parse_args().smoke)
