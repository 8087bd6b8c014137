"""Threads on free-threaded CPython: two threads, each listing and decoding
its own listing, against one thread doing one, in records per second.

    python bench/threads.py [--kind natural] [--pages 300] [--runs 5] [--smoke]

Each listing is `pages` pages x 100 records served by nginx on loopback
(bench/bench.py's site and server), listed with the endpoint's client
(prefetch on: its fetch thread downloads the next page while the consumer
decodes).  Also the same in memory (decode only, the pages already read),
which shows what the consumer threads alone scale to, and a control (a
pure-Python loop: what the machine's cores give two threads at that
moment; other work on the machine shows there first).  A row's time is the
least of `runs` runs; records per second count every record of every
thread.  On a GIL build the two threads take turns on the GIL; on a
free-threaded build (3.13t, 3.14t) they run at once, and the target is at
least 1.7x one thread on this machine's 2 cores."""
from __future__ import annotations

import argparse
import os
import pathlib
import sys
import sysconfig
import threading
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

import bench  # noqa: E402


def timed(fns) -> float:
    """Wall time of running every fn in its own thread at once (one fn: in
    this thread)."""
    if len(fns) == 1:
        t = time.perf_counter()
        fns[0]()
        return time.perf_counter() - t
    start = threading.Barrier(len(fns) + 1)

    def run(fn):
        start.wait()
        fn()

    threads = [threading.Thread(target=run, args=(fn,)) for fn in fns]
    for th in threads:
        th.start()
    start.wait()
    t = time.perf_counter()
    for th in threads:
        th.join()
    return time.perf_counter() - t


def least(fns, runs: int) -> float:
    return min(timed(fns) for _ in range(runs))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kind", default="natural", choices=bench.KINDS)
    ap.add_argument("--pages", type=int, default=300)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()
    if args.smoke:
        args.pages, args.runs = 5, 1
    kind, pages = args.kind, args.pages
    bench.WORK.mkdir(exist_ok=True)
    port = bench.free_port()
    base = f"http://127.0.0.1:{port}"
    bodies = bench.write_site(kind, pages, base)
    records = pages * 100
    ep = bench.endpoint(kind)

    def decode_all():
        n = 0
        for body in bodies:
            n += len(ep.decode(body).items)
        assert n == records, n

    gil = getattr(sys, "_is_gil_enabled", lambda: True)
    rows = []
    # The control: a pure-Python loop with nothing shared, the same number
    # of iterations per "record" budget: what two threads can gain on this
    # machine at this moment (other work on the cores shows here first).
    def spin():
        n = 0
        for i in range(records * 20):
            n += i

    one = least([spin], args.runs)
    two = least([spin, spin], args.runs)
    rows.append(("control: a pure-Python loop, nothing shared", one, two))
    decode_all()                                   # warm up
    one = least([decode_all], args.runs)
    two = least([decode_all, decode_all], args.runs)
    rows.append(("decode only (pages in memory)", one, two))
    with bench.Nginx(port):
        loops = [bench.custlist_loop(kind, base) for _ in range(2)]

        def listing(loop):
            def run():
                n = loop()
                assert n == records, n
            return run

        listing(loops[0])()                        # warm up: connections, caches
        one = least([listing(loops[0])], args.runs)
        two = least([listing(loops[0]), listing(loops[1])], args.runs)
        rows.append(("list + decode (nginx on loopback)", one, two))

    ft = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    print(f"CPython {sys.version.split()[0]}{'t (free-threaded)' if ft else ''}, "
          f"GIL {'on' if gil() else 'off'}; {kind}, {pages} pages x 100 records per listing; "
          f"least of {args.runs} runs; {os.cpu_count()} cores, load average {bench.load()}")
    print()
    print("| what | 1 thread | 2 threads | 2 threads / 1 thread |")
    print("|---|---|---|---|")
    for what, t1, t2 in rows:
        r1, r2 = records / t1, 2 * records / t2
        if what.startswith("control"):       # the same work per thread: wall times
            print(f"| {what} | {t1:.3f} s | {t2:.3f} s for twice the work | {r2 / r1:.2f}x |")
        else:
            print(f"| {what} | {r1:,.0f} records/s | {r2:,.0f} records/s | {r2 / r1:.2f}x |")


if __name__ == "__main__":
    main()
