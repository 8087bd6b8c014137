"""Parallel pages within one listing, custlist against requests + a thread pool.

    python bench/parallel.py [--runs R]

An offset-paged listing of 200 pages x 50 records (the sandbox's demo
records), every request answered after 20 ms.  custlist lists it with
``client.paginate(OFFSET, ..., concurrency=N)``; requests does the same by
hand: the first page for the total, then the other offsets on a
ThreadPoolExecutor of N threads (one Session per thread), pages decoded
with json and their records handed out in order.  Both read the first page
alone (the total comes with it), so the best they can do is 20 ms + 199 x
20 ms / N; the ideal shown is 200 x 20 ms / N, which custlist aims at only
when the caller gives ``total=`` (then every page is requested from the
start: the third row).  Wall time is the least of the runs, shown with
that run's CPU in the client and in the server's process.  Two servers,
each in its own process: the bundled sandbox (custlist.testing, a threaded
Python server rendering every answer) and a lean asyncio server answering
pre-rendered bodies of the same records after the same 20 ms, so that the
server's own cost is seen apart.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

PAGES, SIZE, LATENCY = 200, 50, 0.020

SERVER = textwrap.dedent("""
    import sys
    from custlist.testing import Sandbox
    with Sandbox(demo_customers=%d, latency={"demo.offset": %r}) as sb:
        print(sb.demo_url, sb.demo_token, flush=True)
        sys.stdin.read()
""") % (PAGES * SIZE, LATENCY)


LEAN = textwrap.dedent("""
    import asyncio, json, os, sys
    from custlist.testing import Sandbox
    rows = Sandbox(demo_customers=%d, seed=0).data.demo
    bodies = {str(o): json.dumps({"items": rows[o:o + %d], "total": len(rows)}).encode()
              for o in range(0, len(rows), %d)}

    async def handle(reader, writer):
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                while (await reader.readline()) not in (b"\\r\\n", b"\\n", b""):
                    pass
                query = line.split(b" ")[1].decode().partition("?")[2]
                offset = dict(kv.split("=") for kv in query.split("&") if kv).get("offset", "0")
                await asyncio.sleep(%r)
                body = bodies[offset]
                writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\n"
                             b"Content-Length: %%d\\r\\n\\r\\n" %% len(body) + body)
                await writer.drain()
        except (ConnectionError, KeyError, ValueError):
            pass
        finally:
            writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        port = server.sockets[0].getsockname()[1]
        print(f"http://127.0.0.1:{port}/demo", "any", flush=True)
        async with server:
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        os._exit(0)                     # idle keep-alive connections: no goodbyes

    asyncio.run(main())
""") % (PAGES * SIZE, SIZE, SIZE, LATENCY)


def with_custlist(url: str, token: str, n: int, total: int | None = None) -> list:
    import custlist
    from custlist.testing.demo import OFFSET
    client = custlist.Client(base_url=url, auth=custlist.BearerToken(token))
    return [c.id for c in client.paginate(OFFSET, OFFSET.path, {"limit": SIZE}, concurrency=n,
                                          total=total)]


def with_custlist_total(url: str, token: str, n: int) -> list:
    return with_custlist(url, token, n, PAGES * SIZE)


def with_requests(url: str, token: str, n: int) -> list:
    import requests
    local = threading.local()
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    def page(offset: int) -> list:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        r = session.get(f"{url}/offset/customers", params={"offset": offset, "limit": SIZE},
                        headers=headers, timeout=60)
        r.raise_for_status()
        doc = json.loads(r.content)
        page.total = doc["total"]
        return doc["items"]

    first = page(0)
    out = [c["id"] for c in first]
    with ThreadPoolExecutor(n) as pool:
        for items in pool.map(page, range(SIZE, page.total, SIZE)):
            out.extend(c["id"] for c in items)
    return out


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system) process `pid` has used."""
    import os
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(label: str, code: str, runs: int) -> list:
    """Every client at concurrency 8 and 32 against the server `code` runs."""
    server = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    rows = []
    try:
        assert server.stdout is not None
        url, token = server.stdout.readline().split()
        want = with_custlist(url, token, 1)
        assert len(want) == PAGES * SIZE
        for n in (8, 32):
            ideal = PAGES * LATENCY / n
            for name, run in (("custlist", with_custlist), ("requests + threads", with_requests),
                              ("custlist, total= given", with_custlist_total)):
                best = (float("inf"), 0.0, 0.0)
                for _ in range(runs):
                    s0, c0, t0 = cpu_of(server.pid), time.process_time(), time.perf_counter()
                    got = run(url, token, n)
                    wall = time.perf_counter() - t0
                    took = (wall, time.process_time() - c0, cpu_of(server.pid) - s0)
                    best = min(best, took)
                    assert got == want, name
                rows.append((label, n, name, *best, ideal))
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(10)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    rows = []
    for label, code in (("sandbox", SERVER), ("lean asyncio server", LEAN)):
        rows += measure(label, code, args.runs)
    print(f"### Parallel pages: one offset listing of {PAGES} pages x {SIZE} records, "
          f"{LATENCY * 1000:.0f} ms server latency (least of {args.runs} runs)\n")
    print("| server | concurrency | client | wall | ideal (pages x latency / N) | ratio to ideal "
          "| client CPU | server CPU |")
    print("|---|---|---|---|---|---|---|---|")
    for label, n, name, wall, cpu, server_cpu, ideal in rows:
        print(f"| {label} | {n} | {name} | {wall:.3f} s | {ideal:.3f} s | {wall / ideal:.2f}x "
              f"| {cpu:.3f} s | {server_cpu:.2f} s |")


if __name__ == "__main__":
    main()
