"""Where the two cores go: system-wide CPU samples, split by thread, while
custlist reads a listing (records, to_arrow(), fan_out(...).to_arrow())
and while the download-only libcurl loop reads the same pages.

    python bench/cpu_by_thread.py [--runs 3] [--records 200000]
        [--accounts 200] [--freq 2000] [KIND ...]

`perf record -a -e cpu-clock` samples every core at FREQ Hz (needs perf
and the right to sample the whole machine, root here), enabled by the
measured process through perf's control fifo around the listing alone
(imports, start-up and the data's set-up excluded).  Each sample is put in
one group:

- main: the measuring process's main thread (the consumer; for the
  download-only loop, the loop itself);
- engine: custlist's driver thread (`custlist-fetch` for a lone listing,
  `custlist-fanout` for a fan-out), which runs every transfer, locates each
  page's structures and sends the next request;
- readers: the measuring process's other threads (fan_out(...).to_arrow()'s
  reading threads, libcurl's resolver);
- nginx: the server's worker;
- other: any other process (perf itself among them);
- idle: no thread ran.

Each group is given in cores (its samples over FREQ x the wall), so a row
adds up to the machine's cores; the median of RUNS runs.  Then, for the
custlist groups of each run kind, their top functions (from the median
run's samples).  Same data as bench/arrow_gil.py: pages of 100 records
from nginx on loopback; the fan-out reads ACCOUNTS listings of 3 pages.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

# numpy, which pyarrow imports, starts OpenBLAS's threads, and they spin on a
# core for their first tens of milliseconds: a fresh process's first Arrow
# work would share the two cores with them.  Nothing measured here uses BLAS.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

WORK = HERE / ".work" / "cpu_by_thread"
GROUPS = ("main", "engine", "readers", "nginx", "other", "idle")


# ---- the measured process ------------------------------------------------------

class Window:
    """perf's sampling, switched on and off through its control fifo."""

    def __init__(self):
        self.ctl = open(os.environ["CPU_CTL"], "w")
        self.ack = open(os.environ["CPU_ACK"])

    def _say(self, what: str) -> None:
        self.ctl.write(what + "\n")
        self.ctl.flush()
        assert self.ack.readline().strip("\x00\n ") == "ack"   # perf ends each with a NUL

    def __enter__(self):
        self._say("enable")
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.t0
        self._say("disable")


def child(what: str, kind: str, base: str, accounts: int) -> dict:
    import arrow_bench
    import custlist
    import pyarrow  # noqa: F401  (imported before the window, as a notebook has it)
    if what == "records":
        pager = arrow_bench.pager(kind, base)
        with Window() as w:
            rows = sum(1 for _ in pager)
    elif what == "arrow":
        pager = arrow_bench.pager(kind, base)
        with Window() as w:
            rows = pager.to_arrow().num_rows
    else:
        import concurrent.futures as cf
        if what == "fanout1":                 # the same fan-out, read by one thread
            real = cf.ThreadPoolExecutor
            cf.ThreadPoolExecutor = lambda n, *a, **k: real(1, *a, **k)
        out = custlist.fan_out({a: arrow_bench.pager(kind, base) for a in range(accounts)},
                               concurrency=8)
        with Window() as w:
            rows = out.to_arrow().num_rows
        assert out.summary.ok, out.summary
    return {"wall": w.wall, "rows": rows, "pid": os.getpid()}


# ---- perf around it ---------------------------------------------------------------

def perf_run(cmd: list, freq: int, controlled: bool) -> tuple:
    """cmd under `perf record -a`; (its JSON or wall, the samples' lines)."""
    tmp = pathlib.Path(tempfile.mkdtemp(dir=WORK))
    data = tmp / "perf.data"
    pre = ["perf", "record", "-q", "-a", "-e", "cpu-clock", "-F", str(freq), "-o", str(data)]
    env = dict(os.environ)
    if controlled:
        os.mkfifo(tmp / "ctl")
        os.mkfifo(tmp / "ack")
        pre += ["-D", "-1", "--control", f"fifo:{tmp / 'ctl'},{tmp / 'ack'}"]
        env.update(CPU_CTL=str(tmp / "ctl"), CPU_ACK=str(tmp / "ack"))
    run = subprocess.run(pre + ["--"] + cmd, capture_output=True, text=True, env=env)
    if run.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{run.stderr}")
    out = run.stdout
    script = subprocess.run(["perf", "script", "-i", str(data), "-F", "comm,pid,tid,ip,sym,dso"],
                            check=True, capture_output=True, text=True).stdout
    shutil.rmtree(tmp)
    return out, script.splitlines()


def function(rest: list) -> str:
    """'sym (dso)' as 'sym', or the dso's name where the symbol is unknown."""
    text = " ".join(rest)
    sym, _, dso = text.rpartition(" (")
    dso = pathlib.Path(dso.rstrip(")")).name
    if not sym or sym == "[unknown]":
        return f"[{dso}]"
    return sym if dso in ("[kernel.kallsyms]", "") else f"{sym} [{dso.split('.')[0]}]"


def split(lines: list, pid: int | None) -> tuple:
    """Samples per group, and (group, function) counts for our process
    (pid None: the download-only loop, known by its name)."""
    groups, funcs = collections.Counter(), collections.Counter()
    for line in lines:
        # "  comm pid/tid  sym (dso)"; comm may hold spaces, so read from pid/tid
        parts = line.split()
        at = next((i for i, x in enumerate(parts) if "/" in x and x.split("/")[0].isdigit()), None)
        if at is None:
            continue
        comm = " ".join(parts[:at])
        p, t = (int(x) for x in parts[at].split("/"))
        if (p == pid) if pid is not None else comm.startswith("fetch_only"):
            g = "main" if t == p else "engine" if comm.startswith("custlist-") else "readers"
            funcs[g, function(parts[at + 2:])] += 1
        elif p == 0:
            g = "idle"
        elif comm.startswith("nginx"):
            g = "nginx"
        else:
            g = "other"
        groups[g] += 1
    return groups, funcs


def measure(what: str, kind: str, base: str, accounts: int, freq: int, fetch_only: str,
            first: str, next_key: str) -> dict:
    if what == "download":
        # the loop runs whole under perf; its busy groups are read over its
        # own wall (its start-up is a few ms), its idle not at all
        out, lines = perf_run([fetch_only, "href" if kind == "pyng" else "cursor",
                               base + first, next_key], freq, False)
        r = {"wall": float(out.split()[2])}
        groups, r["funcs"] = split(lines, None)
        r["cores"] = {g: groups[g] / freq / r["wall"] for g in GROUPS}
        r["cores"]["other"] = r["cores"]["idle"] = float("nan")
        return r
    out, lines = perf_run([sys.executable, __file__, "--child", what, kind, base, str(accounts)],
                          freq, True)
    r = json.loads(out.strip().splitlines()[-1])
    groups, r["funcs"] = split(lines, r["pid"])
    r["cores"] = {g: groups[g] / freq / r["wall"] for g in GROUPS}
    return r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("kinds", nargs="*")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--accounts", type=int, default=200)
    ap.add_argument("--freq", type=int, default=2000)
    ap.add_argument("--top", type=int, default=6)
    ap.add_argument("--child", nargs=4)
    args = ap.parse_args()
    if args.child:
        what, kind, base, accounts = args.child
        print(json.dumps(child(what, kind, base, int(accounts))))
        return
    if not shutil.which("perf"):
        sys.exit("needs perf (Debian: linux-perf)")
    import arrow_bench
    import arrow_gil
    import bench
    import custlist
    kinds = args.kinds or list(arrow_gil.KINDS)
    WORK.mkdir(parents=True, exist_ok=True)
    fetch_only = str(bench.ensure_fetch_only())
    print(f"\n# Where the cores go, by thread ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{os.cpu_count()} cores, load average {bench.load()}, custlist {custlist.__version__}, "
          f"perf cpu-clock at {args.freq} Hz, median of {args.runs})")
    rows, tops = [], []
    per_listing = 300
    for folder, records in (("one", args.records), ("many", per_listing)):
        port = bench.free_port()
        base = f"http://127.0.0.1:{port}"
        shutil.rmtree(WORK / folder, ignore_errors=True)
        arrow_gil.serve_data(WORK / folder, records, base)
        whats = ("download", "records", "arrow") if folder == "one" else ("fanout8", "fanout1")
        with bench.Nginx(port, WORK / folder, arrow_bench.ROUTES):
            for kind in kinds:
                for what in whats:
                    runs = [measure(what, kind, base, args.accounts, args.freq, fetch_only,
                                    arrow_gil.FIRST[kind], bench.NEXT_KEYS[kind])
                            for _ in range(args.runs)]
                    runs.sort(key=lambda r: r["wall"])
                    mid = runs[len(runs) // 2]
                    cores = {g: statistics.median(r["cores"][g] for r in runs) for g in GROUPS}
                    label = {"download": "download only (libcurl loop)", "records": "records",
                             "arrow": "to_arrow()", "fanout8": f"fan_out({args.accounts}).to_arrow(), 8 readers",
                             "fanout1": f"fan_out({args.accounts}).to_arrow(), 1 reader"}[what]
                    busy = sum(v for g, v in cores.items() if g != "idle" and v == v)
                    rows.append([kind, label, f"{statistics.median(r['wall'] for r in runs):.3f} s"]
                                + [("-" if v != v else f"{v:.2f}") for v in
                                   (cores[g] for g in GROUPS)] + [f"{busy:.2f}"])
                    total = sum(mid["funcs"].values()) or 1
                    for g in ("main", "engine", "readers"):
                        n = sum(c for (gg, _), c in mid["funcs"].items() if gg == g)
                        if n / total < 0.03:
                            continue
                        best = sorted(((c, s) for (gg, s), c in mid["funcs"].items() if gg == g),
                                      reverse=True)[:args.top]
                        tops.append([kind, label, g, f"{n / args.freq / mid['wall']:.2f}",
                                     "; ".join(f"{s} {100 * c / n:.0f}%" for c, s in best)])
    bench.table(f"Cores by thread: {args.records:,} records (download only, records, to_arrow()); "
                f"{args.accounts} accounts x {per_listing} records (fan-out)",
                ["endpoint", "run", "wall", *GROUPS, "busy"], rows)
    bench.table("Top functions of custlist's threads (median run; share of that thread's samples)",
                ["endpoint", "run", "thread", "cores", "functions"], tops)


if __name__ == "__main__":
    main()
