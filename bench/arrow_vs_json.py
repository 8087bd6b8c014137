"""to_arrow() of 1,000,000 records against pyarrow.json.read_json with
threads reading the same records from a newline-delimited file (the
target: custlist faster on Natural, invitations and Commenda), for this
tree's build and, with --before DIR, an older build's (a tree built in
place, e.g. bench/.work/before from bench/before_after.sh), alternating, in
one run.  bench/arrow_bench.py's data and child runs; median of RUNS and
the range (pyarrow.json's threads move by 2x between runs on two cores).

    python bench/arrow_vs_json.py [--runs 3] [--records N] [--before DIR] [KIND ...]
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# numpy's OpenBLAS threads spin at start-up: none here (arrow_bench.py)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

JSON = "pyarrow.json threads"


def child(tree: pathlib.Path, variant: str, kind: str, base: str) -> dict:
    out = subprocess.run([sys.executable, str(tree / "bench" / "arrow_bench.py"), "--child",
                          variant, kind, base], check=True, capture_output=True, text=True,
                         cwd=tree).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("kinds", nargs="*")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--before", type=pathlib.Path)
    args = ap.parse_args()
    import arrow_bench
    import bench
    kinds = args.kinds or list(arrow_bench.KINDS)
    assert JSON in arrow_bench.VARIANTS
    builds = ([("before", args.before.resolve())] if args.before else []) + [("after", HERE.parent)]
    port = bench.free_port()
    base = f"http://127.0.0.1:{port}"
    arrow_bench.WORK.mkdir(parents=True, exist_ok=True)
    for kind in kinds:
        arrow_bench.write_data(kind, args.records, base)
    print(f"\n### to_arrow() of {args.records:,} records against pyarrow.json.read_json with "
          f"threads from a file ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load "
          f"average {bench.load()}, median of {args.runs})\n")
    head = [f"custlist {label}" for label, _ in builds]
    print("| endpoint | " + " | ".join(head) + f" | {JSON} | custlist {builds[-1][0]} / pyarrow.json |")
    print("|---|" + "---|" * (len(head) + 2))
    with bench.Nginx(port, arrow_bench.WORK, arrow_bench.ROUTES):
        for kind in kinds:
            walls = {label: [] for label, _ in builds}
            walls[JSON] = []
            for _ in range(args.runs):              # alternating, so load moves all alike
                for label, tree in builds:
                    r = child(tree, "custlist to_arrow()", kind, base)
                    assert r["rows"] == args.records, r
                    walls[label].append(r["wall"])
                r = child(HERE.parent, JSON, kind, base)
                assert r["rows"] == args.records, r
                walls[JSON].append(r["wall"])
            med = {k: statistics.median(v) for k, v in walls.items()}

            def cell(k):
                return f"{med[k]:.3f} s ({min(walls[k]):.3f}-{max(walls[k]):.3f})"
            print(f"| {kind} | " + " | ".join(cell(label) for label, _ in builds)
                  + f" | {cell(JSON)} | {med[builds[-1][0]] / med[JSON]:.2f}x |")


if __name__ == "__main__":
    main()
