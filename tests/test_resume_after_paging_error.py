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


NATURAL = [x for x in LISTINGS if x.name.startswith("natural")]
COMMENDA = next(x for x in LISTINGS if x.name.startswith("commenda"))
PYNG = next(x for x in LISTINGS if x.name.startswith("pyng"))
# (listing, the server's lie, its error, good pages before it, page size)
CASES = ([(x, how, error, 2, 7) for x in NATURAL
          for how, error in [("nocursor", custlist.PagingError),
                             ("repeat", custlist.PagingLoopError)]]
         + [(COMMENDA, "repeat", custlist.PagingLoopError, 1, 9),
            (PYNG, "repeat", custlist.PagingLoopError, 3, 10)])


@pytest.mark.parametrize("listing, how, error, before, size", CASES,
                         ids=lambda v: v if isinstance(v, (str, int)) else str(v))
def test_a_paging_error_resumes_exactly(sb, listing, how, error, before, size):
    expected = [getattr(r, listing.key) for r in full(sb, listing)]
    sb.inject(listing.route, skip=before, body=_lie(sb, listing.route, how))
    shown = (before + 1) * size                    # the good pages and the lying one, whole
    with listing.client(sb) as client:
        pager = listing.list(client, limit=size)
        got = []
        with pytest.raises(error):
            for r in pager:
                got.append(getattr(r, listing.key))
        assert got == expected[:shown]
        cp = pager.checkpoint()
        assert (cp["skip"], cp["count"], cp["done"]) == (size, shown, False)
        sb.clear_faults()
        rest = [getattr(r, listing.key) for r in client.resume(cp)]
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
