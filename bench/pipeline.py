"""What the pipeline costs: end-to-end CPU per record against the sum of its
parts, decode only (the same page, in memory) plus download only (the plain
libcurl loop), per endpoint, with the context switches per page.

    .venv/bin/python bench/pipeline.py [--pages 1000] [--runs 5] [KIND ...]
    .venv/bin/python bench/pipeline.py --strace natural   # syscalls per page

Minimum CPU (process_time, every thread of the process) over a few runs:
on a busy machine the least disturbed run is the closest to the cost.
Needs bench/.work/fetch_only (bench/run.sh builds it) and nginx."""
from __future__ import annotations

import argparse
import pathlib
import random
import resource
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))
import bench  # noqa: E402

from custlist import commenda, natural, pyng  # noqa: E402

ENDPOINTS = {"pyng": pyng.CUSTOMERS, "natural": natural.CUSTOMERS,
             "invitations": natural.INVITATIONS, "commenda": commenda.CUSTOMERS}


def switches() -> int:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_nvcsw + r.ru_nivcsw


def decode_cpu(kind: str, loops: int, runs: int) -> float:
    body = (bench.WORK / "www" / kind / "p1.json").read_bytes()
    ep = ENDPOINTS[kind]
    best = float("inf")
    for _ in range(runs):
        c = time.process_time()
        for _ in range(loops):
            ep.decode(body)
        best = min(best, (time.process_time() - c) / (loops * 100))
    return best


def download_cpu(kind: str, base: str, pages: int, runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        _, cpu, out = bench.cpu_of_child([str(bench.WORK / "fetch_only"),
                                          "href" if kind == "pyng" else "cursor",
                                          base + bench.E2E_PATHS[kind], bench.NEXT_KEYS[kind]])
        assert int(out.split()[0]) == pages, out
        best = min(best, cpu / (pages * 100))
    return best


def e2e_cpu(kind: str, base: str, pages: int, runs: int) -> tuple[float, float, float]:
    loop = bench.custlist_loop(kind, base)
    loop()                                     # warm: imports, buffers, connection
    best, best_wall, sw = float("inf"), float("inf"), float("inf")
    for _ in range(runs):
        s0, c0, t0 = switches(), time.process_time(), time.perf_counter()
        n = loop()
        cpu, wall, s = time.process_time() - c0, time.perf_counter() - t0, switches() - s0
        assert n == pages * 100, n
        best, best_wall, sw = min(best, cpu / n), min(best_wall, wall), min(sw, s / pages)
    return best, best_wall, sw


STRACE_CHILD = """
import sys
sys.path[:0] = sys.argv[1:3]
import bench
bench.custlist_loop(sys.argv[3], sys.argv[4])()
"""


def strace(kind: str, base: str, pages: int) -> None:
    out = pathlib.Path(bench.WORK / "strace.txt")
    subprocess.run(["strace", "-f", "-c", "-o", str(out), sys.executable, "-c", STRACE_CHILD,
                    str(HERE), str(HERE.parent), kind, base], check=True)
    print(f"\n{kind}: syscalls per page over {pages} pages (strace -c -f, the whole process)")
    for line in out.read_text().splitlines():
        f = line.split()
        if len(f) >= 5 and f[3].isdigit() and f[-1] not in ("total",):
            print(f"  {f[-1]:<16} {int(f[3]) / pages:8.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("kinds", nargs="*", default=list(bench.KINDS))
    ap.add_argument("--pages", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--strace", action="store_true")
    ap.add_argument("--base", help="a server already serving the site bench.write_site wrote")
    args = ap.parse_args()
    if args.base:
        return measure(args, args.base)
    bench.WORK.mkdir(exist_ok=True)
    port = bench.free_port()
    base = f"http://127.0.0.1:{port}"
    rng = random.Random(2)
    for kind in bench.KINDS:
        bench.write_site(kind, args.pages, base, rng)
    with bench.Nginx(port):
        measure(args, base)


def measure(args, base: str) -> None:
    if args.strace:
        for kind in args.kinds:
            strace(kind, base, args.pages)
        return
    print("| endpoint | decode only | download only | sum | end to end | e2e / sum "
          "| wall | switches/page |")
    print("|---|---|---|---|---|---|---|---|")
    for kind in args.kinds:
        dec = decode_cpu(kind, 200, args.runs)
        dl = download_cpu(kind, base, args.pages, args.runs)
        e2e, wall, sw = e2e_cpu(kind, base, args.pages, args.runs)
        print(f"| {kind} | {dec * 1e6:.2f} µs | {dl * 1e6:.2f} µs | {(dec + dl) * 1e6:.2f} µs "
              f"| {e2e * 1e6:.2f} µs | {e2e / (dec + dl):.2f}x | {wall:.3f} s | {sw:.1f} |",
              flush=True)


if __name__ == "__main__":
    main()
