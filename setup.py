"""Build the custlist._core extension against libcurl.

libcurl is located with curl-config, then pkg-config.  CUSTLIST_CFLAGS adds
compiler flags (CI sets -Werror and the sanitizers through it)."""
import os
import shlex
import shutil
import subprocess
import sys

from setuptools import Extension, setup

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
    extra = ["-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Wno-missing-field-initializers",
             "-Wno-cast-function-type"]
    extra += shlex.split(os.environ.get("CUSTLIST_CFLAGS", ""))
    sources = sorted(os.path.join("csrc", f) for f in os.listdir("csrc") if f.endswith(".c"))
    return Extension(
        "custlist._core",
        sources=sources,
        depends=[os.path.join("csrc", f) for f in os.listdir("csrc") if f.endswith(".h")],
        extra_compile_args=cflags + extra,
        extra_link_args=libs + shlex.split(os.environ.get("CUSTLIST_LDFLAGS", "")) + ["-lpthread", "-lm"],
    )


# Building an sdist must not need libcurl; only building the extension does.
_sdist_only = len(sys.argv) > 1 and sys.argv[1] in ("sdist", "egg_info", "dist_info")
setup(ext_modules=[] if _sdist_only else [extension()])
