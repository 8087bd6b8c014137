"""Where fan_out(...).to_arrow()'s wall goes, as its reading threads grow
from one to eight.

    python bench/fanout_readers.py [--smoke] [--runs 5] [--accounts 200]

The fan-out of bench/arrow_gil.py (ACCOUNTS listings of 3 pages of 100
records each, served by nginx on loopback, `concurrency` 8) read with its
pool of reading threads held to 1, 2, 3, 4 and 8 threads, each run in a
fresh process.  Beside wall and CPU it shows what arrow_gil.py's totals
cannot:

- listing: how long one reading thread spends on one listing (its
  stream, its pages, its table and `source` column), the median;
- tail: the wall after the last listing's table is made, until to_arrow()
  returns: one thread's work, whatever the number of readers; and of it,
  the fan-out's close() (every listing closed, the driver's thread
  stopped) and pyarrow.concat_tables;
- switches a page: the process's voluntary context switches (a thread that
  sleeps: for a page, for the GIL, in poll) and involuntary ones (a thread
  taken off its core), over the run, per page (getrusage, every thread,
  ended ones included).  A count, so it moves less with the machine's
  load than the times do;
- memory: how much the process's resident memory grew from the start of
  to_arrow() to the fan-out's close(), beside the table's own size.

The median of RUNS runs; timings on a shared machine move with its load.
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

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")      # as arrow_gil.py says why
HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

WORK = HERE / ".work" / "fanout_readers"
KINDS = ("pyng", "natural", "invitations", "commenda")
READERS = (1, 2, 3, 4, 8)
PAGES_EACH = 3


def child(kind: str, base: str, accounts: int, readers: int) -> dict:
    """One fan-out read by `readers` threads, in this process."""
    import concurrent.futures as cf
    import resource
    import threading

    import arrow_bench
    import custlist
    import pyarrow

    spans: list = []                 # (thread, start, end) of each listing
    real = cf.ThreadPoolExecutor

    class Pool(real):
        def __init__(self, n, *a, **k):
            super().__init__(readers, *a, **k)

        def map(self, fn, *iterables, **k):
            def timed(*args):
                s = time.perf_counter()
                try:
                    return fn(*args)
                finally:
                    spans.append((threading.get_ident(), s, time.perf_counter()))
            return super().map(timed, *iterables, **k)

    cf.ThreadPoolExecutor = Pool
    concat = []
    real_concat = pyarrow.concat_tables

    def timed_concat(*a, **k):
        s = time.perf_counter()
        try:
            return real_concat(*a, **k)
        finally:
            concat.append(time.perf_counter() - s)

    pyarrow.concat_tables = timed_concat
    out = custlist.fan_out({a: arrow_bench.pager(kind, base) for a in range(accounts)},
                           concurrency=8)
    closing, held = [], []
    real_close = out.close

    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def timed_close():
        held.append(rss())                    # every listing read, none let go by close()
        s = time.perf_counter()
        try:
            return real_close()
        finally:
            closing.append(time.perf_counter() - s)

    out.close = timed_close
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    rss0 = rss()
    t0, c0 = time.perf_counter(), time.process_time()
    table = out.to_arrow()
    t1, cpu = time.perf_counter(), time.process_time() - c0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    assert out.summary.ok and table.num_rows == accounts * PAGES_EACH * 100, out.summary
    assert len(spans) == accounts and len({t for t, _, _ in spans}) <= readers
    pages = accounts * PAGES_EACH
    lengths = sorted(e - s for _, s, e in spans)
    return {"wall": t1 - t0, "cpu": cpu,
            "listing": lengths[len(lengths) // 2],
            "tail": t1 - max(e for _, _, e in spans), "concat": sum(concat),
            "close": sum(closing), "grown": (held[0] - rss0) / 1e6, "table": table.nbytes / 1e6,
            "vcs": (ru1.ru_nvcsw - ru0.ru_nvcsw) / pages,
            "ics": (ru1.ru_nivcsw - ru0.ru_nivcsw) / pages}


def run_child(kind: str, base: str, accounts: int, readers: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", kind, base, str(accounts),
                          str(readers)], check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--accounts", type=int)
    ap.add_argument("--child", nargs=4)
    args = ap.parse_args()
    if args.child:
        kind, base, accounts, readers = args.child
        print(json.dumps(child(kind, base, int(accounts), int(readers))))
        return
    import arrow_bench
    import bench
    import custlist
    accounts = args.accounts or (10 if args.smoke else 200)
    runs = 1 if args.smoke else args.runs
    load = os.getloadavg()
    print("\n# fan_out(...).to_arrow() by its number of reading threads"
          + (" (smoke run: timings mean nothing)" if args.smoke else ""))
    print(f"\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.machine()}, "
          f"{os.cpu_count()} cores; Python {platform.python_version()}; custlist "
          f"{custlist.__version__}; {accounts} accounts x {PAGES_EACH * 100} records; "
          f"median of {runs}; load average before {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    shutil.rmtree(WORK, ignore_errors=True)
    arrow_bench.WORK = WORK
    port = bench.free_port()
    base = f"http://127.0.0.1:{port}"
    for kind in KINDS:
        arrow_bench.write_data(kind, PAGES_EACH * 100, base)
    rows = []
    with bench.Nginx(port, WORK, arrow_bench.ROUTES):
        for kind in KINDS:
            got: dict = {n: [] for n in READERS}
            for _ in range(runs):                 # each count once a round: load shared alike
                for n in READERS:
                    got[n].append(run_child(kind, base, accounts, n))
            one = statistics.median(r["wall"] for r in got[1])
            one_cpu = statistics.median(r["cpu"] for r in got[1])
            for n in READERS:
                med = {k: statistics.median(r[k] for r in got[n]) for k in got[n][0]}
                rows.append([kind, n, f"{med['wall']:.3f} s", f"{one / med['wall']:.2f}x",
                             f"{med['cpu'] / med['wall']:.2f}", f"{med['cpu'] / one_cpu:.2f}",
                             f"{med['listing'] * 1e3:.2f} ms",
                             f"{med['tail'] * 1e3:.1f} ms ({med['tail'] / med['wall']:.0%})",
                             f"{med['close'] * 1e3:.1f} ms", f"{med['concat'] * 1e3:.1f} ms",
                             f"{med['vcs']:.1f}", f"{med['ics']:.1f}",
                             f"{med['grown']:.0f} MB ({med['table']:.0f} MB)"])
    load = os.getloadavg()
    bench.table(f"fan_out(...).to_arrow() of {accounts} accounts x {PAGES_EACH * 100} records, "
                "by reading threads",
                ["endpoint", "readers", "wall", "speed-up over 1", "CPU / wall",
                 "CPU ÷ 1 reader's", "one listing", "tail (share of wall)", "of it close()", "of it concat",
                 "voluntary switches a page", "involuntary a page",
                 "memory grown by close() (the table's)"], rows)
    print(f"\nload average after {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
