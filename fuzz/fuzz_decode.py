"""libFuzzer (atheris) entry point for the decoder; see targets.py."""
import sys

import atheris

with atheris.instrument_imports():
    import targets


def one_input(data: bytes) -> None:
    targets.run(data)


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
