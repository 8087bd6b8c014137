"""Parallel pages within one listing: paginate(..., concurrency=N) on offset
and page-number paging, against the sandbox's demo API on loopback."""
import asyncio
import os
import subprocess
import sys
import textwrap
import time

import pytest

import custlist
from custlist import errors
from custlist.testing import Sandbox
from custlist.testing.demo import ENDPOINTS, LINKED, NUMBERED, OFFSET, PAGES

from .conftest import FAST, settle

SIZE_PARAM = {OFFSET.name: "limit", PAGES.name: "per_page", NUMBERED.name: "per_page"}
CUSTOMERS = 203


class Demo(custlist.Client):
    _endpoints = ENDPOINTS


@pytest.fixture(scope="module")
def demo_sandbox():
    with Sandbox(demo_customers=CUSTOMERS, seed=3) as sb:
        yield sb


def fresh(sb):
    """Wait until the server's handlers are done with every request, then
    clear its log and its count of requests in flight at once, so that
    nothing of the listing before is counted with the next."""
    settle(sb)
    sb.requests.clear()
    sb.in_flight_max = 0


@pytest.fixture
def dsb(demo_sandbox):
    demo_sandbox.clear_faults()
    fresh(demo_sandbox)
    yield demo_sandbox
    demo_sandbox.clear_faults()


@pytest.fixture
def demo(dsb):
    return Demo(base_url=dsb.demo_url, auth=custlist.BearerToken(dsb.demo_token), **FAST)


def ids(records):
    return [r.id for r in records]


def listing(client, ep, size, **kw):
    return client.paginate(ep, ep.path, {SIZE_PARAM[ep.name]: size}, **kw)


def asked(sb, ep):
    """(position, size) of every page request of `ep` the sandbox answered."""
    pos = "offset" if ep is OFFSET else "page"
    return sorted((int(r.query.get(pos, "0")), int(r.query[SIZE_PARAM[ep.name]]))
                  for r in sb.requests if r.route == ep.name)


@pytest.mark.parametrize("ep", [OFFSET, PAGES], ids=lambda e: e.name)
@pytest.mark.parametrize("size", [7, 20, 50])
@pytest.mark.parametrize("concurrency", [1, 3, 8])
def test_records_identical_to_the_sequential_listing(dsb, demo, ep, size, concurrency):
    want = ids(listing(demo, ep, size))
    dsb.requests.clear()
    p = listing(demo, ep, size, concurrency=concurrency)
    assert isinstance(p, custlist.ParallelPager)
    assert ids(p) == want and len(want) == CUSTOMERS
    assert p.done and p.consumed == CUSTOMERS and p.checkpoint()["done"]
    assert p.checkpoint()["count"] == CUSTOMERS
    pages = -(-CUSTOMERS // size)
    # every page once, nothing past the end
    first = 0 if ep is OFFSET else 1
    step = size if ep is OFFSET else 1
    assert [p for p, _ in asked(dsb, ep)] == [first + k * step for k in range(pages)]
    assert list(p) == []                       # used once


@pytest.mark.parametrize("ep", [OFFSET, PAGES, NUMBERED], ids=lambda e: e.name)
def test_a_total_given_plans_every_page_from_the_start(dsb, demo, ep):
    want = ids(listing(demo, ep, 20))
    dsb.requests.clear()
    p = listing(demo, ep, 20, concurrency=4, total=CUSTOMERS)
    assert p.total == CUSTOMERS
    assert ids(p) == want and p.done
    # NUMBERED states no total: the one given bounds it, no empty page asked
    assert len(asked(dsb, ep)) == -(-CUSTOMERS // 20)


def test_a_listing_without_a_total_goes_on_one_page_at_a_time(dsb, demo):
    want = ids(listing(demo, NUMBERED, 20))
    fresh(dsb)
    p = listing(demo, NUMBERED, 20, concurrency=4)
    assert ids(p) == want and p.done and p.total is None
    assert dsb.in_flight_max == 1


def test_requests_overlap_and_stay_within_concurrency():
    # 10 pages, each held 200 ms by the server: the server's wait, not the
    # client's own work per page, sets both times, so the ratio holds under
    # ThreadSanitizer on a loaded machine too (40 pages of 50 ms each did
    # not: 28 ms of client work a page there brought it to 0.69).
    with Sandbox(demo_customers=200, latency={"demo.offset": 0.2}) as sb:
        client = custlist.Client(base_url=sb.demo_url, auth=custlist.BearerToken(sb.demo_token))
        t0 = time.monotonic()
        want = ids(listing(client, OFFSET, 20))           # 10 pages one after another
        sequential = time.monotonic() - t0
        assert sb.in_flight_max == 1
        for n in (4, 8):
            fresh(sb)
            t0 = time.monotonic()
            got = ids(listing(client, OFFSET, 20, concurrency=n))
            parallel = time.monotonic() - t0
            assert got == want
            assert 2 <= sb.in_flight_max <= n
            assert parallel < sequential * 0.6, (n, parallel, sequential)


@pytest.mark.parametrize("ep", [OFFSET, PAGES], ids=lambda e: e.name)
@pytest.mark.parametrize("max_items", [0, 1, 19, 20, 21, 100, 202, 203, 500])
def test_max_items_fetches_nothing_beyond(dsb, demo, ep, max_items):
    want = ids(listing(demo, ep, 20))[:max_items]
    dsb.requests.clear()
    p = listing(demo, ep, 20, concurrency=4, max_items=max_items)
    assert ids(p) == want
    time.sleep(0.05)                               # nothing arrives late either
    sent = asked(dsb, ep)
    if ep is OFFSET:
        # the records asked for are the records handed out
        assert sum(size for _, size in sent) == len(want)
    else:
        assert len(sent) == -(-len(want) // 20)    # pages of 20, the last one cut
    assert p.done == (len(want) == CUSTOMERS and max_items > CUSTOMERS)
    rest = Demo(base_url=dsb.demo_url, auth=demo._auth).resume(p.checkpoint())
    assert ids(rest) == ids(listing(demo, ep, 20))[len(want):]


@pytest.mark.parametrize("ep", [OFFSET, PAGES], ids=lambda e: e.name)
@pytest.mark.parametrize("stop", [1, 19, 20, 21, 99, 100, 202])
def test_a_checkpoint_mid_listing_resumes_exactly(dsb, demo, ep, stop):
    want = ids(listing(demo, ep, 20))
    p = listing(demo, ep, 20, concurrency=4)
    got = []
    for rec in p:
        got.append(rec.id)
        if len(got) == stop:
            break
    cp = p.checkpoint()
    p.close()
    assert cp == p.checkpoint() and cp["count"] == stop and not cp["done"]
    # the first page not wholly handed out, and how much of it was
    first = 0 if ep is OFFSET else 1
    page = first + (stop // 20) * (20 if ep is OFFSET else 1)
    assert (cp["page"], cp["skip"]) == (None if page == first else str(page), stop % 20)
    assert got + ids(demo.resume(cp)) == want                       # one page at a time
    again = demo.resume(cp, concurrency=3)
    assert isinstance(again, custlist.ParallelPager)
    tail = []
    for rec in again:
        tail.append(rec.id)
        if len(tail) == 50:
            break
    cp2 = again.checkpoint()
    assert cp2["count"] == min(stop + 50, CUSTOMERS)
    assert got + tail + ids(demo.resume(cp2, concurrency=5)) == want    # and in parallel


def test_a_failing_page_stops_after_the_pages_before_it(dsb, demo):
    want = ids(listing(demo, OFFSET, 10))
    dsb.requests.clear()
    dsb.inject("demo.offset", status=503, times=None, query={"offset": "60"})
    p = listing(demo, OFFSET, 10, concurrency=4)
    got = []
    with pytest.raises(errors.ServerError):
        for rec in p:
            got.append(rec.id)
    assert got == want[:60]                        # every page before it, none after
    cp = p.checkpoint()
    assert (cp["page"], cp["skip"], cp["count"], cp["done"]) == ("60", 0, 60, False)
    assert list(p) == [] and p.checkpoint() == cp
    # retried as a sequential listing retries it; nothing past the window asked
    time.sleep(0.05)
    tries = [r for r in dsb.requests if r.query.get("offset") == "60"]
    assert len(tries) == demo._settings["max_retries"] + 1
    assert max(int(r.query.get("offset", 0)) for r in dsb.requests) <= 60 + 3 * 10
    dsb.clear_faults()
    assert got + ids(demo.resume(cp, concurrency=4)) == want
    assert got + ids(demo.resume(cp)) == want


def test_a_failing_page_page_paging(dsb, demo):
    want = ids(listing(demo, PAGES, 20))
    dsb.inject("demo.pages", status=500, times=None, query={"page": "4"})
    p = listing(demo, PAGES, 20, concurrency=8)
    got = []
    with pytest.raises(errors.ServerError):
        for rec in p:
            got.append(rec.id)
    assert got == want[:60]
    cp = p.checkpoint()
    assert (cp["page"], cp["skip"], cp["count"]) == ("4", 0, 60)
    dsb.clear_faults()
    assert got + ids(demo.resume(cp, concurrency=8)) == want


@pytest.mark.parametrize("held", [0, 4])
def test_a_short_or_empty_offset_page_before_the_end_is_a_paging_error(dsb, demo, held):
    want = ids(listing(demo, OFFSET, 10))
    rows = dsb.data.demo
    dsb.inject("demo.offset", times=None, query={"offset": "40"},
               body={"items": rows[40:40 + held], "total": CUSTOMERS})
    p = listing(demo, OFFSET, 10, concurrency=3)
    got = []
    with pytest.raises(errors.PagingError, match="offset 40 held"):
        for rec in p:
            got.append(rec.id)
    assert got == want[:40 + held]                 # its records, then the error
    cp = p.checkpoint()
    assert (cp["page"], cp["skip"], cp["count"]) == ("40", held, 40 + held)
    dsb.clear_faults()
    assert got + ids(demo.resume(cp, concurrency=3)) == want


def test_a_short_page_of_page_paging_is_a_paging_error(dsb, demo):
    want = ids(listing(demo, PAGES, 20))
    rows = dsb.data.demo
    dsb.inject("demo.pages", times=None, query={"page": "3"},
               body={"data": rows[40:45], "page": 3, "total_pages": 11})
    p = listing(demo, PAGES, 20, concurrency=4)
    got = []
    with pytest.raises(errors.PagingError, match="page 3 held 5"):
        for rec in p:
            got.append(rec.id)
    assert got == want[:45]
    cp = p.checkpoint()
    assert (cp["page"], cp["skip"], cp["count"]) == ("3", 5, 45)
    dsb.clear_faults()
    assert got + ids(demo.resume(cp, concurrency=4)) == want


def test_a_short_page_under_to_arrow_is_a_paging_error(dsb, demo):
    pytest.importorskip("pyarrow")
    dsb.inject("demo.offset", times=None, query={"offset": "40"},
               body={"items": dsb.data.demo[40:44], "total": CUSTOMERS})
    p = listing(demo, OFFSET, 10, concurrency=3)
    with pytest.raises(errors.PagingError, match="offset 40"):
        p.to_arrow()
    assert p.checkpoint()["count"] == 0            # nothing returned: from the start


@pytest.mark.parametrize("ep", [OFFSET, PAGES, NUMBERED], ids=lambda e: e.name)
@pytest.mark.parametrize("max_items", [None, 45])
def test_to_arrow_is_the_sequential_table(dsb, demo, ep, max_items):
    pytest.importorskip("pyarrow")
    want = listing(demo, ep, 20, max_items=max_items).to_arrow()
    p = listing(demo, ep, 20, concurrency=4, max_items=max_items)
    assert p.to_arrow().equals(want)
    assert p.done == (max_items is None)
    if max_items:
        assert ids(demo.resume(p.checkpoint())) == ids(listing(demo, ep, 20))[max_items:]


def test_async_for_gives_the_same_records(dsb, demo):
    want = ids(listing(demo, PAGES, 20))

    async def main():
        return [r.id async for r in listing(demo, PAGES, 20, concurrency=4)]

    assert asyncio.run(main()) == want


@pytest.mark.parametrize("ep", [LINKED, custlist.natural.CUSTOMERS, custlist.pyng.CUSTOMERS],
                         ids=lambda e: e.name)
def test_concurrency_on_paging_that_names_the_next_page_is_a_value_error(dsb, demo, ep):
    with pytest.raises(ValueError, match="one after another; concurrency= needs offset"):
        demo.paginate(ep, ep.path, None, concurrency=4)
    assert dsb.requests == []


def test_bad_arguments_are_refused_before_any_request(dsb, demo):
    for bad in (0, 1025, True, 2.0, "4"):
        with pytest.raises(ValueError, match="concurrency must be an int from 1 to 1024"):
            listing(demo, OFFSET, 20, concurrency=bad)
    with pytest.raises(ValueError, match="total= plans"):
        listing(demo, OFFSET, 20, total=100)
    with pytest.raises(ValueError, match="total must be"):
        listing(demo, OFFSET, 20, concurrency=2, total=-1)
    with pytest.raises(ValueError, match="start="):
        listing(demo, OFFSET, 20, concurrency=2, start_cursor="40")
    assert dsb.requests == []


def test_closing_the_client_mid_listing_ends_it_with_an_exact_checkpoint(dsb):
    client = demo_client(dsb)
    want = ids(listing(client, OFFSET, 10))
    p = listing(client, OFFSET, 10, concurrency=4)
    got = [r.id for _, r in zip(range(25), p)]
    client.close()
    with pytest.raises(errors.PagerClosedError):
        for rec in p:                  # the page in hand, then the closed ones
            got.append(rec.id)
    assert got == want[:30]
    cp = p.checkpoint()
    assert (cp["page"], cp["skip"], cp["count"]) == ("30", 0, 30)
    assert got + ids(demo_client(dsb).resume(cp, concurrency=4)) == want


@pytest.mark.parametrize("ep", [OFFSET, PAGES], ids=lambda e: e.name)
@pytest.mark.parametrize("most", [1, 3, 20])
def test_max_pages_holds_for_the_whole_listing(dsb, ep, most):
    client = Demo(base_url=dsb.demo_url, auth=custlist.BearerToken(dsb.demo_token),
                  max_pages=most, **FAST)
    want = ids(listing(demo_client(dsb), ep, 10))
    dsb.requests.clear()
    p = listing(client, ep, 10, concurrency=4)
    got = []
    with pytest.raises(errors.PagingError, match=f"max_pages={most} reached"):
        for rec in p:
            got.append(rec.id)
    assert got == want[:10 * most]
    time.sleep(0.05)
    assert len(asked(dsb, ep)) == most             # no request past the limit
    cp = p.checkpoint()
    assert cp["count"] == 10 * most and cp["skip"] == 0
    assert got + ids(demo_client(dsb).resume(cp, concurrency=4)) == want


def _run(code, timeout=60):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_close_from_another_thread_ends_it_with_an_exact_checkpoint():
    proc = _run("""
        import os, threading, time
        import custlist
        from custlist.testing import Sandbox
        from custlist.testing.demo import OFFSET

        def fanout_threads():
            names = []
            for t in os.listdir("/proc/self/task"):
                try:
                    names.append(open(f"/proc/self/task/{t}/comm").read().strip())
                except OSError:
                    pass
            return names.count("custlist-fanout")

        def fanout_threads_left():
            # close() from the timer's thread may still be joining it
            for _ in range(100):
                if fanout_threads() == 0:
                    return 0
                time.sleep(0.02)
            return fanout_threads()

        with Sandbox(demo_customers=300, latency={"demo.offset": 0.2}) as sb:
            c = custlist.Client(base_url=sb.demo_url, auth=custlist.BearerToken(sb.demo_token))
            want = [r.id for r in c.paginate(OFFSET, OFFSET.path, {"limit": 50})]
            p = c.paginate(OFFSET, OFFSET.path, {"limit": 10}, concurrency=3)
            got, mid, closing = [], threading.Event(), []

            def closer():
                # closes once the fan-out is under way, however slow the
                # build (a sanitizer's): a fixed timer could close it first
                mid.wait(60)
                time.sleep(0.3)
                closing.append(time.monotonic())
                p.close()

            threading.Thread(target=closer).start()
            try:
                for rec in p:
                    got.append(rec.id)
                    if len(got) == 15:
                        print("mid", fanout_threads())
                        mid.set()
            except custlist.errors.PagerClosedError:
                print("closed", round(time.monotonic() - closing[0], 1) < 1.2, 0 < len(got) < 300)
            cp = p.checkpoint()
            print("count", cp["count"] == len(got), list(p) == [], fanout_threads_left())
            rest = [r.id for r in c.paginate(OFFSET, OFFSET.path, {"limit": 10}, start=cp,
                                             concurrency=4)]
            print("exact", got + rest == want, fanout_threads())
            dropped = c.paginate(OFFSET, OFFSET.path, {"limit": 10}, concurrency=4)
            next(dropped)
            del dropped                        # dropped mid-listing: its thread goes
            print("dropped", fanout_threads())
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["mid 1", "closed True True", "count True True 0",
                                        "exact True 0", "dropped 0"], proc.stdout + proc.stderr


def test_a_long_listing_moves_from_one_multi_handle_to_the_next(dsb, demo, monkeypatch):
    import custlist._parallel as parallel
    monkeypatch.setattr(parallel, "CHUNK", 4)           # 21 pages: six handles in turn
    want = ids(listing(demo, OFFSET, 10))
    assert len(asked(dsb, OFFSET)) == 21
    fresh(dsb)
    p = listing(demo, OFFSET, 10, concurrency=3)
    assert ids(p) == want and p.done
    assert len(asked(dsb, OFFSET)) == 21
    assert dsb.in_flight_max <= 3
    q = listing(demo, PAGES, 7, concurrency=2)
    got = [r.id for _, r in zip(range(100), q)]
    cp = q.checkpoint()
    q.close()
    assert got + ids(demo.resume(cp, concurrency=5)) == ids(listing(demo, PAGES, 7))
    if __import__("importlib").util.find_spec("pyarrow"):
        assert listing(demo, OFFSET, 10, concurrency=3).to_arrow().column("id").to_pylist() \
            == want


def test_the_pages_share_the_clients_rate_limiter(dsb):
    client = custlist.Client(base_url=dsb.demo_url, auth=custlist.BearerToken(dsb.demo_token),
                             rate_limit=(40, 1.0))
    t0 = time.monotonic()
    got = ids(listing(client, OFFSET, 10, concurrency=8))
    took = time.monotonic() - t0
    assert got == ids(listing(demo_client(dsb), OFFSET, 10))
    assert client.rate_limiter.stats()["granted"] == 21
    assert took >= 20 / 40 * 0.9                      # evenly spaced, 8 at a time or not


def demo_client(sb):
    return Demo(base_url=sb.demo_url, auth=custlist.BearerToken(sb.demo_token), **FAST)
