"""The hand-off between the fetch thread and the consumer, per page: CPU per
record, wall, and voluntary context switches per page (whole process, and
the consumer thread's), against nginx and against a server that waits
5 ms before each page (as real APIs take their time); against that server
also requests + json + dataclasses (bench/peers.py), and the targets:
custlist's CPU per record there at most 1.2x its nginx figure, and at least
5x less than the peer's.  Beside each, the download-only libcurl loop
(bench/fetch_only.c, one thread) against the same server: how much the
slow server costs a client that does nothing but download.

    .venv/bin/python bench/chain.py [--pages 300] [--slow-pages 200] [--runs 3]
        [KIND ...]

It imports the custlist of the tree it is in: for a "before" column, run a
copy of this file from a build of the older revision.  Needs nginx."""
from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("kinds", nargs="*")
    ap.add_argument("--pages", type=int, default=300)
    ap.add_argument("--slow-pages", type=int, default=200)
    ap.add_argument("--latency", type=float, default=0.005)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--serve", nargs=3, metavar=("PORT", "PAGES", "LATENCY"))
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    import bench
    if args.serve:
        return serve(bench, int(args.serve[0]), args.serve[1], float(args.serve[2]))
    import custlist
    kinds = args.kinds or list(bench.KINDS)
    print(f"custlist from {pathlib.Path(custlist.__file__).parent}")
    bench.WORK.mkdir(exist_ok=True)
    port = bench.free_port()
    base = f"http://127.0.0.1:{port}"
    for kind in bench.KINDS:
        bench.write_site(kind, args.pages, base)
    rows, peer, loop = [], {}, {}
    bench.ensure_fetch_only()
    with bench.Nginx(port):
        for kind in kinds:
            rows.append(measure(bench, kind, base, args.pages, args.runs, "nginx"))
            loop[kind, True] = bench.least_fetch_only(kind, base + bench.E2E_PATHS[kind],
                                                      args.runs, args.pages)
    with slow_server(bench, args.slow_pages, args.latency, "chain") as slow_base:
        import peers
        for kind in kinds:
            rows.append(measure(bench, kind, slow_base, args.slow_pages, args.runs,
                                f"{args.latency * 1000:g} ms/page"))
            n = args.slow_pages * 100
            first = slow_base + bench.E2E_PATHS[kind]
            peer[kind] = bench.least_in_process(
                lambda k=kind, f=first: peers.requests_loop(k, f, bench.HEADERS),
                min(args.runs, 3), n)["cpu"] / n
            loop[kind, False] = bench.least_fetch_only(kind, first, args.runs, args.slow_pages)
    print("| endpoint | server | pages | wall | CPU/record | voluntary switches/page "
          "| of which the consumer thread | involuntary/page |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r[:-1]) + " |")
    if not peer:
        return
    cpu = {(r[0], r[1] == "nginx"): r[-1] for r in rows}
    print(f"\n| endpoint | CPU/record, nginx | CPU/record, {args.latency * 1000:g} ms/page "
          "| slow / nginx (target <= 1.2) | requests + json + dataclasses, slow "
          "| requests / custlist (target >= 5) | download-only loop: CPU/record nginx, slow "
          "| its slow / nginx | its voluntary switches/page nginx, slow |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind in kinds:
        fast, slow = cpu[kind, True], cpu[kind, False]
        lf, ls = loop[kind, True], loop[kind, False]
        lfc, lsc = lf["cpu"] / (args.pages * 100), ls["cpu"] / (args.slow_pages * 100)
        print(f"| {kind} | {fast * 1e6:.2f} µs | {slow * 1e6:.2f} µs | {slow / fast:.2f} "
              f"{'PASS' if slow / fast <= 1.2 else 'FAIL'} | {peer[kind] * 1e6:.2f} µs "
              f"| {peer[kind] / slow:.1f} {'PASS' if peer[kind] / slow >= 5 else 'FAIL'} "
              f"| {lfc * 1e6:.2f} µs, {lsc * 1e6:.2f} µs | {lsc / lfc:.2f} "
              f"| {lf['vcs'] / args.pages:.2f}, {ls['vcs'] / args.slow_pages:.2f} |")


@contextlib.contextmanager
def slow_server(bench, pages: int, latency: float, name: str):
    """This file's server (serve(), in a child process) answering every
    endpoint's `pages` pages after `latency` seconds each; yields its base URL."""
    port = bench.free_port()
    base = f"http://127.0.0.1:{port}"
    pages_file = bench.WORK / f"{name}_slow_pages.json"
    pages_file.write_text(json.dumps({kind: [b.decode() for b in bench.site_bodies(kind, pages, base)]
                                      for kind in bench.KINDS}))
    server = subprocess.Popen([sys.executable, str(HERE / "chain.py"), "--serve", str(port),
                               str(pages_file), str(latency)])
    try:
        if not bench.wait_for_port(port, 10):
            raise RuntimeError("the slow server did not start")
        yield base
    finally:
        server.terminate()
        server.wait()


def measure(bench, kind, base, pages, runs, server):
    n = pages * 100
    best = bench.least_in_process(bench.custlist_loop(kind, base), runs, n)
    return [kind, server, str(pages), f"{best['wall']:.3f} s", f"{best['cpu'] / n * 1e6:.2f} µs",
            f"{best['vcs'] / pages:.2f}", f"{best['vcs_consumer'] / pages:.2f}",
            f"{best['ics'] / pages:.2f}", best["cpu"] / n]


def serve(bench, port: int, pages_file: str, latency: float) -> None:
    class Pages(bench.SlowPages):
        pass
    Pages.latency = latency
    Pages.bodies = {(kind, n): body.encode()
                    for kind, bodies in json.loads(pathlib.Path(pages_file).read_text()).items()
                    for n, body in enumerate(bodies)}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Pages)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
