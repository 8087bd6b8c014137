"""One engine performs every request: a pager on its own runs on a driver of
its own (one multi handle, one thread, concurrency 1), a fan-out's pagers on
a shared one; the same loop paces, retries, logs and cancels either way.
Scenarios that count threads or file descriptors run in a subprocess with a
deadline."""
import base64
import json
import logging
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest

import custlist
from custlist import errors

from .conftest import quiet

FAST = dict(backoff=0.01, backoff_max=0.05, retry_after_max=0.2)
CSRC = pathlib.Path(__file__).resolve().parent.parent / "csrc"


def _run(code: str, timeout: float = 60) -> str:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


# ---- the same requests and the same attempt log, alone or in a fan-out ------

FAULTS = {
    # page 2 answers 503 twice, then the page
    "503 twice": [dict(status=503, skip=1, times=2)],
    # page 3 is throttled once with a Retry-After of 0 s
    "429 Retry-After": [dict(status=429, retry_after="0", skip=2, times=1)],
    # page 2's connection is reset once, then a 502
    "reset then 502": [dict(reset=True, skip=1, times=1), dict(status=502, skip=1, times=1)],
    # page 4 fails for good: 500 on every attempt (max_retries 2: 3 attempts)
    "500 for good": [dict(status=500, skip=3, times=None)],
    # a Retry-After over retry_after_max: given up at once
    "Retry-After too long": [dict(status=503, retry_after="30", skip=1, times=1)],
}

_NUMBERS = re.compile(r"\d+\.\d+ (ms|s)\b")


def _attempt_lines(records):
    """The "custlist" logger's lines, durations and jittered delays blanked
    (they are measured, not chosen)."""
    return [(r.levelname, _NUMBERS.sub("<t>", r.getMessage())) for r in records
            if r.name == "custlist"]


def _page_named(cursor: str):
    """A Pyng cursor's state without the second it was signed in (two runs of
    one listing a second apart hold different cursors to the same page)."""
    payload = cursor.split(".")[0]
    state = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    state.pop("t", None)
    return state


def _wire(sb):
    return [(r.path, sorted((k, _page_named(v) if k == "cursor" else v)
                            for k, v in r.query.items()))
            for r in sb.requests]


def _listing(sb, caplog, faults, together: bool):
    """Inject the faults, list site_1 (20 a page) alone or as a fan-out of
    one: (records, error, requests on the wire, attempt log lines)."""
    quiet(sb)
    sb.requests.clear()
    sb.clear_faults()
    for f in faults:
        sb.inject("pyng.customers", **f)
    caplog.clear()
    client = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, max_retries=2, **FAST)
    pager = client.customers(site_id="site_1", limit=20)
    got, error = [], None
    with caplog.at_level(logging.DEBUG, logger="custlist"):
        if together:
            out = custlist.fan_out({"site_1": pager}, concurrency=1)
            got = [rec for _, rec in out]
            error = out.summary.errors.get("site_1")
        else:
            try:
                for rec in pager:
                    got.append(rec)
            except errors.CustlistError as e:
                error = e
            pager.close()
    quiet(sb)
    wire = _wire(sb)
    sb.clear_faults()
    return got, error, wire, _attempt_lines(caplog.records)


@pytest.mark.parametrize("case", list(FAULTS))
def test_a_listing_alone_and_a_fan_out_of_one_send_the_same_requests_and_log_the_same_attempts(
        sb, caplog, case):
    alone = _listing(sb, caplog, FAULTS[case], together=False)
    one = _listing(sb, caplog, FAULTS[case], together=True)
    got_a, err_a, wire_a, log_a = alone
    got_o, err_o, wire_o, log_o = one
    assert got_a == got_o
    assert wire_a == wire_o
    assert log_a == log_o
    # the faults were met: retries logged, or the error raised the same way
    assert any(level == "WARNING" for level, _ in log_a) or err_a is not None
    assert type(err_a) is type(err_o)
    if err_a is not None:
        assert (err_a.status, err_a.attempts) == (err_o.status, err_o.attempts)
        trace = re.compile(r"\[trace [0-9a-f-]+\]")         # the server's, per response
        assert trace.sub("", str(err_a)) == trace.sub("", str(err_o))
    # nothing lost or repeated where the listing ran to its end
    if err_a is None:
        refs = [c.customer_reference for c in got_a]
        assert len(refs) == len(set(refs)) == len(sb.data.pyng["site_1"])


def test_every_fault_case_is_met_as_described(sb, caplog):
    """The cases above are not vacuous: each one's log or error shows it."""
    _, err, wire, log = _listing(sb, caplog, FAULTS["500 for good"], together=False)
    assert isinstance(err, errors.ServerError) and err.status == 500 and err.attempts == 3
    assert sum(1 for _, line in log if "failed (HTTP 500)" in line) == 2
    _, err, wire, log = _listing(sb, caplog, FAULTS["503 twice"], together=False)
    assert err is None and sum(1 for _, line in log if "failed (HTTP 503)" in line) == 2
    assert len(wire) == len(set(map(repr, wire))) + 2        # page 2 asked for three times
    _, err, _, log = _listing(sb, caplog, FAULTS["Retry-After too long"], together=False)
    assert err is not None and err.status == 503 and err.attempts == 1
    assert any("over retry_after_max" in line for _, line in log)


# ---- one fetch thread, and no engine before the first request --------------

def test_a_listing_alone_runs_on_one_fetch_thread_and_a_fan_out_on_one_shared():
    out = _run("""
        import os, threading, time
        import custlist
        from custlist.testing import Sandbox

        def threads():
            names = []
            for t in os.listdir("/proc/self/task"):
                try:
                    with open(f"/proc/self/task/{t}/comm") as f:
                        names.append(f.read().strip())
                except OSError:
                    pass
            return (names.count("custlist-fetch"), names.count("custlist-fanout"))

        with Sandbox(pyng_sites=3, pyng_site_customers=60, seed=3,
                     latency={"pyng.customers": 0.05}) as sb:
            c = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url)
            p = c.customers(site_id=sb.pyng_site_ids[0], limit=10)
            print("fresh", threads())
            it = iter(p)
            for _ in range(25):
                next(it)
            print("alone", threads())
            p.close()
            print("closed", threads())
            out = c.customers_many(sb.pyng_site_ids, limit=10, concurrency=3)
            next(out)
            print("fan-out", threads())
            out.close()
            print("fan-out closed", threads())
    """)
    assert out.splitlines() == ["fresh (0, 0)", "alone (1, 0)", "closed (0, 0)",
                                "fan-out (0, 1)", "fan-out closed (0, 0)"], out


def test_pagers_hold_no_connection_machinery_until_they_fetch_and_free_it_when_done():
    """A pager is a job until its first request: creating many (or handing
    them to a fan-out, which brings one driver for all) opens no socket or
    pipe; a listing run to its end and closed gives back what its driver
    held."""
    out = _run("""
        import os, time
        import custlist
        from custlist.testing import Sandbox

        def fds():
            return len(os.listdir("/proc/self/fd"))

        with Sandbox(pyng_sites=30, pyng_site_customers=15, seed=5) as sb:
            c = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url)
            base = fds()
            pagers = {s: c.customers(site_id=s, limit=10) for s in sb.pyng_site_ids}
            print("30 pagers", fds() - base)
            out = custlist.fan_out(pagers, concurrency=4)
            print("fan-out of 30", fds() - base <= 4)
            n = sum(1 for _ in out)
            out.close()
            print("records", n)
            base = fds()
            p = c.customers(site_id=sb.pyng_site_ids[0], limit=10)
            print("listed", len(list(p)))
            p.close()
            del p
            deadline = time.monotonic() + 10
            while fds() > base and time.monotonic() < deadline:
                time.sleep(0.02)             # the server's side of the connection
            print("after", fds() - base)
    """)
    assert out.splitlines() == ["30 pagers 0", "fan-out of 30 True", "records 450",
                                "listed 15", "after 0"], out


def test_worker_c_keeps_the_job_and_only_the_driver_performs_transfers():
    """The layering in csrc/: worker.c holds a listing's job and lifecycle
    and performs no transfer, nor starts a thread; the driver (multi.c) is
    the one place a listing's transfers run; the driver has no Python."""
    worker = (CSRC / "worker.c").read_text()
    for call in ("curl_easy_perform", "curl_multi_perform", "cl_http_get", "cl_http_send",
                 "cl_http_begin", "pthread_create", "pthread_join"):
        assert call not in worker, call
    multi = (CSRC / "multi.c").read_text()
    assert "curl_multi_perform" in multi and "pthread_create" in multi
    assert "Py" not in re.sub(r"/\*.*?\*/", "", multi, flags=re.S)
    # the listing's transfers: http.c's blocking send serves only the one-off
    # token request (send.c, for _core.request and the fetch thread's
    # renewal), never a pager
    for f in CSRC.glob("*.c"):
        text = f.read_text()
        if "cl_http_send(" in text or "cl_http_get(" in text:
            assert f.name in ("http.c", "send.c"), f.name
