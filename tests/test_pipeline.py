"""The locating pass done by the fetch thread: as a page's bytes arrive it
records where the page's big shallow arrays and objects end, and the pager
steps over the items array by that record instead of scanning it.  The
record is only a shortcut: every page must decode, and every bad page fail,
exactly as the pager's own scan would have it (the deferred decode of the
same bytes), after the records of the pages before it.  (close() while the
fetch thread is scanning a page that trickles in: tests/test_lifecycle.py.)"""
import json

import pytest

import custlist
from custlist import _core, pyng as pyng_mod

from .conftest import FAST
from .test_reliability import page_hits


def deferred_error(body: bytes, max_depth: int):
    """What the two-pass decode of these bytes alone says about them."""
    page, item = pyng_mod.CUSTOMERS.schemas(False, deferred=True)
    with pytest.raises(custlist.DecodeError) as info:
        _core.decode_page(page, item, body, max_depth)
    return info.value


def item(ref: str, pad: int = 0, extra=None) -> dict:
    d = {"customerReference": ref + "x" * pad, "state": "linked", "invitedAt": 0}
    if extra is not None:
        d["extra"] = extra
    return d


def body_of(items, more: bool = True, total: int = 1000, **envelope) -> bytes:
    data = {**envelope, "items": items, "totalItems": total}
    if more:
        data["nextHref"] = "/pyng/billing/sites/site_1/customers?cursor=zz"
    return json.dumps({"data": data, "traceId": "t"}, separators=(",", ":")).encode()


def test_items_nested_past_max_depth_fail_at_the_array_after_the_records_before(sb):
    # root 1, data 2, items 3, record 4, then "extra" five lists deep: past 8.
    # The fetch thread recorded the array (over 1 KB) and how deep it goes:
    # stepping over it whole would let the items decode fail deeper instead.
    client = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, max_depth=8, **FAST)
    items = [item("r%d" % i, pad=200) for i in range(10)] + [item("deep", extra=[[[[[]]]]])]
    bad = body_of(items)
    assert bad.index(b'"items":') > 0 and len(bad) > 2048
    sb.inject("pyng.customers", body=bad, skip=1, times=1)
    pager = client.customers(site_id="site_1", limit=10)
    got = []
    with pytest.raises(custlist.DecodeError) as info:
        for rec in pager:
            got.append(rec.customer_reference)
    want = deferred_error(bad, 8)
    assert info.value.offset == want.offset == bad.index(b'"items":') + len('"items":')
    assert want.message in str(info.value)
    assert got == [c["customerReference"] for c in sb.data.pyng["site_1"][:10]]


def test_items_within_max_depth_still_decode_through_the_recorded_span(sb):
    client = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, max_depth=9, **FAST)
    items = [item("r%d" % i, pad=200) for i in range(10)] + [item("deep", extra=[[[[[]]]]])]
    # limit=9 marks this test's requests: the request the fetch thread had
    # sent for the page after the previous test's failing one may reach the
    # shared sandbox late, and must not take this fault
    sb.inject("pyng.customers", body=body_of(items, more=False, total=9 + len(items)), skip=1,
              times=1, query={"limit": "9"})
    got = [r.customer_reference for r in client.customers(site_id="site_1", limit=9)]
    assert got[9:] == [i["customerReference"] for i in items]


@pytest.mark.parametrize("cut", [1, 700, 1500, -40, -2])
def test_items_cut_short_fail_at_the_end_after_the_records_before(sb, pyng, cut):
    full = body_of([item("r%d" % i, pad=150) for i in range(12)])
    start = full.index(b'"items":[') + len('"items":')
    bad = full[:start + cut] if cut > 0 else full[:full.index(b'],"totalItems"') + cut]
    sb.inject("pyng.customers", body=bad, skip=1, times=1)
    got = []
    with pytest.raises(custlist.DecodeError) as info:
        for rec in pyng.customers(site_id="site_1", limit=10):
            got.append(rec)
    want = deferred_error(bad, 64)
    assert info.value.offset == want.offset == len(bad)
    assert "unexpected end of body" in str(info.value)
    assert len(got) == 10
    assert len(page_hits(sb)) == 2          # nothing requested after the bad page


@pytest.mark.parametrize("big_items", [True, False])
def test_more_big_structures_than_are_recorded_still_locate_the_items(sb, pyng, big_items):
    # Twelve objects over 1 KB each at the items' level come first: only the
    # largest spans are kept.  The items decode whether theirs is kept (the
    # largest) or given way (smaller than the others) and scanned.
    others = {"x%d" % i: {"blob": "b" * (1200 + i)} for i in range(12)}
    items = [item("big%d" % i, pad=300 if big_items else 0) for i in range(8)]
    page = body_of(items, more=False, total=len(items), **others)
    sb.inject("pyng.customers", body=page, times=1)
    got = [r.customer_reference for r in pyng.customers(site_id="site_1", limit=10)]
    assert got == [i["customerReference"] for i in items]


def test_brackets_and_escapes_in_strings_across_the_arrival_do_not_move_the_end(sb, pyng):
    # The body arrives in small pieces, so the scan carries its state (in a
    # string, after a backslash) from one piece to the next.
    tricky = ['x]' * 40, '\\"]}' * 30, '\\\\' * 50 + ']', '{[' * 60, 'é' * 100 + '"']
    items = [item("t%d-%s" % (i, t)) for i, t in enumerate(tricky * 3)]
    page = body_of(items, more=False, total=len(items))
    sb.inject("pyng.customers", body=page, times=1, trickle=(97, 0.0))
    got = [r.customer_reference for r in pyng.customers(site_id="site_1", limit=10)]
    assert got == [i["customerReference"] for i in items]
