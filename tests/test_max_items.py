"""max_items: exactly that many records, and never a record or a page
requested beyond them (the prefetch included), on all four endpoints."""
import time

import pytest

from .listings import LISTINGS, full, requests_of


def cursor_sizes(total: int, size: int, max_items: int) -> list:
    """The page sizes a cursor listing must ask for: full pages, then only
    what remains; nothing once max_items records are in or the list ends."""
    sizes, fetched = [], 0
    while fetched < min(total, max_items):
        ask = min(size, max_items - fetched)
        sizes.append(ask)
        fetched += min(ask, total - fetched)
    return sizes


def link_sizes(total: int, size: int, max_items: int) -> list:
    """Link paging: the links repeat the first page size, which spreads
    max_items over the fewest pages."""
    if max_items == 0:
        return []
    pages = -(-max_items // size)
    first = -(-max_items // pages)
    wanted = min(total, max_items)
    return [first] * -(-wanted // first)


def expected_sizes(listing, total, size, max_items) -> list:
    sizes = cursor_sizes if listing.mode == "cursor" else link_sizes
    return sizes(total, size, max_items)


def settle():
    # a stray prefetch would reach the server just after the last page
    time.sleep(0.15)


CASES = [(None, 0), (None, 1), (None, 45), (None, 60), (7, 45), (100, 130), (25, 50), (100, 10**6),
         (None, "total"), (13, "total-1")]


@pytest.mark.parametrize("prefetch", [True, False], ids=["prefetch", "no-prefetch"])
@pytest.mark.parametrize("limit,max_items", CASES)
@pytest.mark.parametrize("listing", LISTINGS, ids=str)
def test_exactly_max_items_and_no_request_beyond(sb, listing, limit, max_items, prefetch):
    everything = full(sb, listing)
    total = len(everything)
    if max_items == "total":
        max_items = total
    elif max_items == "total-1":
        max_items = total - 1
    kwargs = {} if limit is None else {"limit": limit}
    sb.requests.clear()
    with listing.client(sb, prefetch=prefetch) as client:
        pager = listing.list(client, max_items=max_items, **kwargs)
        got = list(pager)
        assert next(pager, None) is None
        settle()
    assert got == everything[:max_items]
    sent = [int(r.query["limit"]) for r in requests_of(sb, listing)]
    assert sent == expected_sizes(listing, total, limit or listing.default_size, max_items)
    assert len(sb.requests) == len(sent)


@pytest.mark.parametrize("listing", LISTINGS, ids=str)
def test_limit_is_the_page_size_not_a_cap(sb, listing):
    with listing.client(sb) as client:
        assert len(list(listing.list(client, limit=9))) == len(full(sb, listing))


@pytest.mark.parametrize("listing", [x for x in LISTINGS if x.mode == "cursor"], ids=str)
def test_cursor_listing_asks_only_for_what_remains(sb, listing):
    sb.requests.clear()
    with listing.client(sb) as client:
        assert len(list(listing.list(client, limit=30, max_items=65))) == 65
    assert [r.query["limit"] for r in requests_of(sb, listing)] == ["30", "30", "5"]


def test_link_listing_sizes_its_first_request(sb):
    """Pyng's links are opaque and repeat the first page size: 130 records
    at most 100 a page come as two pages of 65, not 100 + 100."""
    pyng = LISTINGS[0]
    sb.requests.clear()
    with pyng.client(sb) as client:
        got = list(pyng.list(client, limit=100, max_items=130))
    assert got == full(sb, pyng)[:130]
    reqs = requests_of(sb, pyng)
    assert [r.query["limit"] for r in reqs] == ["65", "65"]
    assert "cursor" not in reqs[0].query and "cursor" in reqs[1].query


@pytest.mark.parametrize("prefetch", [True, False], ids=["prefetch", "no-prefetch"])
@pytest.mark.parametrize("listing", LISTINGS, ids=str)
def test_pages_stop_at_max_items(sb, listing, prefetch):
    with listing.client(sb, prefetch=prefetch) as client:
        pages = list(listing.list(client, limit=20, max_items=47).pages())
    assert [len(p.items) for p in pages] == ([20, 20, 7] if listing.mode == "cursor"
                                              else [16, 16, 15])
    assert [r for p in pages for r in p.items] == full(sb, listing)[:47]


@pytest.mark.parametrize("max_items", [0, 1, 33, 60, 10**6])
@pytest.mark.parametrize("listing", LISTINGS, ids=str)
def test_arrow_output_stops_at_max_items(sb, listing, max_items):
    with listing.client(sb) as client:
        pager = listing.list(client, limit=20, max_items=max_items)
        table = pager.to_arrow()
        settle()
    keys = [getattr(r, listing.key) for r in full(sb, listing)[:max_items]]
    assert table.num_rows == len(keys)
    assert table.column(listing.key).to_pylist() == keys
    assert pager.consumed == len(keys)
    sent = [int(r.query["limit"]) for r in requests_of(sb, listing)]
    assert sent == expected_sizes(listing, len(full(sb, listing)), 20, max_items)


@pytest.mark.parametrize("bad,exc", [(-1, ValueError), (True, TypeError), ("5", TypeError),
                                     (2.0, TypeError)])
@pytest.mark.parametrize("listing", LISTINGS, ids=str)
def test_bad_max_items_fails_before_any_request(sb, listing, bad, exc):
    with listing.client(sb) as client:
        with pytest.raises(exc, match="max_items"):
            listing.list(client, max_items=bad)
    assert sb.requests == []


def test_max_items_zero_requests_nothing_and_is_not_done(sb):
    natural = LISTINGS[1]
    with natural.client(sb) as client:
        pager = natural.list(client, max_items=0)
        assert list(pager) == []
        assert not pager.done            # records remain: a checkpoint resumes them
        assert pager.checkpoint()["page"] is None
    assert sb.requests == []


def test_done_only_when_the_listing_is_exhausted(sb):
    natural = LISTINGS[1]
    total = len(full(sb, natural))
    with natural.client(sb) as client:
        capped = natural.list(client, limit=20, max_items=40)
        list(capped)
        assert not capped.done and capped.cursor is not None
        whole = natural.list(client, limit=20, max_items=total)
        list(whole)
        assert whole.done and whole.cursor is None
