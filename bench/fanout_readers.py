"""Where fan_out(...).to_arrow()'s wall goes, as its reading threads grow
from one to eight.

    python bench/fanout_readers.py [--smoke] [--runs 5] [--accounts 200]
                                   [--waits [--reader-policy normal|batch|nice|idle]]

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

With --waits it answers what the cores wait for instead, from the
scheduler's own counts of every thread (/proc/.../schedstat: time running,
time runnable but waiting for a core) and of nginx's worker, as the number of
reading threads (the fan-out's `concurrency`, which sets them) grows past
eight: whether the reading threads, the fetch thread and the server are
asleep (waiting for each other) or queued for a core, and the share of the
two cores nothing ran on.

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
WAITS = (1, 8, 16, 32)          # --waits: reading threads = concurrency
PAGES_EACH = 3


POLICY = os.environ.get("FANOUT_READERS_POLICY", "normal")


def lower(policy: str) -> None:
    """--reader-policy: this reading thread's scheduling made to yield to the
    fetch thread: `batch` (SCHED_BATCH: never preempts a thread on waking),
    `nice` (nice 5: a fifth of the weight) or `idle` (SCHED_IDLE: runs only
    when nothing else would).  An experiment on the cause, not a setting
    custlist makes: a user's other work would wait behind it too."""
    if policy == "batch":
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    elif policy == "idle":
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    elif policy == "nice":
        os.setpriority(os.PRIO_PROCESS, 0, 5)        # PRIO_PROCESS on a thread id: that thread
    else:
        raise SystemExit(f"unknown reader policy {policy!r}")


def sched(path: str) -> tuple[int, int]:
    """(ns running, ns runnable and waiting for a core) of a thread or
    process so far, the scheduler's count; (0, 0) once it has gone."""
    try:
        with open(path) as f:
            run, wait, _ = f.read().split()
        return int(run), int(wait)
    except (OSError, ValueError):
        return 0, 0


def fetch_threads() -> dict[int, tuple[int, int]]:
    """custlist's own threads in this process (the fan-out's driver names
    itself custlist-fanout): their id -> sched()."""
    out = {}
    for t in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{t}/comm") as f:
                if not f.read().startswith("custlist-"):
                    continue
        except OSError:
            continue
        out[int(t)] = sched(f"/proc/self/task/{t}/schedstat")
    return out


def server_sched(work: pathlib.Path) -> tuple[int, int]:
    """sched() summed over nginx's worker processes."""
    import bench
    got = [sched(str(d / "schedstat")) for d in bench.nginx_workers(work)]
    return sum(r for r, _ in got), sum(w for _, w in got)


def child(kind: str, base: str, accounts: int, readers: int, concurrency: int = 8) -> dict:
    """One fan-out read by `readers` threads, in this process."""
    import concurrent.futures as cf
    import resource
    import threading

    import arrow_bench
    import custlist
    import pyarrow

    spans: list = []                 # (thread, start, end) of each listing
    first: dict = {}                 # reading thread -> sched() at its first listing
    last: dict = {}                  # reading thread -> sched() after its last listing
    real = cf.ThreadPoolExecutor

    class Pool(real):
        def __init__(self, n, *a, **k):
            super().__init__(readers, *a, **k)

        def map(self, fn, *iterables, **k):
            def timed(*args):
                me = threading.get_native_id()
                if me not in first and POLICY != "normal":
                    lower(POLICY)
                first.setdefault(me, sched("/proc/thread-self/schedstat"))
                s = time.perf_counter()
                try:
                    return fn(*args)
                finally:
                    spans.append((me, s, time.perf_counter()))
                    last[me] = sched("/proc/thread-self/schedstat")
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
                           concurrency=concurrency)
    closing, held, engine = [], [], []
    real_close = out.close

    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def timed_close():
        held.append(rss())                    # every listing read, none let go by close()
        engine.append(fetch_threads())                # the fetch thread's counts, before close() ends it
        s = time.perf_counter()
        try:
            return real_close()
        finally:
            closing.append(time.perf_counter() - s)

    out.close = timed_close
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    rss0 = rss()
    before = fetch_threads()
    t0, c0 = time.perf_counter(), time.process_time()
    table = out.to_arrow()
    t1, cpu = time.perf_counter(), time.process_time() - c0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    assert out.summary.ok and table.num_rows == accounts * PAGES_EACH * 100, out.summary
    assert len(spans) == accounts and len({t for t, _, _ in spans}) <= readers
    pages = accounts * PAGES_EACH
    lengths = sorted(e - s for _, s, e in spans)
    ends = {t: max(e for u, _, e in spans if u == t) for t in last}
    rrun = sum(last[t][0] - first[t][0] for t in last) / 1e9
    rwait = sum(last[t][1] - first[t][1] for t in last) / 1e9
    rslept = sum(ends[t] - t0 for t in last) - rrun - rwait
    erun = sum(v[0] - before.get(t, (0, 0))[0] for t, v in engine[0].items()) / 1e9
    ewait = sum(v[1] - before.get(t, (0, 0))[1] for t, v in engine[0].items()) / 1e9
    assert len(engine[0]) == 1, engine             # one driver thread for the fan-out
    return {"rrun": rrun, "rwait": rwait, "rslept": rslept, "rlife": rrun + rwait + rslept,
            "erun": erun, "ewait": ewait,
            "wall": t1 - t0, "cpu": cpu,
            "listing": lengths[len(lengths) // 2],
            "tail": t1 - max(e for _, _, e in spans), "concat": sum(concat),
            "close": sum(closing), "grown": (held[0] - rss0) / 1e6, "table": table.nbytes / 1e6,
            "vcs": (ru1.ru_nvcsw - ru0.ru_nvcsw) / pages,
            "ics": (ru1.ru_nivcsw - ru0.ru_nivcsw) / pages}


def run_child(kind: str, base: str, accounts: int, readers: int, concurrency: int = 8) -> dict:
    """child() in a fresh process, with what nginx's worker ran and queued
    meanwhile (its only client is that process)."""
    n0 = server_sched(WORK)
    out = subprocess.run([sys.executable, __file__, "--child", kind, base, str(accounts),
                          str(readers), str(concurrency)],
                         check=True, stdout=subprocess.PIPE, text=True).stdout
    n1 = server_sched(WORK)
    got = json.loads(out.strip().splitlines()[-1])
    got["nrun"], got["nwait"] = (n1[0] - n0[0]) / 1e9, (n1[1] - n0[1]) / 1e9
    return got


def waits_rows(kind: str, base: str, accounts: int, runs: int) -> list:
    """--waits: what every thread did over the wall, by reading threads."""
    got: dict = {n: [] for n in WAITS}
    for _ in range(runs):
        for n in WAITS:
            got[n].append(run_child(kind, base, accounts, n, max(n, 8)))
    one = statistics.median(r["wall"] for r in got[1])
    rows = []
    cores = os.cpu_count() or 1
    for n in WAITS:
        med = {k: statistics.median(r[k] for r in got[n]) for k in got[n][0]}
        wall = med["wall"]
        busy = [r["cpu"] + r["nrun"] for r in got[n]]
        rows.append([kind, n, f"{wall:.3f} s", f"{one / wall:.2f}x", f"{med['listing'] * 1e3:.2f} ms",
                     f"{med['cpu'] / wall:.2f}",
                     f"{med['erun'] / wall:.0%}", f"{med['ewait'] / wall:.0%}",
                     f"{med['rrun'] / med['rlife']:.0%}", f"{med['rwait'] / med['rlife']:.0%}",
                     f"{med['rslept'] / med['rlife']:.0%}",
                     f"{med['nrun'] / wall:.0%}", f"{med['nwait'] / wall:.0%}",
                     f"{cores - statistics.median(busy) / wall:.2f}"])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--accounts", type=int)
    ap.add_argument("--waits", action="store_true",
                    help="what each thread waits for, by reading threads (= concurrency)")
    ap.add_argument("--reader-policy", choices=("normal", "batch", "nice", "idle"),
                    default="normal", help="with --waits: the reading threads' scheduling")
    ap.add_argument("--child", nargs=5)
    args = ap.parse_args()
    if args.child:
        kind, base, accounts, readers, concurrency = args.child
        print(json.dumps(child(kind, base, int(accounts), int(readers), int(concurrency))))
        return
    import arrow_bench
    import bench
    import custlist
    os.environ["FANOUT_READERS_POLICY"] = args.reader_policy   # the children read it
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
        if args.waits:
            for kind in KINDS:
                rows += waits_rows(kind, base, accounts, runs)
            bench.table(f"fan_out(...).to_arrow() of {accounts} accounts x {PAGES_EACH * 100} "
                        "records: what each thread did over the wall, by reading threads "
                        "(concurrency = readers, at least 8); the reading threads' scheduling: "
                        + args.reader_policy,
                        ["endpoint", "readers", "wall", "speed-up over 1", "one listing",
                         "CPU / wall", "fetch thread running (of wall)", "fetch thread queued",
                         "readers running (of their time)", "readers queued", "readers asleep",
                         "nginx running (of wall)", "nginx queued", "cores idle"], rows)
            load = os.getloadavg()
            print(f"\nload average after {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
            return
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
