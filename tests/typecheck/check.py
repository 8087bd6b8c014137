"""mypy --strict as a user runs it, on examples/typed_usage.py and on snippets
that must fail:

    python tests/typecheck/check.py        (make typecheck)

* examples/typed_usage.py type-checks clean, and each line marked
  ``# revealed: T`` makes mypy reveal exactly T;
* each tests/typecheck/fail_*.py gets exactly the errors its lines announce
  with ``# error: code`` -- a misspelled name, a wrong type, an unchecked
  None -- and no other.

Exit 0 when everything holds, else 1 with what differed.
"""
import pathlib
import re
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
EXAMPLE = ROOT / "examples" / "typed_usage.py"
FAILING = sorted(HERE.glob("fail_*.py"))
REVEALED = re.compile(r"^\s*reveal_type\(.*#\s*revealed:\s*(.+?)\s*$")
EXPECTED_ERROR = re.compile(r"#\s*error:\s*([\w-]+(?:\s*,\s*[\w-]+)*)\s*$")
MYPY_LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): (?P<kind>error|note): (?P<text>.*?)"
                       r"(?:  \[(?P<code>[\w-]+)\])?$")


def marks(path: pathlib.Path, pattern: re.Pattern) -> dict:
    out = {}
    for n, text in enumerate(path.read_text().splitlines(), 1):
        m = pattern.search(text)
        if m:
            out[n] = m.group(1)
    return out


def run_mypy(files) -> list:
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(HERE / "mypy.ini"),
         "--no-error-summary", "--no-pretty", "--show-absolute-path", *map(str, files)],
        capture_output=True, text=True, cwd=ROOT, timeout=600)
    if proc.returncode not in (0, 1) or proc.stderr.strip():
        sys.exit(f"mypy failed to run (exit {proc.returncode}):\n{proc.stderr}{proc.stdout}")
    return [m.groupdict() for m in map(MYPY_LINE.match, proc.stdout.splitlines()) if m]


def main() -> int:
    found = run_mypy([EXAMPLE, *FAILING])
    problems = []
    by_file: dict = {}
    for d in found:
        by_file.setdefault(pathlib.Path(d["file"]).resolve(), []).append(d)

    # The example: no error; every revealed type as announced.
    revealed = {int(d["line"]): d["text"] for d in by_file.get(EXAMPLE, [])
                if d["kind"] == "note" and d["text"].startswith("Revealed type is ")}
    for d in by_file.get(EXAMPLE, []):
        if d["kind"] == "error":
            problems.append(f"{EXAMPLE.name}:{d['line']}: unexpected error: {d['text']}")
    expected = marks(EXAMPLE, REVEALED)
    if not expected:
        problems.append(f"{EXAMPLE.name}: no '# revealed:' lines")
    for line, want in expected.items():
        got = revealed.pop(line, None)
        if got != f'Revealed type is "{want}"':
            problems.append(f"{EXAMPLE.name}:{line}: expected {want!r}, mypy: {got!r}")
    for line, got in revealed.items():
        problems.append(f"{EXAMPLE.name}:{line}: reveal_type without a '# revealed:' mark: {got}")

    # The failing snippets: exactly the announced errors.
    for path in FAILING:
        want = {(line, code.strip()) for line, codes in marks(path, EXPECTED_ERROR).items()
                for code in codes.split(",")}
        if not want:
            problems.append(f"{path.name}: no '# error:' lines")
        got = {(int(d["line"]), d["code"]) for d in by_file.get(path, []) if d["kind"] == "error"}
        for line, code in sorted(want - got):
            problems.append(f"{path.name}:{line}: mypy did not report [{code}]")
        for line, code in sorted(got - want):
            text = next(d["text"] for d in by_file[path]
                        if int(d["line"]) == line and d["code"] == code)
            problems.append(f"{path.name}:{line}: unexpected [{code}] {text}")
        print(f"typecheck: {path.name}: {len(want & got)} of {len(want)} expected errors reported")

    print(f"typecheck: {EXAMPLE.name}: {len(expected)} revealed types checked", flush=True)
    for p in problems:
        print("typecheck: FAIL " + p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
