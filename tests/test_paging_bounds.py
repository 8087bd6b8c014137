"""Bounds and paging semantics against hostile servers (the sandbox on
loopback): null and odd items values, decode errors that point at the value
and name the response, the per-page item budget, max_pages, runs of empty
pages, a loop guard in bounded memory, loops that must not drop a page, and
Ctrl-C in the middle of a huge page."""
import json
import signal
import subprocess
import sys
import textwrap
import time
import tracemalloc

import pytest

import custlist

from .conftest import FAST


def refs(records):
    return [c.customer_reference for c in records]


def wire_refs(sb, site="site_1"):
    return [c["customerReference"] for c in sb.data.pyng[site]]


def hits(sb, route):
    return [r for r in sb.requests if r.route == route]


def pyng_client(sb, **kw):
    return custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, **{**FAST, **kw})


def natural_client(sb, **kw):
    return custlist.Natural(sb.natural_token, base_url=sb.natural_url, **{**FAST, **kw})


def natural_page(ids, cursor=None, more=None):
    more = cursor is not None if more is None else more
    return json.dumps({"data": [{"type": "party", "id": i} for i in ids],
                       "meta": {"pagination": {"has_more": more, "next_cursor": cursor}}})


PREFETCH = pytest.mark.parametrize("prefetch", [True, False], ids=["prefetch", "one-pass"])


# ---------------------------------------------------------------------------
# Items that are null or not an array


@PREFETCH
def test_null_data_is_an_empty_page_in_pages_and_iteration(sb, prefetch):
    body = '{"data":null,"meta":{"pagination":{"has_more":false}}}'
    sb.inject("natural.customers", body=body, times=2)
    client = natural_client(sb, prefetch=prefetch)
    pages = list(client.customers().pages())
    assert [p.items for p in pages] == [()] and pages[0].has_more is False
    pager = client.customers()
    assert list(pager) == [] and pager.done and pager.pages_fetched == 1


@PREFETCH
def test_null_items_after_a_full_page_keep_every_record(sb, prefetch):
    body = '{"data":{"items":null,"totalItems":237},"traceId":"t"}'
    sb.inject("pyng.customers", body=body, skip=1, times=1)
    client = pyng_client(sb, prefetch=prefetch)
    # the page stops the listing short of its total: an error once the
    # records before it are delivered
    short = "the listing ended after 10 records, but its pages state a total of 237"
    pages = []
    with pytest.raises(custlist.errors.IncompleteListingError, match=short):
        for page in client.customers(site_id="site_1", limit=10).pages():
            pages.append(page)
    assert [len(p.items) for p in pages] == [10, 0]
    assert refs(pages[0].items) == wire_refs(sb)[:10]
    sb.inject("pyng.customers", body=body, skip=1, times=1)
    got = []
    with pytest.raises(custlist.errors.IncompleteListingError, match=short):
        for c in client.customers(site_id="site_1", limit=10):
            got.append(c)
    assert refs(got) == wire_refs(sb)[:10]


@PREFETCH
@pytest.mark.parametrize("items", ['"x"', "true", "5", "{}"])
def test_items_that_are_not_an_array_are_a_decode_error_at_the_value(sb, prefetch, items):
    body = '{"data":' + items + ',"meta":{"pagination":{"has_more":false}}}'
    sb.inject("natural.customers", body=body, times=2)
    client = natural_client(sb, prefetch=prefetch)
    for run in (lambda: list(client.customers()), lambda: list(client.customers().pages())):
        with pytest.raises(custlist.DecodeError) as info:
            run()
        assert type(info.value) is custlist.DecodeError and info.value.offset == 8
        assert "expected an array" in str(info.value)


# ---------------------------------------------------------------------------
# Decode errors: at the failing value, whatever the mode, and naming the response


@PREFETCH
@pytest.mark.parametrize("item, total, why", [
    ('"2026-01-04T15:30:00Z"', "9" * 5000, "digits"),           # past the int digit limit
    ('"2026-13-01T00:00:00Z"', "1", "timestamp"),
    ('"2026-01-04T15:30.5Z"', "1", "timestamp"),                # fraction of a minute
], ids=["int-digits", "bad-date", "minute-fraction"])
def test_decode_error_points_at_the_value_and_keeps_the_resume_point(sb, prefetch, item, total,
                                                                     why):
    value = total if why == "digits" else item
    body = ('{"data":{"items":[{"customerReference":"A","state":"linked","invitedAt":' + item
            + '}],"totalItems":' + total + '},"traceId":"t"}').encode()
    sb.inject("pyng.customers", body=body, skip=1, times=1)
    client = pyng_client(sb, prefetch=prefetch)
    pager = client.customers(site_id="site_1", limit=10)
    got = []
    with pytest.raises(custlist.DecodeError) as info:
        for c in pager:
            got.append(c)
    e = info.value
    assert type(e) is custlist.DecodeError and why in str(e)
    assert e.offset == body.index(value.encode()), str(e)
    assert e.url == pager.next_href and e.content_type.startswith("application/json")
    assert "not JSON" not in str(e)
    rest = refs(client.customers(site_id="site_1", start_href=pager.next_href))
    assert refs(got) + rest == wire_refs(sb)                    # nothing lost or repeated


@PREFETCH
def test_non_json_200_names_its_content_type_and_url(sb, prefetch):
    sb.inject("pyng.customers", body="<html><body>Sign in to the proxy</body></html>",
              content_type="text/html; charset=utf-8", skip=1, times=1)
    pager = pyng_client(sb, prefetch=prefetch).customers(site_id="site_1", limit=10)
    got = []
    with pytest.raises(custlist.DecodeError) as info:
        for c in pager:
            got.append(c)
    e = info.value
    assert e.offset == 0 and e.content_type == "text/html; charset=utf-8"
    assert e.url == pager.next_href and "/billing/sites/site_1/customers" in e.url
    assert "text/html; charset=utf-8, not JSON" in str(e)
    assert e.url.split("?")[0] in str(e) and "limit=" not in str(e)   # never the query
    assert refs(got) == wire_refs(sb)[:10]


# ---------------------------------------------------------------------------
# Memory bounded by the body: the per-page item budget


@PREFETCH
def test_item_budget_stops_an_amplifying_page(sb, prefetch):
    # the smallest item that decodes: its required fields alone
    item = '{"customerReference":"r","state":"s","invitedAt":1}'
    body = ('{"data":{"items":[' + ",".join([item] * 5000) + '],"totalItems":5000},'
            '"traceId":"t"}').encode()
    sb.inject("pyng.customers", body=body, skip=1, times=2)
    client = pyng_client(sb, prefetch=prefetch, max_items_per_page=1000)
    pager = client.customers(site_id="site_1", limit=10)
    got = []
    with pytest.raises(custlist.DecodeError) as info:
        for c in pager:
            got.append(c)
    assert "max_items_per_page" in str(info.value)
    first = body.index(item.encode())
    assert info.value.offset == first + (len(item) + 1) * 1000   # at the 1001st item
    assert refs(got) == wire_refs(sb)[:10]
    # the default budget is generous: the same page decodes whole
    with pyng_client(sb, prefetch=prefetch).customers(site_id="site_1",
                                                      start_href=pager.next_href) as rest:
        assert len(next(rest.pages()).items) == 5000         # (closed: no stray prefetch)


def test_item_budget_counts_values_inside_records_too(sb):
    nested = "[" + ",".join(["[]"] * 3000) + "]"
    body = ('{"data":[{"type":"grp","id":"g","attributes":{"x":' + nested + '}}],'
            '"meta":{"pagination":{"has_more":false}}}')
    sb.inject("natural.customers", body=body, times=1)
    with pytest.raises(custlist.DecodeError, match="max_items_per_page"):
        list(natural_client(sb, max_items_per_page=2000).customers())


@pytest.mark.parametrize("setting", [dict(max_items_per_page=0), dict(max_pages=0),
                                     dict(max_items_per_page=1.5), dict(max_pages="3"),
                                     dict(max_depth=1001)])
def test_bounds_are_validated_at_construction(setting):
    with pytest.raises(ValueError):
        custlist.Pyng(token="t", base_url="http://127.0.0.1:1/pyng", **setting)


# ---------------------------------------------------------------------------
# Endless listings


@PREFETCH
def test_max_pages_raises_after_the_last_allowed_page_and_resumes(sb, prefetch):
    client = pyng_client(sb, prefetch=prefetch, max_pages=3)
    pager = client.customers(site_id="site_1", limit=10)
    got = []
    with pytest.raises(custlist.PagingError, match="max_pages=3") as info:
        for c in pager:
            got.append(c)
    assert type(info.value) is custlist.PagingError
    assert refs(got) == wire_refs(sb)[:30] and pager.pages_fetched == 3
    assert len(hits(sb, "pyng.customers")) == 3                   # no fourth request
    assert not pager.done
    rest = refs(pyng_client(sb).customers(site_id="site_1", start_href=pager.next_href))
    assert refs(got) + rest == wire_refs(sb)
    # a listing that fits is not affected
    assert refs(pyng_client(sb, max_pages=24).customers(site_id="site_1", limit=10)) == wire_refs(sb)


def test_max_pages_applies_to_pages_too(sb):
    pages = pyng_client(sb, max_pages=2).customers(site_id="site_1", limit=50).pages()
    assert [len(next(pages).items), len(next(pages).items)] == [50, 50]
    with pytest.raises(custlist.PagingError, match="max_pages=2"):
        next(pages)


@PREFETCH
def test_a_run_of_empty_pages_that_say_more_is_stopped(sb, prefetch):
    def answer(query):          # five records, then empty pages, each with a new cursor
        cursor = query.get("cursor", "")
        if not cursor:
            return natural_page([f"p{i}" for i in range(1, 6)], cursor="c0")
        return natural_page([], cursor=f"c{int(cursor[1:]) + 1}")

    sb.inject("natural.customers", body=answer, times=None)
    # max_pages only as a backstop: without the run limit this must fail, not hang
    pager = natural_client(sb, prefetch=prefetch, max_pages=500).customers(limit=5)
    got = []
    with pytest.raises(custlist.PagingError, match="more than 100 pages in a row had no records") as info:
        for c in pager:
            got.append(c.id)
    assert type(info.value) is custlist.PagingError
    assert got == ["p1", "p2", "p3", "p4", "p5"]
    empties = [r for r in hits(sb, "natural.customers") if r.query.get("cursor", "")[:1] == "c"]
    assert len(empties) in (101, 102)                   # + one prefetched


def test_empty_pages_between_full_ones_are_fine(sb):
    bodies = [natural_page(["a"], "c1"), natural_page([], "c2"), natural_page([], "c3"),
              natural_page(["b"], None)]
    sb.inject("natural.customers", times=4,
              body=lambda q: bodies[int(q.get("cursor", "c0")[1:])])
    assert [c.id for c in natural_client(sb).customers()] == ["a", "b"]


def test_loop_guard_memory_does_not_grow_with_cursor_size(sb):
    big = "x" * 60_000                  # about the longest URL the sandbox takes
    def answer(query):
        n = int(query.get("cursor", "0x").rstrip("x")) + 1
        return natural_page([f"p{n}"], cursor=f"{n}{big}")

    sb.inject("natural.customers", body=answer, times=None)
    pager = natural_client(sb, max_pages=150).customers()
    tracemalloc.start()
    try:
        got = []
        with pytest.raises(custlist.PagingError, match="max_pages=150"):
            for c in pager:
                got.append(c.id)
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(True, __file__)])      # what the pager keeps, not the server
        kept = sum(t.size for t in snapshot.traces)
    finally:
        tracemalloc.stop()
    assert got == [f"p{n}" for n in range(1, 151)]
    assert kept < 2_000_000, kept                      # 150 cursors of 60 kB would be 9 MB


# ---------------------------------------------------------------------------
# A loop must not drop the page that reveals it


@PREFETCH
def test_cursor_loop_yields_every_record_then_raises(sb, prefetch):
    bodies = {"": natural_page(["p1", "p2"], "A"), "A": natural_page(["p3"], "B"),
              "B": natural_page(["p4", "p5"], "A")}
    seen = []

    def answer(query):
        cursor = query.get("cursor", "")
        seen.append(cursor)
        return bodies[cursor]

    sb.inject("natural.customers", body=answer, times=None)
    pager = natural_client(sb, prefetch=prefetch, max_pages=50).customers()   # max_pages: a backstop
    got = []
    with pytest.raises(custlist.PagingLoopError):
        for c in pager:
            got.append(c.id)
    assert got == ["p1", "p2", "p3", "p4", "p5"]
    assert seen == ["", "A", "B"] and not pager.done and pager.cursor is None


def test_cursor_loop_in_pages_delivers_the_page_then_raises(sb):
    bodies = {"": natural_page(["p1"], "A"), "A": natural_page(["p2"], "B"),
              "B": natural_page(["p3"], "A")}
    sb.inject("natural.customers", body=lambda q: bodies[q.get("cursor", "")], times=3)
    pages = natural_client(sb).customers().pages()
    assert [[c.id for c in next(pages).items] for _ in range(3)] == [["p1"], ["p2"], ["p3"]]
    with pytest.raises(custlist.PagingLoopError):
        next(pages)


def test_more_without_a_cursor_still_yields_the_page(sb):
    sb.inject("natural.customers", body=natural_page(["p1", "p2"], None, more=True), times=1)
    got = []
    with pytest.raises(custlist.PagingError, match="no cursor"):
        for c in natural_client(sb).customers():
            got.append(c.id)
    assert got == ["p1", "p2"]


# ---------------------------------------------------------------------------
# Ctrl-C while a huge page decodes


def test_ctrl_c_interrupts_a_huge_page_mid_decode():
    # SIGINT comes from outside (as from a terminal) while the child decodes a
    # huge page.  The handler must run inside the C decode, which then raises
    # KeyboardInterrupt: its frame is then the Python frame that called the
    # decode.  Were signals only seen after the decode returned, the first
    # Python code to run would be the profiler hook's c_return event.
    code = textwrap.dedent("""
        import json, signal, sys, time
        from custlist import pyng
        items = [{"customerReference": str(i), "state": "linked", "invitedAt": i}
                 for i in range(1_500_000)]
        body = json.dumps({"data": {"items": items}}).encode()
        del items
        state = {}
        def prof(frame, event, arg):
            pass
        def on_sigint(signum, frame):
            state["frame"], state["at"] = frame.f_code.co_name, time.time()
            raise KeyboardInterrupt
        signal.signal(signal.SIGINT, on_sigint)
        print("decoding", flush=True)
        sys.setprofile(prof)
        try:
            pyng.CUSTOMERS.decode(body)
            outcome = "returned"
        except KeyboardInterrupt:
            outcome = "interrupted"
        sys.setprofile(None)
        print(json.dumps({"outcome": outcome, "handler_frame": state.get("frame"),
                          "handled_at": state.get("at")}), flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"decoding\n"
        time.sleep(0.15)
        sent = time.time()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-2000:]
    result = json.loads(out)
    print(result, "handler ran", result["handled_at"] and result["handled_at"] - sent, "s after")
    assert result["outcome"] == "interrupted" and result["handler_frame"] == "decode", result
