"""A description of one's own API that does not match the server's pages:
a misspelt items, cursor or next-link key, or a listing that ends short of
the total its pages state, is an error naming the key and the keys the page
has, after the records received are delivered, with an exact checkpoint;
never a short listing.  The same in records, pages and Arrow output."""
import pytest

import custlist
from custlist import CursorPaging, Endpoint, Field, HrefPaging, Record, errors
from custlist.testing.demo import OFFSET

from .conftest import FAST


class Cust(Record):
    id = Field(str)


class Ref(Record):
    customer_reference = Field(str, "customerReference")


COMMENDA_KEYS = "keys: customers, total_customers, cursor"
QUERY = {"corporation_id": "corp_123", "limit": 50}


def commenda(sb):
    return custlist.Commenda(sb.commenda_token, base_url=sb.commenda_url, **FAST)


def commenda_ids(sb):
    return [c["id"] for c in sb.data.commenda["corp_123"]]


def endpoint(paging, item=Cust):
    return Endpoint("/customers", item, paging, name="mine.customers")


GOOD = endpoint(CursorPaging(items="customers", cursor="cursor", total="total_customers"))


def drain(pager):
    got = []
    with pytest.raises(errors.CustlistError) as info:
        for r in pager:
            got.append(r)
    return got, info.value


@pytest.mark.parametrize("prefetch", [True, False])
def test_misspelt_cursor_key_is_an_error_after_the_first_page(sb, prefetch):
    c = custlist.Commenda(sb.commenda_token, base_url=sb.commenda_url, prefetch=prefetch, **FAST)
    bad = endpoint(CursorPaging(items="customers", cursor="next_cursor", total="total_customers"))
    pager = c.paginate(bad, "/customers", QUERY)
    got, exc = drain(pager)
    assert type(exc) is errors.MissingKeyError and isinstance(exc, errors.PagingError)
    assert str(exc) == ("'next_cursor' not in the page; 50 of the 161 records the pages state "
                        f"have arrived ({COMMENDA_KEYS})")
    assert exc.paths == ("next_cursor",) and exc.keys == ("customers", "total_customers", "cursor")
    assert [r.id for r in got] == commenda_ids(sb)[:50] and pager.total == 161
    assert not pager.done
    cp = pager.checkpoint()
    assert (cp["page"], cp["skip"], cp["count"], cp["done"]) == (None, 50, 50, False)
    # the description fixed, the checkpoint continues with the very next record
    rest = list(c.paginate(GOOD, "/customers", QUERY, start=cp))
    assert [r.id for r in got + rest] == commenda_ids(sb)


def test_misspelt_cursor_key_where_the_page_says_more(sb, natural):
    bad = Endpoint("/customers", Cust, CursorPaging(
        items="data", cursor="meta.pagination.nextcursor", has_more="meta.pagination.has_more"))
    pager = natural.paginate(bad, "/customers", {"limit": 40})
    got, exc = drain(pager)
    assert type(exc) is errors.MissingKeyError
    assert str(exc) == ("'meta.pagination.nextcursor' not in the page; the page says there is "
                        "more (keys of 'meta.pagination': has_more, next_cursor)")
    assert [r.id for r in got] == [c["id"] for c in sb.data.natural_customers[:40]]
    assert len(sb.requests) == 1


@pytest.mark.parametrize("items, keys", [("customer", COMMENDA_KEYS), ("data", COMMENDA_KEYS)])
def test_misspelt_items_key_is_an_error_on_the_first_page(sb, items, keys):
    bad = endpoint(CursorPaging(items=items, cursor="cursor", total="total_customers"))
    pager = commenda(sb).paginate(bad, "/customers", QUERY)
    got, exc = drain(pager)
    assert type(exc) is errors.MissingKeyError
    assert str(exc) == f"'{items}' not in the page ({keys})"
    assert got == [] and len(sb.requests) == 1
    cp = pager.checkpoint()
    assert (cp["page"], cp["skip"], cp["count"], cp["done"]) == (None, 0, 0, False)
    assert [r.id for r in commenda(sb).paginate(GOOD, "/customers", QUERY, start=cp)] \
        == commenda_ids(sb)


def test_items_key_of_another_api_on_the_demo(sb):
    # the page has "items"; the description says "data"
    c = custlist.Client(base_url=sb.demo_url, auth=custlist.BearerToken(sb.demo_token), **FAST)
    bad = Endpoint(OFFSET.path, OFFSET.item,
                   custlist.OffsetPaging(items="data", offset="offset", limit="limit"))
    with pytest.raises(errors.MissingKeyError,
                       match=r"^'data' not in the page \(keys: items, total\)$"):
        list(c.paginate(bad, OFFSET.path))


def test_alternatives_are_all_named(sb):
    bad = endpoint(CursorPaging(items=["customer", "data.customer"], cursor="cursor"))
    with pytest.raises(errors.MissingKeyError) as info:
        list(commenda(sb).paginate(bad, "/customers", QUERY))
    assert str(info.value) == f"none of 'customer', 'data.customer' in the page ({COMMENDA_KEYS})"
    assert info.value.paths == ("customer", "data.customer")


def test_misspelt_next_link_short_of_the_total(sb, pyng):
    bad = Endpoint("/billing/sites/{site_id}/customers", Ref, HrefPaging(
        items="data.items", next_href="data.next_href", total="data.totalItems"),
        name="mine.pyng")
    pager = pyng.paginate(bad, "/billing/sites/site_1/customers", {"limit": 100})
    got, exc = drain(pager)
    assert type(exc) is errors.MissingKeyError
    assert str(exc).startswith("'data.next_href' not in the page; 100 of the 237 records the "
                               "pages state have arrived (keys of 'data': ")
    assert "nextHref" in exc.keys
    refs = [c["customerReference"] for c in sb.data.pyng["site_1"]]
    assert [r.customer_reference for r in got] == refs[:100]
    cp = pager.checkpoint()
    assert (cp["skip"], cp["count"]) == (100, 100)


def stop_after_one_page(sb):
    """The server's second page says the end (cursor null) though its total says more."""
    rows = sb.data.commenda["corp_123"]
    body = {"customers": [{"id": r["id"]} for r in rows[50:100]], "total_customers": 161,
            "cursor": None}
    sb.inject("commenda.customers", skip=1, body=body)


@pytest.mark.parametrize("prefetch", [True, False])
def test_listing_that_ends_before_its_total_is_an_error(sb, prefetch):
    stop_after_one_page(sb)
    c = custlist.Commenda(sb.commenda_token, base_url=sb.commenda_url, prefetch=prefetch, **FAST)
    pager = c.paginate(GOOD, "/customers", QUERY)
    got, exc = drain(pager)
    assert type(exc) is errors.IncompleteListingError and isinstance(exc, errors.PagingError)
    assert str(exc).startswith("the listing ended after 100 records, but its pages state a "
                               "total of 161 (last page: http://127.0.0.1:")
    assert (exc.received, exc.total) == (100, 161)
    assert [r.id for r in got] == commenda_ids(sb)[:100] and not pager.done
    cp = pager.checkpoint()
    assert (cp["skip"], cp["count"], cp["done"]) == (50, 100, False)


def test_the_count_of_a_resumed_listing_includes_what_came_before(sb):
    c = commenda(sb)
    pager = c.paginate(GOOD, "/customers", QUERY)
    first = [r for _, r in zip(range(70), pager)]
    cp = pager.checkpoint()
    pager.close()
    rest = list(c.paginate(GOOD, "/customers", QUERY, start=cp))    # complete: no error
    assert [r.id for r in first + rest] == commenda_ids(sb)
    # resumed after 70, the server stops at 100: 100 counted, not 30
    pager = c.paginate(GOOD, "/customers", QUERY, start=cp)
    # the resumed page whole, then an empty last page where the rest should be
    sb.inject("commenda.customers", skip=1, body={"customers": [], "total_customers": 161,
                                                  "cursor": None})
    got, exc = drain(pager)
    assert [r.id for r in got] == commenda_ids(sb)[70:100]
    assert type(exc) is errors.IncompleteListingError
    assert (exc.received, exc.total) == (100, 161)


def test_max_items_and_a_saved_cursor_are_not_checked_against_the_total(sb):
    c = commenda(sb)
    assert len(list(c.paginate(GOOD, "/customers", QUERY, max_items=60))) == 60
    stop_after_one_page(sb)
    assert len(list(c.paginate(GOOD, "/customers", QUERY, max_items=80))) == 80
    # from a cursor alone the records before it are not known
    pager = c.paginate(GOOD, "/customers", QUERY)
    for _ in zip(range(50), pager):
        pass
    cursor = pager.cursor
    pager.close()
    sb.clear_faults()
    # The closed pager's fetch thread may have had a request on the wire
    # still: the fault is for this listing's page size alone.
    sb.inject("commenda.customers", body={"customers": [], "total_customers": 161,
                                          "cursor": None}, query={"limit": "40"})
    assert list(c.paginate(GOOD, "/customers", {**QUERY, "limit": 40}, start_cursor=cursor)) == []


def test_pages_and_arrow_get_the_same_errors(sb):
    import pyarrow as pa
    bad = endpoint(CursorPaging(items="customers", cursor="next_cursor", total="total_customers"))
    c = commenda(sb)
    pages = []
    with pytest.raises(errors.MissingKeyError, match="'next_cursor' not in the page"):
        for p in c.paginate(bad, "/customers", QUERY).pages():
            pages.append(p)
    assert [len(p.items) for p in pages] == [50]
    with pytest.raises(errors.MissingKeyError, match="'next_cursor' not in the page"):
        c.paginate(bad, "/customers", QUERY).to_arrow()
    nothing = endpoint(CursorPaging(items="customer", cursor="cursor"))
    with pytest.raises(errors.MissingKeyError, match="'customer' not in the page"):
        c.paginate(nothing, "/customers", QUERY).to_arrow()
    stop_after_one_page(sb)
    pager = c.paginate(GOOD, "/customers", QUERY)
    batches = []
    reader = pa.RecordBatchReader.from_stream(pager)
    with pytest.raises(Exception, match="the listing ended after 100 records"):
        for b in reader:
            batches.append(b)
    assert sum(b.num_rows for b in batches) == 100
    # a stream another library read fails whole: its rows are not taken as
    # handed out (pyarrow.table would drop them), so the checkpoint is where
    # the stream started and a resume reads them again
    cp = pager.checkpoint()
    assert (cp["skip"], cp["count"]) == (0, 0)
    stop_after_one_page(sb)
    with pytest.raises(errors.IncompleteListingError):
        c.paginate(GOOD, "/customers", QUERY).to_arrow()


def test_arrow_output_raises_a_paging_error_found_after_its_last_page(sb, natural):
    # "more" but no cursor: records and Arrow alike end in the error, not silently
    body = {"data": [], "meta": {"pagination": {"has_more": True, "next_cursor": None}}}
    for read in (list, lambda p: p.to_arrow()):
        sb.inject("natural.customers", skip=1, body=body)
        with pytest.raises(errors.PagingError, match="says there is more but gives no cursor"):
            read(natural.customers(limit=50))
