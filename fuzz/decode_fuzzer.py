"""Fuzz custlist's JSON decoder (atheris / libFuzzer).

The targets, the reference decoder and the contract checked for every input
live in tests/decode_targets.py, shared with the corpus tests.

    bash fuzz/run.sh [seconds]                    # the fuzzer, sanitizers on
    python fuzz/decode_fuzzer.py --replay FILE... # re-run inputs, print outcomes
    python fuzz/decode_fuzzer.py --targets        # the selector of each target
"""
import os
import pathlib
import sys

# Appended, not prepended: custlist itself comes from the path already set up
# (fuzz/run.sh points it at the instrumented build).
sys.path.append(str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
import decode_targets as fd  # noqa: E402


def one_input(data: bytes) -> None:
    fd.check(data)


def _replay(paths):
    bad = 0
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        if not data:
            print(f"{path}: empty input")
            continue
        target, body, depth = fd.split(data)
        try:
            out = fd.check(data)
            print(f"{path}: target {target.name}, max_depth {depth}, {len(body)} bytes -> "
                  f"{fd._short(out)}")
        except fd.Finding as e:
            bad = 1
            print(f"{path}: target {target.name}, max_depth {depth}, body {fd._short(body)}\n"
                  f"  FINDING: {e}")
    return bad


def main(argv):
    if argv[1:2] == ["--targets"]:
        for i, t in enumerate(fd.TARGETS):
            print(i, t.name)
        return 0
    if argv[1:2] == ["--replay"]:
        return _replay(argv[2:])
    import atheris
    for name in ("ref", "fill", "ref_iso", "ref_unix", "to_plain", "same"):
        setattr(fd, name, atheris.instrument_func(getattr(fd, name)))
    # libFuzzer's -fork/-jobs re-run argv[0] through the shell: make it a command.
    argv = [f"{sys.executable} {os.path.abspath(__file__)}"] + argv[1:]
    atheris.Setup(argv, one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
