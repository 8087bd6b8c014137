"""The shared rate limiter: one per client, across its pagers, threads and
fan-outs, fed by the server's 429s and rate-limit headers (sandbox with a
server-side limit per token)."""
import os
import subprocess
import sys
import textwrap
import threading

import pytest

import custlist
from custlist.testing import Sandbox


def run_threads(client, sites, **kw):
    got, errs = {}, []

    def run(site):
        try:
            got[site] = list(client.customers(site, **kw))
        except Exception as e:          # pragma: no cover - reported below
            errs.append(e)

    threads = [threading.Thread(target=run, args=(s,)) for s in sites]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errs == []
    return got


def client_for(sb, **kw):
    settings = dict(backoff=0.05, retry_after_max=5.0, max_retries=10)
    settings.update(kw)
    return custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, **settings)


@pytest.mark.parametrize("style", ["x", "ietf"])
def test_many_pagers_in_many_threads_stay_under_the_servers_limit(style):
    with Sandbox(pyng_sites=12, pyng_site_customers=50, rate_limit=(20, 1.0),
                 rate_limit_headers=style) as sb:
        heard = client_for(sb)
        got = run_threads(heard, sb.pyng_site_ids, limit=10)
        assert sb.throttled == 0                      # the headers kept them under
        assert heard.rate_limiter.stats()["granted"] == len(sb.requests) == 12 * 5
        assert all(len(v) == 50 for v in got.values())
        # Without a limiter the same fleet's first pages are not paced: a
        # limit of 4 a second, which they outrun on any machine (under a
        # sanitizer the server itself answers too slowly for the whole fleet
        # to outrun 20 a second), refuses most of them.
        deaf = client_for(sb, rate_limit=False)
        sb.rate_limit, sb.throttled = (4, 1.0), 0
        got = run_threads(deaf, sb.pyng_site_ids, limit=10, max_items=10)
        assert sb.throttled > 5
        assert all(len(v) == 10 for v in got.values())   # retried through, but rudely


def test_a_fan_out_stays_under_the_servers_limit():
    with Sandbox(pyng_sites=12, pyng_site_customers=50, rate_limit=(15, 1.0)) as sb:
        client = client_for(sb)
        out = client.customers_many(sb.pyng_site_ids, limit=10, concurrency=8)
        assert sum(1 for _ in out) == 12 * 50 and out.summary.ok
        assert sb.throttled == 0
        deaf = client_for(sb, rate_limit=False)
        out = deaf.customers_many(sb.pyng_site_ids, limit=10, concurrency=8)
        assert sum(1 for _ in out) == 12 * 50
        assert sb.throttled > 5


@pytest.mark.parametrize("rate_limit", [None, False])
def test_a_429s_retry_after_pauses_every_pager_of_the_client(rate_limit):
    with Sandbox(pyng_sites=6, pyng_site_customers=60, latency={"pyng.customers": 0.03}) as sb:
        client = client_for(sb, rate_limit=rate_limit)
        bad = sb.pyng_site_ids[2]
        fault = sb.inject("pyng.customers", status=429, retry_after="2", skip=2,
                          path=f"/sites/{bad}/")
        got = run_threads(client, sb.pyng_site_ids, limit=2)    # 30 pages a site
        assert all(len(v) == 60 for v in got.values())
        assert fault.hits == 1
        at = [r.at for r in sb.requests if f"/sites/{bad}/" in r.path][2]   # the 429
        # From half a second after the 429 until just before its 2 s are up.
        # A request another pager had already let through before its client
        # read the 429 may still arrive early in the pause: under
        # ThreadSanitizer with the GIL off, on a loaded machine, one came
        # more than 0.15 s after it.
        during = [r for r in sb.requests if at + 0.5 < r.at < at + 1.9]
        if rate_limit is None:
            assert during == []                       # every site waited for the server
            assert client.rate_limiter.stats()["throttled"] == 1
        else:
            assert len(during) > 5                    # the others went on regardless


def test_rate_limit_spaces_requests_and_a_limiter_is_shared_between_clients():
    with Sandbox(pyng_sites=4, pyng_site_customers=30) as sb:
        shared = custlist.RateLimiter(20, per=0.5)
        a, b = client_for(sb, rate_limit=shared), client_for(sb, rate_limit=shared)
        out = custlist.fan_out({s: (a if i % 2 else b).customers(s, limit=5)
                                for i, s in enumerate(sb.pyng_site_ids)}, concurrency=8)
        assert sum(1 for _ in out) == 4 * 30
        times = sorted(r.at for r in sb.requests)
        assert len(times) == 4 * 6 == shared.stats()["granted"]
        # in no half second more than 20 (+1 at the window's edges) as sent; the
        # server logs arrivals, which a loaded machine (a sanitizer's build) may
        # delay unevenly, so the window looked at is 0.15 s shorter: a limiter
        # that let them all through would still show 24 in it
        assert max(sum(1 for t in times if t0 <= t < t0 + 0.35) for t0 in times) <= 21
        # evenly spaced: 24 requests at 40 a second need over half a second
        assert times[-1] - times[0] > 0.5
        c = client_for(sb, rate_limit=(3, 1.5))
        assert c.rate_limiter is not shared and a.rate_limiter is shared


@pytest.mark.parametrize("bad", [(0, 1), (5, 0), (5,), (1, 2, 3), "5/s", (True, 1), (5, -1),
                                 (5, float("nan")), 10])
def test_bad_rate_limits_are_refused_before_any_request(bad):
    with pytest.raises(ValueError, match="rate_limit"):
        custlist.Pyng(token="t", base_url="http://127.0.0.1:9", rate_limit=bad)


def test_a_rate_limiter_joins_a_pager_once_before_it_fetches(sandbox):
    client = custlist.Pyng(token=sandbox.pyng_token, base_url=sandbox.pyng_url)
    pager = client.customers("site_1")
    with pytest.raises(ValueError, match="once"):
        client.rate_limiter._attach(pager)
    assert len(list(pager)) == 237


def _run(code, timeout=30):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_close_during_a_servers_pause_does_not_wait_it_out():
    proc = _run("""
        import threading, time
        import custlist
        from custlist.testing import Sandbox

        with Sandbox(pyng_sites=3, pyng_site_customers=40) as sb:
            c = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, retry_after_max=60)
            sb.inject("pyng.customers", status=429, retry_after="50", path="/sites/site_0001/")
            first = c.customers("site_0001", limit=5)
            threading.Thread(target=lambda: list(first), daemon=True).start()
            while c.rate_limiter.stats()["paused_for"] == 0:
                time.sleep(0.01)
            other = c.customers("site_0002", limit=5)       # waits on the pause
            out = c.customers_many(["site_0003"], limit=5)  # so does the fan-out
            threading.Timer(0.3, other.close).start()
            t0 = time.monotonic()
            try:
                next(other)
            except custlist.PagerClosedError:
                print("pager closed", time.monotonic() - t0 < 3)
            threading.Timer(0.3, out.close).start()
            t0 = time.monotonic()
            try:
                print("fan-out", list(out), time.monotonic() - t0 < 3)
            except Exception as e:
                print("fan-out raised", type(e).__name__)
            print("records", len(sb.requests))
            first.close()
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["pager closed True", "fan-out [] True", "records 1"], \
        proc.stdout + proc.stderr


def test_a_bare_429_is_counted_but_pauses_no_one(sb):
    client = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, backoff=0.01,
                           backoff_max=0.05)
    sb.inject("pyng.customers", status=429)             # no Retry-After: the pager's backoff
    pager = client.customers("site_1")
    first = next(pager)
    stats = client.rate_limiter.stats()
    assert stats["throttled"] == 1 and stats["paused_for"] == 0.0
    assert [first, *pager] == list(client.customers("site_1"))
