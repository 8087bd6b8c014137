"""What fan_out(...).to_arrow()'s threads sleep on, from the kernel's own
record of every switch (perf's sched:sched_switch with the stack).

    python bench/fanout_sleeps.py [--accounts 200] [--readers 8] [KIND ...]

One fan-out of bench/fanout_readers.py (ACCOUNTS listings of 3 pages of 100
records from nginx on loopback, READERS reading threads, `concurrency` the
same) runs under `perf record -e sched:sched_switch --call-graph dwarf`
after two runs unrecorded.  Every time a reading thread or the fetch thread
goes to sleep, the stack says what for: the GIL (take_gil), a page
(cl_chain_take), the driver letting go of a closed listing
(cl_multi_detach), the driver's poll (multi_main), ...; the time until
that thread runs again is added to that reason.  Needs perf and the
permission to record scheduler events (root, or perf_event_paranoid <= 1).
The recording slows the run about twice, so the shares, not the times,
are the result.
"""
from __future__ import annotations

import argparse
import collections
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

HEAD = re.compile(r"\s*(\S.*?)\s+(\d+)\s+([\d.]+): sched:sched_switch: (.*)")
SWITCH = re.compile(r"prev_comm=(.*?) prev_pid=(\d+) .*prev_state=(\S+) ==> next_comm=.*? next_pid=(\d+)")


def reason(stack: list[tuple[str, str]]) -> str:
    """What a thread went to sleep for: the innermost frame that names it."""
    for sym, _ in stack:
        if "take_gil" in sym:
            return "the GIL (take_gil)"
    for sym, dso in stack:
        if "_core" in dso:
            return f"custlist: {sym}"
    for sym, dso in stack:
        for lib in ("arrow", "curl", "python"):
            if lib in dso:
                return f"{lib}: {sym}"
    return f"other: {stack[0][0] if stack else '?'}"


def sleeps(script: str, pid: int) -> dict:
    """(role, reason) -> [seconds asleep, times] from `perf script` output."""
    out: dict = collections.defaultdict(lambda: [0.0, 0])
    asleep: dict = {}
    for block in script.split("\n\n"):
        lines = block.strip("\n").split("\n")
        m = HEAD.match(lines[0]) if lines and lines[0] else None
        if not m:
            continue
        s = SWITCH.search(m.group(4))
        if not s:
            continue
        t = float(m.group(3))
        prev_comm, prev, state, nxt = s.group(1), int(s.group(2)), s.group(3), int(s.group(4))
        if nxt in asleep:
            role, why, since = asleep.pop(nxt)
            out[(role, why)][0] += t - since
            out[(role, why)][1] += 1
        if state[0] in "SD" and prev != pid and (prev_comm.startswith("custlist")
                                                  or prev_comm.startswith("python")):
            stack = []
            for line in lines[1:]:
                parts = line.split(None, 2)
                if len(parts) == 3:
                    stack.append((parts[1], parts[2]))
            role = "fetch thread" if prev_comm.startswith("custlist") else "reading threads"
            asleep[prev] = (role, reason(stack), t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=200)
    ap.add_argument("--readers", type=int, default=8)
    ap.add_argument("kinds", nargs="*", default=["pyng", "natural", "invitations", "commenda"])
    args = ap.parse_args()
    if shutil.which("perf") is None:
        raise SystemExit("needs perf (Debian: linux-perf)")
    import arrow_bench
    import bench
    import fanout_readers as fr
    shutil.rmtree(fr.WORK, ignore_errors=True)
    arrow_bench.WORK = fr.WORK
    port = bench.free_port()
    base = f"http://127.0.0.1:{port}"
    for kind in args.kinds:
        arrow_bench.write_data(kind, fr.PAGES_EACH * 100, base)
    print(f"\n### What the threads of fan_out(...).to_arrow() sleep on: {args.accounts} accounts "
          f"x {fr.PAGES_EACH * 100} records, {args.readers} reading threads (perf, one recorded run)")
    rows = []
    with bench.Nginx(port, fr.WORK, arrow_bench.ROUTES), tempfile.TemporaryDirectory() as tmp:
        data = f"{tmp}/sched.data"
        for kind in args.kinds:
            child = [sys.executable, fr.__file__, "--child", kind, base, str(args.accounts),
                     str(args.readers), str(max(args.readers, 8))]
            for _ in range(2):
                subprocess.run(child, check=True, stdout=subprocess.DEVNULL)
            subprocess.run(["perf", "record", "-q", "-o", data, "-e", "sched:sched_switch",
                                   "--call-graph", "dwarf,16384", "--"] + child,
                           check=True, stdout=subprocess.DEVNULL)
            script = subprocess.run(["perf", "script", "-i", data, "-F",
                                     "comm,tid,time,event,trace,ip,sym,dso"],
                                    check=True, capture_output=True, text=True,
                                    errors="replace").stdout
            first = HEAD.match(script.lstrip("\n").split("\n", 1)[0])
            pid = int(first.group(2)) if first else 0     # its first switch: the main thread
            got = sleeps(script, pid)
            for role in ("reading threads", "fetch thread"):
                total = sum(v[0] for (r, _), v in got.items() if r == role)
                for (r, why), (secs, times) in sorted(got.items(), key=lambda kv: -kv[1][0]):
                    if r == role and secs >= total * 0.02:
                        rows.append([kind, role, why, f"{secs * 1e3:.0f} ms", f"{secs / total:.0%}",
                                     str(times)])
    bench.table("sleeps by what they waited for (the shares above 2% of that role's sleep)",
                ["endpoint", "thread", "asleep for", "time asleep (recorded run)",
                 "share of the role's sleep", "times"], rows)


if __name__ == "__main__":
    main()
