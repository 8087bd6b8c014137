"""Edges of the paging engine where a listing used to end early, ask past its
end, or wait too little: Link headers whose rel value is long or repeated,
page numbers counted from 0 with a total, and rate-limit waits computed from
extreme rates and server headers.  Every scenario runs against a real
server on loopback (the sandbox, or a small page-number server here)."""
import asyncio
import json
import socket
import threading
import time
import urllib.parse

import pytest

import custlist
from custlist.testing.demo import LINKED

from .conftest import FAST
from .netkit import _Listener, read_head

PREFETCH = pytest.mark.parametrize("prefetch", [True, False], ids=["prefetch", "one-pass"])


def demo_client(sb, **kw):
    return custlist.Client(base_url=sb.demo_url, auth=custlist.BearerToken(sb.demo_token),
                           **{**FAST, **kw})


def demo_ids(sb):
    return [c["id"] for c in sb.data.demo]


# ---------------------------------------------------------------------------
# Link headers: a rel value of any length, the first rel of a link counts

def second_page_url(sb, per_page=20):
    return f"{sb.url}/demo/linked/customers?per_page={per_page}&after={sb.data.demo[per_page - 1]['id']}"


EXTENSIONS = " ".join(f"https://rels.example.com/relation-types/{i:03d}" for i in range(12))


def long_rel_links(sb):
    nxt, first = second_page_url(sb), f"{sb.url}/demo/linked/customers?per_page=20"
    assert len(EXTENSIONS) > 256
    return {
        "next-first": f'<{nxt}>; rel="next {EXTENSIONS}"',
        "next-last": f'<{nxt}>; rel="{EXTENSIONS} next"',
        "next-upper-case": f'<{nxt}>; rel="{EXTENSIONS}\tNEXT"',
        "escaped": f'<{nxt}>; rel="{EXTENSIONS} \\n\\e\\x\\t"',
        "among-others": f'<{first}>; rel="first {EXTENSIONS}", <{nxt}>; title="x"; '
                        f'rel="{EXTENSIONS} next {EXTENSIONS}"',
        "huge": f'<{nxt}>; rel="{" ".join([EXTENSIONS] * 100)} next"',      # about 60 KB
        "first-rel-counts": f'<{nxt}>; rel="next"; rel="{EXTENSIONS}"',
    }


@PREFETCH
@pytest.mark.parametrize("case", ["next-first", "next-last", "next-upper-case", "escaped",
                                  "among-others", "huge", "first-rel-counts"])
def test_a_long_rel_value_is_read_whole(sb, prefetch, case):
    link = long_rel_links(sb)[case]
    sb.inject("demo.linked", headers={"Link": link})
    pager = demo_client(sb, prefetch=prefetch).paginate(LINKED, LINKED.path, {"per_page": 20})
    got = [c.id for c in pager]
    assert got == demo_ids(sb)                      # every record, once, in order
    assert pager.done
    pages = [r for r in sb.requests if r.route == "demo.linked"]
    assert len(pages) == -(-len(got) // 20)
    assert pages[1].query.get("after") == sb.data.demo[19]["id"]


@PREFETCH
def test_a_later_rel_of_the_same_link_is_ignored(sb, prefetch):
    """RFC 8288 3.3: only the first rel parameter of a link-value counts; a
    link whose first rel is not next is not followed, even if a later one
    says next."""
    sb.inject("demo.linked", headers={"Link": f'<{second_page_url(sb)}>; rel="{EXTENSIONS}"; '
                                              'rel="next"'})
    pager = demo_client(sb, prefetch=prefetch).paginate(LINKED, LINKED.path, {"per_page": 20})
    assert [c.id for c in pager] == demo_ids(sb)[:20]
    assert pager.done and len([r for r in sb.requests if r.route == "demo.linked"]) == 1


@PREFETCH
@pytest.mark.parametrize("link", ['<{nxt}>; rel="next', '<{nxt}>; rel="next \\'],
                         ids=["unterminated", "escape-at-end"])
def test_a_long_rel_that_never_ends_is_a_paging_error(sb, prefetch, link):
    link = link.format(nxt=second_page_url(sb)).replace("next", "next " + EXTENSIONS)
    sb.inject("demo.linked", headers={"Link": link})
    pager = demo_client(sb, prefetch=prefetch).paginate(LINKED, LINKED.path, {"per_page": 20})
    got = []
    with pytest.raises(custlist.PagingError, match="malformed Link header"):
        for c in pager:
            got.append(c.id)
    assert got == demo_ids(sb)[:20] and not pager.done


WAYS = ["fan_out", "async", "arrow"]


def read_every_way(way, make):
    """The records of the listing `make()` starts, read through `way`, and
    whether that way says the listing is complete."""
    pager = make()
    if way == "fan_out":
        out = custlist.fan_out({"only": pager, "twin": make()})
        got = [r for source, r in out if source == "only"]
        return [r.id for r in got], out.summary.ok
    if way == "async":
        async def read():
            return [r.id async for r in pager]
        return asyncio.run(read()), pager.done
    import pyarrow as pa
    table = pager.to_arrow()
    assert isinstance(table, pa.Table)
    return table.column("id").to_pylist(), pager.done


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("case", ["next-last", "huge"])
def test_every_way_of_reading_follows_a_long_rel(sb, way, case):
    sb.inject("demo.linked", headers={"Link": long_rel_links(sb)[case]})
    client = demo_client(sb)
    got, complete = read_every_way(
        way, lambda: client.paginate(LINKED, LINKED.path, {"per_page": 20}))
    assert got == demo_ids(sb) and complete


# ---------------------------------------------------------------------------
# Page numbers from 0 with total_pages

class ZeroBasedPages(_Listener):
    """Pages 0 .. total_pages - 1 of `records` ids, `per_page` each, with
    total_pages in every body; any other page is a 404, as real servers
    answer.  One request per connection; ``asked`` lists the pages asked."""

    def __init__(self, records: int, per_page: int):
        self.ids = [f"z{i:04d}" for i in range(records)]
        self.per_page = per_page
        self.total_pages = -(-records // per_page)
        self.asked: list[int] = []
        super().__init__("127.0.0.1")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                head, _ = read_head(conn)
                target = head.decode("latin-1").split("\r\n")[0].split(" ")[1]
                query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(target).query))
                page = int(query["page"])
                self.asked.append(page)
                if 0 <= page < self.total_pages:
                    rows = self.ids[page * self.per_page:(page + 1) * self.per_page]
                    status, body = "200 OK", {"data": [{"id": i} for i in rows],
                                              "total_pages": self.total_pages}
                else:
                    status, body = "404 Not Found", {"error": "no such page"}
                data = json.dumps(body).encode()
                conn.sendall(f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                             f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
                             + data)
            except (OSError, ValueError, KeyError, IndexError):
                pass


class Row(custlist.Record):
    id: custlist.Field[str] = custlist.Field(str)


def numbered(first):
    return custlist.Endpoint("/rows", Row, custlist.PagePaging(
        items="data", page="page", per_page="per_page", total_pages="total_pages", first=first),
        name=f"rows{first}", default_page_size=10)


@PREFETCH
@pytest.mark.parametrize("records", [30, 25, 10, 1])
def test_pages_from_zero_end_at_the_last_page(prefetch, records):
    server = ZeroBasedPages(records, 10)
    try:
        client = custlist.Client(base_url=server.url, auth=custlist.BearerToken("t"),
                                 prefetch=prefetch, **FAST)
        pager = client.paginate(numbered(0), "/rows", {"per_page": "10"})
        assert [r.id for r in pager] == server.ids          # each record once, no error
        assert pager.done and pager.total_pages == server.total_pages
        assert server.asked == list(range(server.total_pages))
        # resumed from a later page: still ends at the last one
        server.asked.clear()
        again = client.paginate(numbered(0), "/rows", {"per_page": "10"},
                                start_cursor=str(server.total_pages - 1))
        assert [r.id for r in again] == server.ids[(server.total_pages - 1) * 10:]
        assert again.done and server.asked == [server.total_pages - 1]
    finally:
        server.close()


@pytest.mark.parametrize("way", WAYS)
def test_every_way_of_reading_ends_pages_from_zero_at_the_last(way):
    server = ZeroBasedPages(30, 10)
    try:
        client = custlist.Client(base_url=server.url, auth=custlist.BearerToken("t"), **FAST)
        got, complete = read_every_way(
            way, lambda: client.paginate(numbered(0), "/rows", {"per_page": "10"}))
        assert got == server.ids and complete
        assert sorted(set(server.asked)) == [0, 1, 2]
    finally:
        server.close()


def test_pages_from_one_still_end_at_total_pages(sb):
    from custlist.testing.demo import PAGES
    client = demo_client(sb)
    pager = client.paginate(PAGES, PAGES.path, {"per_page": 20})
    assert [c.id for c in pager] == demo_ids(sb) and pager.done
    asked = [int(r.query["page"]) for r in sb.requests if r.route == "demo.pages"]
    assert asked == list(range(1, -(-len(sb.data.demo) // 20) + 1))


# ---------------------------------------------------------------------------
# Rate limits: no rate so low that its wait overflows into "no wait"

@pytest.mark.parametrize("requests, per", [(1e-14, 1.0), (1e-300, 1.0), (5e-324, 1.0),
                                           (0.5, 1e6), (1e-7, 1.0)])
def test_a_rate_below_one_request_in_1e6_seconds_is_refused(sb, requests, per):
    with pytest.raises(ValueError, match="slowest rate"):
        custlist.RateLimiter(requests, per)
    with pytest.raises(ValueError, match="slowest rate"):
        custlist.Natural(sb.natural_token, base_url=sb.natural_url, rate_limit=(requests, per))
    assert sb.requests == []


@pytest.mark.parametrize("rate_limit", [(10**400, 1), (1, 10**400), (2e9, 1), (float("inf"), 1)])
def test_a_rate_limit_out_of_range_is_a_value_error(sb, rate_limit):
    with pytest.raises(ValueError):
        custlist.Natural(sb.natural_token, base_url=sb.natural_url, rate_limit=rate_limit)
    assert sb.requests == []


@pytest.mark.parametrize("setting", ["timeout", "connect_timeout", "backoff", "retry_after_max"])
def test_a_time_setting_too_large_for_a_float_is_a_value_error(sb, setting):
    with pytest.raises(ValueError, match=setting):
        custlist.Natural(sb.natural_token, base_url=sb.natural_url, **{setting: 10**400})
    assert sb.requests == []


def test_the_slowest_rate_taken_holds_the_next_request_back(sb):
    """One request in 1e6 seconds: the first goes, the second waits (about
    11.6 days); close() from another thread ends the wait."""
    client = custlist.Natural(sb.natural_token, base_url=sb.natural_url, rate_limit=(1, 1e6),
                              **FAST)
    pager = client.customers(limit=20)
    first = [next(pager) for _ in range(20)]
    errors = []

    def more():
        try:
            next(pager)
        except Exception as e:                 # noqa: BLE001 - checked below
            errors.append(e)

    t = threading.Thread(target=more)
    t.start()
    time.sleep(1.5)
    assert t.is_alive() and len([r for r in sb.requests if r.route == "natural.customers"]) == 1
    pager.close()
    t.join(10)
    assert not t.is_alive() and isinstance(errors[0], custlist.PagerClosedError)
    assert client.rate_limiter.stats()["granted"] == 1
    # nothing lost: the rest of the listing resumes from the cursor
    rest = custlist.Natural(sb.natural_token, base_url=sb.natural_url, **FAST).customers(
        limit=20, start_cursor=pager.cursor)
    assert [c.id for c in first] + [c.id for c in rest] == \
        [c["id"] for c in sb.data.natural_customers]


@PREFETCH
@pytest.mark.parametrize("reset, pause", [
    ("1e300", 1.5), ("1e13", 1.5), ("99999999999999999999", 1.5),   # beyond max_pause: capped
    ("inf", 1.0), ("nan", 1.0), ("-5", 1.0), ("soon", 1.0),       # no usable reset: 1 s window
    ("0.5", 0.5)])
def test_a_spent_budget_waits_whatever_the_reset_says(sb, prefetch, reset, pause):
    """X-RateLimit-Remaining: 0 holds the next request back until the reset:
    one beyond retry_after_max waits retry_after_max (never less: a huge
    reset must not overflow into no wait), one that is not a finite number
    >= 0 is no reset at all (the default one-second window)."""
    sb.inject("natural.customers", headers={"X-RateLimit-Remaining": "0",
                                            "X-RateLimit-Reset": reset})
    client = custlist.Natural(sb.natural_token, base_url=sb.natural_url, prefetch=prefetch,
                              **{**FAST, "retry_after_max": 1.5})
    got = [c.id for c in client.customers(limit=100)]
    assert got == [c["id"] for c in sb.data.natural_customers]
    at = [r.at for r in sb.requests if r.route == "natural.customers"]
    assert len(at) == 2
    assert at[1] - at[0] >= pause - 0.05
    assert at[1] - at[0] < pause + 5.0
