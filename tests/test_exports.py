"""The C core exposes one symbol to the dynamic linker: its module init
function.  Everything else (the engine's cl_* functions, and in a wheel the
libcurl linked into it) stays private, so it cannot clash with, or be
interposed by, another extension or library loaded into the same process."""
import subprocess

import custlist._core


def dynamic_symbols(path: str) -> set:
    """The defined symbols in the dynamic symbol table, as `nm -D` lists them."""
    out = subprocess.run(["nm", "-D", "--defined-only", path], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip()}


def test_only_the_module_init_function_is_exported():
    assert dynamic_symbols(custlist._core.__file__) == {"PyInit__core"}

