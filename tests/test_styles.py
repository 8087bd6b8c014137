"""Offset, page-number and Link-header paging against the sandbox's demo
API: every record exactly once, resume mid-way, loop guards, the origin
rule for Link targets, malformed Link headers."""
import json
import urllib.parse

import pytest

import custlist
from custlist import errors
from custlist.testing.demo import ENDPOINTS, LINKED, NUMBERED, OFFSET, PAGES

from .conftest import FAST
from .netkit import Recorder

SIZE = {OFFSET: "limit", PAGES: "per_page", NUMBERED: "per_page", LINKED: "per_page"}
ROUTE = {OFFSET: "demo.offset", PAGES: "demo.pages", NUMBERED: "demo.numbered",
         LINKED: "demo.linked"}


def client(sb, **kw):
    return custlist.Client(base_url=sb.demo_url, auth=custlist.BearerToken(sb.demo_token),
                           **FAST, **kw)


def ids(records):
    return [r.id for r in records]


def wire_ids(sb):
    return [c["id"] for c in sb.data.demo]


def compact(doc):
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def listing(c, ep, size=10, **kw):
    return c.paginate(ep, ep.path, {SIZE[ep]: size}, **kw)


@pytest.mark.parametrize("prefetch", [True, False])
@pytest.mark.parametrize("ep", ENDPOINTS, ids=lambda e: e.name)
@pytest.mark.parametrize("size", [10, 15, 25, 50])
def test_every_record_once_in_order(sb, ep, size, prefetch):
    pager = listing(client(sb, prefetch=prefetch), ep, size)
    got = list(pager)
    assert ids(got) == wire_ids(sb)
    assert got[0] == ep.item(*(sb.data.demo[0][k] if k != "created" else got[0].created
                               for k in ep.item.__fields__))
    assert pager.done and pager.cursor is None and pager.next_href is None
    # The end is found without a needless request where the page says so
    # (a total, a short page, no next link); numbered pages without any
    # total need one empty page after a full last one.
    full_pages = -(-75 // size)
    extra = 1 if ep is NUMBERED and 75 % size == 0 else 0
    assert len(sb.requests) == pager.pages_fetched == full_pages + extra
    asked = [r.query for r in sb.requests]
    assert all(q.get(SIZE[ep]) == str(size) for q in asked)


def test_offset_without_limit_uses_the_default_size(sb):
    got = ids(client(sb).paginate(OFFSET, OFFSET.path))
    assert got == wire_ids(sb)
    assert [r.query.get("offset") for r in sb.requests] == ["0", "20", "40", "60"]


def test_positions_on_the_wire(sb):
    list(listing(client(sb), OFFSET, 30))
    assert [r.query["offset"] for r in sb.requests] == ["0", "30", "60"]
    sb.requests.clear()
    list(listing(client(sb), PAGES, 30))
    assert [r.query["page"] for r in sb.requests] == ["1", "2", "3"]


def test_pages_report_totals_and_positions(sb):
    pager = listing(client(sb), PAGES, 20)
    pages = list(pager.pages())
    assert [len(p.items) for p in pages] == [20, 20, 20, 15]
    assert [p.total_pages for p in pages] == [4] * 4
    assert [p.cursor for p in pages] == ["2", "3", "4", None]
    assert pager.total_pages == 4
    off = list(listing(client(sb), OFFSET, 20).pages())
    assert [p.cursor for p in off] == ["20", "40", "60", None] and off[0].total == 75
    link = list(listing(client(sb), LINKED, 30).pages())
    assert [p.next_href is not None for p in link] == [True, True, False]
    assert link[0].next_href.startswith(sb.url + "/demo/linked/customers?")


@pytest.mark.parametrize("ep", ENDPOINTS, ids=lambda e: e.name)
@pytest.mark.parametrize("stop", [1, 10, 23, 60, 74])
def test_resume_from_checkpoint_mid_way(sb, ep, stop):
    c = client(sb)
    pager = listing(c, ep, 10)
    first = [r for _, r in zip(range(stop), pager)]
    cp = json.loads(json.dumps(pager.checkpoint()))
    pager.close()
    assert cp["count"] == stop and not cp["done"]
    rest = list(listing(c, ep, 10, start=cp))
    assert ids(first) + ids(rest) == wire_ids(sb)


@pytest.mark.parametrize("ep", ENDPOINTS, ids=lambda e: e.name)
def test_resume_from_page_level_position(sb, ep):
    c = client(sb)
    pager = listing(c, ep, 10)
    for _, _r in zip(range(20), pager):       # two whole pages
        pass
    if ep is LINKED:
        assert pager.cursor is None
        rest = listing(c, ep, 10, start_href=pager.next_href)
    else:
        assert pager.next_href is None
        assert pager.cursor == ("20" if ep is OFFSET else "3")
        rest = listing(c, ep, 10, start_cursor=pager.cursor)
    assert ids(rest) == wire_ids(sb)[20:]


@pytest.mark.parametrize("ep", [OFFSET, PAGES, NUMBERED], ids=lambda e: e.name)
def test_max_items_and_resume_cover_everything(sb, ep):
    c = client(sb)
    got, cp = [], None
    while cp is None or not cp["done"]:
        pager = listing(c, ep, 10, max_items=17, start=cp)
        got += ids(pager)
        cp = pager.checkpoint()
    assert got == wire_ids(sb)
    if ep is OFFSET:     # the last request of each run asks for no more than it hands out
        assert all(int(r.query["limit"]) <= 10 for r in sb.requests)
        assert sum(1 for r in sb.requests if r.query["limit"] == "7") >= 1


@pytest.mark.parametrize("prefetch", [True, False])
@pytest.mark.parametrize("ep", [OFFSET, PAGES, NUMBERED], ids=lambda e: e.name)
def test_server_that_repeats_a_page_is_a_loop(sb, ep, prefetch):
    # The server ignores the position: every later request gets page one
    # again, byte for byte (as the sandbox serialises it).
    c = client(sb, prefetch=prefetch)
    first_body = compact(
        {OFFSET: {"items": sb.data.demo[:10], "total": 75},
         PAGES: {"data": sb.data.demo[:10], "page": 1, "total_pages": 8},
         NUMBERED: {"data": sb.data.demo[:10]}}[ep])
    sb.inject(ROUTE[ep], skip=1, times=30, body=first_body)      # finite: never hangs
    got = []
    with pytest.raises(errors.PagingLoopError, match="same records"):
        for r in listing(c, ep, 10):
            got.append(r.id)
    assert got == wire_ids(sb)[:len(got)] and len(got) <= 10
    assert len(sb.requests) == 2


def test_server_that_cycles_between_pages_is_a_loop(sb):
    # Pages 1, 2, 1, 2...: a repeat that is not the page just before.
    c = client(sb)
    bodies = [compact({"items": sb.data.demo[i:i + 10], "total": 75}) for i in (0, 10)]
    sb.inject("demo.offset", skip=2, times=1, body=bodies[0])
    got = []
    with pytest.raises(errors.PagingLoopError):
        for r in listing(c, OFFSET, 10):
            got.append(r.id)
    assert got == wire_ids(sb)[:len(got)] and len(got) <= 20


def test_link_that_comes_back_is_a_loop(sb):
    c = client(sb)
    back = f'<{sb.demo_url}/linked/customers?per_page=10>; rel="next"'
    sb.inject("demo.linked", skip=2, times=1, headers={"Link": back})
    got = []
    with pytest.raises(errors.PagingLoopError):
        for r in listing(c, LINKED, 10):
            got.append(r.id)
    assert got == wire_ids(sb)[:len(got)] and len(got) <= 30
    assert len(sb.requests) == 3


@pytest.mark.parametrize("prefetch", [True, False])
def test_link_to_another_origin_is_refused_before_any_request(sb, prefetch):
    other = Recorder()
    try:
        c = client(sb, prefetch=prefetch)
        for target in (f"{other.url}/demo/linked/customers?per_page=10&after=dcus_00010",
                       f"https://{sb.url.split('://')[1]}/demo/linked/customers",
                       "//127.0.0.3:1/demo/linked/customers"):
            sb.requests.clear()
            sb.inject("demo.linked", times=1, headers={"Link": f'<{target}>; rel="next"'})
            got = []
            with pytest.raises(errors.UnsafeURLError, match="not the client's origin"):
                for r in listing(c, LINKED, 10):
                    got.append(r.id)
            assert got == wire_ids(sb)[:len(got)] and len(got) <= 10
            assert len(sb.requests) == 1
        assert other.requests == []
    finally:
        other.close()


def test_relative_and_unusual_but_valid_link_headers(sb):
    c = client(sb)
    nxt = "/demo/linked/customers?per_page=10&after=dcus_00010"
    for value in (f'<{nxt}>; rel="next"',
                  f'<{nxt}>;rel=next',
                  f'<{nxt}>; REL="prev NEXT"; title="a, b; c"',
                  f'<{sb.demo_url}/x>; rel="first", , <{nxt}>; rel="next"; type=json',
                  f'<{nxt}>; rel="next", <{nxt}>; rel="next"'):
        sb.inject("demo.linked", times=1, headers={"Link": value})
        assert ids(listing(c, LINKED, 10)) == wire_ids(sb), value
    sb.inject("demo.linked", times=1, headers={"Link": f'<{nxt}>; rel="nextpage"'})
    assert ids(listing(c, LINKED, 10)) == wire_ids(sb)[:10]          # no next: the end


@pytest.mark.parametrize("value", [
    '<http://127.0.0.1/a; rel="next"',
    'http://127.0.0.1/a; rel="next"',
    '<http://127.0.0.1/a>; rel="next',
    '<http://127.0.0.1/a> rel="next"',
    '<http://127.0.0.1/a b>; rel="next"',
    '<>; rel="next"',
    '<http://127.0.0.1/a>; ="next"',
    '<http://127.0.0.1/a>; rel=',
    '</a>; rel="next", </b>; rel="next"',
    '<http://127.0.0.1/\u00e9>; rel="next"',
])
def test_malformed_link_header(sb, value):
    c = client(sb)
    sb.inject("demo.linked", times=1, skip=1, headers={"Link": value})
    got = []
    with pytest.raises(errors.PagingError, match="malformed Link header") as e:
        for r in listing(c, LINKED, 10):
            got.append(r.id)
    assert type(e.value) is errors.PagingError
    assert got == wire_ids(sb)[:len(got)] and 10 <= len(got) <= 20
    assert len(sb.requests) == 2


def test_bad_arguments_fail_before_any_request(sb):
    c = client(sb)
    for start in ("abc", "-1", "", "1e3", "01", " 5", "9" * 19):
        with pytest.raises((ValueError, TypeError)):
            listing(c, OFFSET, 10, start_cursor=start)
    with pytest.raises(ValueError, match="from 1"):
        listing(c, PAGES, 10, start_cursor="0")
    with pytest.raises(ValueError, match="paging position"):
        c.paginate(OFFSET, OFFSET.path, {"offset": 5})
    with pytest.raises(ValueError, match="paging position"):
        c.paginate(PAGES, PAGES.path, {"page": 2})
    assert sb.requests == []


def test_paging_descriptions_are_checked():
    with pytest.raises(ValueError):
        custlist.OffsetPaging(items="x", offset="a b")
    with pytest.raises(ValueError):
        custlist.PagePaging(items="x", first=2)
    with pytest.raises(TypeError):
        custlist.Endpoint("/x", custlist.Record, "offset")


def test_pages_counted_from_zero(sb):
    # An API whose first page is page 0: the demo's pages shifted by one.
    ZERO = custlist.Endpoint("/pages/customers", PAGES.item,
                             custlist.PagePaging(items="data", per_page="per_page", first=0),
                             default_page_size=20)
    zero = [f"p0_{i}" for i in range(10)]
    sb.inject("demo.pages", times=1, body=compact({"data": [{"id": i} for i in zero]}))
    got = ids(client(sb).paginate(ZERO, ZERO.path, {"per_page": 10}))
    # page 0 (injected), then pages 1, 2... of the sandbox
    assert got == zero + wire_ids(sb)
    assert [r.query["page"] for r in sb.requests][:3] == ["0", "1", "2"]
    assert client(sb).paginate(ZERO, ZERO.path, start_cursor="0").cursor == "0"


def test_arrow_output_in_every_style(sb):
    import pyarrow as pa
    for ep in ENDPOINTS:
        table = listing(client(sb), ep, 20).to_arrow()
        assert isinstance(table, pa.Table)
        assert table.column("id").to_pylist() == wire_ids(sb)


def test_errors_keep_the_position(sb):
    c = client(sb, max_retries=0)
    sb.inject("demo.offset", skip=2, status=503)
    pager = listing(c, OFFSET, 10)
    got = []
    with pytest.raises(errors.ServerError):
        for r in pager:
            got.append(r.id)
    assert got == wire_ids(sb)[:20]
    assert ids(listing(c, OFFSET, 10, start=pager.checkpoint())) == wire_ids(sb)[20:]


def test_demo_api_refuses_bad_sizes_and_tokens(sb):
    with pytest.raises(errors.BadRequestError, match="limit must be a number >= 1 and at most 50"):
        list(listing(client(sb), OFFSET, 51))
    bad = custlist.Client(base_url=sb.demo_url, auth=custlist.BearerToken("wrong"), **FAST)
    with pytest.raises(errors.AuthenticationError):
        list(listing(bad, PAGES, 10))
    # the 401 is asked again once, with the credentials renewed
    assert [r.route for r in sb.requests] == ["demo.offset", "demo.pages", "demo.pages"]


def test_every_style_in_one_fan_out(sb):
    c = client(sb)
    with custlist.fan_out({ep.name: listing(c, ep, 20) for ep in ENDPOINTS},
                          concurrency=4) as out:
        got = {}
        for source, record in out:
            got.setdefault(source, []).append(record.id)
    assert out.summary.ok
    assert got == {ep.name: wire_ids(sb) for ep in ENDPOINTS}
