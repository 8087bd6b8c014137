"""Every example in README.md runs against the sandbox, on its own, and
prints what its comments say.

Each ```python block runs in a fresh namespace (so a block that used a name
only an earlier block made fails), all in one interpreter; the ```sh blocks
run with bash; both with the environment that `custlist sandbox` prints, as
the README tells a reader to do, against the same sandbox that command
serves.  A comment `# -> TEXT` on a line of a print(...) call is what that
call writes (without the final newline), `...` standing for any text.
```console blocks (install, make) are not run."""
import ast
import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest

from custlist.cli import sandbox_environment, sandbox_server

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
TIMEOUT = 120


def blocks(lang):
    """(first line number, code) of each ```lang block of the README."""
    text = README.read_text(encoding="utf-8")
    out = []
    for m in re.finditer(r"^```(\w+)\n(.*?)^```$", text, re.M | re.S):
        if m.group(1) == lang:
            out.append((text.count("\n", 0, m.start(2)) + 1, m.group(2)))
    return out


@pytest.fixture(scope="module")
def sandbox_env():
    with sandbox_server() as sb:                 # what `custlist sandbox` serves
        env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTLIST_")}
        env.update(sandbox_environment(sb))
        yield sb, env


def test_quick_start_is_two_commands():
    text = README.read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```\w*\n(.*?)```", section, re.S).group(1)
    assert [line.split("#")[0].strip() for line in code.splitlines()] == ["make demo", "make test"]


# Runs the blocks; print() of README code records its output by the line of the call.
RUNNER = """
import builtins, io, json, sys
blocks, outputs = json.loads(sys.argv[1]), {}
real_print = builtins.print

def recording_print(*args, **kwargs):
    if kwargs.get("file") not in (None, sys.stdout):
        return real_print(*args, **kwargs)
    buf = io.StringIO()
    real_print(*args, **{**kwargs, "file": buf})
    frame = sys._getframe(1)
    if frame.f_code.co_filename == "README.md":
        key = str(frame.f_lineno)
        outputs[key] = outputs.get(key, "") + buf.getvalue()
    sys.stdout.write(buf.getvalue())

builtins.print = recording_print
for line, code in blocks:
    real_print(f"--- README.md:{line}", flush=True)
    padded = "\\n" * (line - 1) + code
    exec(compile(padded, "README.md", "exec"), {"__name__": "__main__"})
with open(sys.argv[2], "w", encoding="utf-8") as f:
    json.dump(outputs, f)
real_print("--- all examples ran")
"""


def expected_outputs(examples):
    """{(first, last line of a print call): (line of its comment, expected
    text)} for every `# -> ` comment; an error if one is not on a print call."""
    out = {}
    for line, code in examples:
        tree = ast.parse("\n" * (line - 1) + code)
        prints = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
                  and isinstance(node.func, ast.Name) and node.func.id == "print"]
        for offset, text in enumerate(code.splitlines()):
            if "# -> " not in text:
                continue
            at = line + offset
            calls = [n for n in prints if n.lineno <= at <= n.end_lineno]
            assert len(calls) == 1, f"README.md:{at}: a '# -> ' comment not on one print call"
            out[calls[0].lineno, calls[0].end_lineno] = (at, text.split("# -> ", 1)[1].rstrip())
    return out


def matches(expected, got):
    pattern = ".*?".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, got, re.S) is not None


def test_output_comments_convention():
    assert matches("a ... c", "a b\nb c") and not matches("a ... c", "a b d")
    assert matches("[500, 500]", "[500, 500]") and not matches("[160, 70]", "[500, 500]")
    code = "x = 1\nprint(x,\n      2)   # -> 1 2\n"
    assert expected_outputs([(10, code)]) == {(11, 12): (12, "1 2")}
    with pytest.raises(AssertionError, match="README.md:10"):
        expected_outputs([(10, "x = 1   # -> 1\n")])


def test_python_examples_run_alone_and_print_what_they_say(sandbox_env, tmp_path):
    sb, env = sandbox_env
    examples = blocks("python")
    assert len(examples) >= 9
    expected = expected_outputs(examples)
    assert len(expected) >= 10
    recorded = tmp_path / "printed.json"
    r = subprocess.run([sys.executable, "-c", RUNNER, json.dumps(examples), str(recorded)],
                       capture_output=True, text=True, timeout=TIMEOUT, cwd=tmp_path, env=env,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    assert r.stdout.rstrip().endswith("--- all examples ran")
    printed = {int(k): v for k, v in json.loads(recorded.read_text()).items()}
    wrong = []
    for (first, last), (at, text) in sorted(expected.items()):
        # a call over several lines is attributed to one of them (which one varies by version)
        got = "".join(printed[n] for n in range(first, last + 1) if n in printed) or None
        if got is None or not matches(text, got.removesuffix("\n")):
            wrong.append(f"README.md:{at}: says {text!r}, printed {got!r}")
    assert not wrong, "\n".join(wrong)
    # the examples did talk to every API
    routes = {req.route for req in sb.requests}
    assert {"pyng.token", "pyng.customers", "natural.customers", "natural.invitations",
            "commenda.customers", "demo.offset", "demo.pages", "demo.numbered",
            "demo.linked"} <= routes


def test_shell_examples_run(sandbox_env, tmp_path):
    sb, env = sandbox_env
    examples = blocks("sh")
    assert examples
    bindir = pathlib.Path(sys.executable).parent
    env = {**env, "PATH": f"{bindir}{os.pathsep}{env.get('PATH', '')}"}
    for line, code in examples:
        r = subprocess.run(["bash", "-euo", "pipefail", "-c", code], capture_output=True,
                           text=True, timeout=TIMEOUT, cwd=tmp_path, env=env,
                           stdin=subprocess.DEVNULL)
        assert r.returncode == 0, (f"README.md:{line}", r.stderr)
    # the resume example continued exactly where the first command stopped
    first = (tmp_path / "first.jsonl").read_text().splitlines()
    rest = (tmp_path / "rest.jsonl").read_text().splitlines()
    assert len(first) == 100 and len(first) + len(rest) == 500
    assert len(set(first + rest)) == 500
    assert (tmp_path / "customers.jsonl").read_text().count("\n") == 500


def test_examples_with_null_nested_objects_are_guarded():
    """The sandbox has customers without a party or an address; the examples
    must not read through them unguarded (they used to)."""
    code = "\n".join(c for _, c in blocks("python"))
    for unguarded in (r"c\.party\.name(?! if)", r"c\.shipping_address\.city(?! if)"):
        for m in re.finditer(unguarded, code):
            line = code[code.rfind("\n", 0, m.start()) + 1:code.find("\n", m.end())]
            assert " if c." in line, textwrap.dedent(line)
