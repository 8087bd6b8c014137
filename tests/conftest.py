"""Shared fixtures: a sandbox server on loopback and clients pointed at it."""
import signal
import time

import pytest

import custlist
from custlist.testing import Sandbox

# Fast retries in tests: the behaviour is the same, the sleeps are shorter.
FAST = dict(backoff=0.01, backoff_max=0.05, retry_after_max=0.2)

# A suite started in the background by a shell without job control inherits
# SIGINT ignored, and Python then leaves it ignored: Ctrl-C could not be
# simulated (interrupt_main does nothing) and children would inherit it too.
# The Ctrl-C tests need the interpreter's usual handler, as in a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def sandbox():
    with Sandbox(pyng_customers=237, natural_customers=145, natural_invitations=83,
                 commenda_customers=161, seed=7) as sb:
        yield sb


def settle(sandbox, wait: float = 2.0) -> None:
    """Let requests still being sent, read or answered (a previous test's
    prefetch, say) finish, so that they cannot take a fault or a place in the
    log meant for the next test.  Two looks in a row must find it idle: a
    request passes from the socket to the handler between two of them."""
    deadline = time.monotonic() + wait
    idle = 0
    while idle < 2 and time.monotonic() < deadline:
        idle = 0 if sandbox.busy() else idle + 1
        if idle < 2:
            time.sleep(0.002)


def quiet(sandbox, still: float = 0.1, wait: float = 5.0) -> None:
    """settle(), and then until the log has not grown for `still` seconds: a
    page a closed pager's fetch thread sent ahead may reach the server only
    after the last request in flight was answered."""
    deadline = time.monotonic() + wait
    seen, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        if sandbox.in_flight or len(sandbox.requests) != seen:
            seen, since = len(sandbox.requests), time.monotonic()
        elif time.monotonic() - since >= still:
            return
        time.sleep(0.01)


@pytest.fixture
def sb(sandbox):
    """The session sandbox with a clean request log and no faults left over."""
    settle(sandbox)
    sandbox.clear_faults()
    sandbox.requests.clear()
    yield sandbox
    sandbox.clear_faults()


@pytest.fixture
def pyng(sb):
    return custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, **FAST)


@pytest.fixture
def natural(sb):
    return custlist.Natural(sb.natural_token, base_url=sb.natural_url, **FAST)


@pytest.fixture
def commenda(sb):
    return custlist.Commenda(sb.commenda_token, base_url=sb.commenda_url, **FAST)
