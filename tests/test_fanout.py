"""custlist.fan_out: many listings on one libcurl multi handle, against the
sandbox serving many Pyng sites and Commenda corporations."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

import custlist
from custlist import errors
from custlist.testing import Sandbox

from .conftest import settle

if sys.version_info < (3, 11):
    from exceptiongroup import ExceptionGroup

FAST = dict(backoff=0.01, backoff_max=0.05, retry_after_max=0.2)


@pytest.fixture(scope="module")
def many():
    with Sandbox(pyng_sites=24, pyng_site_customers=35, commenda_corporations=6,
                 commenda_corporation_customers=23, seed=11) as sb:
        yield sb


@pytest.fixture
def msb(many):
    settle(many)                          # the last test's requests all answered
    many.clear_faults()
    many.requests.clear()
    many.latency.clear()
    many.in_flight_max = 0
    yield many
    many.clear_faults()
    many.latency.clear()


@pytest.fixture
def pyng(msb):
    return custlist.Pyng(token=msb.pyng_token, base_url=msb.pyng_url, **FAST)


def by_source(pairs):
    out = {}
    for source, rec in pairs:
        out.setdefault(source, []).append(rec)
    return out


def expected(pyng, sites, **kw):
    return {s: list(pyng.customers(s, **kw)) for s in sites}


def test_every_record_once_tagged_with_its_site_in_each_sites_order(msb, pyng):
    sites = msb.pyng_site_ids
    out = pyng.customers_many(sites, limit=10, concurrency=5)
    got = by_source(out)
    assert got == expected(pyng, sites, limit=10)
    assert out.summary.ok and out.summary.errors == {} and out.summary.resume == {}
    assert out.summary.records == 24 * 35
    assert all(r.records == 35 and r.done for r in out.summary.sources.values())


def test_listings_interleave_and_respect_the_concurrency_cap(msb, pyng):
    msb.latency["pyng.customers"] = 0.03
    out = pyng.customers_many(msb.pyng_site_ids[:12], limit=10, concurrency=3)
    order = [s for s, _ in out]
    assert msb.in_flight_max == 3              # never more, and the cap was reached
    assert out._core.stats()["max_active"] == 3
    # pages of different sites arrive interleaved, not one site after the other
    first_of_last_site = order.index(msb.pyng_site_ids[11])
    last_of_first_site = len(order) - 1 - order[::-1].index(msb.pyng_site_ids[0])
    assert first_of_last_site < last_of_first_site


def test_concurrency_one_is_one_request_at_a_time(msb, pyng):
    msb.latency["pyng.customers"] = 0.01
    got = by_source(custlist.fan_out([pyng.customers(s, limit=20) for s in msb.pyng_site_ids[:4]],
                                     concurrency=1))
    assert msb.in_flight_max == 1
    assert sorted(got) == [0, 1, 2, 3] and all(len(v) == 35 for v in got.values())


def test_connections_are_reused_across_listings(msb, pyng):
    before = msb.connections
    out = pyng.customers_many(msb.pyng_site_ids, limit=5, concurrency=4)
    assert sum(1 for _ in out) == 24 * 35
    assert len(msb.requests) == 24 * 7
    # 168 requests over the multi handle's shared connection cache: at most
    # one connection per transfer slot (a pager per connection would be 24)
    assert msb.connections - before <= 4


def test_a_listing_failing_mid_way_loses_nothing_of_the_others(msb, pyng):
    sites = msb.pyng_site_ids[:8]
    bad = sites[3]
    # the 3rd page of one site fails every time: its retries run out
    fault = msb.inject("pyng.customers", status=503, times=None, skip=2,
                       path=f"/sites/{bad}/")
    out = pyng.customers_many(sites, limit=10, concurrency=4)
    got = by_source(out)
    want = expected(pyng.__class__(token=msb.pyng_token, base_url=msb.pyng_url),
                    [s for s in sites if s != bad], limit=10)
    msb.clear_faults()
    assert fault.hits == 4                      # the first try and max_retries=3
    for s in want:
        assert got[s] == want[s]
    res = out.summary.sources[bad]
    assert isinstance(res.error, errors.ServerError) and res.error.status == 503
    assert res.error.attempts == 4 and res.error.source == bad
    assert not res.done and res.records == 20 and res.skip == 0
    assert out.summary.errors == {bad: res.error}
    assert out.summary.resume == {bad: res.resume}
    # resuming from the reported point delivers exactly the rest
    rest = list(pyng.customers(bad, start_href=res.resume))
    assert got[bad] + rest == list(pyng.customers(bad, limit=10))


def test_raise_errors_raises_every_failure_together_after_the_rest(msb, pyng):
    sites = msb.pyng_site_ids[:6]
    msb.inject("pyng.customers", status=404, times=None, path=f"/sites/{sites[1]}/")
    msb.inject("pyng.customers", status=400, times=None, skip=1, path=f"/sites/{sites[4]}/")
    out = pyng.customers_many(sites, limit=20, concurrency=2, raise_errors=True)
    seen = []
    with pytest.raises(custlist.FanOutError) as info:
        for pair in out:
            seen.append(pair)
    group = info.value
    assert isinstance(group, ExceptionGroup)
    assert sorted(e.source for e in group.exceptions) == [sites[1], sites[4]]
    assert {type(e) for e in group.exceptions} == {errors.NotFoundError, errors.BadRequestError}
    assert group.summary is out.summary
    got = by_source(seen)
    msb.clear_faults()
    for s in (sites[0], sites[2], sites[3], sites[5]):
        assert got[s] == list(pyng.customers(s, limit=20))
    assert sites[1] not in got and len(got[sites[4]]) == 20
    assert out.summary.sources[sites[1]].resume.endswith(f"/sites/{sites[1]}/customers?limit=20")


def test_retries_and_token_renewal_happen_inside_the_fan_out(msb):
    client = custlist.Pyng(client_id=msb.pyng_client_id, client_secret=msb.pyng_client_secret,
                           base_url=msb.pyng_url, **FAST)
    sites = msb.pyng_site_ids[:5]
    msb.inject("pyng.customers", status=503, times=2, skip=3, retry_after="0")
    out = client.customers_many(sites, limit=10)
    pairs = []
    for n, pair in enumerate(out):
        pairs.append(pair)
        if n == 30:
            msb.revoke_pyng_tokens()           # every later request answers 401 once
    assert out.summary.ok
    grants = [r for r in msb.requests if r.route == "pyng.token"]
    assert 2 <= len(grants) <= 1 + len(sites)   # the first token, renewals on the 401s
    assert by_source(pairs) == expected(client, sites, limit=10)


def test_pagers_without_prefetch_are_queued_by_the_fan_out(msb):
    client = custlist.Pyng(token=msb.pyng_token, base_url=msb.pyng_url, prefetch=False)
    sites = msb.pyng_site_ids[:5]
    got = by_source(client.customers_many(sites, limit=7, concurrency=2))
    assert got == expected(client, sites, limit=7)


def test_commenda_corporations_fan_out(msb):
    client = custlist.Commenda(msb.commenda_token, base_url=msb.commenda_url, **FAST)
    corps = msb.commenda_corporation_ids
    got = by_source(client.customers_many(corps, limit=4, extend=["shipping_address"]))
    assert got == {c: list(client.customers(c, limit=4, extend=["shipping_address"]))
                   for c in corps}
    assert all(len(v) == 23 for v in got.values())


def test_close_mid_page_reports_where_to_resume(msb, pyng):
    sites = msb.pyng_site_ids[:3]
    out = pyng.customers_many(sites, limit=10)
    taken = [next(out) for _ in range(14)]
    out.close()
    got = by_source(taken)
    assert list(out) == []
    for s in sites:
        res = out.summary.sources[s]
        assert not res.done and res.error is None and res.records == len(got.get(s, []))
        resumed = list(pyng.customers(s, start_href=res.resume)) if res.resume else \
            list(pyng.customers(s, limit=10))
        assert got.get(s, []) + resumed[res.skip:] == list(pyng.customers(s, limit=10))


def test_a_resumed_listing_joins_a_fan_out(msb, pyng):
    s = msb.pyng_site_ids[0]
    first = pyng.customers(s, limit=10)
    head = [next(first) for _ in range(10)]
    href = first.next_href
    first.close()
    got = by_source(custlist.fan_out({s: pyng.customers(s, start_href=href)}))
    assert head + got[s] == list(pyng.customers(s, limit=10))


def test_bad_arguments_fail_before_any_request(msb, pyng):
    used = pyng.customers(msb.pyng_site_ids[0])
    next(used)
    msb.requests.clear()
    with pytest.raises(ValueError, match="already fetched"):
        custlist.fan_out([pyng.customers(msb.pyng_site_ids[1]), used])
    fresh = pyng.customers(msb.pyng_site_ids[1])
    with pytest.raises(ValueError, match="given twice"):
        custlist.fan_out([fresh, fresh])
    with pytest.raises(TypeError, match="custlist pagers"):
        custlist.fan_out([fresh, iter([])])
    with pytest.raises(ValueError, match="concurrency"):
        custlist.fan_out([fresh], concurrency=0)
    with pytest.raises(TypeError, match="mapping"):
        custlist.fan_out(fresh)
    with pytest.raises(ValueError, match="distinct"):
        pyng.customers_many(["a", "a"])
    closed = pyng.customers(msb.pyng_site_ids[2])
    closed.close()
    with pytest.raises(ValueError, match="closed"):
        custlist.fan_out([closed])
    assert msb.requests == []
    # a refused fan-out leaves the pagers it was given untouched
    assert len(list(fresh)) == 35


def _run(code, timeout=30):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_ctrl_c_and_close_mid_run_do_not_hang():
    proc = _run("""
        import os, signal, threading, time
        import custlist
        from custlist.testing import Sandbox

        def fanout_threads():
            names = []
            for t in os.listdir("/proc/self/task"):
                try:
                    names.append(open(f"/proc/self/task/{t}/comm").read().strip())
                except OSError:
                    pass
            return names.count("custlist-fanout")

        def threads_left():
            # a thread just joined may still be listed for a moment
            for _ in range(100):
                if fanout_threads() == 0:
                    return 0
                time.sleep(0.02)
            return fanout_threads()

        with Sandbox(pyng_sites=40, pyng_site_customers=30,
                     latency={"pyng.customers": 0.3}) as sb:
            c = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url)
            out = c.customers_many(sb.pyng_site_ids, limit=10, concurrency=4)
            sent = []

            def interrupt():
                sent.append(time.monotonic())
                os.kill(os.getpid(), signal.SIGINT)

            n = 0
            try:
                for _ in out:
                    n += 1
                    if n == 1:          # mid-run: after the first record, however slow the start
                        threading.Timer(0.2, interrupt).start()
            except KeyboardInterrupt:
                print("interrupted", round(time.monotonic() - sent[0], 1) < 3, n > 0)
            # Ctrl-C inside the fan-out's wait ends the run; one that lands in
            # this loop's own body leaves it open, as any exception there
            # would: close() ends it then
            out.close()
            print("threads", threads_left())
            print("resume", len(out.summary.resume))
            out2 = c.customers_many(sb.pyng_site_ids, limit=10, concurrency=4)
            next(out2)
            t0 = time.monotonic()
            out2.close()
            print("closed", round(time.monotonic() - t0, 1) < 2, threads_left())
            out3 = c.customers_many(sb.pyng_site_ids, limit=10, concurrency=4)
            next(out3)
            del out3                           # dropped mid-run: collected, thread gone
            print("dropped", threads_left())
            out4 = c.customers_many(sb.pyng_site_ids, limit=10, concurrency=4)
            next(out4)
        print("exit with a fan-out running")
    """)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines == ["interrupted True True", "threads 0", "resume 40", "closed True 0",
                     "dropped 0", "exit with a fan-out running"], proc.stdout + proc.stderr


def test_max_items_per_listing_and_exact_checkpoints(msb, pyng):
    sites = msb.pyng_site_ids[:6]
    out = pyng.customers_many(sites, limit=10, max_items=17, concurrency=3)
    got = by_source(out)
    assert got == {s: list(pyng.customers(s, limit=10))[:17] for s in sites}
    assert out.summary.ok and out.summary.records == 6 * 17
    # stopped at max_items with more to come: capped, not done (as pager.done says)
    assert all(r.capped and not r.done for r in out.summary.sources.values())
    assert set(out.summary.checkpoints) == set(sites)
    # nothing fetched past max_items: two pages of 9 and 8 per site
    assert len(msb.requests) == 6 * 2 + 6 * 4
    for s in sites:
        cp = out.summary.sources[s].checkpoint
        assert cp["count"] == 17
        assert list(pyng.resume(cp)) == list(pyng.customers(s, limit=10))[17:]


def test_checkpoints_of_a_failed_and_of_a_stopped_listing_resume_exactly(msb, pyng):
    sites = msb.pyng_site_ids[:4]
    msb.inject("pyng.customers", status=500, times=None, skip=1, path=f"/sites/{sites[2]}/")
    out = pyng.customers_many(sites, limit=10, concurrency=2)  # sites[2] fails at page 2
    taken = []
    for pair in out:
        taken.append(pair)
        if len(taken) == 55:
            break
    out.close()
    msb.clear_faults()
    got = by_source(taken)
    for s in sites:
        cp = out.summary.sources[s].checkpoint
        assert cp is not None and cp["count"] == len(got.get(s, []))
        assert got.get(s, []) + list(pyng.resume(cp)) == list(pyng.customers(s, limit=10))


def test_a_fan_out_closed_after_its_modules_globals_are_gone_keeps_its_checkpoint(msb, pyng,
                                                                                 monkeypatch):
    # At interpreter exit a fan-out still running is closed late, possibly
    # after custlist's module globals were cleared (seen on free-threaded
    # 3.13: "Exception ignored ... 'NoneType' object is not callable").  Its
    # exit path must need none of them, and still settle the checkpoint.
    from custlist import _fanout
    sites = msb.pyng_site_ids[:2]
    out = pyng.customers_many(sites, limit=10, concurrency=2)
    src, first = next(out)
    monkeypatch.setattr(_fanout, "_moved", None)
    out.close()
    monkeypatch.undo()
    cp = out.summary.sources[src].checkpoint
    assert cp is not None and cp["count"] == 1
    assert [first] + list(pyng.resume(cp)) == list(pyng.customers(src, limit=10))


def test_to_arrow_has_a_source_column_and_every_listings_rows(msb, pyng):
    import pyarrow as pa
    import pyarrow.compute  # noqa: F401  (pa.compute)
    sites = msb.pyng_site_ids[:6]
    msb.inject("pyng.customers", status=404, times=None, skip=1, path=f"/sites/{sites[4]}/")
    out = pyng.customers_many(sites, limit=10, concurrency=3)
    table = out.to_arrow()
    msb.clear_faults()
    ok = [s for s in sites if s != sites[4]]
    assert table.column_names[0] == "source"
    assert table.column("source").to_pylist() == [s for s in ok for _ in range(35)]
    for s in ok:
        want = pyng.customers(s, limit=10).to_arrow()
        mine = table.filter(pa.compute.equal(table.column("source"), s)).drop_columns(["source"])
        assert mine.to_pylist() == want.to_pylist()
    res = out.summary.sources[sites[4]]
    assert type(res.error).__name__ == "NotFoundError" and not res.done
    # its first page was read but is not in the table: it resumes from the start
    assert res.checkpoint["count"] == 0 and len(list(pyng.resume(res.checkpoint))) == 35
    assert out.summary.records == 5 * 35
    assert msb.in_flight_max <= 3
    with pytest.raises(ValueError, match="before iterating"):
        out.to_arrow()
    started = pyng.customers_many(sites[:2])
    next(started)
    with pytest.raises(ValueError, match="before iterating"):
        started.to_arrow()
    started.close()


NO_PANDAS = textwrap.dedent(r"""
    import json, sys
    import pyarrow
    import custlist
    from custlist.testing import Sandbox

    with Sandbox(pyng_customers=30, seed=5) as box:
        client = custlist.Pyng(token=box.pyng_token, base_url=box.pyng_url)
        out = {}
        for keys in (["site_1", "", "é"], [7, -2, 0]):
            pagers = {key: client.customers("site_1", limit=10) for key in keys}
            table = custlist.fan_out(pagers, concurrency=2).to_arrow()
            out[str(keys[0])] = [str(table.column("source").type),
                                 table.column("source").to_pylist(), table.num_rows]
        out["pandas"] = "pandas" in sys.modules
        print(json.dumps(out))
""")


def spied(pagers, events):
    """`pagers` made to note ("start", n) when their to_arrow() begins and
    ("close", n) when they are closed, n their place in `pagers`."""
    from custlist._pager import Pager

    class Spy(Pager):
        __slots__ = ()

        @property
        def _n(self):
            return next(n for n, p in enumerate(pagers) if p is self)

        def to_arrow(self):
            events.append(("start", self._n))
            return super().to_arrow()

        def close(self):
            events.append(("close", self._n))
            super().close()

    for p in pagers:
        p.__class__ = Spy
    return pagers


def test_to_arrow_lets_go_of_each_listing_as_its_table_is_made(msb, pyng):
    # A finished listing's transfer, buffers and pages are freed as soon as
    # its table is made, not held until the whole fan-out ends: held, a
    # fan-out of thousands of accounts grew with every listing read.
    events = []
    sites = msb.pyng_site_ids[:4]
    pagers = spied([pyng.customers(s, limit=10) for s in sites], events)
    out = custlist.fan_out(dict(zip(sites, pagers)), concurrency=1)   # one reading thread
    table = out.to_arrow()
    assert table.num_rows == 4 * 35 and out.summary.ok
    starts = [n for e, n in events if e == "start"]
    assert starts == [0, 1, 2, 3]
    for n in range(3):            # closed before the next listing's table is begun
        assert events.index(("close", n)) < events.index(("start", n + 1)), events
    assert all(out.summary.sources[s].done for s in sites)


def test_iterating_lets_go_of_each_listing_as_its_last_page_is_read(msb, pyng):
    # The same for records: a listing whose last page was read is closed
    # before the fan-out yields anything more, not when it ends.
    events = []
    sites = msb.pyng_site_ids[:4]
    pagers = spied([pyng.customers(s, limit=10) for s in sites], events)
    out = custlist.fan_out(dict(zip(sites, pagers)), concurrency=2)
    got = {}
    for site, rec in out:
        events.append(("record", sites.index(site)))
        got.setdefault(site, []).append(rec)
    assert got == expected(pyng, sites, limit=10)          # every record once, in order
    assert out.summary.ok and out.summary.records == 4 * 35
    assert all(out.summary.sources[s].done for s in sites)
    records = [i for i, (e, _) in enumerate(events) if e == "record"]
    for n in range(4):
        last = max(i for i in records if events[i] == ("record", n))
        after = [i for i in records if i > last]
        if after:                 # a record yielded after n's last: n was closed first
            assert events.index(("close", n)) < after[0], events
    assert sum(1 for e, _ in events if e == "record") == 4 * 35


def test_to_arrow_of_a_fan_out_leaves_pandas_alone():
    """The source column is laid out from buffers, not converted from Python
    objects: pyarrow's conversion imports pandas the first time (0.3 s or
    more, under the GIL, inside the first to_arrow() of every process),
    which to_arrow() needs no part of.  str sources (an empty one and a
    non-ASCII one among them) and int sources, typed as before."""
    import pandas  # noqa: F401  (installed: otherwise this proves nothing)
    proc = subprocess.run([sys.executable, "-c", NO_PANDAS], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["pandas"] is False
    assert out["site_1"] == ["string", [k for k in ["site_1", "", "é"] for _ in range(30)], 90]
    assert out["7"] == ["int64", [k for k in [7, -2, 0] for _ in range(30)], 90]
