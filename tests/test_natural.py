"""Natural customers and invitations end to end against the sandbox."""
import datetime as dt
from decimal import Decimal

import pytest

import custlist
from custlist import natural as nat
from custlist.testing import Sandbox

from .conftest import FAST

UTC = dt.timezone.utc
AGENT = "agt_3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f"


def parse_iso(text):
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def check_party_ref(rec, wire):
    if wire is None:
        assert rec is None
    else:
        assert rec == nat.PartyRef(wire["id"], wire["name"], wire["email"])


def test_customers_mixed_list_every_field(sb, natural):
    pager = natural.customers(limit=13)
    got = list(pager)
    wire = sb.data.natural_customers
    assert len(got) == len(wire) == 145
    assert pager.pages_fetched == 12 and pager.done and pager.cursor is None
    kinds = {type(c) for c in got}
    assert kinds == {nat.Party, nat.DelegationInvitation}
    for c, w in zip(got, wire):
        a = w["attributes"]
        assert (c.type, c.id) == (w["type"], w["id"])
        assert type(c) is (nat.Party if w["type"] == "party" else nat.DelegationInvitation)
        assert c.email == a["email"]
        assert c.status == a["status"]
        assert c.permissions == tuple(a["permissions"])
        assert c.created_at == parse_iso(a["created_at"]) and c.created_at.tzinfo is UTC
        assert c.wallet_available_minor == a["wallet_available_minor"]
        if a["wallet_available_dollars"] is None:
            assert c.wallet_available_dollars is None
        else:
            assert c.wallet_available_dollars == Decimal(a["wallet_available_dollars"])
            assert str(c.wallet_available_dollars) == a["wallet_available_dollars"]
        assert c.wallet_access == a["wallet_access"]
        check_party_ref(c.party, a["party"])


def test_customers_nulls_and_enums(sb, natural):
    got = list(natural.customers(limit=100))
    assert any(c.email is None for c in got) and any(c.email for c in got)
    assert any(c.party is None for c in got) and any(c.party is not None for c in got)
    assert any(c.wallet_available_minor is None for c in got)
    assert {type(c.status) for c in got} == {nat.Status}
    statuses = {c.status for c in got}
    assert nat.Status.ACTIVE in statuses and len(statuses) > 2
    assert all(isinstance(c.wallet_access, str) for c in got)


def test_non_ascii_and_escapes_survive(sb, natural):
    got = list(natural.customers(limit=100))
    wire_names = [w["attributes"]["party"]["name"] for w in sb.data.natural_customers
                  if w["attributes"]["party"]]
    names = [c.party.name for c in got if c.party]
    assert names == wire_names
    assert any(not n.isascii() for n in names)


def test_invitations_every_field(sb, natural):
    got = list(natural.customer_invitations(limit=7))
    wire = sb.data.natural_invitations
    assert len(got) == len(wire) == 83
    for inv, w in zip(got, wire):
        a = w["attributes"]
        assert type(inv) is nat.CustomerInvitation
        assert inv.id == w["id"] and inv.type == w["type"]
        assert inv.status == a["status"] and inv.email == a["email"]
        assert inv.created_at == parse_iso(a["createdAt"])
        assert inv.wallet_available_minor == a["walletAvailableMinor"]
        assert inv.wallet_access == a["walletAccess"]
        check_party_ref(inv.party, a["party"])
        assert len(inv.agent_invitations) == len(a["agentInvitations"])
        for ai, wa in zip(inv.agent_invitations, a["agentInvitations"]):
            assert ai.invitation_id == wa["invitationId"]
            assert ai.agent == nat.Agent(wa["agent"]["id"], wa["agent"]["name"])
            assert ai.permissions == tuple(wa["permissions"])
            assert ai.created_at == parse_iso(wa["createdAt"])
            assert ai.expires_at == parse_iso(wa["expiresAt"])
    assert any(inv.agent_invitations == () for inv in got)
    assert any(len(inv.agent_invitations) > 1 for inv in got)


def test_default_limit_is_20(sb, natural):
    pages = list(natural.customers().pages())
    assert [len(p.items) for p in pages[:-1]] == [20] * 7 and len(pages[-1].items) == 5
    assert "limit" not in sb.requests[0].query


def test_page_fields_cursor_and_has_more(natural):
    pages = list(natural.customer_invitations(limit=40).pages())
    assert [p.has_more for p in pages] == [True, True, False]
    assert pages[0].cursor and pages[1].cursor and pages[2].cursor is None
    assert pages[0].total is None      # Natural reports no total


@pytest.mark.parametrize("consumed", [0, 10, 15, 144])
def test_resume_with_start_cursor(sb, natural, consumed):
    ids = [w["id"] for w in sb.data.natural_customers]
    pager = natural.customers(limit=10)
    seen = [next(pager).id for _ in range(consumed)]
    saved = pager.cursor
    pager.close()
    resumed = [c.id for c in natural.customers(limit=10, start_cursor=saved)]
    start = (consumed // 10) * 10
    assert seen == ids[:consumed] and resumed == ids[start:]
    if consumed:
        assert sb.requests[-1].query.get("cursor") is not None


def test_invalid_cursor_raises_invalid_cursor_error(sb, natural):
    with pytest.raises(custlist.InvalidCursorError) as info:
        list(natural.customers(start_cursor="garbage"))
    e = info.value
    assert e.status == 400 and e.code == "invalid_pagination_cursor" and e.message


def test_agent_headers_are_sent(sb):
    client = custlist.Natural(sb.natural_token, agent_id=AGENT, instance_id="conv-42",
                              base_url=sb.natural_url, **FAST)
    assert len(list(client.customer_invitations(limit=50))) == 83
    for r in sb.requests:
        assert r.headers["x-agent-id"] == AGENT and r.headers["x-instance-id"] == "conv-42"
        assert r.headers["authorization"] == "Bearer " + sb.natural_token


def test_no_agent_headers_by_default(sb, natural):
    list(natural.customers(limit=100))
    assert all("x-agent-id" not in r.headers and "x-instance-id" not in r.headers
               for r in sb.requests)


@pytest.mark.parametrize("kwargs, exc", [
    (dict(agent_id=AGENT), ValueError),                         # instance id required
    (dict(agent_id="agent-1", instance_id="x"), ValueError),
    (dict(agent_id=AGENT, instance_id="x" * 1025), ValueError),
    (dict(agent_id=AGENT, instance_id=""), ValueError),
    (dict(agent_id=AGENT, instance_id=42), TypeError),
    (dict(agent_id=42, instance_id="x"), ValueError),
])
def test_bad_agent_arguments(sb, kwargs, exc):
    with pytest.raises(exc):
        custlist.Natural(sb.natural_token, base_url=sb.natural_url, **kwargs)


def test_instance_id_of_1024_characters_is_accepted(sb):
    client = custlist.Natural(sb.natural_token, agent_id=AGENT, instance_id="i" * 1024,
                              base_url=sb.natural_url)
    assert len(list(client.customers(limit=100))) == 145


@pytest.mark.parametrize("limit, exc", [(0, ValueError), (101, ValueError), ("20", TypeError),
                                        (2.0, TypeError), (False, TypeError)])
def test_bad_limit_fails_before_any_request(sb, natural, limit, exc):
    with pytest.raises(exc):
        natural.customers(limit=limit)
    with pytest.raises(exc):
        natural.customer_invitations(limit=limit)
    assert sb.requests == []


def test_limit_bounds_are_accepted(natural):
    assert len(list(natural.customers(limit=1))) == 145
    assert len(list(natural.customers(limit=100))) == 145


def test_bad_token_error_body(sb):
    client = custlist.Natural("sk_ntl_sandbox_wrong", base_url=sb.natural_url, **FAST)
    with pytest.raises(custlist.AuthenticationError) as info:
        list(client.customers())
    e = info.value
    assert e.status == 401 and e.code == "unauthenticated" and e.message
    assert e.trace_id            # meta.supportId
    assert "sk_ntl_sandbox_wrong" not in str(e)


def test_raw_mode(sb, natural):
    assert list(natural.customers(limit=50, raw=True)) == sb.data.natural_customers
    assert list(natural.customer_invitations(limit=50, raw=True)) == sb.data.natural_invitations


def test_unknown_types_become_unknown_resources():
    with Sandbox(natural_customers=40, natural_unknown_type_every=7) as box:
        client = custlist.Natural(box.natural_token, base_url=box.natural_url)
        got = list(client.customers(limit=15))
        wire = box.data.natural_customers
        assert [c.id for c in got] == [w["id"] for w in wire]
        unknown = [(c, w) for c, w in zip(got, wire) if w["type"] not in
                   ("party", "delegation_invitation")]
        assert unknown
        for c, w in unknown:
            assert type(c) is nat.UnknownResource
            assert c.type == w["type"] and c.attributes == w["attributes"]


def test_base_url_defaults():
    assert custlist.Natural("t").base_url == "https://api.natural.co"
    assert nat.SANDBOX_BASE_URL == "https://sandbox.api.natural.co"
