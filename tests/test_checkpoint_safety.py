"""A checkpoint is data that may come from a file someone else wrote: it is
accepted only when it names a URL the listing itself could produce (the
client's origin, the endpoint's path, no segment that any decoding turns
into "." or ".."), and positions and page sizes it gives are refused with
ValueError when they are out of range, before any request.  A position past
the end of its page is a PagingError once the page is read, with nothing
handed out and the resume point unchanged."""
import json
import urllib.parse

import pytest

import custlist
from custlist import _checkpoint
from custlist.pyng import CUSTOMERS as PYNG_CUSTOMERS

from .conftest import FAST
from .netkit import Recorder

SIZE = 20


def roundtrip(cp: dict) -> dict:
    return json.loads(json.dumps(cp))


def pyng_client(sb, **kw):
    return custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, **{**FAST, **kw})


def natural_client(sb, **kw):
    return custlist.Natural(sb.natural_token, base_url=sb.natural_url, **{**FAST, **kw})


def pyng_cp(sb, n=25):
    """A pyng checkpoint mid-listing (on the second page, a link)."""
    with pyng_client(sb, prefetch=False) as client:
        pager = client.customers("site_1", limit=SIZE)
        for _ in range(n):
            next(pager)
        return roundtrip(pager.checkpoint())


def natural_cp(sb, n=3):
    with natural_client(sb, prefetch=False) as client:
        pager = client.customers(limit=SIZE)
        for _ in range(n):
            next(pager)
        return roundtrip(pager.checkpoint())


def refused(sb, client, cp, exc=ValueError, match="not a usable checkpoint"):
    """resume(cp) and the listing's start=cp raise `exc` and send nothing."""
    sb.requests.clear()
    with pytest.raises(exc, match=match) as info:
        client.resume(cp)
    assert sb.requests == []
    return info.value


# ---------------------------------------------------------------------------
# Paths: dot segments in every encoding, and anything a listing never writes

SITE = "/billing/sites/{}/customers"

DOTTED = [
    "%2e%2e", "%2E%2E", "%2E.", ".%2e", "%2e", "%2E",            # "." and ".." encoded
    "..", ".",                                                   # and plain
    "%252e%252e", "%25252e%25252e", "%252E.",                    # encoded twice, three times
    "%2f..", "..%2f", "%2F..%2F", "site_1%2F..%2F..",            # encoded slashes
    "%5c..", "..%5C", "site_1%5C..%5C..",                        # backslashes
    "..%3b", "..%3Bjsessionid=x", "..;x", "%2e%2e;x",             # ";" parameters
    "...", "..%20", "%20..", ". .",                               # dots and spaces
    "..%00", "site_1%00", "%00", "site_1%0a",                     # control characters
    "%C0%AE%C0%AE", "%e2%80%a4%e2%80%a4",                         # overlong UTF-8, lower-case hex
    "%EF%BC%8E%EF%BC%8E", "%E2%80%A5", "%E2%80%A4%E2%80%A4",      # dots once NFKC folds them
    "site_1%EF%BC%8F..", "site_1%EF%BC%BC%E2%80%A5",              # fullwidth / and \
    "site_1%2", "site_1%zz", "site 1", "site_1?x=1", "site_1#x",  # not as a listing writes it
]


@pytest.mark.parametrize("segment", DOTTED)
def test_a_path_that_leads_elsewhere_is_refused_before_any_request(sb, segment):
    cp = pyng_cp(sb)
    cp["path"] = SITE.format(segment)
    cp["page"] = None           # the listing's first page, at the forged path
    cp["skip"] = 0
    with pyng_client(sb) as client:
        refused(sb, client, cp)
        with pytest.raises(ValueError):
            client.customers("site_1", limit=SIZE, start=cp)
    assert sb.requests == []


@pytest.mark.parametrize("segment", DOTTED)
def test_a_link_that_leads_elsewhere_is_refused_before_any_request(sb, segment):
    cp = pyng_cp(sb)
    own = SITE.format("site_1")
    cp["page"] = cp["page"].replace(own, SITE.format(segment))
    cp["path"] = SITE.format(segment)
    with pyng_client(sb) as client:
        refused(sb, client, cp)


def test_the_path_check_is_exactly_what_a_listing_writes(sb):
    """Site ids a listing quotes (any character, '.' among others) are read
    back; the same ids written any other way are not."""
    base = sb.pyng_url
    for site, written in [("site_1", "site_1"), ("a.b", "a.b"), ("...x", "...x"),
                          ("a b/c", "a%20b%2Fc"), ("é", "%C3%A9"), ("50%", "50%25"),
                          ("a;b", "a%3Bb"), ("%2e", "%252e")]:
        path = SITE.format(written)
        assert path == PYNG_CUSTOMERS.path.format(site_id=urllib.parse.quote(site, safe=""))
        cp = {"custlist": 1, "endpoint": "pyng.customers", "path": path,
              "query": [["limit", "20"]], "page": None, "skip": 0, "count": 0, "done": False}
        if site == "%2e":                        # decodes twice into "."
            with pytest.raises(ValueError, match="not a usable checkpoint"):
                _checkpoint.read(cp, PYNG_CUSTOMERS, base)
        else:
            assert _checkpoint.read(cp, PYNG_CUSTOMERS, base).page is None
    for written in ["a%2fb", "%c3%a9", "a b", "50%", "a;b"]:
        cp = {"custlist": 1, "endpoint": "pyng.customers", "path": SITE.format(written),
              "query": [], "page": None, "skip": 0, "count": 0, "done": False}
        with pytest.raises(ValueError, match="not a usable checkpoint"):
            _checkpoint.read(cp, PYNG_CUSTOMERS, base)


# ---------------------------------------------------------------------------
# Links: same origin, same path, written plainly

def forged_links(sb, elsewhere):
    cp = pyng_cp(sb)
    link = cp["page"]
    assert link.startswith(sb.url + "/pyng" + SITE.format("site_1") + "?")
    host_port = sb.url.split("://", 1)[1]
    port = int(host_port.rsplit(":", 1)[1])
    rest = link[len(sb.url):]
    return cp, {
        "other-host": elsewhere.url + rest,
        "other-port": f"http://127.0.0.1:{port + 1}" + rest,
        "other-scheme": f"https://{host_port}" + rest,
        "user-info": f"http://user@{host_port}" + rest,
        "user-password": f"http://user:pw@{host_port}" + rest,
        "user-info-elsewhere": f"http://{host_port}@{elsewhere.url[7:]}" + rest,
        "backslash-authority": f"http://{host_port}\\@{elsewhere.url[7:]}" + rest,
        "backslash-path": link.replace("/site_1/", "/site_1\\..\\..\\"),
        "tab": link.replace("/customers", "/cust\tomers"),
        "space": link.replace("/customers", "/customers "),
        "non-ascii": link.replace("/customers", "/customérs"),
        "dot-segments": link.replace("/site_1/", "/site_1/./"),
        "dot-dot": link.replace("/site_1/customers", "/site_1/x/../customers"),
        "encoded-dots": link.replace("/site_1/customers", "/site_1/%2e%2e/site_1/customers"),
        "params": link.replace("/customers", "/customers;x=1"),
        "trailing-slash": link.replace("/customers", "/customers/"),
        "query-only": "?" + link.split("?", 1)[1],
        "no-authority": "http:" + rest,
        "relative": rest,
        "scheme-relative": "//" + host_port + rest,
        "fragment-path": sb.url + "/pyng/billing/customers#" + rest,
        "query-path": sb.url + "/pyng/billing/customers?x=" + rest,
        "empty-port": f"http://127.0.0.1:{port}:" + rest,
        "bad-port": f"http://127.0.0.1:{port}x" + rest,
    }


@pytest.mark.parametrize("how", [
    "other-host", "other-port", "other-scheme", "user-info", "user-password",
    "user-info-elsewhere", "backslash-authority", "backslash-path", "tab", "space", "non-ascii",
    "dot-segments", "dot-dot", "encoded-dots", "params", "trailing-slash", "query-only",
    "no-authority", "relative", "scheme-relative", "fragment-path", "query-path", "empty-port",
    "bad-port"])
def test_a_forged_link_is_refused_before_any_request(sb, how):
    elsewhere = Recorder("127.0.0.2")
    try:
        cp, links = forged_links(sb, elsewhere)
        cp["page"] = links[how]
        with pyng_client(sb) as client:
            refused(sb, client, cp, match=".")
            with pytest.raises(ValueError):
                client.customers("site_1", limit=SIZE, start=cp)
        assert sb.requests == [] and elsewhere.requests == []
    finally:
        elsewhere.close()


def test_the_links_a_listing_writes_resume_exactly(sb):
    """The checks take every link a listing itself writes: resumed after
    each record of two pages, nothing is lost or repeated."""
    everything = [c.customer_reference for c in pyng_client(sb).customers("site_1", limit=100)]
    for n in range(0, 2 * SIZE + 1, 3):
        cp = pyng_cp(sb, n)
        with pyng_client(sb) as client:
            rest = [c.customer_reference for c in client.resume(cp)]
        assert everything[:n] + rest == everything


# ---------------------------------------------------------------------------
# Numbers: page size and skip in range, never an OverflowError

@pytest.mark.parametrize("size", ["9" * 30, str(2**63), str(2**64 + 20), "101", "0", "00",
                                  "9" * 5000])
def test_a_page_size_out_of_range_is_a_value_error(sb, size):
    cp = natural_cp(sb)
    cp["query"] = [["limit", size]]
    with natural_client(sb) as client:
        refused(sb, client, cp, match="page size")
        with pytest.raises(ValueError, match="page size"):
            client.customers(limit=SIZE, start=cp)       # another listing's arguments: refused


@pytest.mark.parametrize("ep", ["OFFSET", "PAGES", "LINKED"])
def test_a_page_size_too_large_in_a_listings_query_is_a_value_error(sb, ep):
    from custlist.testing import demo
    endpoint = getattr(demo, ep)
    client = custlist.Client(base_url=sb.demo_url, auth=custlist.BearerToken(sb.demo_token),
                             **FAST)
    size = "limit" if ep == "OFFSET" else "per_page"
    with pytest.raises(ValueError, match="page size"):
        client.paginate(endpoint, endpoint.path, {size: "9" * 30}, max_items=5)
    assert sb.requests == []


@pytest.mark.parametrize("skip", [2**63 - 1, 2**63, 2**64 + 3, 10**30, 101])
@pytest.mark.parametrize("listing", ["natural", "pyng"])
def test_a_skip_no_page_holds_is_a_value_error(sb, listing, skip):
    cp = natural_cp(sb) if listing == "natural" else pyng_cp(sb)
    cp["skip"] = skip
    client = natural_client(sb) if listing == "natural" else pyng_client(sb)
    with client:
        refused(sb, client, cp, match="skip")


@pytest.mark.parametrize("count", [2**63, 10**30])
def test_a_count_out_of_range_is_a_value_error(sb, count):
    cp = natural_cp(sb)
    cp["count"] = count
    with natural_client(sb) as client:
        refused(sb, client, cp, match="count")


def demo_linked(sb, skip):
    """A checkpoint of the demo's Link-paged listing (no max_page_size
    declared) on its second page, with `skip`."""
    from custlist.testing.demo import LINKED
    ep = custlist.Endpoint(LINKED.path, LINKED.item, LINKED.paging, name="linked.plain")
    client = custlist.Client(base_url=sb.demo_url, auth=custlist.BearerToken(sb.demo_token),
                             **FAST)
    pager = client.paginate(ep, ep.path, {"per_page": "20"})
    for _ in range(25):
        next(pager)
    cp = roundtrip(pager.checkpoint())
    pager.close()
    cp["skip"] = skip
    return client, ep, cp


@pytest.mark.parametrize("skip", [2**63 - 1, 2**62, 10**6])
def test_a_skip_beyond_any_page_is_a_value_error_without_max_page_size(sb, skip):
    client, ep, cp = demo_linked(sb, skip)
    sb.requests.clear()
    with pytest.raises(ValueError, match="skip"):
        client.paginate(ep, ep.path, {"per_page": "20"}, start=cp)
    assert sb.requests == []


# (a skip equal to its page's size is a position: every record of that page
# handed out, as after a paging error; see test_resume_after_paging_error)
PAST = [("pyng", SIZE + 1), ("pyng", 60), ("natural-last", 6), ("natural-last", 7),
        ("linked", SIZE + 1), ("linked", 10**6 - 1)]


@pytest.mark.parametrize("prefetch", [True, False], ids=["prefetch", "one-pass"])
@pytest.mark.parametrize("listing, skip", PAST)
def test_a_skip_past_its_page_is_a_paging_error_with_nothing_lost(sb, prefetch, listing, skip):
    """A resume point past the end of its page was not taken from this
    listing: the page is read, nothing is handed out, PagingError, and the
    resume point stays where it was (resuming it again fails the same)."""
    if listing == "linked":
        client, ep, cp = demo_linked(sb, skip)
        client = custlist.Client(base_url=sb.demo_url, auth=custlist.BearerToken(sb.demo_token),
                                 prefetch=prefetch, **FAST)
        start = lambda: client.paginate(ep, ep.path, {"per_page": "20"}, start=cp)  # noqa: E731
    else:
        if listing == "natural-last":        # the last page holds 145 - 140 = 5 records
            cp = natural_cp(sb, 141)         # (the resumed page asks for skip + 1 of them)
        else:
            cp = pyng_cp(sb, 25)             # links fix the page size: 20
        cp["skip"] = skip
        client = (natural_client if listing == "natural-last" else pyng_client)(
            sb, prefetch=prefetch)
        start = lambda: client.resume(cp)     # noqa: E731
    with client:
        pager = start()
        got = []
        with pytest.raises(custlist.PagingError, match="does not fit"):
            for rec in pager:
                got.append(rec)
        assert got == [] and not pager.done
        assert pager.checkpoint() == cp
        again = start()                       # the same checkpoint fails the same way
        with pytest.raises(custlist.PagingError, match="does not fit"):
            next(again)
        assert again.checkpoint() == cp and again.consumed == 0


@pytest.mark.parametrize("skip", [SIZE, SIZE + 5, 99])
def test_a_skip_past_the_default_page_size_is_exact_where_the_size_is_asked(sb, skip):
    """Cursor listings that say how many records they want ask the resumed
    page for skip + 1 at least: a skip past the usual page size is counted
    from the page's first record, exactly (Natural's cursor is an offset)."""
    everything = [c.id for c in natural_client(sb).customers(limit=100)]
    cp = natural_cp(sb, 25)                  # the second page (from record 20), 5 taken
    cp["skip"] = skip
    sb.requests.clear()
    with natural_client(sb) as client:
        rest = [r.id for r in client.resume(cp)]
    assert rest == everything[SIZE + skip:]
    asked = [r.query["limit"] for r in sb.requests if r.route == "natural.customers"]
    assert asked[0] == str(skip + 1)


def test_a_skip_inside_its_page_resumes_exactly(sb):
    everything = [c.id for c in natural_client(sb).customers(limit=100)]
    for n in (1, 19, 21, 39, 141, 144):
        with natural_client(sb, prefetch=False) as c:
            p = c.customers(limit=SIZE)
            head = [next(p).id for _ in range(n)]
            cp = roundtrip(p.checkpoint())
        with natural_client(sb) as client:
            assert head + [r.id for r in client.resume(cp)] == everything
