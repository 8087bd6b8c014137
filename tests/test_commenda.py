"""Commenda customers end to end against the sandbox."""
import datetime as dt

import pytest

import custlist
from custlist import commenda as cm
from custlist.testing import Sandbox

from .conftest import FAST

UTC = dt.timezone.utc


def ids(records):
    return [c.id for c in records]


def wire_ids(items):
    return [c["id"] for c in items]


def test_lists_every_customer_with_default_fields(sb, commenda):
    pager = commenda.customers("corp_123", limit=20)
    got = list(pager)
    wire = sb.data.commenda["corp_123"]
    assert ids(got) == wire_ids(wire) and len(got) == 161
    assert pager.total == 161 and pager.cursor is None and pager.done
    for c, w in zip(got, wire):
        assert (c.name, c.email, c.corporation_id) == (w["name"], w["email"], w["corporation_id"])
        assert c.created_at == dt.datetime.fromtimestamp(w["created_at"], UTC)
        assert c.source_platform == w.get("source_platform")
        assert c.shipping_address is None and c.exemption_metadata is None   # not extended
    assert any(c.email is None for c in got)
    assert any(not c.id.startswith("cust_") for c in got)   # UUID ids too


def test_extend_shipping_address_both_key_styles(sb, commenda):
    got = list(commenda.customers("corp_123", extend=["shipping_address"], limit=100))
    assert sb.requests[0].query["extend"] == "shipping_address"
    old_style = 0
    for c, w in zip(got, sb.data.commenda["corp_123"]):
        a = w["shipping_address"]
        assert c.exemption_metadata is None
        if a is None:
            assert c.shipping_address is None
            continue
        old_style += "address_line_1" in a
        assert c.shipping_address.line1 == a.get("line1", a.get("address_line_1"))
        assert c.shipping_address.line2 == a.get("line2", a.get("address_line_2"))
        assert c.shipping_address.line3 == a.get("address_line_3")
        assert (c.shipping_address.city, c.shipping_address.state, c.shipping_address.postal_code,
                c.shipping_address.country) == (a["city"], a["state"], a["postal_code"], a["country"])
    assert old_style > 0


def test_extend_exemption_metadata(sb, commenda):
    got = list(commenda.customers("corp_123", extend=["shipping_address", "exemption_metadata"],
                                  limit=100))
    assert sb.requests[0].query["extend"] == "shipping_address,exemption_metadata"
    for c, w in zip(got, sb.data.commenda["corp_123"]):
        m = w["exemption_metadata"]
        assert c.exemption_metadata.has_exemption == m["has_exemption"]
        assert c.exemption_metadata.exemption_jurisdiction == m["exemption_jurisdiction"]
        assert c.exemption_metadata.expiration_status == m["expiration_status"]
        assert c.exemption_metadata.exemption_status == m["exemption_status"]


@pytest.mark.parametrize("kwargs, keep", [
    (dict(search_term="a"), lambda w: "a" in w["name"].lower()),
    (dict(has_exemption=True), lambda w: w["exemption_metadata"]["has_exemption"] is True),
    (dict(has_exemption=False), lambda w: w["exemption_metadata"]["has_exemption"] is False),
    (dict(expiration_status=cm.ExpirationStatus.EXPIRED),
     lambda w: w["exemption_metadata"]["expiration_status"] == "EXPIRED"),
    (dict(exemption_status="ACTIVE"), lambda w: w["exemption_metadata"]["exemption_status"] == "ACTIVE"),
])
def test_filters(sb, commenda, kwargs, keep):
    got = list(commenda.customers("corp_123", limit=30, **kwargs))
    expected = [w for w in sb.data.commenda["corp_123"] if keep(w)]
    assert ids(got) == wire_ids(expected) and expected


def test_name_exact_match(sb, commenda):
    target = sb.data.commenda["corp_123"][5]
    got = list(commenda.customers("corp_123", name=target["name"]))
    assert target["id"] in ids(got)
    assert all(c.name == target["name"] for c in got)
    assert sb.requests[0].query["name"] == target["name"]


def test_list_filters_are_sent_comma_separated(sb, commenda):
    wire = sb.data.commenda["corp_123"]
    platforms = sorted({w["source_platform"] for w in wire})[:2]
    got = list(commenda.customers("corp_123", source_platforms=platforms, limit=100))
    assert sb.requests[0].query["source_platforms"] == ",".join(platforms)
    assert ids(got) == wire_ids([w for w in wire if w["source_platform"] in platforms])
    pid = wire[3]["source_platform_id"]
    got = list(commenda.customers("corp_123", source_platform_ids=[pid]))
    assert ids(got) == [wire[3]["id"]]
    cert = wire[0]["exemption_metadata"]["certificate_type"] or "resale"
    list(commenda.customers("corp_123", certificate_types=[cert, "other"],
                            exemption_jurisdiction="US_CA"))
    q = sb.requests[-1].query
    assert q["certificate_types"] == f"{cert},other" and q["exemption_jurisdiction"] == "US_CA"


def test_booleans_sent_as_true_false(sb, commenda):
    list(commenda.customers("corp_123", has_exemption=False, limit=100))
    assert sb.requests[0].query["has_exemption"] == "false"


def test_default_limit_is_10(sb, commenda):
    pages = list(commenda.customers("corp_123").pages())
    assert len(pages) == 17 and all(len(p.items) == 10 for p in pages[:-1])
    assert "limit" not in sb.requests[0].query


@pytest.mark.parametrize("shape", ["bare", "wrapped", "mixed"])
def test_both_body_shapes(shape):
    with Sandbox(commenda_customers=47, commenda_shape=shape) as box:
        client = custlist.Commenda(box.commenda_token, base_url=box.commenda_url)
        pager = client.customers("corp_123", limit=10)
        got = list(pager)
        assert ids(got) == wire_ids(box.data.commenda["corp_123"])
        assert pager.total == 47 and pager.pages_fetched == 5


@pytest.mark.parametrize("consumed", [0, 10, 37])
def test_resume_with_start_cursor(sb, commenda, consumed):
    everything = wire_ids(sb.data.commenda["corp_123"])
    pager = commenda.customers("corp_123", limit=10)
    seen = ids(next(pager) for _ in range(consumed))
    saved = pager.cursor
    resumed = ids(commenda.customers("corp_123", limit=10, start_cursor=saved))
    start = (consumed // 10) * 10
    assert seen == everything[:consumed] and resumed == everything[start:]


def test_unknown_corporation_is_empty(commenda):
    pager = commenda.customers("corp_nobody")
    assert list(pager) == [] and pager.total == 0 and pager.done


@pytest.mark.parametrize("kwargs, exc", [
    (dict(corporation_id=None), ValueError), (dict(corporation_id=""), ValueError),
    (dict(corporation_id=5), TypeError), (dict(limit=0), ValueError), (dict(limit=101), ValueError),
    (dict(extend=["billing_address"]), ValueError), (dict(extend="shipping_address,x"), ValueError),
    (dict(source_platforms=[""]), ValueError), (dict(source_platforms=5), TypeError),
    (dict(has_exemption="yes"), TypeError), (dict(exemption_status=3), TypeError),
    (dict(certificate_types=[]), ValueError), (dict(name=""), ValueError),
])
def test_bad_arguments_fail_before_any_request(sb, commenda, kwargs, exc):
    args = {"corporation_id": "corp_123", **kwargs}
    with pytest.raises(exc):
        commenda.customers(**args)
    assert sb.requests == []


def test_error_bodies_become_api_errors(sb):
    client = custlist.Commenda("bad-token", base_url=sb.commenda_url, **FAST)
    with pytest.raises(custlist.AuthenticationError) as info:
        list(client.customers("corp_123"))
    assert info.value.status == 401 and info.value.message


def test_invalid_cursor_is_a_bad_request(commenda):
    with pytest.raises(custlist.BadRequestError) as info:
        list(commenda.customers("corp_123", start_cursor="not-a-cursor"))
    assert info.value.status == 400


def test_raw_mode(sb, commenda):
    got = list(commenda.customers("corp_123", limit=100, raw=True,
                                  extend=["shipping_address", "exemption_metadata"]))
    assert got == sb.data.commenda["corp_123"]


def test_base_url_default():
    assert custlist.Commenda("t").base_url == "https://api.prod.commenda.io/api/v1"
