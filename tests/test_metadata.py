"""The package metadata claims exactly the CPython versions that CI builds
wheels for and runs this suite on, as .ci/pythons lists them; the Makefile
and .ci/run run what that table says; and the interpreter running the suite
is one of them."""
import pathlib
import re
import shlex
import subprocess
import sys

from packaging.specifiers import SpecifierSet

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def table() -> dict:
    """.ci/pythons: version -> (build, smoke, suite)."""
    rows = {}
    for line in (ROOT / ".ci" / "pythons").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            version, build, smoke, suite = line.split()
            assert version not in rows, f"{version} listed twice"
            rows[version] = (build, smoke, suite)
    return rows


# X.Yt: the free-threaded build of X.Y (a cpXY-cpXYt wheel, its own suite).
FREE_THREADED = {v for v in table() if v.endswith("t")}
TESTED = set(table()) - FREE_THREADED
FREE_THREADING_CLASSIFIER = "Programming Language :: Python :: Free Threading :: 2 - Beta"


def minor(version: str) -> int:
    return int(version.split(".")[1])


def classified() -> set:
    pattern = re.compile(r"Programming Language :: Python :: (3\.\d+)")
    return {m.group(1) for c in PROJECT["classifiers"] if (m := pattern.fullmatch(c))}


def make_targets() -> dict:
    """Makefile: target -> its recipe lines."""
    targets, current = {}, None
    for line in (ROOT / "Makefile").read_text(encoding="utf-8").splitlines():
        if line.startswith("\t") and current:
            targets[current].append(line.strip())
        elif (m := re.match(r"([\w.\-/$()]+):(?!=)", line)):
            current = m.group(1)
            targets[current] = []
        elif not line.startswith("\t"):
            current = None
    return targets


def ci_commands() -> list:
    """The make commands .ci/run runs: its lanes' steps (the lines of its
    `*_steps=(...)` lists, each a make target with its arguments) and its
    own `make` lines, in the order they appear."""
    ran, in_lane = [], False
    for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines():
        words = shlex.split(line, comments=True)
        if in_lane:
            if words == [")"]:
                in_lane = False
            elif words:
                ran.append(["make"] + words)
        elif len(words) == 1 and words[0].endswith("_steps=("):
            in_lane = True
        elif line.startswith("make "):
            ran.append(words)
    return ran


def test_the_table_lists_consecutive_versions_with_a_suite_each():
    minors = sorted(minor(v) for v in TESTED)
    assert minors == list(range(minors[0], minors[-1] + 1))
    assert all(row[2] in ("full", "subset") for row in table().values())
    # The oldest and the newest run the whole suite.
    oldest, newest = (f"3.{m}" for m in (minors[0], minors[-1]))
    assert table()[oldest][2] == table()[newest][2] == "full"


def test_classifiers_name_the_tested_versions():
    assert classified() == TESTED


def test_free_threaded_builds_are_claimed_exactly_when_ci_runs_them_whole():
    # Each is the free-threaded build of a listed version with a make target
    # for the whole suite; the free-threading classifier is there exactly
    # when CI runs one of those targets (a build whose suite does not pass
    # whole yet keeps its target and its wheel, and claims nothing).
    ran = ci_commands()
    for v in FREE_THREADED:
        assert v[:-1] in TESTED, v
        assert table()[v][0].startswith("ft:") and table()[v][2] == "full", v
    in_ci = any(["make", "test-py" + v.replace(".", "")] in ran for v in FREE_THREADED)
    assert (FREE_THREADING_CLASSIFIER in PROJECT["classifiers"]) == in_ci


def test_requires_python_starts_at_the_oldest_tested_version():
    spec = SpecifierSet(PROJECT["requires-python"])
    oldest = min(TESTED, key=minor)
    assert all(spec.contains(f"{v}.0") for v in TESTED)
    assert not spec.contains(f"3.{minor(oldest) - 1}.18")
    assert spec.contains(f"{oldest}.0")


def test_make_and_ci_run_the_suite_on_every_version():
    targets = make_targets()
    ran = ci_commands()
    for version, (build, _, _) in table().items():
        if build == "venv":
            # The developer venv's interpreter: make test, CI's suite lane.
            assert ran[-1] == ["make", "test"]
            assert any("-m pytest" in line for line in targets["test"])
            continue
        target = "test-py" + version.replace(".", "")
        assert targets.get(target) == [f"bash .ci/suite.sh {version}"], target
        if version in FREE_THREADED:
            continue                 # in CI once whole: see the test below
        assert ["make", target] in ran, target


def test_make_wheel_builds_and_ci_checks_every_version():
    targets = make_targets()
    # No version arguments: .ci/wheel.sh and .ci/wheel-check.sh then take
    # every version of .ci/pythons.
    assert targets["wheel"][0] == "VPY=$(VPY) bash .ci/wheel.sh"
    assert targets["wheel-check"] == ["VPY=$(VPY) bash .ci/wheel-check.sh"]
    assert ["make", "wheel-check"] in ci_commands()
    for script in ("wheel.sh", "wheel-check.sh"):
        text = (ROOT / ".ci" / script).read_text(encoding="utf-8")
        assert "versions=($(python_versions))" in text, script


def arm64_versions() -> list:
    """The CPythons .ci/arm64.sh builds arm64 wheels for."""
    return subprocess.run(["bash", "-c", "source .ci/arm64.sh && arm64_versions"], cwd=ROOT,
                          check=True, capture_output=True, text=True).stdout.split()


def readme_wheel_rows() -> dict:
    """The README's table of wheels: platform cell -> its CPython cell."""
    rows = {}
    for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 3 and "wheel tag" not in cells[0]:
            rows[cells[0]] = cells[1]
    return rows


def test_the_readme_names_the_wheels_that_are_built():
    # The x86-64 row names exactly the tags of .ci/pythons, which make wheel
    # builds and make wheel-check installs; its glibc is Debian 11's, where
    # .ci/wheel.sh compiles them.
    rows = readme_wheel_rows()
    x86 = [p for p in rows if "x86_64" in p]
    # The arm64 row names exactly the versions .ci/arm64.sh builds.
    arm = [p for p in rows if "aarch64" in p]
    assert arm == ["Linux arm64 (aarch64), glibc 2.34+ (`manylinux_2_34_aarch64`)"], rows
    assert rows[arm[0]].split() == ["cp" + v.replace(".", "") for v in sorted(arm64_versions(), key=minor)]
    assert x86[0] == "Linux x86-64, glibc 2.31+ (`manylinux_2_31_x86_64`)", rows
    assert rows[x86[0]].split() == ["cp" + v.replace(".", "") for v in sorted(TESTED, key=minor)]
    # The free-threaded builds of .ci/pythons, in a row of their own.
    ft = [p for p in x86[1:] if "free-threaded" in p]
    assert len(x86) == 1 + len(ft) and len(ft) == (1 if FREE_THREADED else 0), rows
    if ft:
        assert rows[ft[0]].split() == sorted("cp" + v.replace(".", "") for v in FREE_THREADED)
    assert "BUILD_ROOT=bullseye-build" in (ROOT / ".ci" / "wheel.sh").read_text(encoding="utf-8")
    assert "bullseye-build) suite=bullseye;" in (ROOT / ".ci" / "roots.sh").read_text(encoding="utf-8")


def test_make_wheel_builds_and_ci_checks_the_arm64_wheels():
    targets = make_targets()
    assert targets["wheel"][1:] == ["$(MAKE) wheel-arm64"]
    assert targets["wheel-arm64"] == ["VPY=$(VPY) bash .ci/wheel-arm64.sh"]
    assert targets["wheel-check-arm64"] == ["VPY=$(VPY) bash .ci/wheel-check-arm64.sh"]
    assert ["make", "wheel-check-arm64"] in ci_commands()
    for script in ("wheel-arm64.sh", "wheel-check-arm64.sh"):
        text = (ROOT / ".ci" / script).read_text(encoding="utf-8")
        assert "versions=($(arm64_versions))" in text, script
    # Every arm64 wheel is of a CPython the metadata claims.
    arm64 = arm64_versions()
    assert arm64 and set(arm64) <= TESTED


def test_the_subset_names_existing_test_files():
    listed = [line.split("#")[0].strip() for line in
              (ROOT / ".ci" / "subset").read_text(encoding="utf-8").splitlines()]
    listed = [f for f in listed if f]
    assert listed and len(set(listed)) == len(listed)
    for f in listed:
        assert (ROOT / f).is_file(), f


def test_this_interpreter_is_a_claimed_version():
    assert "%d.%d" % sys.version_info[:2] in classified()
