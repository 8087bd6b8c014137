"""The package metadata claims exactly the CPython versions that CI builds
wheels for and runs this suite on (3.11 on the host, 3.13 in a Debian 13
root: .ci/run), and the interpreter running the suite is one of them."""
import pathlib
import re
import sys
import tomllib

from packaging.specifiers import SpecifierSet

PROJECT = tomllib.loads((pathlib.Path(__file__).resolve().parent.parent / "pyproject.toml")
                        .read_text(encoding="utf-8"))["project"]
TESTED = {"3.11", "3.13"}


def classified() -> set:
    pattern = re.compile(r"Programming Language :: Python :: (3\.\d+)")
    return {m.group(1) for c in PROJECT["classifiers"] if (m := pattern.fullmatch(c))}


def test_classifiers_name_the_tested_versions():
    assert classified() == TESTED


def test_requires_python_admits_exactly_the_tested_versions():
    spec = SpecifierSet(PROJECT["requires-python"])
    admitted = {f"3.{minor}" for minor in range(0, 30) if spec.contains(f"3.{minor}.0")}
    assert admitted == TESTED
    assert not spec.contains("3.12.4") and spec.contains("3.13.5")


def test_this_interpreter_is_a_claimed_version():
    assert "%d.%d" % sys.version_info[:2] in classified()
