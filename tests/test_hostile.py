"""Hostile callers and hostile input against the newest surfaces: path
parameters and resume tokens that try to leave their endpoint, and what
the Arrow stream and the pagers do when used in unexpected ways."""
import asyncio

import pyarrow as pa
import pytest

import custlist
from custlist.natural import CUSTOMERS as NATURAL_CUSTOMERS, NaturalErrors
from custlist.testing import Sandbox

from .conftest import FAST
from .netkit import Recorder


# ---- a path parameter or a checkpoint must not leave its endpoint ------------

@pytest.mark.parametrize("site_id", ["..", "."])
def test_dot_segment_site_id_is_refused_before_any_request(sb, site_id):
    # libcurl removes dot segments: "/billing/sites/../customers" would reach
    # "/billing/customers", another endpoint, with the bearer token.
    client = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, **FAST)
    with pytest.raises(ValueError, match="site_id"):
        client.customers(site_id)
    assert sb.requests == []


@pytest.mark.parametrize("path", ["/billing/sites/../customers", "/billing/sites/./customers"])
def test_checkpoint_with_a_dot_segment_path_is_refused_before_any_request(sb, path):
    # no prefetch: the first listing's next page is not on the wire when
    # the log is cleared, so the log shows what the resume alone sent
    client = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, prefetch=False, **FAST)
    pager = client.customers("site_1", limit=10)
    next(pager)
    cp = pager.checkpoint()
    pager.close()
    sb.requests.clear()
    cp["path"] = path
    with pytest.raises(ValueError, match="not a usable checkpoint"):
        list(client.resume(cp))
    assert sb.requests == []


# ---- no user-controlled value becomes more than one header -------------------

def _empty_listing(conn):
    body = b'{"data":[],"meta":{"pagination":{"has_more":false}}}'
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))


@pytest.fixture
def recorder():
    rec = Recorder("127.0.0.1", respond=_empty_listing)
    yield rec
    rec.close()


@pytest.mark.parametrize("ua", ["ua\r\nX-Injected: 1", "ua\nX-Injected: 1", "ua\rX"])
def test_user_agent_with_a_line_break_is_refused_at_construction(recorder, ua):
    with pytest.raises(ValueError, match="user_agent"):
        custlist.Natural("tok", base_url=recorder.url, user_agent=ua)
    with pytest.raises(ValueError, match="line break"):
        custlist.Pager(recorder.url + "/customers", *NATURAL_CUSTOMERS.schemas(), "cursor",
                       recorder.url, NaturalErrors(), custlist.Page, user_agent=ua)
    assert recorder.requests == []


@pytest.mark.parametrize("value", ["Bearer t\r\nX-Injected: 1", "Bearer t\n"])
def test_auth_value_with_a_line_break_is_refused_before_sending(recorder, value):
    # e.g. a token read from a file with its trailing newline
    client = custlist.Client(base_url=recorder.url, auth=lambda force: value)
    pager = client.paginate(NATURAL_CUSTOMERS, "/customers")
    with pytest.raises(ValueError, match="line break") as e:
        list(pager)
    assert "Bearer" not in str(e.value)           # the credential is not echoed
    assert recorder.requests == []
    pager = custlist.Pager(recorder.url + "/customers", *NATURAL_CUSTOMERS.schemas(), "cursor",
                           recorder.url, NaturalErrors(), custlist.Page,
                           headers=("Accept: x\r\nX-Injected: 1",))
    with pytest.raises(ValueError, match="line break"):
        list(pager)
    assert recorder.requests == []


# ---- async iteration: a short-lived OAuth token ------------------------------

def test_async_short_lived_token_is_not_fetched_per_record():
    # A token the server gives 20 s of life is good for this whole listing:
    # renewing it ahead of expiry must not turn into a token POST per record.
    with Sandbox(pyng_customers=60, seed=5, token_ttl=20) as box:
        pyng = custlist.Pyng(client_id=box.pyng_client_id, client_secret=box.pyng_client_secret,
                             base_url=box.pyng_url, **FAST)

        async def scenario():
            return [r async for r in pyng.customers("site_1", limit=20)]
        got = asyncio.run(asyncio.wait_for(scenario(), 60))
        assert len(got) == 60
        tokens = [r for r in box.requests if r.route == "pyng.token"]
        assert len(tokens) == 1, len(tokens)


# ---- Arrow: the page being converted is not fetched over ---------------------

def test_pager_is_busy_while_an_arrow_page_is_converted(sb):
    # The watch callback (a progress bar) runs Python between fetching a page
    # and converting it; iterating the pager there (or from another thread
    # meanwhile) used to swap the page's buffer away to the fetch thread,
    # which received the next page into it while it was being converted.
    client = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, **FAST)
    pager = client.customers("site_1", limit=50)
    meddled = []

    def meddle(n):
        try:
            meddled.append(next(pager))
        except RuntimeError as e:
            meddled.append(str(e))
    pager._watch(meddle)
    rows = []
    for batch in pa.RecordBatchReader.from_stream(pager):
        rows += batch.column("customer_reference").to_pylist()
    assert rows == [c["customerReference"] for c in sb.data.pyng["site_1"]]
    assert meddled and all(m == "this pager is in use by another thread" for m in meddled)


def test_checkpoint_with_a_tampered_page_size_is_a_clear_error(sb):
    client = custlist.Natural(sb.natural_token, base_url=sb.natural_url, **FAST)
    pager = client.customers(limit=5)
    next(pager)
    cp = pager.checkpoint()
    pager.close()
    sb.requests.clear()
    for size in ("5\r\nX-Injected: 1", "-5", "five", "٥"):
        cp["query"] = [["limit", size]]
        with pytest.raises(ValueError, match="not a usable checkpoint: page size"):
            client.resume(cp)
    assert sb.requests == []
