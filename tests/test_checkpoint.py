"""Exact checkpoints: consume N records, checkpoint, JSON round-trip,
resume; the records before and after are the whole listing, each once, for
cursor and link paging, mid-page and at page boundaries, after max_items,
after an error and after close()."""
import json

import pytest

import custlist

from .conftest import quiet
from .listings import LISTINGS, full, requests_of

PREFETCH = pytest.mark.parametrize("prefetch", [True, False], ids=["prefetch", "no-prefetch"])
SIZE = 20


def roundtrip(cp: dict) -> dict:
    return json.loads(json.dumps(cp))


def take(pager, n: int) -> list:
    return [next(pager) for _ in range(n)]


def until_error(pager, exc) -> list:
    """The records `pager` hands out before it raises `exc`."""
    got = []
    with pytest.raises(exc):
        for rec in pager:
            got.append(rec)
    return got


def counts(total: int) -> list:
    """Many N: the start, both sides of every page boundary of 20, mid-pages,
    the end."""
    ns = {0, 1, 7, total - 1, total}
    for b in range(SIZE, total, SIZE):
        ns |= {b - 1, b, b + 1}
    return sorted(n for n in ns if 0 <= n <= total)


@PREFETCH
@pytest.mark.parametrize("listing", LISTINGS, ids=str)
def test_resume_after_n_records_for_many_n(sb, listing, prefetch):
    everything = full(sb, listing)
    with listing.client(sb, prefetch=prefetch) as client:
        for n in counts(len(everything)):
            pager = listing.list(client, limit=SIZE)
            head = take(pager, n)
            cp = roundtrip(pager.checkpoint())
            assert cp["count"] == n and cp["endpoint"] == listing.name
            pager.close()
            rest = list(client.resume(cp))
            assert head + rest == everything, n


@PREFETCH
@pytest.mark.parametrize("listing", LISTINGS, ids=str)
def test_checkpoint_is_small_and_exact_mid_page(sb, listing, prefetch):
    with listing.client(sb, prefetch=prefetch) as client:
        pager = listing.list(client, limit=SIZE)
        take(pager, SIZE + 3)
        cp = pager.checkpoint()
        assert cp["skip"] == 3 and cp["done"] is False and cp["page"]
        assert len(json.dumps(cp)) < 600
        # the page-level resume point is the same page, delivered from its start
        assert cp["page"] == (pager.cursor if listing.mode == "cursor" else pager.next_href)


@PREFETCH
@pytest.mark.parametrize("listing", LISTINGS, ids=str)
def test_resume_in_chunks_of_max_items(sb, listing, prefetch):
    """A job that lists 33 records per run, checkpointing between runs."""
    everything = full(sb, listing)
    got, cp, runs = [], None, 0
    with listing.client(sb, prefetch=prefetch) as client:
        while cp is None or not cp["done"]:
            pager = (listing.list(client, limit=SIZE, max_items=33) if cp is None
                     else client.resume(cp, max_items=33))
            chunk = list(pager)
            assert len(chunk) == min(33, len(everything) - len(got))
            got += chunk
            cp = roundtrip(pager.checkpoint())
            runs += 1
    assert got == everything
    assert cp["count"] == len(everything)
    assert runs == -(-len(everything) // 33) + (len(everything) % 33 == 0)


@pytest.mark.parametrize("listing", [x for x in LISTINGS if x.mode == "cursor"], ids=str)
def test_resumed_page_is_asked_for_with_what_remains(sb, listing):
    """Resuming 5 records into a page with max_items=4 asks for 9 records:
    the 5 already handed out, then the 4 wanted."""
    everything = full(sb, listing)
    with listing.client(sb, prefetch=False) as client:   # no page in flight at clear()
        pager = listing.list(client, limit=SIZE)
        take(pager, SIZE + 5)
        cp = pager.checkpoint()
        pager.close()
        sb.requests.clear()
        assert list(client.resume(cp, max_items=4)) == everything[SIZE + 5:SIZE + 9]
    assert [r.query["limit"] for r in requests_of(sb, listing)] == ["9"]


@PREFETCH
@pytest.mark.parametrize("listing", LISTINGS, ids=str)
def test_resume_after_a_server_error_mid_listing(sb, listing, prefetch):
    everything = full(sb, listing)
    with listing.client(sb, prefetch=prefetch, max_retries=0) as client:
        pager = listing.list(client, limit=SIZE)
        sb.inject(listing.route, status=503, skip=2)
        got = until_error(pager, custlist.errors.ServerError)
        assert len(got) == 2 * SIZE
        cp = roundtrip(pager.checkpoint())
        assert list(pager) == []
        assert got + list(client.resume(cp)) == everything


@PREFETCH
@pytest.mark.parametrize("listing", LISTINGS, ids=str)
def test_resume_after_an_undecodable_page(sb, listing, prefetch):
    """The third page's items are not records: the pager fails on it, and
    the checkpoint still points at it (served right the next time)."""
    everything = full(sb, listing)
    bad = {"pyng.customers": {"data": {"items": [1], "totalItems": 1, "nextHref": "x"}},
           "natural.customers": {"data": [1], "meta": {"pagination": {"has_more": False}}},
           "natural.customer_invitations": {"data": [1],
                                            "meta": {"pagination": {"hasMore": False}}},
           "commenda.customers": {"customers": [1], "cursor": None}}[listing.name]
    with listing.client(sb, prefetch=prefetch) as client:
        pager = listing.list(client, limit=SIZE)
        sb.inject(listing.route, body=bad, skip=2)
        got = until_error(pager, custlist.errors.DecodeError)
        assert len(got) == 2 * SIZE
        cp = roundtrip(pager.checkpoint())
        assert cp["skip"] == 0 and cp["count"] == 2 * SIZE
        assert got + list(client.resume(cp)) == everything


@PREFETCH
@pytest.mark.parametrize("listing", LISTINGS, ids=str)
def test_resume_after_close_and_after_max_items(sb, listing, prefetch):
    everything = full(sb, listing)
    with listing.client(sb, prefetch=prefetch) as client:
        pager = listing.list(client, limit=SIZE)
        head = take(pager, 27)
        pager.close()
        assert head + list(client.resume(roundtrip(pager.checkpoint()))) == everything
        capped = listing.list(client, limit=SIZE, max_items=SIZE)
        head = list(capped)
        cp = roundtrip(capped.checkpoint())
        assert (cp["skip"], cp["count"]) == (0, SIZE)
        assert head + list(client.resume(cp)) == everything


@pytest.mark.parametrize("listing", LISTINGS, ids=str)
def test_resume_after_arrow_output(sb, listing):
    everything = full(sb, listing)
    with listing.client(sb) as client:
        pager = listing.list(client, limit=SIZE, max_items=31)
        table = pager.to_arrow()
        rest = list(client.resume(roundtrip(pager.checkpoint())))
    keys = [getattr(r, listing.key) for r in everything]
    assert table.column(listing.key).to_pylist() + [getattr(r, listing.key)
                                                    for r in rest] == keys


@pytest.mark.parametrize("listing", LISTINGS, ids=str)
def test_start_argument_resumes_with_the_same_arguments(sb, listing):
    everything = full(sb, listing)
    with listing.client(sb) as client:
        pager = listing.list(client, limit=SIZE)
        head = take(pager, 45)
        cp = roundtrip(pager.checkpoint())
        assert head + list(listing.list(client, limit=SIZE, start=cp)) == everything
        with pytest.raises(ValueError, match="other arguments"):
            listing.list(client, limit=SIZE + 1, start=cp)


@pytest.mark.parametrize("listing", LISTINGS, ids=str)
def test_a_finished_listing_resumes_to_nothing(sb, listing):
    with listing.client(sb) as client:
        pager = listing.list(client, limit=100)
        list(pager)
        cp = roundtrip(pager.checkpoint())
        assert cp["done"] and cp["page"] is None and cp["count"] == len(full(sb, listing))
        sb.requests.clear()
        again = client.resume(cp)
        assert list(again) == [] and again.done
        assert again.checkpoint() == cp
    assert sb.requests == []


def _natural_cp(sb):
    # without prefetch: no request of this pager may still reach the
    # sandbox after a test has cleared its request log
    with LISTINGS[1].client(sb, prefetch=False) as client:
        pager = client.customers(limit=SIZE)
        take(pager, 3)
        return roundtrip(pager.checkpoint())


@pytest.mark.parametrize("change,match", [
    (lambda cp: cp.update(custlist=2), "another version"),
    (lambda cp: cp.pop("skip"), "keys"),
    (lambda cp: cp.update(skip=-1), "skip"),
    (lambda cp: cp.update(skip=True), "skip"),
    (lambda cp: cp.update(count="3"), "count"),
    (lambda cp: cp.update(done=1), "done"),
    (lambda cp: cp.update(page=""), "page"),
    (lambda cp: cp.update(query=[["limit"]]), "query"),
    (lambda cp: cp.update(path="/elsewhere"), "path"),
    (lambda cp: cp.update(endpoint="natural.nothing"), "cannot resume"),
])
def test_bad_checkpoints_fail_before_any_request(sb, change, match):
    cp = _natural_cp(sb)
    change(cp)
    sb.requests.clear()
    with LISTINGS[1].client(sb) as client:
        with pytest.raises(ValueError, match=match):
            client.resume(cp)
    assert sb.requests == []


def test_checkpoint_of_another_endpoint_is_refused(sb):
    cp = _natural_cp(sb)
    with LISTINGS[1].client(sb) as client:
        with pytest.raises(ValueError, match="natural.customers"):
            client.customer_invitations(start=cp)
        with pytest.raises(ValueError, match="not both"):
            client.customers(limit=SIZE, start=cp, start_cursor="abc")
    with LISTINGS[3].client(sb) as commenda:
        with pytest.raises(ValueError, match="cannot resume"):
            commenda.resume(cp)


def test_link_checkpoint_must_lead_to_its_listing(sb):
    pyng = LISTINGS[0]
    with pyng.client(sb) as client:
        pager = pyng.list(client, limit=SIZE)
        take(pager, 25)
        cp = roundtrip(pager.checkpoint())
        cp["page"] = cp["page"].replace("/site_1/", "/site_2/")
        with pytest.raises(ValueError, match="leads to"):
            client.resume(cp)
        cp["page"] = "http://203.0.113.9" + cp["page"][len(sb.url):]
        cp["page"] = cp["page"].replace("/site_2/", "/site_1/")
        with pytest.raises(custlist.errors.UnsafeURLError):
            client.resume(cp)


def test_checkpoint_needs_a_listing(sb):
    with LISTINGS[1].client(sb) as client:
        pager = client.customers()
    bare = custlist.Pager.__new__(custlist.Pager, *_pager_args(pager))
    with pytest.raises(ValueError, match="client listing"):
        bare.checkpoint()


def _pager_args(pager):
    from custlist.natural import CUSTOMERS
    page, items = CUSTOMERS.schemas()
    return (pager._endpoint, page, items, "cursor", pager._endpoint,
            custlist.natural.NaturalErrors(), custlist.Page)


@pytest.mark.parametrize("batch_rows", [1, 25, 65536])
@pytest.mark.parametrize("listing", LISTINGS, ids=str)
def test_resume_after_arrow_output_fails(sb, listing, batch_rows):
    """Pages coalesced into an Arrow batch that fails are not handed out:
    the checkpoint stays at the start of that batch."""
    import pyarrow as pa

    from custlist import _frames
    everything = full(sb, listing)
    quiet(sb)          # an earlier pager's page sent ahead would take the fault
    with listing.client(sb, max_retries=0) as client:
        pager = listing.list(client, limit=SIZE)
        sb.inject(listing.route, status=503, skip=2)
        errors: list = []
        reader = pa.RecordBatchReader.from_stream(
            _frames._Stream(pager._arrow_stream(errors, batch_rows)))
        keys = []
        with pytest.raises(Exception):
            for batch in reader:
                keys += batch.column(listing.key).to_pylist()
        assert isinstance(errors[-1], custlist.errors.ServerError)
        assert len(keys) == (2 * SIZE if batch_rows <= 2 * SIZE else 0)
        cp = roundtrip(pager.checkpoint())
        assert cp["count"] == len(keys)
        keys += [getattr(r, listing.key) for r in client.resume(cp)]
    assert keys == [getattr(r, listing.key) for r in everything]
