"""python -m custlist.testing [--port P] [--customers N] [--seed S] [--latency SECONDS]:
the same as ``custlist sandbox``: serve the sandbox until Ctrl-C and print
the ``export CUSTLIST_...=`` lines that point custlist at it."""
import sys

from ..cli import main

if __name__ == "__main__":
    sys.exit(main(["sandbox", *sys.argv[1:]]))
