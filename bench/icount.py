"""Instructions per decoded page, counted by callgrind (repeatable on a busy
machine, unlike time).

    python bench/icount.py KIND LIBRARY LOOPS     # the child callgrind runs
    python bench/icount.py --table [--smoke]      # every endpoint x library

Each count is (instructions with LOOPS decodes - instructions with none) /
LOOPS, so imports, page generation and start-up cancel out."""
from __future__ import annotations

import os
import pathlib
import random
import re
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

KINDS = ("pyng", "natural", "invitations", "commenda")
LIBS = ("custlist", "msgspec Structs", "orjson + dataclasses")


def decoder(kind: str, lib: str):
    import bench
    import peers
    from custlist import commenda, natural, pyng
    ep = {"pyng": pyng.CUSTOMERS, "natural": natural.CUSTOMERS,
          "invitations": natural.INVITATIONS, "commenda": commenda.CUSTOMERS}[kind]
    body = bench.render(kind, bench.page_items(kind, random.Random(1), 100), 1, "http://127.0.0.1:1")
    f = {"custlist": ep.decode, "msgspec Structs": peers.MSGSPEC[kind],
         "orjson + dataclasses": lambda b: peers.orjson_dataclasses(kind, b)}[lib]
    f(body)                                     # warm caches and lazy imports alike
    return f, body


def child(kind: str, lib: str, loops: int) -> None:
    # every decoder warms up in every child, so one empty run is the baseline of all
    fs = {(k, name): decoder(k, name) for k in KINDS for name in LIBS}
    if loops:
        f, body = fs[(kind, lib)]
        for _ in range(loops):
            f(body)


def count(kind: str, lib: str, loops: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        env = dict(os.environ, PYTHONHASHSEED="0")
        r = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
                            sys.executable, __file__, kind, lib, str(loops)],
                           capture_output=True, text=True, check=True, env=env)
        m = re.search(r"Collected : (\d+)", r.stderr)
        if m is None:
            raise RuntimeError(r.stderr[-2000:])
        return int(m.group(1))


def counts(kinds, loops: int) -> dict:
    """{kind: {library: instructions per page}}."""
    zero = count(KINDS[0], LIBS[0], 0)
    return {kind: {lib: (count(kind, lib, loops) - zero) / loops for lib in LIBS} for kind in kinds}


def rows(kinds, loops: int, verdict) -> list:
    out = []
    for kind, n in counts(kinds, loops).items():
        base = n["custlist"]
        for lib in LIBS:
            goal = {"msgspec Structs": 1.3, "orjson + dataclasses": 4.0}.get(lib)
            ratio = n[lib] / base
            out.append([kind, lib, f"{n[lib] / 1e3:,.0f} k", f"{ratio:.2f}x",
                        "" if goal is None else f">= {goal}x " + verdict(ratio >= goal)])
    return out


if __name__ == "__main__":
    if len(sys.argv) == 4:
        child(sys.argv[1], sys.argv[2], int(sys.argv[3]))
    else:
        smoke = "--smoke" in sys.argv
        for r in rows(KINDS[:1] if smoke else KINDS, 1 if smoke else 20, lambda ok: "(smoke)" if smoke else ("PASS" if ok else "FAIL")):
            print(" | ".join(map(str, r)))
