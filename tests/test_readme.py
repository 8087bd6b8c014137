"""Every example in README.md runs against the sandbox.

The ```python blocks run in order in one interpreter (later blocks use names
earlier ones made), the ```sh blocks with bash; both with the environment
that `custlist sandbox` prints, as the README tells a reader to do.
```console blocks (install, make) are not run."""
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest

from custlist.cli import sandbox_environment
from custlist.testing import Sandbox

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
    with Sandbox(pyng_customers=160, natural_customers=70, natural_invitations=30,
                 commenda_customers=90, seed=11) as sb:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTLIST_")}
        env.update(sandbox_environment(sb))
        yield sb, env


def test_quick_start_is_two_commands():
    text = README.read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```\w*\n(.*?)```", section, re.S).group(1)
    assert [line.split("#")[0].strip() for line in code.splitlines()] == ["make demo", "make test"]


def test_python_examples_run(sandbox_env, tmp_path):
    sb, env = sandbox_env
    examples = blocks("python")
    assert len(examples) >= 9
    # Each block compiled under its README line numbers, so a failure points there.
    script = ["import sys", "ns = {'__name__': '__main__'}"]
    for line, code in examples:
        padded = "\n" * (line - 1) + code
        script.append(f"print('--- README.md:{line}', flush=True)")
        script.append(f"exec(compile({padded!r}, 'README.md', 'exec'), ns)")
    script.append("print('--- all examples ran')")
    path = tmp_path / "readme_examples.py"
    path.write_text("\n".join(script), encoding="utf-8")
    r = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                       timeout=TIMEOUT, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    assert r.stdout.rstrip().endswith("--- all examples ran")
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
    assert len(first) == 100 and len(first) + len(rest) == 160
    assert len(set(first + rest)) == 160
    assert (tmp_path / "customers.jsonl").read_text().count("\n") == 70


def test_examples_with_null_nested_objects_are_guarded():
    """The sandbox has customers without a party or an address; the examples
    must not read through them unguarded (they used to)."""
    code = "\n".join(c for _, c in blocks("python"))
    for unguarded in (r"c\.party\.name(?! if)", r"c\.shipping_address\.city(?! if)"):
        for m in re.finditer(unguarded, code):
            line = code[code.rfind("\n", 0, m.start()) + 1:code.find("\n", m.end())]
            assert " if c." in line, textwrap.dedent(line)
