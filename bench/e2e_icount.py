"""End to end in instructions: where a listing's CPU goes, per page, counted
by callgrind (repeatable on a busy machine, unlike time), against its parts.

    python bench/e2e_icount.py [--pages 100] [--latency 0.005] [KIND ...]

Per endpoint, from nginx and from a server that waits LATENCY before each
page (bench/chain.py's server), instructions per page of:

- end to end: a listing read as `sum(1 for _ in pager)`, every thread of the
  process (consumer and engine counted apart), as (a process warmed up with
  one listing, then two more - the same process with none) / (2 x pages);
- decode only: the same pages' bodies decoded by the endpoint and their
  records iterated the same way, (two passes - none) / (2 x pages);
- download only: bench/fetch_only.c, plain libcurl following the cursors,
  as (all pages - the last page alone) / (pages - 1).

end to end / (decode + download) is what the pipeline adds in instructions;
what the CPU-time ratio (bench/bench.py, "End to end against its parts")
has beyond it is not in instructions: waits, wake-ups and caches.  Needs
nginx and valgrind.  With --arrow: `pager.to_arrow()` instead, per
page, its reading thread (the conversion) and engine thread apart."""
from __future__ import annotations

import argparse
import glob
import pathlib
import re
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

CHILD = """
import sys
sys.path[:0] = sys.argv[1:3]
import bench
mode, kind, base, pages, loops = sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]), int(sys.argv[7])
if mode == "list":
    run = bench.custlist_loop(kind, base)
    assert run() == pages * 100
    for _ in range(loops):
        run()
elif mode == "arrow":
    import pyarrow  # noqa: F401
    start = bench.custlist_pagers(kind, base)
    assert start().to_arrow().num_rows == pages * 100
    for _ in range(loops):
        start().to_arrow()
else:
    ep = bench.endpoint(kind)
    bodies = bench.site_bodies(kind, pages, base)
    def once():
        return sum(sum(1 for _ in ep.decode(b).items) for b in bodies)
    assert once() == pages * 100
    for _ in range(loops):
        once()
"""


def totals(prefix: str) -> list[int]:
    """Instructions of each thread's callgrind file, in thread order."""
    out = []
    for f in sorted(glob.glob(prefix + "-*"), key=lambda p: int(p.rsplit("-", 1)[1])):
        text = pathlib.Path(f).read_text(errors="replace")
        m = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
        out.append(int(m.group(1)) if m else 0)
    return out


def callgrind(argv: list[str]) -> list[int]:
    with tempfile.TemporaryDirectory() as tmp:
        prefix = f"{tmp}/cg.out"
        # no OpenBLAS threads (numpy's, which pyarrow imports): their start-up
        # spin would count as the listing's
        subprocess.run(["valgrind", "--tool=callgrind", "--separate-threads=yes",
                        f"--callgrind-out-file={prefix}", *argv],
                       check=True, capture_output=True, env={"PYTHONHASHSEED": "0",
                                                            "PATH": "/usr/bin:/bin",
                                                            "OPENBLAS_NUM_THREADS": "1",
                                                            # every run compiles alike
                                                            "PYTHONDONTWRITEBYTECODE": "1",
                                                            **_pythonpath()})
        return totals(prefix)


def _pythonpath() -> dict:
    import os
    return {"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}


def child(mode: str, kind: str, base: str, pages: int, loops: int) -> list[int]:
    return callgrind([sys.executable, "-c", CHILD, str(HERE), str(HERE.parent), mode, kind, base,
                      str(pages), str(loops)])


def per_page_python(mode: str, kind: str, base: str, pages: int) -> list[float]:
    """Per thread (the main thread first, then the rest summed)."""
    none, two = child(mode, kind, base, pages, 0), child(mode, kind, base, pages, 2)
    main = (two[0] - none[0]) / (2 * pages)
    rest = (sum(two[1:]) - sum(none[1:])) / (2 * pages)
    return [main, rest]


def per_page_fetch(bench, kind: str, base: str, pages: int) -> float:
    first = base + bench.E2E_PATHS[kind]
    last = first + f"&cursor={pages - 1}"
    fetch = str(bench.WORK / "fetch_only")
    mode = "href" if kind == "pyng" else "cursor"
    whole = sum(callgrind([fetch, mode, first, bench.NEXT_KEYS[kind]]))
    one = sum(callgrind([fetch, mode, last, bench.NEXT_KEYS[kind]]))
    return (whole - one) / (pages - 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("kinds", nargs="*")
    ap.add_argument("--pages", type=int, default=100)
    ap.add_argument("--latency", type=float, default=0.005)
    ap.add_argument("--arrow", action="store_true",
                    help="to_arrow() instead: its instructions per page from nginx, the "
                         "reading thread (conversion) and the engine thread apart")
    args = ap.parse_args()
    import bench
    import chain
    import custlist
    kinds = args.kinds or list(bench.KINDS)
    print(f"custlist from {pathlib.Path(custlist.__file__).parent}")
    bench.WORK.mkdir(exist_ok=True)
    bench.ensure_fetch_only()
    rows = []
    port = bench.free_port()
    base = f"http://127.0.0.1:{port}"
    for kind in bench.KINDS:
        bench.write_site(kind, args.pages, base)
    if args.arrow:
        with bench.Nginx(port):
            for kind in kinds:
                reading, engine = per_page_python("arrow", kind, base, args.pages)
                rows.append([kind, f"{reading / 1e3:,.0f} k", f"{engine / 1e3:,.0f} k",
                             f"{(reading + engine) / 1e3:,.0f} k"])
        print(f"\n### to_arrow() in instructions per page ({args.pages} pages x 100 records "
              "from nginx; callgrind, PYTHONHASHSEED=0)\n")
        print("| endpoint | reading thread (conversion) | engine thread | total |")
        print("|---|---|---|---|")
        for r in rows:
            print("| " + " | ".join(r) + " |")
        return
    with bench.Nginx(port):
        for kind in kinds:
            rows.append(measure(bench, kind, base, args.pages, "nginx"))
    with chain.slow_server(bench, args.pages, args.latency, "icount") as slow_base:
        for kind in kinds:
            rows.append(measure(bench, kind, slow_base, args.pages,
                                f"{args.latency * 1000:g} ms/page"))
    print(f"\n### End to end in instructions per page ({args.pages} pages x 100 records; "
          "callgrind, PYTHONHASHSEED=0)\n")
    print("| endpoint | server | end to end: consumer | engine threads | total "
          "| decode only (records iterated) | download only (libcurl loop) "
          "| total / (decode + download) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


def measure(bench, kind: str, base: str, pages: int, server: str) -> list[str]:
    consumer, engine = per_page_python("list", kind, base, pages)
    decode = sum(per_page_python("decode", kind, base, pages))
    fetch = per_page_fetch(bench, kind, base, pages)
    total = consumer + engine
    return [kind, server, f"{consumer / 1e3:,.0f} k", f"{engine / 1e3:,.0f} k",
            f"{total / 1e3:,.0f} k", f"{decode / 1e3:,.0f} k", f"{fetch / 1e3:,.0f} k",
            f"{total / (decode + fetch):.2f}x"]


if __name__ == "__main__":
    main()
