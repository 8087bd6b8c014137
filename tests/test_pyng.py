"""Pyng billing customers end to end against the sandbox over loopback HTTP."""
import datetime as dt
import urllib.parse

import pytest

import custlist
from custlist.pyng import Customer, LinkState
from custlist.testing import Sandbox

from .conftest import FAST

UTC = dt.timezone.utc


def refs(records):
    return [c.customer_reference for c in records]


def wire_refs(items):
    return [c["customerReference"] for c in items]


def ms(t: dt.datetime) -> int:
    return int(t.timestamp() * 1000)


def test_lists_every_customer_across_many_pages_in_order(sb, pyng):
    pager = pyng.customers(site_id="site_1", limit=10)
    got = list(pager)
    expected = sb.data.pyng["site_1"]
    assert len(expected) == 237
    assert refs(got) == wire_refs(expected)
    assert pager.pages_fetched == 24 and pager.done
    assert pager.total == 237 and pager.next_href is None
    assert all(type(c) is Customer for c in got)
    invited_at = [c.invited_at for c in got]
    assert invited_at == sorted(invited_at, reverse=True)


def test_records_carry_the_documented_fields(sb, pyng):
    by_ref = {c.customer_reference: c for c in pyng.customers(site_id="site_1", limit=100)}
    for wire in sb.data.pyng["site_1"]:
        c = by_ref[wire["customerReference"]]
        assert c.state == wire["state"]
        assert c.invited_at == dt.datetime.fromtimestamp(wire["invitedAt"] / 1000, UTC)
        assert ms(c.invited_at) == wire["invitedAt"]
        if "expiresAt" in wire:
            assert ms(c.expires_at) == wire["expiresAt"] and c.state is LinkState.INVITED
        else:
            assert c.expires_at is None
        if "linkedAt" in wire:
            assert ms(c.linked_at) == wire["linkedAt"] and c.state is LinkState.LINKED
        else:
            assert c.linked_at is None


def test_default_page_size_is_the_servers(sb, pyng):
    pages = list(pyng.customers(site_id="site_1").pages())
    assert [len(p.items) for p in pages] == [50, 50, 50, 50, 37]
    first = sb.requests[0]
    assert "limit" not in first.query


def test_every_request_carries_auth_and_version_headers(sb, pyng):
    list(pyng.customers(site_id="site_1", limit=100))
    hits = [r for r in sb.requests if r.route == "pyng.customers"]
    assert len(hits) == 3
    for r in hits:
        assert r.headers["authorization"] == "Bearer " + sb.pyng_token
        assert r.headers["pyng-api-version"] == "urn:pyng:api:billing:version:v1"
    assert "cursor" in hits[1].query and "cursor" in hits[2].query


@pytest.mark.parametrize("state", [LinkState.INVITED, "linked"])
def test_state_filter(sb, pyng, state):
    got = list(pyng.customers(site_id="site_1", state=state, limit=17))
    expected = [c for c in sb.data.pyng["site_1"] if c["state"] == str(state)]
    assert refs(got) == wire_refs(expected) and expected
    assert sb.requests[0].query["state"] == str(state)


def test_invited_range_filter_with_datetime_and_ms(sb, pyng):
    items = sb.data.pyng["site_1"]
    hi, lo = items[20]["invitedAt"], items[120]["invitedAt"]
    pager = pyng.customers(site_id="site_1", invited_from=dt.datetime.fromtimestamp(lo / 1000, UTC),
                           invited_to=hi, limit=25)
    got = list(pager)
    expected = [c for c in items if lo <= c["invitedAt"] <= hi]
    assert refs(got) == wire_refs(expected)
    assert pager.total == len(expected)
    assert sb.requests[0].query["invitedFrom"] == str(lo)
    assert sb.requests[0].query["invitedTo"] == str(hi)


def test_filters_combined_and_empty_result(sb, pyng):
    items = sb.data.pyng["site_1"]
    top = items[0]["invitedAt"]
    got = list(pyng.customers(site_id="site_1", state="invited", invited_from=top + 1))
    assert got == []
    both = list(pyng.customers(site_id="site_1", state="linked", invited_to=items[100]["invitedAt"]))
    assert refs(both) == wire_refs([c for c in items if c["state"] == "linked"
                                    and c["invitedAt"] <= items[100]["invitedAt"]])


def test_total_is_known_once_the_first_page_is_in(pyng):
    pager = pyng.customers(site_id="site_1", limit=5)
    assert pager.total is None
    next(pager)
    assert pager.total == 237


@pytest.mark.parametrize("consumed", [0, 20, 25, 30, 236])
def test_resume_from_saved_href_loses_nothing(sb, pyng, consumed):
    everything = wire_refs(sb.data.pyng["site_1"])
    pager = pyng.customers(site_id="site_1", limit=10)
    seen = refs(next(pager) for _ in range(consumed))
    saved = pager.next_href
    pager.close()
    resumed = refs(pyng.customers(site_id="site_1", start_href=saved))
    # resuming never skips; a page interrupted in the middle is delivered again whole
    page_start = (consumed // 10) * 10 if consumed % 10 else consumed
    assert seen == everything[:consumed]
    assert resumed == everything[page_start:]


def test_closing_mid_page_keeps_the_resume_point(sb, pyng):
    pager = pyng.customers(site_id="site_1", limit=10)
    seen = refs(next(pager) for _ in range(15))
    pager.close()
    with pytest.raises(StopIteration):
        next(pager)
    assert list(pager.pages()) == []
    resumed = refs(pyng.customers(site_id="site_1", start_href=pager.next_href))
    assert seen[:10] + resumed == wire_refs(sb.data.pyng["site_1"])


def test_resume_point_is_none_at_the_end(pyng):
    pager = pyng.customers(site_id="site_2", limit=100)
    list(pager)
    assert pager.next_href is None and pager.done


def test_pages_expose_links_total_and_trace_id(sb, pyng):
    pages = list(pyng.customers(site_id="site_1", limit=100).pages())
    assert [len(p.items) for p in pages] == [100, 100, 37]
    assert pages[0].prev_href is None and pages[0].next_href
    assert pages[1].prev_href and pages[1].next_href
    assert pages[2].prev_href and pages[2].next_href is None
    assert all(p.total == 237 for p in pages)
    assert len({p.trace_id for p in pages}) == 3 and all(p.trace_id for p in pages)
    assert refs(pages[0].items + pages[1].items + pages[2].items) == wire_refs(sb.data.pyng["site_1"])


def test_walking_back_with_prev_href(sb, pyng):
    pages = list(pyng.customers(site_id="site_1", limit=30).pages())
    back = pyng.customers(site_id="site_1", start_href=pages[3].prev_href)
    first = next(back.pages())
    assert first.items == pages[2].items


def test_raw_mode_yields_wire_dicts(sb, pyng):
    got = list(pyng.customers(site_id="site_1", limit=100, raw=True))
    assert got == sb.data.pyng["site_1"]


def test_pages_after_partial_iteration_continue_where_records_stopped(sb, pyng):
    pager = pyng.customers(site_id="site_1", limit=10)
    first = [next(pager) for _ in range(4)]
    rest = [c for page in pager.pages() for c in page.items]
    assert refs(first + rest) == wire_refs(sb.data.pyng["site_1"])


# ---------------------------------------------------------------------------
# OAuth client credentials


def test_client_credentials_token_fetched_once_and_reused(sb):
    client = custlist.Pyng(client_id=sb.pyng_client_id, client_secret=sb.pyng_client_secret,
                           base_url=sb.pyng_url, **FAST)
    assert len(list(client.customers(site_id="site_1", limit=100))) == 237
    assert len(list(client.customers(site_id="site_2", limit=100))) == len(sb.data.pyng["site_2"])
    token_calls = [r for r in sb.requests if r.route == "pyng.token"]
    assert len(token_calls) == 1
    call = token_calls[0]
    assert call.method == "POST"
    assert call.headers["authorization"].startswith("Basic ")
    form = urllib.parse.parse_qs(call.body.decode())
    assert form == {"grant_type": ["client_credentials"], "scope": ["billing:customers:read"]}


def test_revoked_token_is_renewed_once_on_401(sb):
    client = custlist.Pyng(client_id=sb.pyng_client_id, client_secret=sb.pyng_client_secret,
                           base_url=sb.pyng_url, **FAST)
    pager = client.customers(site_id="site_1", limit=50)
    first = [next(pager) for _ in range(50)]
    sb.revoke_pyng_tokens()
    rest = list(pager)
    assert refs(first + rest) == wire_refs(sb.data.pyng["site_1"])
    assert len([r for r in sb.requests if r.route == "pyng.token"]) == 2


def test_expired_token_is_renewed_before_use():
    with Sandbox(pyng_customers=30, token_ttl=1) as box:
        client = custlist.Pyng(client_id=box.pyng_client_id, client_secret=box.pyng_client_secret,
                               base_url=box.pyng_url, **FAST)
        assert len(list(client.customers(site_id="site_1"))) == 30
        import time
        time.sleep(1.1)
        assert len(list(client.customers(site_id="site_1"))) == 30
        calls = [r for r in box.requests if r.route == "pyng.token"]
        unauthorized = [r for r in box.requests if r.route == "pyng.customers"]
        assert len(calls) == 2 and len(unauthorized) == 2   # no 401 round trip needed


def test_bad_client_secret_raises_authentication_error(sb):
    client = custlist.Pyng(client_id=sb.pyng_client_id, client_secret="wrong",
                           base_url=sb.pyng_url, **FAST)
    with pytest.raises(custlist.AuthenticationError) as info:
        list(client.customers(site_id="site_1"))
    assert info.value.status == 401 and info.value.code == "invalid_client"
    assert "wrong" not in str(info.value) and "wrong" not in repr(client)
    assert [r.route for r in sb.requests] == ["pyng.token"]


def test_token_without_scope_gets_permission_denied(sb):
    client = custlist.Pyng(client_id=sb.pyng_noscope_client_id,
                           client_secret=sb.pyng_noscope_client_secret,
                           base_url=sb.pyng_url, **FAST)
    with pytest.raises(custlist.PermissionDeniedError) as info:
        list(client.customers(site_id="site_1"))
    assert info.value.status == 403 and info.value.code.startswith("urn:pyng:platform:billing:error:")


# ---------------------------------------------------------------------------
# API errors


def test_bad_token_raises_authentication_error_with_details(sb):
    client = custlist.Pyng(token="not-a-real-token", base_url=sb.pyng_url, **FAST)
    with pytest.raises(custlist.AuthenticationError) as info:
        list(client.customers(site_id="site_1"))
    e = info.value
    assert e.status == 401 and e.code.startswith("urn:pyng:platform:billing:error:")
    assert e.trace_id and e.message
    assert "not-a-real-token" not in str(e) and "not-a-real-token" not in repr(e)


def test_unknown_site_is_permission_denied(pyng):
    with pytest.raises(custlist.PermissionDeniedError) as info:
        list(pyng.customers(site_id="site_9"))
    assert info.value.status == 403 and info.value.target == "siteId"


def test_retired_api_version_raises_gone(sb):
    client = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url,
                           api_version="urn:pyng:api:billing:version:v0", **FAST)
    with pytest.raises(custlist.GoneError) as info:
        list(client.customers(site_id="site_1"))
    assert info.value.status == 410
    assert info.value.code == "urn:pyng:platform:billing:error:version:gone"
    assert "sunset" in info.value.headers and "deprecation" in info.value.headers


def test_unknown_api_version_is_a_bad_request(sb):
    client = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url,
                           api_version="urn:pyng:api:billing:version:v9", **FAST)
    with pytest.raises(custlist.BadRequestError) as info:
        list(client.customers(site_id="site_1"))
    assert info.value.status == 400


def test_unknown_state_string_is_sent_and_the_server_decides(sb, pyng):
    with pytest.raises(custlist.BadRequestError) as info:
        list(pyng.customers(site_id="site_1", state="archived"))
    assert info.value.target == "state"
    assert sb.requests[0].query["state"] == "archived"


def test_tampered_href_raises_invalid_pagination_link(sb, pyng):
    pages = pyng.customers(site_id="site_1", limit=10).pages()
    href = next(pages).next_href
    tampered = href[:-6] + ("A" if href[-6] != "A" else "B") + href[-5:]
    with pytest.raises(custlist.InvalidPaginationLinkError) as info:
        list(pyng.customers(site_id="site_1", start_href=tampered))
    e = info.value
    assert isinstance(e, custlist.BadRequestError) and e.status == 400
    assert e.code == "urn:pyng:platform:billing:error:customers:invalid-pagination-link"
    assert e.message == "The pagination link is not valid. Restart pagination from the first page."
    assert e.target == "nextHref" and e.trace_id


# ---------------------------------------------------------------------------
# Arguments are checked before any request


@pytest.mark.parametrize("kwargs, exc", [
    (dict(limit=0), ValueError), (dict(limit=101), ValueError), (dict(limit="5"), TypeError),
    (dict(limit=True), TypeError), (dict(state=5), TypeError), (dict(state=""), ValueError),
    (dict(invited_from=2000, invited_to=1000), ValueError),
    (dict(invited_from=dt.datetime(2026, 5, 2, tzinfo=UTC),
          invited_to=dt.datetime(2026, 5, 1, tzinfo=UTC)), ValueError),
    (dict(invited_from=dt.datetime(2026, 5, 1)), ValueError),
    (dict(invited_to=-1), ValueError), (dict(invited_to=1.5), TypeError),
    (dict(start_href=42), TypeError),
])
def test_bad_arguments_fail_before_any_request(sb, pyng, kwargs, exc):
    # a site of this test's own: a page an earlier test's listing sent ahead
    # may reach the shared server's log after it was cleared
    with pytest.raises(exc):
        pyng.customers(site_id="site_argcheck", **kwargs)
    assert [r for r in sb.requests if "/site_argcheck/" in r.path] == []


@pytest.mark.parametrize("site_id, exc", [("", ValueError), ("  ", ValueError), (None, TypeError),
                                          (7, TypeError)])
def test_bad_site_id(sb, pyng, site_id, exc):
    with pytest.raises(exc):
        pyng.customers(site_id=site_id)
    assert sb.requests == []


def test_client_construction_errors(sb):
    with pytest.raises(ValueError):
        custlist.Pyng(base_url=sb.pyng_url)                       # no credentials
    with pytest.raises(ValueError):
        custlist.Pyng(token="t", client_id="c", client_secret="s", base_url=sb.pyng_url)
    with pytest.raises(ValueError):
        custlist.Pyng(client_id="c", client_secret="", base_url=sb.pyng_url)
    with pytest.raises(ValueError):
        custlist.Pyng(token="", base_url=sb.pyng_url)
    with pytest.raises(TypeError):
        custlist.Pyng(token="t")                                  # base_url is required


def test_token_never_in_repr(sb):
    client = custlist.Pyng(token="secret-token-value", base_url=sb.pyng_url)
    assert "secret-token-value" not in repr(client)
    assert "secret-token-value" not in repr(vars(client))
