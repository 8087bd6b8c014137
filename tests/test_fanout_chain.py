"""A fan-out's thread sends each listing's next request itself: as a page's
response is in, it reads the next position, holds it to the origin, the
loop guard, max_pages, max_items and the run of empty pages, and asks for
the page after, at most two finished pages ahead of the consumer, as a
single listing's fetch thread does.  The consumer still reads every page:
what a listing of a fan-out ends with (its records, its error, its
checkpoint) is what the one-pass (no prefetch) reading of the same pages
gives, and no request goes out past the point where the listing stops.

The servers of test_engine_chain log every request as it arrives, so the
tests see requests made while the consumer holds a page."""
import time
import urllib.parse

import pytest

import custlist

from .test_engine_chain import Rows, empty_after_first, linking_away, listing, wait_for

MODES = pytest.mark.parametrize("mode", ["cursor", "href", "link"])


def positions(server):
    return [urllib.parse.parse_qs(urllib.parse.urlsplit(t).query).get("cursor", ["0"])[0]
            for t in server.asked()]


@MODES
def test_every_listing_asks_for_its_next_pages_while_the_consumer_holds_a_page(mode):
    servers = [Rows(mode=mode), Rows(mode=mode)]
    try:
        out = custlist.fan_out([listing(s) for s in servers], concurrency=4)
        src, first = next(out)
        other = 1 - src
        # the consumer holds a record of one listing: the fan-out's thread
        # goes on by itself for both, two finished pages ahead, no further
        # (the listing read from has one page fewer waiting)
        assert wait_for(lambda: len(servers[src].asked()) >= 3
                        and len(servers[other].asked()) >= 2), \
            (servers[src].asked(), servers[other].asked())
        time.sleep(0.3)
        assert len(servers[src].asked()) == 3 and len(servers[other].asked()) == 2
        got = {0: [], 1: []}
        for s, r in [(src, first), *out]:
            got[s].append(r.id)
        assert got == {0: servers[0].ids, 1: servers[1].ids}
        assert out.summary.ok and all(r.done for r in out.summary.sources.values())
        for server in servers:                  # each page once, in order
            assert positions(server) == [str(i) for i in range(0, 60, 10)]
    finally:
        for server in servers:
            server.close()


def test_the_four_endpoints_fanned_out_are_their_serial_listings(sb, pyng, natural, commenda):
    routes = {"pyng": "pyng.customers", "natural": "natural.customers",
              "invitations": "natural.invitations", "commenda": "commenda.customers"}

    def pagers():
        return {"pyng": pyng.customers("site_1", limit=20),
                "natural": natural.customers(limit=20),
                "invitations": natural.customer_invitations(limit=20),
                "commenda": commenda.customers("corp_123", limit=20)}

    def hits(route):
        # a cursor by the order it was first asked for: Pyng's carry the
        # second they were issued in, so two readings a second apart differ
        # in text, not in which page each names
        seen: dict = {}
        return [(r.path, sorted((k, seen.setdefault(v, len(seen)) if k == "cursor" else v)
                                for k, v in r.query.items()))
                for r in sb.requests if r.route == route]

    serial = {k: list(p) for k, p in pagers().items()}
    asked_serial = {k: hits(r) for k, r in routes.items()}
    assert all(len(v) >= 3 for v in asked_serial.values())     # every listing pages
    sb.requests.clear()
    out = custlist.fan_out(pagers(), concurrency=4)
    got = {k: [] for k in routes}
    src, first = next(out)
    got[src].append(first)
    # while the consumer holds one record, every listing's page 2 is asked
    # for by the fan-out's thread
    assert wait_for(lambda: all(len(hits(r)) >= 2 for r in routes.values())), \
        {k: len(hits(r)) for k, r in routes.items()}
    for s, r in out:
        got[s].append(r)
    assert got == serial                      # every record once, in each listing's order
    assert out.summary.ok and out.summary.records == sum(len(v) for v in serial.values())
    assert {k: hits(r) for k, r in routes.items()} == asked_serial   # each page once


def one_pass(server, **kw):
    """Records, error (class and message) and checkpoint of the one-pass
    reading of `server`, and the requests it sent."""
    server.log.clear()
    pager = listing(server, prefetch=False, **kw)
    got, error = [], None
    try:
        for r in pager:
            got.append(r.id)
    except custlist.CustlistError as e:
        error = (type(e), str(e))
    asked = server.asked()
    server.log.clear()
    return (got, error, pager.checkpoint()), asked


def fanned(server, sleep=0.5, **kw):
    """The same listing in a fan-out beside a plain one; the consumer holds
    its first record `sleep` seconds.  Its records, error and checkpoint,
    and the requests it sent."""
    plain = Rows(mode="cursor", n=30)
    try:
        out = custlist.fan_out({"it": listing(server, **kw), "plain": listing(plain)},
                               concurrency=2)
        got = {"it": [], "plain": []}
        for s, r in out:
            if not got["it"] and not got["plain"]:
                time.sleep(sleep)
            got[s].append(r.id)
        assert got["plain"] == plain.ids                  # the other listing is untouched
        res = out.summary.sources["it"]
        error = None if res.error is None else (type(res.error), str(res.error))
        return (got["it"], error, res.checkpoint), server.asked()
    finally:
        plain.close()


def same_as_one_pass(server, **kw):
    want, asked_one_pass = one_pass(server, **kw)
    got, asked = fanned(server, **kw)
    assert got == want
    assert asked == asked_one_pass
    return got, asked


@pytest.mark.parametrize("mode", ["href", "link"])
def test_a_link_to_another_origin_is_never_asked_for_in_a_fan_out(mode):
    other = Rows(mode=mode)
    server = Rows(mode=mode, edit=linking_away(mode, other))
    try:
        (got, error, checkpoint), asked = same_as_one_pass(server)
        assert got == server.ids[:20]
        assert error[0] is custlist.UnsafeURLError and "refusing to follow" in error[1]
        assert len(asked) == 2 and other.asked() == []
        # resuming from the checkpoint asks for that page again, and stops
        # at the same link: nothing is skipped
        with pytest.raises(custlist.UnsafeURLError):
            list(listing(server, start=checkpoint))
        assert other.asked() == []
    finally:
        server.close()
        other.close()


@pytest.mark.parametrize("mode", ["cursor", "href", "link"])
def test_a_position_followed_before_stops_the_fan_outs_thread(mode):
    def edit(at, body, headers):
        if at == 10:
            if mode == "cursor":
                body["next_cursor"] = "10"
            elif mode == "href":
                body["next"] = "/rows?cursor=10"
            else:
                headers["Link"] = '</rows?cursor=10>; rel="next"'
        return body
    server = Rows(mode=mode, edit=edit)
    try:
        (got, error, _), asked = same_as_one_pass(server)
        assert got == server.ids[:20]
        assert error[0] is custlist.PagingLoopError
        assert len(asked) == 2
    finally:
        server.close()


@MODES
def test_max_pages_stops_the_fan_outs_thread_at_the_last_page_allowed(mode):
    server = Rows(mode=mode)
    try:
        (got, error, checkpoint), asked = same_as_one_pass(server, max_pages=2)
        assert got == server.ids[:20]
        assert error[0] is custlist.PagingError and "max_pages=2 reached" in error[1]
        assert len(asked) == 2
        assert [r.id for r in listing(server, start=checkpoint)] == server.ids[20:]
    finally:
        server.close()


@MODES
@pytest.mark.parametrize("max_items", [25, 30, 1])
def test_max_items_sizes_and_stops_the_fan_outs_requests(mode, max_items):
    server = Rows(mode=mode)
    try:
        (got, error, _), asked = same_as_one_pass(server, max_items=max_items)
        assert error is None and got == server.ids[:max_items]
    finally:
        server.close()


def test_a_run_of_empty_pages_stops_the_fan_outs_thread():
    server = Rows(n=10, mode="cursor", edit=empty_after_first)
    try:
        want, asked_one_pass = one_pass(server)
        got, asked = fanned(server)
        assert got == want
        assert got[0] == server.ids
        assert got[1][0] is custlist.PagingError and "more than 100 pages in a row" in got[1][1]
        # page 1, then 101 empty pages; the page after the last may have
        # been asked for ahead (as prefetch does), no more
        assert len(asked_one_pass) == 102
        assert asked[:102] == asked_one_pass and len(asked) <= 103
    finally:
        server.close()


def test_close_from_another_thread_while_the_fan_outs_thread_runs_ahead():
    from .test_lifecycle import run
    out = run("""
        import os, threading, time
        import custlist
        from custlist.testing import Sandbox

        def threads(name):
            n = 0
            for t in os.listdir("/proc/self/task"):
                try:
                    with open(f"/proc/self/task/{t}/comm") as f:
                        n += f.read().strip() == name
                except FileNotFoundError:
                    pass
            return n

        FAST = dict(backoff=0.01, backoff_max=0.05, retry_after_max=0.2)
        with Sandbox(pyng_sites=3, pyng_site_customers=100, seed=5) as sb:
            c = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, **FAST)
            sites = sb.pyng_site_ids
            wire = {s: [r.customer_reference for r in c.customers(s, limit=10)] for s in sites}
            sb.requests.clear()
            # every listing's third page is slow: the fan-out's thread is on
            # it, ahead of the consumer, when close() comes
            for s in sites:
                sb.inject("pyng.customers", delay=5.0, skip=2, times=1, path=f"/sites/{s}/")
            out = c.customers_many(sites, limit=10, concurrency=3)
            got, ended = [], []

            def consume():
                try:
                    for s, r in out:
                        got.append((s, r.customer_reference))
                        time.sleep(0.05)
                    ended.append("end")
                except BaseException as e:
                    ended.append(repr(e))

            t = threading.Thread(target=consume)
            t.start()
            deadline = time.monotonic() + 20
            while len([r for r in sb.requests if r.route == "pyng.customers"]) < 9:
                assert time.monotonic() < deadline, "page 3 never asked for"
                time.sleep(0.01)
            start = time.monotonic()
            closer = threading.Thread(target=out.close)
            closer.start()
            closer.join(5)
            t.join(5)
            assert not closer.is_alive() and not t.is_alive(), "close() hangs"
            assert time.monotonic() - start < 2, time.monotonic() - start
            assert ended == ["end"], ended
            assert threads("custlist-fanout") == 0
            sb.clear_faults()
            for s in sites:
                mine = [ref for src, ref in got if src == s]
                res = out.summary.sources[s]
                assert res.error is None and not res.done and res.records == len(mine), res
                rest = [r.customer_reference for r in c.resume(res.checkpoint)]
                assert mine + rest == wire[s], s   # nothing lost, nothing repeated
            print("ok", len(got) > 0)
    """, prelude=False)
    assert out.strip() == "ok True"
