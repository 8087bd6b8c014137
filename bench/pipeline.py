"""What the pipeline costs beyond its parts, for one endpoint or a few,
without the peers: end-to-end CPU per record against decode only (the same
pages, in this process) plus download only (the libcurl C loop), with the
switches per page.  bench/bench.py gives the full table; this is the quick
look while working on the fetch thread and the pager.

    .venv/bin/python bench/pipeline.py [--pages 1000] [--runs 5] [KIND ...]
    .venv/bin/python bench/pipeline.py --strace natural   # syscalls per page

Needs bench/.work/fetch_only (bench/run.sh builds it) and nginx."""
from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))
import bench  # noqa: E402

STRACE_CHILD = """
import sys
sys.path[:0] = sys.argv[1:3]
import bench
bench.custlist_loop(sys.argv[3], sys.argv[4])()
"""


def strace(kind: str, base: str, pages: int) -> None:
    out = bench.WORK / "strace.txt"
    subprocess.run(["strace", "-f", "-c", "-o", str(out), sys.executable, "-c", STRACE_CHILD,
                    str(HERE), str(HERE.parent), kind, base], check=True)
    print(f"\n{kind}: syscalls per page over {pages} pages (strace -c -f, imports included)")
    for line in out.read_text().splitlines():
        f = line.split()
        if len(f) >= 5 and f[3].isdigit() and int(f[3]) >= pages // 10:
            print(f"  {f[-1]:<16} {int(f[3]) / pages:8.2f}")


def measure(kinds, base: str, pages: int, runs: int) -> None:
    n = pages * 100
    print("| endpoint | decode only | download only | sum | end to end | e2e / sum | wall e2e / download "
          "| voluntary switches/page | involuntary |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind in kinds:
        bodies = bench.site_bodies(kind, pages, base)
        ep = bench.endpoint(kind)
        sample = bodies[:100]
        dec = bench.min_cpu(lambda: [ep.decode(b) and None for b in sample], runs) / (100 * len(sample))
        dl = bench.least_fetch_only(kind, base + bench.E2E_PATHS[kind], runs, pages)
        e2e = bench.least_in_process(bench.custlist_loop(kind, base), runs, n)
        parts = dec + dl["cpu"] / n
        print(f"| {kind} | {dec * 1e6:.2f} µs | {dl['cpu'] / n * 1e6:.2f} µs | {parts * 1e6:.2f} µs "
              f"| {e2e['cpu'] / n * 1e6:.2f} µs | {e2e['cpu'] / n / parts:.2f}x "
              f"| {e2e['wall'] / dl['wall']:.2f}x | {e2e['vcs'] / pages:.2f} | {e2e['ics'] / pages:.2f} |",
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("kinds", nargs="*", default=list(bench.KINDS))
    ap.add_argument("--pages", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--strace", action="store_true")
    ap.add_argument("--base", help="a server already serving what bench.write_site wrote")
    args = ap.parse_args()
    if args.base:
        base = args.base
    else:
        bench.WORK.mkdir(exist_ok=True)
        base = f"http://127.0.0.1:{bench.free_port()}"
        for kind in bench.KINDS:
            bench.write_site(kind, args.pages, base)
    server = None if args.base else bench.Nginx(int(base.rsplit(":", 1)[1]))
    if server is not None:
        server.__enter__()
    try:
        if args.strace:
            for kind in args.kinds:
                strace(kind, base, args.pages)
        else:
            measure(args.kinds, base, args.pages, args.runs)
    finally:
        if server is not None:
            server.__exit__(None, None, None)


if __name__ == "__main__":
    main()
