# custlist developer entry points.  Every target sets up what it needs
# (libcurl headers, a virtualenv, the build) and is safe to run again.
PYTHON ?= python3
VENV   ?= .venv
VPY    := $(VENV)/bin/python
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Warnings are errors for the C core, here and in CI.
export CUSTLIST_CFLAGS ?= -Werror

CSRC := $(wildcard csrc/*.c csrc/*.h)

.PHONY: demo test soak sdist-check wheel wheel-check wheel-arm64 wheel-check-arm64 test-py310 test-py312 test-py313 test-py313t test-py314 test-py315 typecheck test-asan test-tsan test-tsan-ft fuzz bench bench-before-after bench-smoke bench-threads sysdeps clean notebooks

demo: $(VENV)/.built
	$(VPY) -m custlist demo

test: $(VENV)/.built
	$(VPY) -m pytest -q

# Every way of reading a listing against the others under seeded random
# faults, for longer than the suite's budget (SOAK_SECONDS, 30 minutes).
SOAK_SECONDS ?= 1800
soak: $(VENV)/.built
	$(VPY) tests/differential.py --seconds $(SOAK_SECONDS) --seed $$(date +%s)

# System packages: libcurl's headers (and a compiler) when missing; nginx
# for the HTTP/2 test (tests/test_http2.py).
sysdeps:
	@command -v curl-config >/dev/null 2>&1 && command -v cc >/dev/null 2>&1 && \
	 { command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; } || { \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libcurl4-openssl-dev gcc make pkg-config nginx-light; }

$(VENV)/.venv-ok:
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip "setuptools>=77" wheel
	touch $@

$(VENV)/.built: $(CSRC) setup.py pyproject.toml | sysdeps $(VENV)/.venv-ok
	$(VPY) -m pip install -q --no-build-isolation -e '.[test]'
	touch $@

# The sdist, installed in a fresh venv, passes its own tests from outside the tree.
sdist-check: $(VENV)/.built
	$(VPY) -m pip install -q build
	VPY=$(VPY) PYTHON=$(PYTHON) bash .ci/sdist-check.sh

# Binary wheels for every CPython of .ci/pythons (cp310 to cp315, x86-64)
# and the arm64 ones (below)
# bundling a trimmed libcurl, in dist/; then each installed into a venv of
# its own interpreter in a bare Debian root and run.  Needs root (chroot).
wheel: | $(VENV)/.venv-ok
	VPY=$(VPY) bash .ci/wheel.sh
	$(MAKE) wheel-arm64

# The arm64 (manylinux aarch64) wheels of the CPythons Debian's arm64 releases
# carry (.ci/arm64.sh: 3.11, 3.13, 3.14, 3.15), cross-compiled here; then each
# (rebuilt first when missing or older than the sources) run under qemu-user in a bare arm64 root, the decode, scan and Arrow tests
# on one of them, and the NEON, SSE2 and portable scans compared.
wheel-arm64: | $(VENV)/.venv-ok
	VPY=$(VPY) bash .ci/wheel-arm64.sh

wheel-check-arm64: $(VENV)/.built
	VPY=$(VPY) bash .ci/wheel-check-arm64.sh

wheel-check: wheel
	VPY=$(VPY) bash .ci/wheel-check.sh

# The suite on the other CPythons of .ci/pythons, whole or .ci/subset as it
# says: pyenv's 3.10 and 3.12 on this host, 3.13 in a Debian 13 root, 3.14
# and 3.15 in a Debian unstable root (roots need root: chroot).
test-py310:
	bash .ci/suite.sh 3.10
test-py312:
	bash .ci/suite.sh 3.12
test-py313:
	bash .ci/suite.sh 3.13
test-py314:
	bash .ci/suite.sh 3.14
test-py315:
	bash .ci/suite.sh 3.15

# Free-threaded CPython 3.13 (3.13t) built from Debian 13's source package
# (.ci/pyft.sh, cached), the whole suite on it with the GIL off (.ci/run's
# third lane).
test-py313t:
	bash .ci/suite.sh 3.13t

# Two threads each listing their own listing against one, on 3.13t with the
# GIL off (bench/threads.py; nginx of that root serves the pages).
bench-threads:
	bash .ci/suite.sh 3.13t --run bench/threads.py --kind natural --pages 1000 --runs 7

# The example notebooks (examples/*.ipynb) run top to bottom with nbclient
# against the bundled sandbox; any error fails.
notebooks: $(VENV)/.built
	$(VPY) -m pip install -q --no-build-isolation -e '.[docs]'
	$(VPY) examples/run.py

# mypy --strict as a user runs it: revealed types of examples/typed_usage.py
# and the errors each snippet in tests/typecheck/ must get; stubtest holds the
# hand-written stub of the C core to the built module (the generated vendor
# stubs are held by tests/test_typing.py and the stale-stub test).
typecheck: $(VENV)/.built
	$(VPY) -m pip install -q "mypy>=2.4"
	$(VPY) tests/typecheck/check.py
	$(VPY) -m mypy.stubtest --ignore-disjoint-bases custlist._core

test-asan: $(VENV)/.built
	bash .ci/asan.sh

# The threaded tests (close from another thread, many pagers in many
# threads, fork, exit) against a ThreadSanitizer build of the core.
test-tsan: $(VENV)/.built
	bash .ci/tsan.sh

# The threaded, fan-out, async and fork tests with the GIL off, on a
# free-threaded CPython 3.13 built with ThreadSanitizer, against a TSan build
# of the core (.ci/tsan-ft.sh; the interpreter is built once and cached).
test-tsan-ft:
	bash .ci/tsan-ft.sh

FUZZ_SECONDS ?= 60
fuzz: $(VENV)/.built
	bash fuzz/run.sh $(FUZZ_SECONDS)

bench: $(VENV)/.built
	bash bench/run.sh

# Every benchmark (bench/run.sh, chain.py, arrow_gil.py, floor.py,
# e2e_icount.py) under the build of REV and under this tree's, alternating:
# bench/.work/before_after/.  About an hour; a quiet machine.
REV ?= 8ed6bdc
bench-before-after: $(VENV)/.built
	VPY=$(abspath $(VPY)) bash bench/before_after.sh $(REV)

bench-smoke: $(VENV)/.built
	bash bench/run.sh --smoke

clean:
	rm -rf build dist *.egg-info custlist/*.so $(VENV)
