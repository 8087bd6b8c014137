"""Build the custlist._core extension against libcurl.

libcurl is located with curl-config, then pkg-config.  CUSTLIST_CFLAGS adds
compiler flags (CI sets -Werror and the sanitizers through it).

For the binary wheels (.ci/wheel.sh): CUSTLIST_LIBCURL_STATIC=1 links the static
libcurl that pkg-config finds into the extension, its symbols kept private;
CUSTLIST_PYTHON_INCLUDE and CUSTLIST_EXT_SUFFIX build for another CPython's
headers than the running one's."""
import os
import shlex
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

MISSING = """
custlist needs libcurl's development headers to build its C core.
Install them, then retry:
    Debian/Ubuntu:  apt-get install libcurl4-openssl-dev
    Fedora/RHEL:    dnf install libcurl-devel
    macOS:          brew install curl
"""


def _run(*cmd):
    try:
        return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return None


def libcurl_flags():
    """(compile flags, link flags) for libcurl, or exit with a clear message."""
    if os.environ.get("CUSTLIST_LIBCURL_STATIC"):
        cflags = _run("pkg-config", "--static", "--cflags", "libcurl")
        libs = _run("pkg-config", "--static", "--libs", "libcurl")
        if cflags is None or libs is None:
            sys.exit("CUSTLIST_LIBCURL_STATIC is set but pkg-config finds no libcurl")
        return cflags, libs + ["-Wl,--exclude-libs,ALL", "-Wl,--gc-sections"]
    if shutil.which("curl-config"):
        cflags, libs = _run("curl-config", "--cflags"), _run("curl-config", "--libs")
        if cflags is not None and libs is not None:
            return cflags, libs
    if shutil.which("pkg-config"):
        cflags, libs = _run("pkg-config", "--cflags", "libcurl"), _run("pkg-config", "--libs", "libcurl")
        if cflags is not None and libs is not None:
            return cflags, libs
    sys.exit(MISSING)


def extension():
    cflags, libs = libcurl_flags()
    # Hidden by default: only PyInit__core (PyMODINIT_FUNC marks it visible)
    # reaches the dynamic symbol table; the engine's cl_* functions stay private.
    # CPython's pyconfig.h comes first in every file, as if each included
    # Python.h before any system header: its feature macros (_POSIX_C_SOURCE,
    # _XOPEN_SOURCE) are then what the C library's headers see, not
    # redefinitions after them (3.15 asks for POSIX 2024, which glibc before
    # 2.40 does not set for _GNU_SOURCE: -Werror failed).
    extra = ["-std=c11", "-D_GNU_SOURCE", "-include", "pyconfig.h", "-Wall", "-Wextra",
             "-Wno-missing-field-initializers", "-Wno-cast-function-type", "-fvisibility=hidden"]
    extra += shlex.split(os.environ.get("CUSTLIST_CFLAGS", ""))
    sources = sorted(os.path.join("csrc", f) for f in os.listdir("csrc") if f.endswith(".c"))
    return Extension(
        "custlist._core",
        sources=sources,
        depends=[os.path.join("csrc", f) for f in os.listdir("csrc") if f.endswith(".h")],
        extra_compile_args=cflags + extra,
        extra_link_args=libs + shlex.split(os.environ.get("CUSTLIST_LDFLAGS", "")) + ["-lpthread", "-lm"],
    )


class BuildExt(build_ext):
    def finalize_options(self):
        super().finalize_options()
        target = os.environ.get("CUSTLIST_PYTHON_INCLUDE")
        if target:
            self.include_dirs[:0] = target.split(os.pathsep)

    def get_ext_filename(self, fullname):
        suffix = os.environ.get("CUSTLIST_EXT_SUFFIX")
        if suffix:
            return os.path.join(*fullname.split(".")) + suffix
        return super().get_ext_filename(fullname)


# Building an sdist must not need libcurl; only building the extension does.
_sdist_only = len(sys.argv) > 1 and sys.argv[1] in ("sdist", "egg_info", "dist_info")
setup(ext_modules=[] if _sdist_only else [extension()], cmdclass={"build_ext": BuildExt})
