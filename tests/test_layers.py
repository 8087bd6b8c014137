"""csrc/README.md names every C file's concern and puts the files in
layers, from the top down; a file calls only into its own layer or the
ones below.  Read from the sources: each cl_ function a file calls, against
the file that defines it."""
import pathlib
import re

CSRC = pathlib.Path(__file__).resolve().parent.parent / "csrc"


def layers(readme: str) -> dict:
    """file stem -> its section's number, in the README's order."""
    out, section = {}, -1
    for line in readme.splitlines():
        if line.startswith("## "):
            section += 1
        m = re.match(r"\| `([a-z_0-9]+)\.c` \|", line)
        if m:
            assert m.group(1) not in out, f"{m.group(1)}.c is in two tables"
            out[m.group(1)] = section
    return out


def calls(csrc: pathlib.Path) -> list:
    """(caller, callee, function) for each cl_ function of another .c file."""
    defined, texts = {}, {}
    for f in sorted(csrc.glob("*.c")):
        text = re.sub(r"/\*.*?\*/", "", f.read_text(), flags=re.S)     # not in comments
        texts[f.stem] = text
        for name in re.findall(r"^(cl_[a-z0-9_]+)\(", text, flags=re.M):
            defined.setdefault(name, f.stem)
    out = []
    for stem, text in texts.items():
        for name in sorted(set(re.findall(r"\b(cl_[a-z0-9_]+)\s*\(", text))):
            owner = defined.get(name)
            if owner is not None and owner != stem:
                out.append((stem, owner, name))
    return out


def upward(csrc: pathlib.Path) -> list:
    layer = layers((csrc / "README.md").read_text())
    return [(a, b, f) for a, b, f in calls(csrc) if layer[b] < layer[a]]


def test_every_c_file_is_in_the_readme_once():
    named = set(layers((CSRC / "README.md").read_text()))
    assert named == {f.stem for f in CSRC.glob("*.c")}


def test_the_reading_of_the_sources_finds_the_calls():
    found = set(calls(CSRC))
    # a sample the engine cannot work without, across layers
    assert ("pager_request", "errors", "cl_raise_transport") in found
    assert ("chain", "token", "cl_token_poll") in found
    assert ("multi", "token", "cl_token_renewed") in found
    assert ("token", "send", "cl_request_spec_free") in found
    assert ("decode", "record", "cl_record_alloc") in found
    assert ("http", "shape", "cl_shape_feed") in found
    assert len(found) > 150


def test_no_call_goes_up():
    assert upward(CSRC) == []
