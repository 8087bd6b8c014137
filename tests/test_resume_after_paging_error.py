"""After a paging error (a repeated cursor or link, "more" without a cursor,
a malformed Link header) the listing still has an exact checkpoint: the
page that showed the error, every record of it handed out.  Resuming asks
for that page again and reads its position afresh, so once the server tells
the truth the listing continues with the very next record."""
import pytest

import custlist
from custlist.testing import demo as demo_api

from .conftest import FAST
from .differential import _lie
from .listings import LISTINGS, full


@pytest.mark.parametrize("how, error", [("nocursor", custlist.PagingError),
                                        ("repeat", custlist.PagingLoopError)])
@pytest.mark.parametrize("listing", [x for x in LISTINGS if x.name.startswith("natural")],
                         ids=str)
def test_cursor_paging_error_resumes_exactly(sb, listing, how, error):
    expected = [getattr(r, listing.key) for r in full(sb, listing)]
    sb.inject(listing.route, skip=2, body=_lie(sb, listing.route, how))
    with listing.client(sb) as client:
        pager = listing.list(client, limit=7)
        got = []
        with pytest.raises(error):
            for r in pager:
                got.append(getattr(r, listing.key))
        assert got == expected[:21]                 # three pages, all of them
        cp = pager.checkpoint()
        assert (cp["skip"], cp["count"], cp["done"]) == (7, 21, False)
        sb.clear_faults()
        rest = [getattr(r, listing.key) for r in client.resume(cp)]
    assert got + rest == expected


def test_commenda_repeated_cursor_resumes_exactly(sb):
    listing = next(x for x in LISTINGS if x.name.startswith("commenda"))
    expected = [r.id for r in full(sb, listing)]
    sb.inject(listing.route, skip=1, body=_lie(sb, listing.route, "repeat"))
    with listing.client(sb) as client:
        pager = listing.list(client, limit=9)
        got = []
        with pytest.raises(custlist.PagingLoopError):
            for r in pager:
                got.append(r.id)
        assert got == expected[:18]
        sb.clear_faults()
        rest = [r.id for r in client.resume(pager.checkpoint())]
    assert got + rest == expected


def test_pyng_repeated_link_resumes_exactly(sb):
    listing = next(x for x in LISTINGS if x.name.startswith("pyng"))
    expected = [r.customer_reference for r in full(sb, listing)]
    sb.inject(listing.route, skip=3, body=_lie(sb, listing.route, "repeat"))
    with listing.client(sb) as client:
        pager = listing.list(client, limit=10)
        got = []
        with pytest.raises(custlist.PagingLoopError):
            for r in pager:
                got.append(r.customer_reference)
        assert got == expected[:40]
        sb.clear_faults()
        rest = [r.customer_reference for r in client.resume(pager.checkpoint())]
    assert got + rest == expected


def test_bad_link_header_resumes_exactly(sb):
    client = custlist.Client(base_url=sb.demo_url, auth=custlist.BearerToken(sb.demo_token),
                             **FAST)
    with client:
        query = {"per_page": 10}
        expected = [r.id for r in client.paginate(demo_api.LINKED, demo_api.LINKED.path, query)]
        sb.inject("demo.linked", skip=2, headers={"Link": "<" + sb.demo_url + "; rel=next"})
        pager = client.paginate(demo_api.LINKED, demo_api.LINKED.path, query)
        got = []
        with pytest.raises(custlist.PagingError):
            for r in pager:
                got.append(r.id)
        assert got == expected[:30]
        sb.clear_faults()
        rest = [r.id for r in client.paginate(demo_api.LINKED, demo_api.LINKED.path, query,
                                              start=pager.checkpoint())]
    assert got + rest == expected


def test_paging_error_checkpoint_with_pages(sb):
    """The same checkpoint whether the pages or the records were read."""
    listing = next(x for x in LISTINGS if x.name == "natural.customers")
    sb.inject(listing.route, skip=1, body=_lie(sb, listing.route, "nocursor"))
    with listing.client(sb) as client:
        a = listing.list(client, limit=5)
        with pytest.raises(custlist.PagingError):
            for _ in a:
                pass
        sb.clear_faults()
        sb.inject(listing.route, skip=1, body=_lie(sb, listing.route, "nocursor"))
        b = listing.list(client, limit=5)
        with pytest.raises(custlist.PagingError):
            for _ in b.pages():
                pass
        assert a.checkpoint() == b.checkpoint()
        assert a.checkpoint()["count"] == 10
