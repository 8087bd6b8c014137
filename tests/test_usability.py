"""Small things a user meets early: pickling a client, dates as bounds, the
sandbox's documentation and its latency option."""
import datetime as dt
import functools
import inspect
import os
import pickle
import re
import signal
import time

import pytest

import custlist
from custlist.testing import Sandbox

from .conftest import FAST
from .test_cli import TIMEOUT, _popen, jsonl, one_line, run


def _clients(sb):
    return [custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, **FAST),
            custlist.Natural(sb.natural_token, base_url=sb.natural_url, **FAST),
            custlist.Commenda(sb.commenda_token, base_url=sb.commenda_url, **FAST)]


def test_pickling_a_client_suggests_a_factory(sb):
    for client in _clients(sb):
        name = type(client).__name__
        with pytest.raises(TypeError) as caught:
            pickle.dumps(client)
        message = str(caught.value)
        assert f"functools.partial(custlist.{name}, ...)" in message
        assert "_core" not in message and "RateLimiter" not in message
        assert sb.requests == []
    # what it suggests works: the factory pickles, and its client lists
    make = functools.partial(custlist.Natural, sb.natural_token, base_url=sb.natural_url, **FAST)
    again = pickle.loads(pickle.dumps(make))()
    assert list(again.customers()) == list(make().customers())


def test_dates_are_whole_days_as_invitation_bounds(sb, pyng):
    everyone = list(pyng.customers("site_1"))
    day = everyone[len(everyone) // 2].invited_at.date()          # a day with invitations
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)
    end_ms = int((start + dt.timedelta(days=1)).timestamp() * 1000) - 1
    sb.requests.clear()
    by_date = list(pyng.customers("site_1", invited_from=day, invited_to=day))
    by_moment = list(pyng.customers("site_1", invited_from=start, invited_to=end_ms))
    assert by_date == by_moment and by_date
    assert all(c.invited_at.date() == day for c in by_date)
    sent = [r.query for r in sb.requests if r.route == "pyng.customers"][0]
    assert sent["invitedFrom"] == str(int(start.timestamp() * 1000))
    assert sent["invitedTo"] == str(end_ms)
    assert len(by_date) == sum(1 for c in everyone if c.invited_at.date() == day)
    # the same from fan-out; a date after the end is refused before any request
    out = list(pyng.customers_many(["site_1"], invited_from=day, invited_to=day))
    assert [c for _, c in out] == by_date
    sb.requests.clear()
    with pytest.raises(ValueError, match="invited_from must not be after invited_to"):
        pyng.customers("site_1", invited_from=day + dt.timedelta(days=1), invited_to=day)
    with pytest.raises(ValueError, match="timezone-aware"):
        pyng.customers("site_1", invited_from=dt.datetime(2026, 3, 1))
    assert sb.requests == []


def test_sandbox_documents_every_parameter():
    doc = inspect.getdoc(Sandbox)
    for name in inspect.signature(Sandbox).parameters:
        assert f"``{name}``" in doc, name


def test_sandbox_command_serves_with_latency():
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTLIST_")}
    proc = _popen(["sandbox", "--customers", "5", "--latency", "0.4"], env)
    try:
        lines = []
        while not lines or not lines[-1].startswith("# then:"):
            lines.append(proc.stdout.readline())
            assert lines[-1], proc.stderr.read()
        assert "0.4 s per request" in lines[0]
        exports = dict(re.fullmatch(r"export (CUSTLIST_\w+)=(\S+)\n", line).groups()
                       for line in lines if line.startswith("export"))
        began = time.monotonic()
        r = run(["natural", "customers"], {**env, **exports})
        took = time.monotonic() - began
        assert r.returncode == 0 and len(jsonl(r.stdout)) == 5
        assert took >= 0.4
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0
    finally:
        proc.kill()
    for bad in ("-1", "soon", "61"):
        one_line(run(["sandbox", "--latency", bad], env), 2, "--latency", bad)
