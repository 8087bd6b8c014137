"""Arrow output held to the record iterator, on the sandbox over loopback.

For each bundled endpoint and each server behaviour (a clean listing, a
repeated cursor, a next position of the wrong type, "more" without a
cursor, a run of empty pages, a bad value, 5xx and 404 answers, resets,
truncated bodies, and the bounds max_pages, max_items, max_items_per_page
and max_body), the same listing is read by the record iterator, by
to_arrow(), to_pandas(), to_polars() and pyarrow.table(pager).  They must
agree: the same rows in the same order, or the same exception class (with
the same message) after the same requests.  A failed Arrow read hands out
nothing: the pager's checkpoint is the one it had before the read, and
resuming it reads the same records and meets the same error, or, once the
server is healed, every row.  The same holds for offset, page-number and
Link-header paging (a link that comes back, a malformed Link header, a
link to another origin, a server that ignores the offset).  And Ctrl-C
during pyarrow.table(pager) reaches the caller as KeyboardInterrupt."""
import json
import re
import signal
import subprocess
import sys
import textwrap
import time

import pyarrow as pa
import pytest

import custlist
from custlist import errors
from custlist.testing import Sandbox

from .test_arrow import WITHOUT, assert_rows_match

FAST = dict(backoff=0.01, backoff_max=0.05, retry_after_max=0.2)
PER_PAGE = 5
PAGES = 4


@pytest.fixture(scope="module")
def esb():
    with Sandbox(pyng_customers=40, natural_customers=40, natural_invitations=40,
                 commenda_customers=40, seed=23, pyng_unknown_state_every=6,
                 natural_unknown_type_every=4) as sb:
        yield sb


@pytest.fixture
def sb(esb):
    esb.clear_faults()
    esb.requests.clear()
    yield esb
    esb.clear_faults()


# ---------------------------------------------------------------------------
# The four bundled endpoints: their wire items, their envelope, a listing


class Pyng:
    route = "pyng.customers"

    def items(self, sb):
        return sb.data.pyng["site_1"]

    def page(self, sb, items, token, more=None):
        # no total: these scripted listings end where each fault script ends
        data = {"items": items}
        if token is not None:
            data["nextHref"] = (token if not isinstance(token, str) else
                                f"{sb.pyng_url}/billing/sites/site_1/customers?cursor={token}")
        return {"data": data, "traceId": "t"}

    def client(self, sb, **kw):
        return custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, **FAST, **kw)

    def listing(self, client, **kw):
        return client.customers("site_1", limit=PER_PAGE, **kw)

    def spoil(self, item):
        return {**item, "customerReference": 5}


class NaturalCustomers:
    route = "natural.customers"

    def items(self, sb):
        return sb.data.natural_customers

    def page(self, sb, items, token, more=None):
        more = token is not None if more is None else more
        return {"data": items, "meta": {"pagination": {"has_more": more, "next_cursor": token}}}

    def client(self, sb, **kw):
        return custlist.Natural(sb.natural_token, base_url=sb.natural_url, **FAST, **kw)

    def listing(self, client, **kw):
        return client.customers(limit=PER_PAGE, **kw)

    def spoil(self, item):
        return {**item, "id": 5}


class NaturalInvitations(NaturalCustomers):
    route = "natural.invitations"

    def items(self, sb):
        return sb.data.natural_invitations

    def page(self, sb, items, token, more=None):
        more = token is not None if more is None else more
        return {"data": items, "meta": {"pagination": {"hasMore": more, "nextCursor": token}}}

    def listing(self, client, **kw):
        return client.customer_invitations(limit=PER_PAGE, **kw)


class Commenda:
    route = "commenda.customers"

    def items(self, sb):
        body = sb.commenda_customers(
            {"corporation_id": "corp_123", "limit": "100",
             "extend": "shipping_address,exemption_metadata"},
            {"authorization": "Bearer " + sb.commenda_token})
        return body.get("customers") or body["data"]["customers"]

    def page(self, sb, items, token, more=None):
        body = {"customers": items}          # no total, as for Pyng above
        if token is not None:
            body["cursor"] = token
        return body

    def client(self, sb, **kw):
        return custlist.Commenda(sb.commenda_token, base_url=sb.commenda_url, **FAST, **kw)

    def listing(self, client, **kw):
        return client.customers("corp_123", limit=PER_PAGE,
                                extend=["shipping_address", "exemption_metadata"], **kw)

    def spoil(self, item):
        return {**item, "id": 5}


ENDPOINTS = {"pyng": Pyng(), "natural-customers": NaturalCustomers(),
             "natural-invitations": NaturalInvitations(), "commenda": Commenda()}


# ---------------------------------------------------------------------------
# A scripted server: page bodies keyed by the cursor that asks for them


def script(ep, sb, fault=None):
    """{cursor: body} for a listing of PAGES pages of PER_PAGE items
    (cursor "" is the first page), spoiled as `fault` says."""
    wire = ep.items(sb)[:PAGES * PER_PAGE]
    pages = {}
    for n in range(PAGES):
        items = wire[n * PER_PAGE:(n + 1) * PER_PAGE]
        token = f"t{n + 1}" if n + 1 < PAGES else None
        more = None
        if fault == "loop" and n == 2:
            token = "t1"                                 # a cursor sent before
        if fault == "bad-next" and n == 1:
            token = 5                                    # a position that is no string
        if fault == "more-no-cursor" and n == 1:
            token, more = None, True
        if fault == "bad-value" and n == 2:
            items = items[:2] + [ep.spoil(items[2])] + items[3:]
        if fault == "big-page" and n == 2:
            items = wire[:PER_PAGE] * 9                  # 45 items, past the item budget
        pages["" if n == 0 else f"t{n}"] = ep.page(sb, items, token, more)
    if fault == "empty-run":                            # then empty pages that say "more"
        pages["t1"] = ep.page(sb, [], "e1")
        for n in range(1, 120):
            pages[f"e{n}"] = ep.page(sb, [], f"e{n + 1}")
    if fault == "huge-body":
        pages["t2"]["pad"] = "x" * 200_000
    return {k: json.dumps(v) for k, v in pages.items()}


def serve(sb, ep, fault):
    sb.clear_faults()
    pages = script(ep, sb, fault)
    # transport and HTTP faults on the third request on, before the script
    if fault == "server-error":
        sb.inject(ep.route, status=500, skip=2, times=None)
    elif fault == "not-found":
        sb.inject(ep.route, status=404, skip=2, times=None)
    elif fault == "reset-once":
        sb.inject(ep.route, reset=True, skip=2, times=1)
    elif fault == "truncated":
        sb.inject(ep.route, truncate=20, skip=2, times=None)
    sb.inject(ep.route, body=lambda q: pages[q.get("cursor", "")], times=None)


# fault: (client settings, listing settings, expected outcome of the record path)
FAULTS = {
    "clean": ({}, {}, None),
    "loop": ({"max_pages": 50}, {}, errors.PagingLoopError),
    # a typed cursor field fails to decode; a link of no type is a paging error
    "bad-next": ({}, {}, (errors.PagingError, errors.DecodeError)),
    "more-no-cursor": ({}, {}, errors.PagingError),
    "empty-run": ({"max_pages": 500}, {}, errors.PagingError),
    "bad-value": ({}, {}, errors.DecodeError),
    "server-error": ({"max_retries": 1}, {}, errors.ServerError),
    "not-found": ({}, {}, errors.NotFoundError),
    "reset-once": ({}, {}, None),
    "truncated": ({"max_retries": 1}, {}, errors.TransportError),
    "max-pages": ({"max_pages": 2}, {}, errors.PagingError),
    "max-items": ({}, {"max_items": 7}, None),
    "item-budget": ({"max_items_per_page": 40}, {}, errors.DecodeError),
    "huge-body": ({"max_body": 100_000}, {}, errors.ResponseTooLargeError),
}
FAULT_SCRIPT = {"max-pages": None, "max-items": None, "item-budget": "big-page"}


def cases():
    for name in ENDPOINTS:
        for fault in FAULTS:
            if fault == "more-no-cursor" and name in ("pyng", "commenda"):
                continue                    # no "more" flag in their envelopes
            yield pytest.param(name, fault, id=f"{name}-{fault}")


def settle(sb, *pagers):
    """Close the pagers and wait until the server has logged every request
    they sent (a next page queued before they stopped)."""
    for pager in pagers:
        pager.close()
    seen, still = -1, 0
    while still < 2:                     # the log unchanged for 0.1 s, nothing in flight
        still = still + 1 if seen == len(sb.requests) and not sb.in_flight else 0
        seen = len(sb.requests)
        time.sleep(0.05)
    logged = list(sb.requests)
    sb.requests.clear()
    return logged


def cursors(requests, ep):
    return [r.query.get("cursor", "") for r in requests if r.route == ep.route]


def same_requests(got, want):
    """The same requests, but for the next pages', sent ahead while a page
    was read (the fetch thread runs up to two pages ahead), which the server
    may or may not see before the pager stops."""
    n = min(len(got), len(want))
    assert got[:n] == want[:n] and abs(len(got) - len(want)) <= 2, (got, want)


def read_records(pager):
    got, exc = [], None
    try:
        for rec in pager:
            got.append(rec)
    except custlist.CustlistError as e:
        exc = e
    return got, exc


def checkpoint(pager):
    try:
        return pager.checkpoint()
    except errors.PagingError as e:          # a paging error leaves no position
        return type(e)


def text(exc):
    """An error's message, less the server's trace id (new each response)."""
    return re.sub(r" \[trace [^]]*\]", "", str(exc))


def same_error(got, want):
    assert type(got) is type(want), (got, want)
    assert text(got) == text(want)
    if isinstance(want, errors.DecodeError):
        assert (got.offset, got.url) == (want.offset, want.url)


READERS = {
    "to_arrow": lambda p: p.to_arrow(),
    "to_pandas": lambda p: pa.Table.from_pandas(p.to_pandas(), preserve_index=False),
    "to_polars": lambda p: p.to_polars().to_arrow(),
    "pyarrow.table": pa.table,
}
if "polars" in WITHOUT:
    del READERS["to_polars"]


@pytest.mark.parametrize("start", ["first", "mid-page"])
@pytest.mark.parametrize("name, fault", list(cases()))
def test_arrow_output_agrees_with_the_record_iterator(sb, name, fault, start):
    ep = ENDPOINTS[name]
    settings, listing_kw, expected = FAULTS[fault]
    client = ep.client(sb, **settings)
    origin = None
    if start == "mid-page":             # resume 2 records into the second page
        serve(sb, ep, None)
        pager = ep.listing(ep.client(sb))
        for _ in range(PER_PAGE + 2):
            next(pager)
        origin = pager.checkpoint()
        settle(sb, pager)

    def listing():
        if origin is None:
            return ep.listing(client, **listing_kw)
        return client.resume(origin, **listing_kw)

    fault_script = FAULT_SCRIPT.get(fault, fault)
    serve(sb, ep, fault_script)
    pager = listing()
    records, rec_exc = read_records(pager)
    rec_cp, rec_done = checkpoint(pager), pager.done
    # (an error may leave the next page's request in flight)
    rec_requests = cursors(settle(sb, pager), ep)
    assert rec_exc is None if expected is None else isinstance(rec_exc, expected), rec_exc
    if fault == "item-budget":
        # the pages before the big one are delivered
        assert "max_items_per_page" in str(rec_exc)
        assert len(records) == (2 * PER_PAGE if start == "first" else PER_PAGE - 2)

    settle(sb)
    for reader_name, read in READERS.items():
        serve(sb, ep, fault_script)
        pager = listing()
        before = pager.checkpoint()
        try:
            table, exc = read(pager), None
        except Exception as e:
            table, exc = None, e
        where = (reader_name, exc)
        same_requests(cursors(settle(sb, pager), ep), rec_requests)
        if rec_exc is None:
            assert exc is None, where
            assert_rows_match(table, records)
            assert (pager.checkpoint(), pager.done) == (rec_cp, rec_done), where
            continue
        # the same error; a C stream consumer's own error carries its class and message
        if reader_name == "pyarrow.table":
            assert isinstance(exc, (OSError, pa.ArrowInvalid)), where
            assert text(exc) == f"{type(rec_exc).__name__}: {text(rec_exc)}", where
        else:
            same_error(exc, rec_exc)
        # nothing handed out: the checkpoint is the one before the read ...
        assert pager.checkpoint() == before and not pager.done, where
    if rec_exc is None:
        return
    # ... and it is exact: resumed, the same records, then the same error
    serve(sb, ep, fault_script)
    resumed = client.resume(before, **listing_kw)
    again, again_exc = read_records(resumed)
    same_requests(cursors(settle(sb, resumed), ep), rec_requests)
    assert again == records
    same_error(again_exc, rec_exc)
    # once the server is healed, every row from there
    serve(sb, ep, None)
    healthy = ep.client(sb)
    want = list(healthy.resume(before, **listing_kw))
    table = healthy.resume(before, **listing_kw).to_arrow()
    assert table.num_rows == len(want) > 0
    assert_rows_match(table, want)


def test_a_stream_read_batch_by_batch_ends_where_the_records_end(sb):
    """One batch per page: the batches before a paging error are the record
    path's pages, and the error comes where the iterator raises it."""
    ep = ENDPOINTS["natural-customers"]
    serve(sb, ep, "loop")
    records, rec_exc = read_records(ep.listing(ep.client(sb, max_pages=50)))
    pager = ep.listing(ep.client(sb, max_pages=50))
    reader = pa.RecordBatchReader.from_stream(pager)
    batches = []
    with pytest.raises(OSError) as info:
        for batch in reader:
            batches.append(batch)
    assert str(info.value) == f"PagingLoopError: {rec_exc}"
    assert [b.num_rows for b in batches] == [PER_PAGE] * 3 and len(records) == 3 * PER_PAGE
    assert_rows_match(pa.Table.from_batches(batches), records)
    assert pager.checkpoint()["count"] == 0          # the read failed: back to its start


def test_oneof_fallback_fields_are_columns(sb):
    """A field only the fallback record has gets its own column, filled for
    the items that fell back, as records carry it."""
    from custlist._spec import CursorPaging, Endpoint, Field, OneOf, Record

    class Known(Record):
        kind = Field(str)
        x = Field(int)

    class Other(Record):
        kind = Field(str)
        x = Field(int)
        raw = Field(dict, "payload")
        note = Field(str, "meta.note")

    endpoint = Endpoint("/customers", OneOf("kind", {"k": Known}, fallback=Other),
                        CursorPaging(items="data", cursor="meta.pagination.next_cursor",
                                     has_more="meta.pagination.has_more"))
    items = [{"kind": "k", "x": 1, "payload": {"ignored": 1}},
             {"kind": "z", "x": 2, "payload": {"a": [1, 2]}, "meta": {"note": "n"}},
             {"kind": "k", "x": 3}]
    body = json.dumps({"data": items, "meta": {"pagination": {"has_more": False}}})
    sb.inject("natural.customers", body=body, times=2)
    client = ENDPOINTS["natural-customers"].client(sb)
    recs = list(client.paginate(endpoint, "/customers", {}))
    table = client.paginate(endpoint, "/customers", {}).to_arrow()
    assert table.schema == pa.schema([("kind", pa.string()), ("x", pa.int64()),
                                      ("raw", pa.string()), ("note", pa.string())])
    rows = table.to_pylist()
    assert [json.loads(r["raw"]) if r["raw"] else None for r in rows] == \
        [getattr(r, "raw", None) for r in recs] == [None, {"a": [1, 2]}, None]
    assert [r["note"] for r in rows] == [None, "n", None]

    class Clash(Record):
        kind = Field(str)
        x = Field(str)

    endpoint = Endpoint("/customers", OneOf("kind", {"k": Known}, fallback=Clash),
                        CursorPaging(items="data", cursor="meta.pagination.next_cursor"))
    with pytest.raises(TypeError, match="disagree on the type of field x"):
        client.paginate(endpoint, "/customers", {}).to_arrow()


def test_item_budget_counts_what_the_record_path_counts(sb):
    """Values inside items spend the budget as records spend it: list
    elements and the members of a value kept as JSON."""
    from custlist._spec import CursorPaging, Endpoint, Field, Record

    class Item(Record):
        id = Field(str)
        tags = Field(list[str])
        extra = Field(dict)

    endpoint = Endpoint("/customers", Item,
                        CursorPaging(items="data", cursor="meta.pagination.next_cursor"))
    items = [{"id": "a", "tags": ["x", "y"], "extra": {"k": [1, 2, {"z": 3}]}},
             {"id": "b", "tags": [], "extra": None}] * 3
    body = json.dumps({"data": items, "meta": {"pagination": {}}})
    for budget in range(1, 30):
        client = ENDPOINTS["natural-customers"].client(sb, max_items_per_page=budget)
        sb.inject("natural.customers", body=body, times=2)
        try:
            want = len(list(client.paginate(endpoint, "/customers", {}))), None
        except errors.DecodeError as e:
            want = None, (str(e), e.offset)
        try:
            got = client.paginate(endpoint, "/customers", {}).to_arrow().num_rows, None
        except errors.DecodeError as e:
            got = None, (str(e), e.offset)
        assert got == want, budget
    assert want == (6, None)


def test_ctrl_c_during_pyarrow_table_reaches_the_caller_as_keyboard_interrupt():
    # The third page is slow; SIGINT comes from this process (as from a
    # terminal) while the child's pyarrow.table(pager) waits for it.  The
    # caller must get KeyboardInterrupt (not a pyarrow error, not a table),
    # soon, and the pager's checkpoint must still be where the read began.
    code = textwrap.dedent("""
        import json, signal, sys, time
        import custlist, polars, pyarrow
        from custlist.testing import Sandbox

        signal.signal(signal.SIGINT, signal.default_int_handler)
        with Sandbox(natural_customers=100, seed=3) as sb:
            client = custlist.Natural(sb.natural_token, base_url=sb.natural_url)
            every = client.customers(limit=20).to_arrow().num_rows
            for reader in (pyarrow.table, polars.DataFrame):
                sb.inject("natural.customers", skip=2, delay=10)
                pager = client.customers(limit=20)
                before = pager.checkpoint()
                print("reading", flush=True)
                t = time.monotonic()
                try:
                    got = reader(pager)
                    outcome = f"returned {len(got)} rows"
                except KeyboardInterrupt:
                    outcome = "KeyboardInterrupt"
                except BaseException as e:
                    outcome = f"{type(e).__name__}: {e}"
                took = time.monotonic() - t
                sb.clear_faults()
                after = pager.checkpoint()
                rest = client.resume(after).to_arrow().num_rows
                print(json.dumps({"outcome": outcome, "took": took, "kept": after == before,
                                  "rest": rest, "every": every}), flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        results = []
        for _ in range(2):
            assert proc.stdout.readline() == "reading\n"
            time.sleep(1.0)                           # in the slow page's wait by then
            proc.send_signal(signal.SIGINT)
            results.append(json.loads(proc.stdout.readline()))
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-2000:]
    for res in results:
        assert res["outcome"] == "KeyboardInterrupt", res
        assert res["took"] < 6, res                   # long before the 10 s page
        assert res["kept"] and res["rest"] == res["every"] == 100, res


def test_ctrl_c_in_the_progress_display_stops_the_read(sb):
    """A KeyboardInterrupt met in the progress callback of an Arrow read is
    raised, not printed as unraisable while the table comes back."""
    ep = ENDPOINTS["natural-customers"]
    serve(sb, ep, None)
    pager = ep.listing(ep.client(sb))
    before = pager.checkpoint()
    calls = []

    def display(n):
        calls.append(n)
        if len(calls) == 2:
            raise KeyboardInterrupt

    pager._watch(display)
    with pytest.raises(KeyboardInterrupt):
        pager.to_arrow()
    assert calls == [PER_PAGE, PER_PAGE]
    assert pager.checkpoint() == before
    table = ep.listing(ep.client(sb)).to_arrow()
    assert table.num_rows == PAGES * PER_PAGE


# ---------------------------------------------------------------------------
# The other paging styles (the sandbox's demo API): offset, page numbers and
# Link headers, with their own faults


def demo_faults(sb):
    from custlist.testing.demo import LINKED, NUMBERED, OFFSET, PAGES
    first = {OFFSET: {"items": sb.data.demo[:10], "total": 75},
             PAGES: {"data": sb.data.demo[:10], "page": 1, "total_pages": 8},
             NUMBERED: {"data": sb.data.demo[:10]}}
    back = f'<{sb.demo_url}/linked/customers?per_page=10>; rel="next"'
    away = f'<https://{sb.url.split("://")[1]}/demo/linked/customers>; rel="next"'
    faults = {
        # (endpoint, size parameter, route, inject settings, expected)
        "link-loop": (LINKED, "per_page", dict(skip=2, headers={"Link": back}),
                      errors.PagingLoopError),
        "link-malformed": (LINKED, "per_page", dict(skip=1, headers={"Link": "<x> rel=next"}),
                           errors.PagingError),
        "link-elsewhere": (LINKED, "per_page", dict(skip=1, headers={"Link": away}),
                           errors.UnsafeURLError),
        "link-500": (LINKED, "per_page", dict(skip=2, status=500), errors.ServerError),
        "link-clean": (LINKED, "per_page", None, None),
    }
    for name, ep, size in (("offset", OFFSET, "limit"), ("pages", PAGES, "per_page"),
                           ("numbered", NUMBERED, "per_page")):
        body = json.dumps(first[ep])
        faults[f"{name}-ignored"] = (ep, size, dict(skip=2, body=body), errors.PagingLoopError)
        faults[f"{name}-clean"] = (ep, size, None, None)
    return faults


DEMO_FAULTS = ["link-loop", "link-malformed", "link-elsewhere", "link-500", "link-clean",
               "offset-ignored", "offset-clean", "pages-ignored", "pages-clean",
               "numbered-ignored", "numbered-clean"]


def positions(queries):
    return [q.get("offset") or q.get("page") or q.get("after") or "" for q in queries]


@pytest.mark.parametrize("fault", DEMO_FAULTS)
def test_other_paging_styles_agree_too(sb, fault):
    ep, size, inject, expected = demo_faults(sb)[fault]
    route = {"/linked/customers": "demo.linked"}.get(ep.path, "demo." + ep.path.split("/")[1])
    client = custlist.Client(base_url=sb.demo_url, auth=custlist.BearerToken(sb.demo_token),
                             max_retries=1, max_pages=40, **FAST)

    def run(read):
        sb.clear_faults()
        if inject is not None:
            sb.inject(route, times=None, **inject)
        pager = client.paginate(ep, ep.path, {size: 10})
        before = pager.checkpoint()
        try:
            got, exc = read(pager), None
        except Exception as e:
            got, exc = None, e
        after = checkpoint(pager)
        return got, exc, before, after, [r.query for r in settle(sb, pager)]

    got, _, _, rec_cp, rec_requests = run(read_records)
    records, rec_exc = got
    assert rec_exc is None if expected is None else type(rec_exc) is expected, rec_exc
    for reader_name, read in READERS.items():
        table, exc, before, after, requests = run(read)
        where = (reader_name, exc)
        same_requests(positions(requests), positions(rec_requests))
        if rec_exc is None:
            assert exc is None, where
            assert_rows_match(table, records)
            assert after == rec_cp, where
            continue
        if reader_name == "pyarrow.table":
            assert text(exc) == f"{type(rec_exc).__name__}: {text(rec_exc)}", where
        else:
            same_error(exc, rec_exc)
        assert after == before, where
