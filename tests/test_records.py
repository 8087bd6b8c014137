"""Records and schema-directed decoding, on the vendors' own example bodies."""
import copy
import datetime as dt
import json
import pathlib
import pickle
from decimal import Decimal

import pytest

import custlist
from custlist import Field, Record, StrEnum, UnixMillis, UnixSeconds, commenda, natural, pyng
from custlist._core import Schema

DATA = pathlib.Path(__file__).resolve().parent / "data"
UTC = dt.timezone.utc


def doc_body(name: str) -> bytes:
    """A vendor's example response body (tests/data, see its README), as bytes."""
    return (DATA / name).read_bytes()


PYNG_FIRST = b"""{"data":{"items":[
 {"customerReference":"ACME-002","state":"invited","invitedAt":1777852800000,"expiresAt":1778457600000},
 {"customerReference":"ACME-001","state":"linked","invitedAt":1777680000000,"linkedAt":1777683600000}],
 "totalItems":3,
 "nextHref":"https://sample.pyng.com.au/billing/sites/s/customers?limit=2&cursor=eyJ2IjoxLCJrIjoieFFwM21KOEx2VHl3In0%3D"},
 "traceId":"9ae2e340-b983-4274-b400-c974a9ab40ab"}"""


def test_pyng_doc_example_decodes_to_typed_records():
    page = pyng.CUSTOMERS.decode(PYNG_FIRST)
    assert page.total == 3
    assert page.trace_id == "9ae2e340-b983-4274-b400-c974a9ab40ab"
    assert page.next_href.endswith("cursor=eyJ2IjoxLCJrIjoieFFwM21KOEx2VHl3In0%3D")
    assert page.prev_href is None
    first, second = page.items
    assert first == pyng.Customer("ACME-002", pyng.LinkState.INVITED,
                                  dt.datetime(2026, 5, 4, tzinfo=UTC),
                                  dt.datetime(2026, 5, 11, tzinfo=UTC), None)
    assert second.state is pyng.LinkState.LINKED
    assert second.linked_at == dt.datetime(2026, 5, 2, 1, 0, tzinfo=UTC)
    assert second.expires_at is None
    assert first.invited_at.tzinfo is UTC


def test_natural_customers_doc_example_mixed_types():
    page = natural.CUSTOMERS.decode(doc_body("natural-customers.json"))
    party, invitation = page.items
    assert type(party) is natural.Party and type(invitation) is natural.DelegationInvitation
    assert party.id == "pty_019cd4a832f17d8d8ef15e20c51fe718"
    assert invitation.id == "din_019cd4a832f27e6a93cb41d85f2a9b03"
    assert party.email is None
    assert party.status is natural.Status.ACTIVE
    assert party.permissions == ("payments:read", "payments:write", "wallets.read")
    assert party.created_at == dt.datetime(2026, 1, 4, 15, 30, tzinfo=UTC)
    assert party.wallet_available_minor == 950000
    assert party.wallet_available_dollars == Decimal("9500.00")
    assert str(party.wallet_available_dollars) == "9500.00"
    assert party.wallet_access is natural.WalletAccess.GRANTED
    assert party.party == natural.PartyRef("pty_019cd4a832f17d8d8ef15e20c51fe718", "Natural",
                                           "contact@natural.co")
    assert page.has_more is False and page.cursor is None


def test_natural_invitations_doc_example_nested_records():
    page = natural.INVITATIONS.decode(
        doc_body("natural-invitations.json"))
    (inv,) = page.items
    assert inv.id == inv.email == "ops@acme.com"
    assert inv.status is natural.Status.PENDING
    assert inv.party is None and inv.wallet_available_minor is None
    assert inv.wallet_access is natural.WalletAccess.DENIED
    assert inv.created_at == dt.datetime(2026, 1, 5, 10, 15, tzinfo=UTC)
    first, second = inv.agent_invitations
    assert first.invitation_id == "adi_550e8400e29b41d4a716446655440000"
    assert first.agent == natural.Agent("agt_3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f", "Invoice Agent")
    assert second.permissions == ("payments.create", "payments.read")
    assert second.expires_at == dt.datetime(2026, 1, 12, 10, 15, tzinfo=UTC)


def test_commenda_doc_example_bare_and_wrapped():
    bare = doc_body("commenda-customers.json")
    wrapped = json.dumps({"data": json.loads(bare), "message": "Successfully fetched customers."})
    for body in (bare, wrapped.encode()):
        page = commenda.CUSTOMERS.decode(body)
        (c,) = page.items
        assert page.total == 1 and page.cursor is None
        assert (c.id, c.name, c.email, c.corporation_id) == (
            "cust_789", "Acme Corporation", "contact@acme.com", "corp_123")
        assert c.created_at == dt.datetime.fromtimestamp(1706000000, UTC)
        assert c.shipping_address == commenda.Address("123 Main St", None, None, "San Francisco",
                                                      "CA", "94105", "US")


def test_commenda_older_address_keys():
    body = json.dumps({"customers": [{"id": "6f1c1b1e-8d7c-4a51-9a43-2f7c3c0f9d10",
                                      "shipping_address": {"address_line_1": "1 Old Rd",
                                                           "address_line_2": "Unit 2",
                                                           "address_line_3": "Rear",
                                                           "city": "Austin"}}],
                       "total_customers": 1}).encode()
    (c,) = commenda.CUSTOMERS.decode(body).items
    assert (c.shipping_address.line1, c.shipping_address.line2, c.shipping_address.line3) == (
        "1 Old Rd", "Unit 2", "Rear")
    assert c.name is None


def test_unknown_enum_value_stays_plain_str():
    body = PYNG_FIRST.replace(b'"state":"linked"', b'"state":"archived"')
    item = pyng.CUSTOMERS.decode(body).items[1]
    assert item.state == "archived" and type(item.state) is str


def test_unknown_natural_type_becomes_unknown_resource():
    body = json.dumps({"data": [
        {"type": "agent_grant", "id": "agr_1", "attributes": {"scope": ["a", "b"], "n": 1}},
        {"id": "pty_2", "type": "party", "attributes": {"status": "ACTIVE"}},
    ], "meta": {"pagination": {"has_more": False, "next_cursor": None}}}).encode()
    unknown, party = natural.CUSTOMERS.decode(body).items
    assert unknown == natural.UnknownResource("agent_grant", "agr_1", {"scope": ["a", "b"], "n": 1})
    assert type(party) is natural.Party and party.status is natural.Status.ACTIVE  # tag not first


def test_raw_mode_gives_wire_dicts():
    page = pyng.CUSTOMERS.decode(PYNG_FIRST, raw=True)
    assert page.items == tuple(json.loads(PYNG_FIRST)["data"]["items"])
    assert type(page.items[0]) is dict


class Color(StrEnum):
    RED = "red"


class Inner(Record):
    n = Field(int)


class Sample(Record):
    s = Field(str)
    i = Field(int)
    f = Field(float)
    b = Field(bool)
    d = Field(Decimal)
    t = Field(dt.datetime)
    ts = Field(UnixSeconds)
    tms = Field(UnixMillis)
    e = Field(Color)
    inner = Field(Inner)
    many = Field(tuple[Inner, ...])
    deep = Field(str, "a.b.c", aliases=["old_deep"])


SAMPLE = Schema(Sample.__schema_spec__())


def test_every_field_kind():
    rec = SAMPLE.decode(json.dumps({
        "s": "h\u00e9llo \"q\" \\ \ud83d\ude80", "i": -12345678901234567890, "f": 1.5e3, "b": True,
        "d": "-0.10", "t": "2026-03-01T12:00:00.5+02:00", "ts": 0, "tms": -1, "e": "red",
        "inner": {"n": 1, "junk": [1, {"x": None}]}, "many": [{"n": 2}, {"n": 3}],
        "a": {"b": {"c": "nested"}}, "unknown": {"deep": [[[]]]}}).encode())
    assert rec.s == "h\u00e9llo \"q\" \\ \U0001F680"
    assert rec.i == -12345678901234567890
    assert rec.f == 1500.0 and rec.b is True
    assert rec.d == Decimal("-0.10") and str(rec.d) == "-0.10"
    assert rec.t == dt.datetime(2026, 3, 1, 10, 0, 0, 500000, tzinfo=UTC)
    assert rec.ts == dt.datetime(1970, 1, 1, tzinfo=UTC)
    assert rec.tms == dt.datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
    assert rec.e is Color.RED
    assert rec.inner == Inner(1) and rec.many == (Inner(2), Inner(3))
    assert rec.deep == "nested"
    assert SAMPLE.decode(b'{"old_deep": "alias"}').deep == "alias"


@pytest.mark.parametrize("text, expected", [
    ("2026-01-04T15:30:00Z", dt.datetime(2026, 1, 4, 15, 30, tzinfo=UTC)),
    ("2026-01-05T10:15:00.000Z", dt.datetime(2026, 1, 5, 10, 15, tzinfo=UTC)),
    ("2026-01-05T10:15:00.123456789Z", dt.datetime(2026, 1, 5, 10, 15, 0, 123456, tzinfo=UTC)),
    ("2026-01-05T10:15:00", dt.datetime(2026, 1, 5, 10, 15, tzinfo=UTC)),
    ("2026-01-05 10:15", dt.datetime(2026, 1, 5, 10, 15, tzinfo=UTC)),
    ("2026-01-01T00:30:00+01:00", dt.datetime(2025, 12, 31, 23, 30, tzinfo=UTC)),
    ("2024-02-29T23:59:59-0130", dt.datetime(2024, 3, 1, 1, 29, 59, tzinfo=UTC)),
    ("2026-01-05", dt.datetime(2026, 1, 5, tzinfo=UTC)),
])
def test_iso_timestamps(text, expected):
    assert SAMPLE.decode(json.dumps({"t": text}).encode()).t == expected


@pytest.mark.parametrize("body", [
    b'{"t": "2026-13-01T00:00:00Z"}', b'{"t": "2025-02-29T00:00:00Z"}',
    b'{"t": "2026-01-01T24:00:00Z"}', b'{"t": "2026-01-01T00:00:60Z"}',
    b'{"t": "2026-01-01T00:00:00+25:00"}', b'{"t": "yesterday"}', b'{"t": 1700000000}',
    b'{"ts": 1e3}', b'{"tms": 253402300800000}', b'{"i": 1.5}', b'{"i": "1"}',
    b'{"b": 1}', b'{"d": "1e5"}', b'{"d": "NaN"}', b'{"d": ""}', b'{"e": 1}',
    b'{"inner": []}', b'{"many": {}}', b'{"f": 1e999}', b'{"s": "\\ud800"}',
])
def test_wrong_types_and_values_raise_decode_error(body):
    with pytest.raises(custlist.DecodeError) as info:
        SAMPLE.decode(body)
    assert 0 < info.value.offset < len(body)


def test_record_protocols():
    rec = pyng.CUSTOMERS.decode(PYNG_FIRST).items[0]
    assert pickle.loads(pickle.dumps(rec)) == rec
    assert copy.deepcopy(rec) == rec
    assert hash(rec) == hash(pickle.loads(pickle.dumps(rec)))
    assert rec != pyng.CUSTOMERS.decode(PYNG_FIRST).items[1]
    assert repr(rec).startswith("Customer(customer_reference='ACME-002', state=")
    assert rec.to_dict() == {"customer_reference": "ACME-002", "state": pyng.LinkState.INVITED,
                             "invited_at": dt.datetime(2026, 5, 4, tzinfo=UTC),
                             "expires_at": dt.datetime(2026, 5, 11, tzinfo=UTC),
                             "linked_at": None}
    assert pyng.Customer.__match_args__ == pyng.Customer.__fields__
    match rec:
        case pyng.Customer(ref, pyng.LinkState.INVITED):
            assert ref == "ACME-002"
        case _:
            pytest.fail("pattern matching on the record failed")
    with pytest.raises(AttributeError):
        rec.state = "linked"
    with pytest.raises(AttributeError):
        rec.extra = 1


def test_nested_to_dict_and_pickle():
    page = natural.INVITATIONS.decode(
        doc_body("natural-invitations.json"))
    inv = page.items[0]
    d = inv.to_dict()
    assert d["agent_invitations"][0]["agent"] == {"id": "agt_3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f",
                                                  "name": "Invoice Agent"}
    assert pickle.loads(pickle.dumps(page)) == page


def test_record_construction_by_hand():
    c = pyng.Customer(customer_reference="X", state="linked")
    assert c.invited_at is None and c.state == "linked"
    with pytest.raises(TypeError):
        pyng.Customer(nope=1)
    with pytest.raises(TypeError):
        pyng.Customer(*range(6))


def test_stubs_are_current():
    from custlist import _stubgen
    assert _stubgen.main(["--check"]) == 0
