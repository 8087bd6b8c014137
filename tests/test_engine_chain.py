"""The fetch thread sends the listing's next request itself: as a page's
response is in, it reads the next position (cursor, next link, Link
header, offset or page number), holds it to the origin, the loop guard,
max_pages, max_items and the run of empty pages, and asks for the page
after, at most two finished pages ahead of the consumer.  The
consumer still reads every page: what it raises, and the checkpoint it
leaves, are those of the one-pass (no prefetch) reading of the same pages,
and no request goes out past the point where the listing stops.

A small cursor / href / Link server here logs every request as it
arrives, so the tests see requests made while the consumer sleeps."""
import json
import re
import threading
import time
import urllib.parse

import pytest

import custlist

from .conftest import FAST
from .netkit import _Listener, read_head


class Rows(_Listener):
    """`n` records, `per` a page.  A page is asked for by position (the
    index of its first record) as ?cursor=<i> (cursor mode), or followed by
    the link it gives (href: body "next", link: Link header).  `edit(i, body,
    headers)` may change a page before it is sent."""

    def __init__(self, n=60, per=10, mode="cursor", edit=None, hold=None):
        self.n, self.per, self.mode, self.edit = n, per, mode, edit
        self.hold = hold or {}             # position -> Event the answer waits for
        self.log: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        super().__init__("127.0.0.1")

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"

    @property
    def ids(self):
        return [f"r{i:04d}" for i in range(self.n)]

    def asked(self):
        with self.lock:
            return [p for _, p in self.log]

    def settle(self):
        """Clear the log once no request has come for 0.2 s: a request the
        last listing sent before it stopped may still be on its way in."""
        deadline = time.monotonic() + 5
        seen = -1
        while len(self.asked()) != seen and time.monotonic() < deadline:
            seen = len(self.asked())
            time.sleep(0.2)
        self.log.clear()

    def _serve(self, conn):
        with conn:
            try:
                head, _ = read_head(conn)
                target = head.split(b" ")[1].decode()
                with self.lock:
                    self.log.append((time.monotonic(), target))
                q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(target).query))
                at = int(re.search(r"(\d*)$", q.get("cursor", "0")).group(1) or 0)
                per = int(q.get("limit", self.per))
                if at in self.hold:
                    self.hold[at].wait(30)
                nxt = at + per if at + per < self.n else None
                body = {"data": [{"id": f"r{i:04d}"} for i in range(at, min(at + per, self.n))]}
                headers = {}
                if self.mode == "cursor":
                    body["next_cursor"] = None if nxt is None else str(nxt)
                elif self.mode == "href" and nxt is not None:
                    body["next"] = f"/rows?cursor={nxt}"
                elif self.mode == "link" and nxt is not None:
                    headers["Link"] = f'</rows?cursor={nxt}>; rel="next"'
                if self.edit is not None:
                    body = self.edit(at, body, headers)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{extra}"
                             f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
                             + data)
            except (OSError, ValueError, IndexError):   # IndexError: no request line
                pass


class Row(custlist.Record):
    id: custlist.Field[str] = custlist.Field(str)


PAGING = {
    "cursor": lambda: custlist.CursorPaging(items="data", cursor="next_cursor"),
    "href": lambda: custlist.HrefPaging(items="data", next_href="next"),
    "link": lambda: custlist.LinkHeaderPaging(items="data"),
}


def listing(server, prefetch=True, max_items=None, start=None, **kw):
    client = custlist.Client(base_url=server.url, auth=custlist.BearerToken("t"),
                             prefetch=prefetch, **{**FAST, **kw})
    endpoint = custlist.Endpoint("/rows", Row, PAGING[server.mode](), name="rows",
                                 page_size="limit", default_page_size=server.per)
    return client.paginate(endpoint, "/rows", max_items=max_items, start=start)


def wait_for(cond, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.01)
    return cond()


MODES = pytest.mark.parametrize("mode", ["cursor", "href", "link"])


@MODES
def test_the_pages_after_are_asked_for_while_the_consumer_holds_the_first(mode):
    server = Rows(mode=mode)
    try:
        pager = listing(server)
        first = next(pager)
        # the consumer sleeps on page 1: the fetch thread goes on by itself,
        # two finished pages ahead, and no further
        assert wait_for(lambda: len(server.asked()) >= 3), server.asked()
        time.sleep(0.3)
        assert len(server.asked()) == 3, server.asked()
        got = [first.id] + [r.id for r in pager]
        assert got == server.ids and pager.done
        positions = [urllib.parse.parse_qs(urllib.parse.urlsplit(t).query).get("cursor", ["0"])[0]
                     for t in server.asked()]
        assert positions == [str(i) for i in range(0, 60, 10)]     # each page once, in order
    finally:
        server.close()


def outcome(server, prefetch, sleep=0.0):
    """Records, the error (class and message) and the checkpoint of a whole
    read; the consumer sleeps `sleep` after its first record."""
    pager = listing(server, prefetch=prefetch, **outcome.kw)
    got, error = [], None
    try:
        for r in pager:
            if not got and sleep:
                time.sleep(sleep)
            got.append(r.id)
    except custlist.CustlistError as e:
        error = (type(e), str(e))
    return got, error, pager.checkpoint(), pager.done


outcome.kw = {}


def same_as_one_pass(server, sleep=0.5, **kw):
    """The chain's reading equals the one-pass reading of the same server,
    and it sent no request the one-pass reading did not."""
    outcome.kw = kw
    try:
        server.log.clear()
        chained = outcome(server, True, sleep)
        asked_chained = server.asked()
        server.settle()
        one_pass = outcome(server, False)
        asked_one_pass = server.asked()
    finally:
        outcome.kw = {}
    assert chained == one_pass
    assert asked_chained == asked_one_pass
    return chained, asked_chained


@MODES
def test_max_pages_stops_the_fetch_thread_at_the_last_page_allowed(mode):
    server = Rows(mode=mode)
    try:
        (got, error, _, done), asked = same_as_one_pass(server, max_pages=2)
        assert got == server.ids[:20] and not done
        assert error[0] is custlist.PagingError and "max_pages=2 reached" in error[1]
        assert len(asked) == 2
    finally:
        server.close()


def test_a_repeated_cursor_stops_the_fetch_thread_before_asking_again():
    # page 2 (records 10-19) gives its own cursor again, while the consumer
    # still holds page 1 and the fetch thread has room to go on
    def edit(at, body, headers):
        if at == 10:
            body["next_cursor"] = "10"
        return body
    server = Rows(mode="cursor", edit=edit)
    try:
        (got, error, _, done), asked = same_as_one_pass(server)
        assert got == server.ids[:20] and not done
        assert error[0] is custlist.PagingLoopError
        assert len(asked) == 2
    finally:
        server.close()


@pytest.mark.parametrize("mode", ["href", "link"])
def test_a_link_to_a_page_followed_before_is_not_asked_for_again(mode):
    def edit(at, body, headers):
        if at == 10:
            if mode == "href":
                body["next"] = "/rows?cursor=10"
            else:
                headers["Link"] = '</rows?cursor=10>; rel="next"'
        return body
    server = Rows(mode=mode, edit=edit)
    try:
        (got, error, _, done), asked = same_as_one_pass(server)
        assert got == server.ids[:20] and not done
        assert error[0] is custlist.PagingLoopError
        assert len(asked) == 2
    finally:
        server.close()


def linking_away(mode, other):
    """A Rows edit whose page at 10 links to `other` (another origin) for
    what follows, in the body (href) or in a Link header."""
    def edit(at, body, headers):
        if at == 10:
            if mode == "href":
                body["next"] = f"{other.url}/rows?cursor=20"
            else:
                headers["Link"] = f'<{other.url}/rows?cursor=20>; rel="next"'
        return body
    return edit


@pytest.mark.parametrize("mode", ["href", "link"])
def test_a_link_to_another_origin_is_never_asked_for(mode):
    other = Rows(mode=mode)
    server = Rows(mode=mode, edit=linking_away(mode, other))
    try:
        (got, error, _, done), asked = same_as_one_pass(server)
        assert got == server.ids[:20] and not done
        assert error[0] is custlist.UnsafeURLError and "refusing to follow" in error[1]
        assert len(asked) == 2 and other.asked() == []
    finally:
        server.close()
        other.close()


def test_more_without_a_cursor_is_the_consumers_error_at_that_page():
    def edit(at, body, headers):
        if at == 10:
            body["next_cursor"] = None
            body["has_more"] = True
        return body
    server = Rows(mode="cursor", edit=edit)
    try:
        outcome.kw = {}
        client = custlist.Client(base_url=server.url, auth=custlist.BearerToken("t"), **FAST)
        endpoint = custlist.Endpoint("/rows", Row, custlist.CursorPaging(
            items="data", cursor="next_cursor", has_more="has_more"), name="rows")
        results = []
        for prefetch in (True, False):
            server.log.clear()
            client = custlist.Client(base_url=server.url, auth=custlist.BearerToken("t"),
                                     prefetch=prefetch, **FAST)
            pager = client.paginate(endpoint, "/rows")
            got = []
            with pytest.raises(custlist.PagingError, match="gives no cursor") as info:
                for r in pager:
                    if not got:
                        time.sleep(0.3)
                    got.append(r.id)
            results.append((got, str(info.value), pager.checkpoint(), server.asked()))
        assert results[0] == results[1]
        assert results[0][0] == server.ids[:20] and len(results[0][3]) == 2
    finally:
        server.close()


def items_json(at):
    return json.dumps([{"id": f"r{i:04d}"} for i in range(at, at + 10)]).encode()


# Positions the fetch thread leaves to the consumer (not plain ASCII, a key
# given twice), or reads through JSON escapes: the same listing either way.
POSITIONS = {
    "non-ascii": lambda at, nxt: b'{"data": %s, "next_cursor": %s}' % (
        items_json(at), b"null" if nxt is None else json.dumps("\u00e9\u00e9" + str(nxt)).encode()),
    "utf-8": lambda at, nxt: b'{"data": %s, "next_cursor": %s}' % (
        items_json(at), b"null" if nxt is None
        else json.dumps("\u00e9" + str(nxt), ensure_ascii=False).encode()),
    "duplicate-key": lambda at, nxt: b'{"data": %s, "next_cursor": null, "next_cursor": %s}' % (
        items_json(at), b"null" if nxt is None else b'"%d"' % nxt),
    "escapes": lambda at, nxt: b'{"data": %s, "next_cursor": %s}' % (
        items_json(at), b"null" if nxt is None else b'"a\\u0062\\/+ %d"' % nxt),
}


@pytest.mark.parametrize("case", sorted(POSITIONS))
def test_positions_read_plainly_or_not_page_as_the_one_pass_reading(case):
    def edit(at, _, headers):
        return POSITIONS[case](at, at + 10 if at + 10 < 60 else None)
    server = Rows(mode="cursor", edit=edit)
    try:
        (got, error, _, done), asked = same_as_one_pass(server, sleep=0.1)
        assert error is None and done
        assert got == server.ids and len(asked) == 6
    finally:
        server.close()


def test_the_consumer_takes_pages_in_order_while_the_thread_runs_ahead():
    # the fetch thread is held on page 4 while the consumer reads pages 1-3
    # as fast as it can: the records come in order, each once
    gate = threading.Event()
    server = Rows(mode="href", hold={30: gate})
    try:
        pager = listing(server)
        got = [next(pager).id for _ in range(30)]
        assert got == server.ids[:30]
        assert wait_for(lambda: len(server.asked()) == 4)
        gate.set()
        got += [r.id for r in pager]
        assert got == server.ids and pager.done and len(server.asked()) == 6
    finally:
        gate.set()
        server.close()


# ---------------------------------------------------------------------------
# close() and fork while the fetch thread runs ahead (each in a subprocess
# with a deadline: a hang fails the test, not the suite)

def test_close_from_another_thread_while_the_thread_runs_ahead():
    from .test_lifecycle import run
    out = run("""
        sb.inject("pyng.customers", delay=5.0, skip=2, times=1)     # page 3 is slow
        pager = client.customers(site_id="site_1", limit=20)
        first = next(pager)
        deadline = time.monotonic() + 10
        while len([r for r in sb.requests if r.route == "pyng.customers"]) < 3:
            assert time.monotonic() < deadline, "page 3 never asked for"
            time.sleep(0.01)
        assert fetch_threads() == 1
        t = threading.Thread(target=pager.close)
        start = time.monotonic()
        t.start()
        t.join(5)
        assert not t.is_alive() and time.monotonic() - start < 2, "close() hangs"
        assert fetch_threads() == 0                  # the thread ran ahead no further
        got = [first, *pager]                        # closed: nothing more comes
        assert refs(got) == WIRE[:1]
        rest = refs(client.resume(pager.checkpoint()))
        assert refs(got) + rest == WIRE              # nothing lost, nothing repeated
        print("ok")
    """)
    assert out.strip() == "ok"


def test_a_fork_child_does_not_inherit_the_pages_fetched_ahead():
    from .test_lifecycle import run
    out = run("""
        pager = client.customers(site_id="site_1", limit=20)
        first = next(pager)
        deadline = time.monotonic() + 10
        while len([r for r in sb.requests if r.route == "pyng.customers"]) < 3:
            assert time.monotonic() < deadline, "page 3 never asked for"
            time.sleep(0.01)
        time.sleep(0.2)                              # pages 2 and 3 are in, ahead
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                got = [first]
                try:
                    for c in pager:
                        got.append(c)
                    msg = "no error"
                except custlist.PagerClosedError as e:
                    msg = "closed:" + ("fork" in str(e)) * "fork"
                start = time.monotonic()
                del pager
                gc.collect()
                os.write(w, f"{msg} {len(got)} {time.monotonic() - start < 1}".encode())
            finally:
                os._exit(0)
        os.close(w)
        _, status = os.waitpid(pid, 0)
        child = os.read(r, 200).decode()
        assert status == 0, status
        assert child == "closed:fork 20 True", child
        assert refs([first, *pager]) == WIRE         # the parent loses nothing
        print("ok")
    """)
    assert out.strip() == "ok"


def empty_after_first(at, body, headers):
    """A Rows edit: after page 1, every page is empty and says there is more."""
    if at > 0:
        body["data"] = []
    body["next_cursor"] = str(at + 10)
    return body


def test_a_run_of_empty_pages_stops_the_fetch_thread_as_the_consumer():
    server = Rows(n=10, mode="cursor", edit=empty_after_first)
    try:
        outcome.kw = {}
        server.log.clear()
        chained = outcome(server, True, 0.5)
        asked_chained = server.asked()
        server.settle()
        one_pass = outcome(server, False)
        asked_one_pass = server.asked()
        assert chained == one_pass
        got, error, _, done = chained
        assert got == server.ids and not done
        assert error[0] is custlist.PagingError and "more than 100 pages in a row" in error[1]
        # page 1, then 101 empty pages; prefetch may have asked for the one
        # after the last (as before the fetch thread sent requests), no more
        assert len(asked_one_pass) == 102
        assert asked_chained[:102] == asked_one_pass and len(asked_chained) <= 103
    finally:
        server.close()


# ---------------------------------------------------------------------------
# max_items: the fetch thread counts each page's records and sizes and stops
# its requests as the consumer would

@MODES
@pytest.mark.parametrize("max_items", [25, 30, 1, 59])
def test_max_items_sizes_and_stops_the_requests_sent_ahead(mode, max_items):
    server = Rows(mode=mode)
    try:
        (got, error, checkpoint, done), asked = same_as_one_pass(server, max_items=max_items)
        assert error is None and got == server.ids[:max_items]
        # no request for a record beyond max_items
        assert sum(int(urllib.parse.parse_qs(urllib.parse.urlsplit(t).query).get("limit", ["10"])[0])
                   for t in asked[:-1]) < max_items
    finally:
        server.close()


def test_max_items_from_a_checkpoint_inside_a_page():
    server = Rows(mode="cursor")
    try:
        first = listing(server, max_items=15)
        assert [r.id for r in first] == server.ids[:15]
        checkpoint = first.checkpoint()
        server.log.clear()
        pager = listing(server, max_items=30, start=checkpoint)
        got = [next(pager).id]
        assert wait_for(lambda: len(server.asked()) >= 3), server.asked()
        time.sleep(0.3)
        got += [r.id for r in pager]
        asked = server.asked()
        server.log.clear()
        again = [r.id for r in listing(server, prefetch=False, max_items=30, start=checkpoint)]
        assert got == again == server.ids[15:45]
        assert asked == server.asked()
    finally:
        server.close()


# ---------------------------------------------------------------------------
# Offset and page numbers (the sandbox's demo API): the fetch thread counts
# each page's records for the next offset, and stops where the pager does

def demo_listing(sb, endpoint, prefetch=True, **kw):
    client = custlist.Client(base_url=sb.demo_url, auth=custlist.BearerToken(sb.demo_token),
                             prefetch=prefetch, **FAST)
    query = {"per_page": 20} if endpoint.paging.mode == "page" else {}
    return client.paginate(endpoint, endpoint.path, query, **kw)


def demo_hits(sb, route):
    return [(r.path, sorted(r.query.items())) for r in sb.requests if r.route == route]


@pytest.mark.parametrize("name, route", [("OFFSET", "demo.offset"), ("PAGES", "demo.pages"),
                                         ("NUMBERED", "demo.numbered")])
@pytest.mark.parametrize("max_items", [None, 50])
def test_offset_and_page_numbers_run_ahead_and_stop_as_the_pager(sb, name, route, max_items):
    from custlist.testing import demo
    endpoint = getattr(demo, name)
    wire = [c["id"] for c in sb.data.demo]
    want = wire if max_items is None else wire[:max_items]
    pager = demo_listing(sb, endpoint, max_items=max_items)
    got = [next(pager).id]
    assert wait_for(lambda: len(demo_hits(sb, route)) >= 3), demo_hits(sb, route)
    time.sleep(0.3)
    assert len(demo_hits(sb, route)) == 3          # two finished pages ahead, no more
    got += [r.id for r in pager]
    chained = demo_hits(sb, route)
    sb.requests.clear()
    one_pass = [r.id for r in demo_listing(sb, endpoint, prefetch=False, max_items=max_items)]
    assert got == one_pass == want
    assert chained == demo_hits(sb, route)         # the same requests, each once


def test_a_server_that_ignores_the_offset_stops_the_fetch_thread(sb):
    # every page is the first page: the second repeats the first's records
    from custlist.testing import demo
    sb.inject("demo.offset", times=None, query={"offset": "20"},
              body=lambda q: json.dumps({"items": sb.data.demo[:20], "total": len(sb.data.demo)},
                                        separators=(",", ":")))
    results = []
    for prefetch in (True, False):
        sb.requests.clear()
        pager = demo_listing(sb, demo.OFFSET, prefetch=prefetch)
        got = []
        with pytest.raises(custlist.PagingLoopError) as info:
            for r in pager:
                if not got and prefetch:
                    time.sleep(0.5)
                got.append(r.id)
        results.append((got, str(info.value), pager.checkpoint(), demo_hits(sb, "demo.offset")))
    assert results[0] == results[1]
    assert results[0][0] == [c["id"] for c in sb.data.demo[:20]]
    assert len(results[0][3]) == 2


def test_async_for_after_records_taken_with_next_goes_on_with_the_pages_fetched_ahead():
    # the event loop takes the pages the fetch thread fetched ahead, as next()
    # would: none is lost, repeated or asked for twice
    import asyncio
    server = Rows(mode="href")
    try:
        pager = listing(server)
        got = [next(pager).id for _ in range(15)]
        assert wait_for(lambda: len(server.asked()) >= 4), server.asked()

        async def rest():
            return [r.id async for r in pager]
        got += asyncio.run(asyncio.wait_for(rest(), 30))
        assert got == server.ids and pager.done
        positions = [urllib.parse.parse_qs(urllib.parse.urlsplit(t).query).get("cursor", ["0"])[0]
                     for t in server.asked()]
        assert positions == ["0", "10", "20", "30", "40", "50"]
    finally:
        server.close()
