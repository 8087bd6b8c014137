"""Arrow output without the GIL: what other threads and other cores get
while custlist converts pages to Arrow.

    python bench/arrow_gil.py [--smoke] [--runs 3] [--records N] [--accounts 200]

On each of the four endpoints (Pyng, Natural customers, Natural
invitations, Commenda), pages of 100 records served by nginx on loopback
(bench/arrow_bench.py's data):

- beside: a pure-Python thread counting, alone for a second, then while the
  main thread runs to_arrow() of N records; its speed beside ÷ alone
  (target >= 0.80).
- overlap: to_arrow() wall against max(download only, conversion only),
  where download only is the libcurl C loop (bench/fetch_only.c) over the
  same pages, and conversion only is the CPU time of the thread that reads
  the stream (envelope, items to Arrow, batches), which the fetch thread's
  download runs beside (target <= 1.2x).
- overlap against a slow server: the same with a server that waits 10 ms
  before each page of 5,000 records (bench/chain.py's server), so that
  waiting, not CPU, sets the download's time: there the overlap shows
  whatever the cores free (target <= 1.2x).
- fan-out: fan_out() of ACCOUNTS listings of 3 pages each, to_arrow() with
  its reading threads (one per listing, `concurrency` 8 at a time), against
  the same fan-out read by one thread (the pool held to one worker); its
  CPU time ÷ wall (target > 1.6) and the speed-up (target >= 1.6x).  Beside
  them: the cores nginx's worker used meanwhile (the scheduler's count,
  /proc/PID/sched), the cores left idle, and the largest speed-up the
  machine allows: the one-thread wall over the reading threads' run's work
  (custlist's CPU + nginx's) spread perfectly over every core.  The same
  again for 50 accounts of 3,000 records (30 pages) each, where a
  listing's own latency weighs less against its work.

Each measure runs in a fresh process, RUNS times; the tables give the
median and the range.  Timings on a shared machine move with its load: the
load averages before and after are printed, and the cores free for this
run: two processes each spinning for 0.3 s of CPU, their CPU over the wall
of both (2.0 on two idle cores, 1.0 when other work leaves one).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import shutil
import statistics
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

WORK = HERE / ".work" / "arrow_gil"
KINDS = ("pyng", "natural", "invitations", "commenda")
FIRST = {"pyng": "/pyng/billing/sites/site_1/customers?limit=100",
         "natural": "/natural/customers?limit=100",
         "invitations": "/natural/customers/invitations?limit=100",
         "commenda": "/commenda/customers?corporation_id=corp_1&limit=100"}


# ---- the measures (each in its own process) --------------------------------

def spin_rate(seconds: float, during=None) -> tuple:
    """Steps a second of a counting thread, alone (during=None) or while
    during() runs on this thread; (rate, during's result, its wall)."""
    import threading
    count, stop = [0], []

    def spin():
        n = 0
        while not stop:
            n += 1
            if n % 4096 == 0:
                count[0] = n
        count[0] = n

    t = threading.Thread(target=spin)
    t.start()
    time.sleep(0.05)
    c0, t0 = count[0], time.perf_counter()
    result = during() if during is not None else time.sleep(seconds)
    c1, wall = count[0], time.perf_counter() - t0
    stop.append(1)
    t.join()
    return (c1 - c0) / wall, result, wall


def child_beside(kind: str, base: str) -> dict:
    import arrow_bench
    import pyarrow  # noqa: F401
    solo, _, _ = spin_rate(1.0)
    beside, rows, wall = spin_rate(0, lambda: arrow_bench.pager(kind, base).to_arrow().num_rows)
    return {"solo": solo, "beside": beside, "rows": rows, "wall": wall}


def child_overlap(kind: str, base: str) -> dict:
    import arrow_bench
    import pyarrow  # noqa: F401
    pager = arrow_bench.pager(kind, base)
    t0, c0 = time.perf_counter(), time.thread_time()
    rows = pager.to_arrow().num_rows
    return {"wall": time.perf_counter() - t0, "convert": time.thread_time() - c0, "rows": rows}


def child_overlap_slow(kind: str, base: str) -> dict:
    import custlist
    import pyarrow  # noqa: F401
    if kind == "pyng":
        pager = custlist.Pyng(token="t", base_url=base + "/pyng").customers(site_id="site_1",
                                                                            limit=100)
    else:
        pager = custlist.Natural("t", base_url=base + "/natural").customers(limit=100)
    t0, c0 = time.perf_counter(), time.thread_time()
    rows = pager.to_arrow().num_rows
    return {"wall": time.perf_counter() - t0, "convert": time.thread_time() - c0, "rows": rows}


def cores_free() -> float:
    """CPU over wall of two processes spinning at once (see the docstring)."""
    code = ("import time\nc = time.process_time()\n"
            "while time.process_time() - c < 0.3: pass\n")
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(2)]
    for p in procs:
        p.wait()
    return 0.6 / (time.perf_counter() - t0 - 0.03)     # less the start-up, about 30 ms


def slow_overlap(runs: int, smoke: bool) -> list:
    """to_arrow() against a server that waits before each page."""
    import random

    import bench
    per, pages, latency = (500, 4, 0.01) if smoke else (5000, 40, 0.01)
    rows = []
    for kind in ("pyng", "natural"):
        port = bench.free_port()
        base = f"http://127.0.0.1:{port}"
        items = bench.page_items(kind, random.Random(1), per)
        bodies = [bench.render(kind, items, n + 1 if n + 1 < pages else None, base,
                               total=pages * per).decode() for n in range(pages)]
        pf = WORK / "slow_pages.json"
        pf.write_text(json.dumps({kind: bodies}))
        server = subprocess.Popen([sys.executable, str(HERE / "chain.py"), "--serve", str(port),
                                   str(pf), str(latency)])
        try:
            if not bench.wait_for_port(port, 10):
                raise RuntimeError("the slow server did not start")
            first = FIRST[kind]
            d = []
            for _ in range(runs):
                out = subprocess.run([str(WORK / "fetch_only"), "href" if kind == "pyng"
                                      else "cursor", base + first, bench.NEXT_KEYS[kind]],
                                     check=True, capture_output=True, text=True).stdout
                got, _bytes, wall, _cpu, _vcs, _ics = out.split()
                assert int(got) == pages, out
                d.append(float(wall))
            o = [child("overlap_slow", kind, base) for _ in range(runs)]
        finally:
            server.terminate()
            server.wait()
        assert all(r["rows"] == per * pages for r in o), o
        dl, cv = statistics.median(d), statistics.median(r["convert"] for r in o)
        walls = [r["wall"] for r in o]
        x = [w / max(dl, cv) for w in walls]
        serial = [w / (dl + cv) for w in walls]
        rows.append([kind, f"{pages} x {per:,}", f"{dl:.3f} s", f"{cv:.3f} s",
                     med(walls, 3) + " s", med(serial), med(x),
                     f"<= 1.2x {verdict(statistics.median(x) <= 1.2, smoke)}"])
    return rows


def child_fanout(kind: str, base: str, accounts: int, threads: int) -> dict:
    import concurrent.futures as cf

    import arrow_bench
    import custlist
    import pyarrow  # noqa: F401
    if threads == 1:                          # the same fan-out, read by one thread
        real = cf.ThreadPoolExecutor
        cf.ThreadPoolExecutor = lambda n, *a, **k: real(1, *a, **k)
    out = custlist.fan_out({a: arrow_bench.pager(kind, base) for a in range(accounts)},
                           concurrency=8)
    t0, c0 = time.perf_counter(), time.process_time()
    table = out.to_arrow()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert out.summary.ok, out.summary
    return {"wall": wall, "cpu": cpu, "rows": table.num_rows}


def server_cpu(work: pathlib.Path) -> float:
    """CPU seconds nginx's worker processes have run so far (the scheduler's
    own sum, /proc/PID/sched, to the microsecond), 0.0 if it cannot be read."""
    import bench
    total = 0.0
    for d in bench.nginx_workers(work):
        try:
            for line in (d / "sched").read_text().splitlines():
                if line.startswith("se.sum_exec_runtime"):
                    total += float(line.split(":")[1]) / 1000
        except (OSError, ValueError, IndexError):
            continue
    return total


def fanout_run(kind: str, base: str, accounts: int, threads: int, work: pathlib.Path) -> dict:
    """child_fanout in its own process, with the CPU nginx spent serving it."""
    before = server_cpu(work)
    out = child("fanout", kind, base, accounts, threads)
    out["nginx"] = server_cpu(work) - before
    return out


def fetch_only(kind: str, base: str, pages: int) -> dict:
    import bench
    out = subprocess.run([str(WORK / "fetch_only"), "href" if kind == "pyng" else "cursor",
                          base + FIRST[kind], bench.NEXT_KEYS[kind]], check=True,
                         capture_output=True, text=True).stdout
    got, _bytes, wall, cpu, _vcs, _ics = out.split()
    assert int(got) == pages, out
    return {"wall": float(wall), "cpu": float(cpu)}


# ---- the run ---------------------------------------------------------------

def child(*args) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *map(str, args)], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def med(xs, digits: int = 2) -> str:
    f = f".{digits}f"
    return format(statistics.median(xs), f) + (
        f" ({format(min(xs), f)}-{format(max(xs), f)})" if len(xs) > 1 else "")


def serve_data(folder: pathlib.Path, n: int, base: str) -> None:
    import arrow_bench
    arrow_bench.WORK = folder
    folder.mkdir(parents=True, exist_ok=True)
    for kind in KINDS:
        arrow_bench.write_data(kind, n, base)


def verdict(ok: bool, smoke: bool) -> str:
    return "(smoke)" if smoke else ("PASS" if ok else "FAIL")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--records", type=int)
    ap.add_argument("--accounts", type=int)
    ap.add_argument("--child", nargs="+")
    args = ap.parse_args()
    if args.child:
        what, kind, base, *rest = args.child
        fn = {"beside": child_beside, "overlap": child_overlap, "fanout": child_fanout,
              "overlap_slow": child_overlap_slow}[what]
        print(json.dumps(fn(kind, base, *map(int, rest))))
        return
    import arrow_bench
    import bench
    import custlist
    smoke = args.smoke
    n = args.records or (2_000 if smoke else 200_000)
    accounts = args.accounts or (10 if smoke else 200)
    runs = 1 if smoke else args.runs
    per_listing = 300                          # 3 pages of 100 records
    # and fewer, longer listings: where each listing's own latency (page,
    # hand-off, conversion, next page) weighs less against its work
    long_accounts, long_listing = (4, 500) if smoke else (50, 3_000)
    WORK.mkdir(parents=True, exist_ok=True)
    if not (WORK / "fetch_only").exists():
        cflags = subprocess.run(["curl-config", "--cflags", "--libs"], check=True,
                                capture_output=True, text=True).stdout.split()
        subprocess.run(["cc", "-O2", "-o", str(WORK / "fetch_only"), str(HERE / "fetch_only.c"),
                        *cflags], check=True)
    load = os.getloadavg()
    print("\n# Arrow output beside other threads and on several cores"
          + (" (smoke run: timings mean nothing)" if smoke else ""))
    print(f"\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.machine()}, "
          f"{os.cpu_count()} cores; Python {platform.python_version()}; custlist "
          f"{custlist.__version__}; {runs} runs; load average before "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; cores free "
          + " ".join(f"{cores_free():.2f}" for _ in range(3)))
    beside, overlap, fan, fan_long = [], [], [], []
    for folder, records in (("one", n), ("many", per_listing), ("long", long_listing)):
        port = bench.free_port()
        base = f"http://127.0.0.1:{port}"
        shutil.rmtree(WORK / folder, ignore_errors=True)
        serve_data(WORK / folder, records, base)
        with bench.Nginx(port, WORK / folder, arrow_bench.ROUTES):
            for kind in KINDS:
                if folder == "one":
                    b = [child("beside", kind, base) for _ in range(runs)]
                    o = [child("overlap", kind, base) for _ in range(runs)]
                    d = [fetch_only(kind, base, n // 100) for _ in range(runs)]
                    assert all(r["rows"] == n for r in b + o), (b, o)
                    ratio = [r["beside"] / r["solo"] for r in b]
                    beside.append([kind, f"{statistics.median(r['solo'] for r in b) / 1e6:.1f} M/s",
                                   f"{statistics.median(r['beside'] for r in b) / 1e6:.1f} M/s",
                                   med(ratio),
                                   f">= 0.80 {verdict(statistics.median(ratio) >= 0.8, smoke)}"])
                    dl, cv = statistics.median(r["wall"] for r in d), \
                        statistics.median(r["convert"] for r in o)
                    walls = [r["wall"] for r in o]
                    x = [w / max(dl, cv) for w in walls]
                    overlap.append([kind, f"{dl:.3f} s", f"{cv:.3f} s", med(walls, 3) + " s", med(x),
                                    f"<= 1.2x {verdict(statistics.median(x) <= 1.2, smoke)}"])
                else:
                    count, rows_each, into = (accounts, per_listing, fan) if folder == "many" \
                        else (long_accounts, long_listing, fan_long)
                    par = [fanout_run(kind, base, count, 8, WORK / folder)
                           for _ in range(runs)]
                    one = [fanout_run(kind, base, count, 1, WORK / folder)
                           for _ in range(runs)]
                    assert all(r["rows"] == count * rows_each for r in par + one), (par, one)
                    use = [r["cpu"] / r["wall"] for r in par]
                    pw, ow = [r["wall"] for r in par], [r["wall"] for r in one]
                    speed = statistics.median(ow) / statistics.median(pw)
                    # the work of the reading threads' run (custlist's CPU and
                    # nginx's) spread perfectly over the machine's cores: no
                    # wall can be shorter, so no speed-up over one reading
                    # thread can be larger than this
                    cores = os.cpu_count() or 1
                    floor = statistics.median((r["cpu"] + r["nginx"]) / cores for r in par)
                    into.append([kind, med(pw, 3) + " s", med(use),
                                med([r["nginx"] / r["wall"] for r in par]),
                                med([cores - (r["cpu"] + r["nginx"]) / r["wall"] for r in par]),
                                med(ow, 3) + " s",
                                med([r["cpu"] / r["wall"] for r in one]), f"{speed:.2f}x",
                                f"{statistics.median(ow) / floor:.2f}x" if floor > 0 else "-",
                                f"> 1.6 {verdict(statistics.median(use) > 1.6, smoke)}; "
                                f">= 1.6x {verdict(speed >= 1.6, smoke)}"])
    bench.table(f"A Python thread counting beside to_arrow() of {n:,} records",
                ["endpoint", "alone", "beside to_arrow()", "beside / alone", "target"], beside)
    bench.table(f"to_arrow() of {n:,} records against its parts",
                ["endpoint", "download only (libcurl loop)", "conversion only (reading thread CPU)",
                 "to_arrow() wall", "wall / max(parts)", "target"], overlap)
    slow = slow_overlap(runs, smoke)
    bench.table("to_arrow() against a server that waits 10 ms before each page",
                ["endpoint", "pages x records", "download only (libcurl loop)",
                 "conversion only (reading thread CPU)", "to_arrow() wall",
                 "wall / (download + conversion)", "wall / max(parts)", "target"], slow)
    for count, rows_each, rows in ((accounts, per_listing, fan),
                                   (long_accounts, long_listing, fan_long)):
        bench.table(f"fan_out(...).to_arrow() of {count} accounts x {rows_each:,} records",
                    ["endpoint", "wall, reading threads", "CPU / wall", "nginx's cores",
                     "cores idle", "wall, one reading thread", "CPU / wall (one)", "speed-up",
                     f"most speed-up {os.cpu_count()} cores allow", "targets"], rows)
    load = os.getloadavg()
    print(f"\nload average after the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; cores free "
          + " ".join(f"{cores_free():.2f}" for _ in range(3)))


if __name__ == "__main__":
    main()
