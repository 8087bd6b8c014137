"""Run the example notebooks top to bottom with nbclient, as CI does
(``make notebooks``): any cell that raises fails the run.

    python examples/run.py [NOTEBOOK ...]      # default: every examples/*.ipynb
"""
from __future__ import annotations

import pathlib
import sys
import tempfile

import nbformat
from nbclient import NotebookClient


def main(argv: list[str]) -> int:
    here = pathlib.Path(__file__).resolve().parent
    paths = [pathlib.Path(a) for a in argv] or sorted(here.glob("*.ipynb"))
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        with tempfile.TemporaryDirectory() as cwd:      # nothing written into the tree
            NotebookClient(nb, timeout=300, kernel_name="python3",
                           resources={"metadata": {"path": cwd}}).execute()
        errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
        if errors:
            print(f"{path}: {errors[0].ename}: {errors[0].evalue}", file=sys.stderr)
            return 1
        print(f"{path.name}: all {sum(c.cell_type == 'code' for c in nb.cells)} code cells ran")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
