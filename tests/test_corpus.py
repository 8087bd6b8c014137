"""Replay of the decoder corpus (tests/corpus, written by tests/corpus/generate.py)
and property tests of Endpoint.decode / Schema.decode against json.loads.

The contract: for any body the decode returns or raises exactly
custlist.DecodeError with a byte offset inside the body; whatever decodes
agrees with json.loads.  Each input also goes through the fuzz target's own
check (tests/decode_targets.py): no other exception, the Pager's two-pass decode
agrees with the one-pass one, and the values equal what a reference decoder
in Python derives from json.loads."""
import datetime as dt
import json
import pathlib
import random
import subprocess
import sys
from decimal import Decimal

import pytest

import custlist
from custlist import _core, commenda, natural, pyng
from custlist._spec import Page

from . import decode_targets as fd

ROOT = pathlib.Path(__file__).resolve().parent
CORPUS = ROOT / "corpus"


HOSTILE = sorted(CORPUS.glob("hostile/*/*.bin"))
VALID = sorted(CORPUS.glob("valid/*/*.bin"))
UTC = dt.timezone.utc
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


def D(*args):
    return dt.datetime(*args, tzinfo=UTC)


def case_id(path):
    return f"{path.parent.name}/{path.stem}"


def decode(target_name, body, max_depth=64):
    return fd.BY_NAME[target_name].decode(body, max_depth)


def check(target_name, body):
    """The fuzz target's whole contract check on one body."""
    return fd.check(bytes([fd.selector(target_name)]) + body)


# ---------------------------------------------------------------------------
# Hostile inputs: exactly DecodeError, at a sensible offset


def test_corpus_layout():
    assert len(HOSTILE) >= 200 and len(VALID) >= 60
    for path in HOSTILE + VALID:
        assert path.parent.name in fd.BY_NAME, f"{path}: no target {path.parent.name!r}"
    stems = {case_id(p) for p in VALID}
    assert stems == set(EXPECTED), ("valid files without expectations", stems - set(EXPECTED),
                                    "expectations without files", set(EXPECTED) - stems)


def expected_offset(target, name, body):
    """Where the error must point, for the cases where that is unambiguous
    (None: only "inside the body" is checked)."""
    def after(marker):
        return body.index(marker) + len(marker)
    if name.startswith("truncated_") and name[10:].isdigit():
        return len(body)                       # a page cut short: at its end
    if target == "pyng" and name.startswith(("string_", "utf8_")) and b'"AC' in body:
        return after(b'"AC')                   # at the bad byte / the backslash
    if target == "natural" and name.startswith("dollars_"):
        return after(b'"wallet_available_dollars":')
    if target == "natural" and name.startswith("created_") and "by_offset" not in name:
        return after(b'"created_at":')
    if target == "pyng" and name.startswith("invited_at_"):
        return after(b'"invitedAt":')
    if target == "pyng" and name.startswith("number_"):
        return {"nan": 11, "infinity": 11, "plus": 11, "bare_minus": 11, "leading_dot": 11,
                "leading_zero": 12, "trailing_dot": 12, "empty_exponent": 13,
                "hex": 12}.get(name[7:])
    want = {
        ("pyng", "empty"): 0, ("pyng", "whitespace_only"): 5, ("pyng", "null_body"): 0,
        ("pyng", "bom_only"): 3, ("pyng", "bom_twice"): 3, ("pyng", "bom_after_space"): 1,
        ("pyng", "trailing_garbage"): -1, ("pyng", "trailing_nul"): -1,
        ("pyng", "two_documents"): lambda: len(body) // 2, ("pyng", "missing_colon"): 8,
        ("pyng", "missing_comma"): 11, ("pyng", "unquoted_key"): 1, ("pyng", "single_quotes"): 1,
        ("pyng", "trailing_comma_array"): lambda: body.index(b",]") + 1,
        ("pyng", "trailing_comma_object"): 21,
        # a required field absent or null: at the record's start
        ("pyng", "required_missing"): 18, ("pyng", "required_null"): 18,
        ("natural", "required_id_missing"): 9, ("commenda", "required_id_null"): 14,
        ("pyng", "truncated_in_literal"): 20, ("pyng", "truncated_in_escape"): 22,
        ("pyng", "truncated_in_utf8"): 22, ("pyng", "utf8_bad_in_key"): 4,
        ("pyng", "utf8_bad_in_skipped_value"): lambda: body.index(b"\xc0"),
        ("pyng", "escape_lone_surrogate_in_key"): 2,
        ("pyng", "deep_unclosed_100k"): 5 + 63, ("pyng", "deep_65_levels"): 5 + 63,
        ("any", "deep_65_levels"): 64, ("pyng", "items_is_object"): 17,
        ("pyng", "item_is_number"): 18, ("pyng", "total_is_string"): 22,
        ("pyng", "total_is_float"): 22, ("natural", "type_is_number"): 17,
        ("natural", "empty"): 0, ("union", "unknown_kind"): 1, ("union", "missing_kind"): 1,
        ("unix_ms", "beyond_9999"): 0, ("unix_s", "beyond_9999"): 0, ("float", "1e999"): 5,
        ("datetime", "year_0"): 0, ("str", "unterminated"): 4, ("list-str", "number"): 6,
        ("every", "deep_any_field"): lambda: body.index(b'{"a":' * 64) + 5 * 63,
    }.get((target, name))
    if callable(want):
        return want()
    return len(body) + want if want is not None and want < 0 else want


@pytest.mark.parametrize("path", HOSTILE, ids=case_id)
def test_hostile_input_raises_decode_error(path):
    target, name, body = path.parent.name, path.stem, path.read_bytes()
    with pytest.raises(custlist.DecodeError) as info:
        decode(target, body)
    e = info.value
    assert type(e) is custlist.DecodeError
    assert type(e.offset) is int and 0 <= e.offset <= len(body), (e.offset, len(body))
    want = expected_offset(target, name, body)
    if want is not None:
        assert e.offset == want, (str(e), body[max(0, e.offset - 20):e.offset + 20])
    assert isinstance(check(target, body), custlist.DecodeError)


def test_timestamp_range_error_points_into_the_value():
    for name in ("created_after_9999_by_offset", "created_before_year_1_by_offset"):
        body = (CORPUS / "hostile" / "natural" / f"{name}.bin").read_bytes()
        with pytest.raises(custlist.DecodeError) as info:
            decode("natural", body)
        start = body.index(b'"created_at":') + 13
        assert info.value.offset == start, info.value


# ---------------------------------------------------------------------------
# Valid edge cases: the exact values


def _pyng(ref, state=None, invited=None, expires=None, linked=None):
    return pyng.Customer(customer_reference=ref, state=state, invited_at=invited,
                         expires_at=expires, linked_at=linked)


def _nested(depth):
    v = []
    for _ in range(depth - 1):
        v = [v]
    return v


N, PC, PR = natural, natural.Party, natural.PartyRef
C = commenda
E = fd.Every
INVITED, LINKED = pyng.LinkState.INVITED, pyng.LinkState.LINKED
PYNG_ITEMS = (
    _pyng("ACME-001", INVITED, D(2026, 5, 4), D(2026, 5, 11)),
    _pyng("ACME-\u00e9\U0001F680", LINKED, D(2026, 5, 2), None, D(2026, 5, 2, 1, 0, 0, 123000)))
PYNG_RAW_ITEMS = (
    {"customerReference": "ACME-001", "state": "invited", "invitedAt": 1777852800000,
     "expiresAt": 1778457600000},
    {"customerReference": "ACME-\u00e9\U0001F680", "state": "linked", "invitedAt": 1777680000000,
     "linkedAt": 1777683600123})
PYNG_PAGE = dict(total=2, next_href="https://api.example/next?c=1", trace_id="tr-1")
PARTY_1 = PC(type="party", id="pty_1", email="a@example.com", status=N.Status.ACTIVE,
             permissions=("payments:read", "wallets.read"), created_at=D(2026, 1, 4, 15, 30),
             wallet_available_minor=950000, wallet_available_dollars=Decimal("9500.00"),
             wallet_access=N.WalletAccess.GRANTED,
             party=PR(id="pty_1", name="Nat", email="n@example.com"))
PARTY_1_RAW = {"type": "party", "id": "pty_1", "attributes": {
    "email": "a@example.com", "status": "ACTIVE", "permissions": ["payments:read", "wallets.read"],
    "created_at": "2026-01-04T15:30:00Z", "wallet_available_minor": 950000,
    "wallet_available_dollars": "9500.00", "wallet_access": "granted",
    "party": {"id": "pty_1", "name": "Nat", "email": "n@example.com"}}}
INVITATION = N.CustomerInvitation(
    type="customer_invitation", id="c@example.com", status=N.Status.PENDING,
    party=PR(id="pty_9", name="C"), email="c@example.com",
    created_at=D(2026, 2, 1, 8, 0, 0, 250000), wallet_available_minor=0,
    wallet_access=N.WalletAccess.DENIED,
    agent_invitations=(N.AgentInvitation(invitation_id="ai_1", agent=N.Agent(id="agt_1", name="Bot"),
                                         permissions=("read",), created_at=D(2026, 2, 1, 8),
                                         expires_at=D(2026, 3, 1, 7)),))
INVITATION_RAW = {"type": "customer_invitation", "id": "c@example.com", "attributes": {
    "status": "PENDING", "party": {"id": "pty_9", "name": "C"}, "email": "c@example.com",
    "createdAt": "2026-02-01T08:00:00.250Z", "walletAvailableMinor": 0, "walletAccess": "denied",
    "agentInvitations": [{"invitationId": "ai_1", "agent": {"id": "agt_1", "name": "Bot"},
                          "permissions": ["read"], "createdAt": "2026-02-01T08:00:00Z",
                          "expiresAt": "2026-03-01T08:00:00+01:00"}]}}
CUSTOMER = C.Customer(
    id="cus_1", name="Shop", email="s@example.com", corporation_id="corp_1",
    created_at=D(2026, 1, 1), source_platform="shopify", source_platform_id="42",
    shipping_address=C.Address(line1="1 Main St", city="Austin", state="TX", postal_code="78701",
                               country="US"),
    exemption_metadata=C.ExemptionMetadata(
        has_exemption=True, certificate_type="resale", exemption_jurisdiction="TX",
        expiration_status=C.ExpirationStatus.ACTIVE, exemption_status=C.ExemptionStatus.INACTIVE))
CUSTOMER_RAW = {"id": "cus_1", "name": "Shop", "email": "s@example.com", "corporation_id": "corp_1",
                "created_at": 1767225600, "source_platform": "shopify", "source_platform_id": "42",
                "shipping_address": {"line1": "1 Main St", "line2": None, "city": "Austin",
                                     "state": "TX", "postal_code": "78701", "country": "US"},
                "exemption_metadata": {"has_exemption": True, "certificate_type": "resale",
                                       "exemption_jurisdiction": "TX", "expiration_status": "ACTIVE",
                                       "exemption_status": "INACTIVE"}}


def _party(**kw):
    return PC(type="party", **kw)


EXPECTED = {
    "pyng/page": Page(PYNG_ITEMS, **PYNG_PAGE),
    "pyng-raw/page": Page(PYNG_RAW_ITEMS, **PYNG_PAGE),
    "pyng/bom": Page(PYNG_ITEMS, **PYNG_PAGE),
    "pyng/whitespace": Page((), total=0),
    "pyng/empty_object": Page(()),
    "pyng/nulls": Page((_pyng("R", INVITED, EPOCH), None)),
    "pyng/items_null": Page((), total=0),
    "pyng/data_null": Page((), trace_id="t"),
    "pyng/escapes": Page((_pyng("\u00e9\U0001F680\n\"\\/\b\f\r\t\x00\x1f\uffff", LINKED, EPOCH),)),
    "pyng/utf8_boundaries": Page((_pyng("\u0080\u07ff\u0800\uffff\U00010000\U0010ffff\u2028\u2029\x7f",
                                        INVITED, EPOCH),)),
    "pyng/unknown_state": Page((_pyng("R", "archived", EPOCH),)),
    "pyng/duplicate_leaf_keys": Page((_pyng("b", INVITED, EPOCH),), total=2),
    "pyng/negative_zero": Page((_pyng("R", INVITED, EPOCH),), total=0),
    "pyng/unix_ms_bounds": Page((_pyng("R", INVITED, D(9999, 12, 31, 23, 59, 59, 999000), D(1, 1, 1),
                                       D(1969, 12, 31, 23, 59, 59, 999000)),)),
    "pyng/iso_string_in_unix_field": Page((_pyng("R", INVITED, D(2026, 5, 3, 22, 0, 0, 500000)),)),
    "pyng/total_big_int": Page((), total=123456789012345678901234567890),
    "pyng/skipped_values": Page(()),
    "pyng/deep_64_levels": Page(()),
    "pyng-raw/values": Page(({"a": "dup", "b": -0.0, "c": 1.0, "d": 100.0, "e": 0.0,
                              "f": 12345678901234567890123, "g": "\U0001F680\u00e9",
                              "h": [None, True, False, {}], "": ""},)),
    "pyng-raw/items_of_every_type": Page((1, "s", None, True, [], {})),
    "any/deep_64_levels": _nested(64),
    "natural/page": Page((PARTY_1,), has_more=False),
    "natural-raw/page": Page((PARTY_1_RAW,), has_more=False),
    "natural/variants": Page((
        N.DelegationInvitation(type="delegation_invitation", id="din_1", status=N.Status.PENDING),
        _party(id="pty_2"),
        N.UnknownResource(type="customer_group", id="grp_1", attributes={"members": [1, 2.5, None]}),
        N.UnknownResource(id="no_type"),
        N.UnknownResource(id="null_type")), cursor="c_2", has_more=True),
    "natural/escaped_tag_value": Page((_party(id="pty_1"),)),
    "natural/decimals": Page(tuple(_party(id="pty_1", wallet_available_dollars=Decimal(v)) for v in (
        "9500.00", "-0.50", "007", "0", "12345678901234567890.123456789", "12.50", "1e5", "-0"))),
    "natural/datetimes": Page(tuple(_party(id="pty_1", created_at=v) for v in (
        D(2026, 1, 4), D(2026, 1, 4, 15, 30), D(2026, 1, 4, 15, 30), D(2026, 1, 4, 13, 30),
        D(2026, 1, 4, 21, 0), D(2026, 1, 4, 15, 30, 0, 500000), D(2026, 1, 4, 15, 30, 0, 123456),
        D(2024, 2, 29), D(2000, 2, 29), D(1, 1, 1), D(9999, 12, 31, 23, 59, 59, 999999),
        D(2026, 1, 4), D(1, 1, 1), D(9999, 12, 31, 23, 59)))),
    "natural/leap_seconds_and_hour_offsets": Page(tuple(_party(id="pty_1", created_at=v) for v in (
        D(2016, 12, 31, 23, 59, 59, 999999), D(2016, 12, 31, 23, 59, 59, 999999),
        D(2016, 12, 31, 23, 59, 59, 999999), D(2026, 1, 4, 14, 30), D(2026, 1, 4, 20, 30),
        D(2026, 1, 4, 15, 30)))),
    "natural/permissions": Page((_party(id="pty_1", permissions=(
        "payments:read", "wallets.read", "", "payments:read", None, "\u00e9")),)),
    "natural/duplicate_cursor_spellings": Page((), cursor="b", has_more=False),
    "invitations/page": Page((INVITATION,), cursor="cur_2", has_more=True),
    "invitations-raw/page": Page((INVITATION_RAW,), cursor="cur_2", has_more=True),
    "commenda/page": Page((CUSTOMER,), total=1, cursor="c2"),
    "commenda-raw/page": Page((CUSTOMER_RAW,), total=1, cursor="c2"),
    "commenda/wrapped": Page((C.Customer(id="cus_2", created_at=EPOCH),), total=1),
    "commenda/old_address_keys": Page((
        C.Customer(id="cus_3", shipping_address=C.Address(line1="1 Old Rd", line2="Unit 2", line3="",
                                                          city="Reno")),
        C.Customer(id="cus_4", shipping_address=C.Address(line1="old")),
        C.Customer(id="cus_5", shipping_address=C.Address(line1="new")))),
    "commenda/unknown_status": Page((C.Customer(id="cus_1", exemption_metadata=C.ExemptionMetadata(
        has_exemption=False, expiration_status="PENDING_RENEWAL",
        exemption_status=C.ExemptionStatus.ACTIVE)),)),
    "commenda/created_bounds": Page(tuple(C.Customer(id="cus_1", created_at=v) for v in (
        D(9999, 12, 31, 23, 59, 59), D(1, 1, 1), D(1969, 12, 31, 23, 59, 59), D(2026, 1, 1)))),
    "every/all_kinds": E(
        s="s\u00e9", i=-42, f=1.5, b=True, d=Decimal("10.10"), t=D(2026, 1, 4, 14, 30),
        ts=D(2026, 1, 1), tms=D(2026, 1, 1, 0, 0, 0, 123000), e=fd.Color.GREEN,
        leaf=fd.Leaf(n=1, s="new"), leaves=(fd.Leaf(n=2, s="old"), fd.Leaf(s="legacy"), None),
        strs=("a", "a", "\u00e9"),
        u=(fd.Tagged(kind="tagged", when=EPOCH), fd.Leaf(n=3), fd.Fallback(kind="other"),
           fd.Fallback(rest={"k": "v"}), None),
        any_={"k": [1, 2.5, "s", None, True, {"n": {}}]}),
    "every/aliases_last_wins": E(i=2, ts=D(1970, 1, 1, 0, 0, 6)),
    "every/empty_object": E(),
    "every/null": None,
    "every/groups_null": E(),
    "every/float_forms": E(f=-0.0),
    "every/float_int_form": E(f=3.0),
    "every/float_tiny": E(f=5e-324),
    "every/enum_unknown": E(e="blue"),
    "every/decimal_number": E(d=Decimal("-1.250E+3")),
    "every-list/empty": (),
    "every-list/nulls": (None, E()),
    "union/both_variants": (fd.Tagged(kind="tagged", when=D(1969, 12, 31, 23, 59, 59)), fd.Leaf(n=7),
                            None),
    "any/document": {"a": [1, -2, 3.25, "x\u00e9\U0001F680", None, True, False, {"b": {}}, []], "": 0},
    "any/negative_zero": 0,
    "any/big_int": -123456789012345678901234567890,
    "any/tiny_float": 0.0,
    "str/nul": "\x00",
    "str/surrounding_whitespace": "s",
    "int/int64_max": 9223372036854775807,
    "int/int64_min": -9223372036854775808,
    "int/minus_zero": 0,
    "int/18_digits": -999999999999999999,
    "int/19_digits": 9999999999999999999,
    "float/minus_zero": -0.0,
    "float/max": 1.7976931348623157e308,
    "bool/false": False,
    "decimal/string": Decimal("0.10"),
    "decimal/number": Decimal("-1.50e-3"),
    "decimal/big_exponent": Decimal("1e999"),
    "datetime/fraction_comma": D(2026, 1, 4, 15, 30, 0, 123000),
    "unix_s/minus_one": D(1969, 12, 31, 23, 59, 59),
    "unix_s/iso": D(1970, 1, 1, 0, 0, 1),
    "unix_ms/max": D(9999, 12, 31, 23, 59, 59, 999000),
    "unix_ms/min": D(1, 1, 1),
    "enum/member": fd.Color.RED,
    "enum/unknown": "RED",
    "list-decimal/mixed": (Decimal("1"), Decimal("-2.50"), Decimal("3"), Decimal("4.0e1"), None),
    "list-unix_ms/mixed": (EPOCH, D(2026, 1, 4), None, EPOCH),
    "list-str/repeats": ("a", "a", "a", "bb"),
}


@pytest.mark.parametrize("path", VALID, ids=case_id)
def test_valid_input_decodes_to_exact_values(path):
    target, body = path.parent.name, path.read_bytes()
    got = decode(target, body)
    want = EXPECTED[case_id(path)]
    assert fd.same(got, want), f"\n got: {got!r}\nwant: {want!r}"
    assert fd.same(check(target, body), want)      # and the two-pass decode agrees


# ---------------------------------------------------------------------------
# Inputs with one right answer that json.loads gives (or a DecodeError)


def reject_or(target, body, want):
    """The body decodes to `want`, or is refused with DecodeError; nothing else."""
    try:
        got = decode(target, body)
    except custlist.DecodeError as e:
        assert 0 <= e.offset <= len(body)
        return
    assert fd.same(got, want), f"\n got: {got!r}\nwant: {want!r}"


HUGE = "9" * 5000                      # past CPython's 4300-digit int/str limit


@pytest.mark.parametrize("target, body, want", [
    ("int", HUGE.encode(), None),
    ("any", b"[-" + HUGE.encode() + b"]", None),
    ("pyng", b'{"data":{"totalItems":' + HUGE.encode() + b"}}", None),
    ("pyng-raw", b'{"data":{"items":[{"n":' + HUGE.encode() + b"}]}}", None),
], ids=["int", "any", "pyng-total", "pyng-raw-item"])
def test_integer_beyond_the_str_digit_limit(target, body, want):
    old = sys.get_int_max_str_digits()
    try:
        sys.set_int_max_str_digits(0)
        value = int(HUGE)
    finally:
        sys.set_int_max_str_digits(old)
    want = {"int": value, "any": [-value], "pyng": Page((), total=value),
            "pyng-raw": Page(({"n": value},))}[target]
    reject_or(target, body, want)


@pytest.mark.parametrize("text", ["1e99999999999999999999", "-1E-99999999999999999999",
                                  "1e9999999999999999999"])
def test_decimal_exponent_beyond_decimal_limits(text):
    # No Decimal holds these (Decimal(text) itself raises InvalidOperation):
    # the one right answer is a DecodeError at the value.
    with pytest.raises(custlist.DecodeError) as info:
        decode("decimal", text.encode())
    assert info.value.offset == 0
    with pytest.raises(custlist.DecodeError) as info:
        decode("list-decimal", b'[1, ' + text.encode() + b']')
    assert info.value.offset == 4


def test_decimal_exponent_in_a_natural_page():
    body = b'{"data":[{"type":"party","attributes":{"wallet_available_dollars":1e99999999999999999999}}]}'
    for deferred in (False, True):
        with pytest.raises(custlist.DecodeError) as info:
            fd.BY_NAME["natural"].decode_deferred(body, 64) if deferred else decode("natural", body)
        assert info.value.offset == body.index(b"1e999")


def test_escaped_discriminator_key_picks_the_variant():
    # json.loads reads the key as "type": the item is a Party, not an unknown resource.
    body = b'{"data":[{"typ\\u0065":"party","id":"pty_1","attributes":{"status":"ACTIVE"}}]}'
    assert json.loads(body)["data"][0]["type"] == "party"
    want = Page((_party(id="pty_1", status=N.Status.ACTIVE),))
    got = natural.CUSTOMERS.decode(body)
    assert fd.same(got, want), got


@pytest.mark.parametrize("body, want", [
    # the discriminator twice: json.loads keeps the last
    (b'{"data":[{"type":"party","type":"grp","id":"x"}]}',
     Page((N.UnknownResource(type="grp", id="x"),))),
    (b'{"data":[{"type":"grp","type":"party","id":"x"}]}', Page((_party(id="x"),))),
    # a nested object twice: json.loads keeps the last one whole
    (b'{"data":[{"type":"party","attributes":{"status":"ACTIVE"},"attributes":{"email":"e"}}]}',
     Page((_party(email="e"),))),
    (b'{"data":[{"type":"party","attributes":{"status":"ACTIVE"},"attributes":null}]}',
     Page((_party(),))),
], ids=["tag-first-wins", "tag-last-wins", "group-twice", "group-then-null"])
def test_duplicate_keys_agree_with_json_loads(body, want):
    reject_or("natural", body, want)


def test_fraction_of_a_minute_is_not_read_as_seconds():
    # ISO 8601: "15:30.25" is 15:30 and a quarter of a minute.
    reject_or("datetime", b'"2026-01-04T15:30.25Z"', D(2026, 1, 4, 15, 30, 15))


@pytest.mark.parametrize("endpoint", [pyng.CUSTOMERS, natural.CUSTOMERS, commenda.CUSTOMERS])
def test_two_pass_decode_of_null_items_gives_an_empty_tuple(endpoint):
    # The Pager (prefetch on) decodes the items apart; null items must read as ().
    path = {pyng.CUSTOMERS: b'{"data":{"items":null}}', natural.CUSTOMERS: b'{"data":null}',
            commenda.CUSTOMERS: b'{"customers":null}'}[endpoint]
    for raw in (False, True):
        page, item = endpoint.schemas(raw, deferred=True)
        items, slots = _core.decode_page(page, item, path, 64)
        assert items == () and slots[0] == ()


def test_huge_max_depth_does_not_overflow_the_stack():
    # A caller may raise max_depth; nesting from the wire must still not crash.
    code = ("import custlist\nfrom custlist import pyng\n"
            "try:\n pyng.CUSTOMERS.decode(b'{\"x\":' + b'[' * 2_000_000, max_depth=10**9)\n"
            "except (custlist.DecodeError, ValueError):\n pass\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_max_depth_has_an_upper_bound():
    body = b'{"data":{"items":[]}}'
    for bad in (1, 1001, 10**9):
        with pytest.raises(ValueError, match="max_depth"):
            pyng.CUSTOMERS.decode(body, max_depth=bad)
        with pytest.raises(ValueError, match="max_depth"):
            _core.Schema(("any",)).decode(b"[]", max_depth=bad)
        with pytest.raises(ValueError, match="max_depth"):
            custlist.Pyng(token="t", base_url="http://127.0.0.1:1/pyng", max_depth=bad)
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(5000)           # room for 999 levels on top of pytest's frames
    try:
        v, depth = _core.Schema(("any",)).decode(b"[" * 999 + b"]" * 999, max_depth=1000), 1
    finally:
        sys.setrecursionlimit(old)
    while v:
        (v,), depth = v, depth + 1
    assert v == [] and depth == 999


def test_deep_json_inside_deep_python_recursion_is_a_decode_error():
    # The decode counts against the interpreter's recursion limit, so a caller
    # already deep in recursion gets a DecodeError, not a C stack overflow.
    code = ("import sys, custlist\nfrom custlist import _core\n"
            "sys.setrecursionlimit(1100)\n"
            "body = b'[' * 999 + b']' * 999\n"
            "def dive(n):\n"
            " if n == 0:\n"
            "  try:\n   _core.Schema(('any',)).decode(body, max_depth=1000)\n"
            "  except custlist.DecodeError as e:\n   return e.offset\n"
            "  return 'decoded'\n"
            " return dive(n - 1)\n"
            "print(dive(900))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    if sys.version_info >= (3, 12) and proc.stdout.strip() == b"decoded":
        # From 3.12 on, Python calls use no C stack and Py_EnterRecursiveCall
        # counts C levels against a limit of its own: 999 levels fit, and the
        # process survived (returncode 0), which is what this test guards.
        return
    offset = int(proc.stdout)
    assert 0 < offset < 999


def test_to_dict_of_a_self_containing_value_raises_recursion_error():
    code = ("import sys\nsys.path.insert(0, %r)\nimport decode_targets as fd\n"
            "loop = []\nloop.append(loop)\n"
            "try:\n fd.Every(any_=loop, leaves=(fd.Leaf(n=1),)).to_dict()\n"
            "except RecursionError:\n print('RecursionError')\n" % str(ROOT))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == b"RecursionError"
    # and an ordinary nested value still converts
    rec = fd.Every(any_=[[1, [2]]], leaves=(fd.Leaf(n=1),))
    assert rec.to_dict()["any_"] == [[1, [2]]] and rec.to_dict()["leaves"] == [{"n": 1, "s": None}]


@pytest.mark.parametrize("target, body, at", [
    ("pyng-raw", b'{"data":{"items":[{"n":1},{"n":-' + HUGE.encode() + b'}]}}', b"-9999"),
    ("pyng", b'{"data":{"items":[{"invitedAt":"2026-13-01"}]},"traceId":"t"}', b'"2026-13'),
    ("natural", b'{"data":[{"type":"party","id":"p","attributes":{"wallet_available_dollars":'
                b'"1.0"}},{"type":"party","id":"p","attributes":{"wallet_available_dollars":'
                b'1E-99999999999999999999}}]}',
     b"1E-"),
    ("natural", b'{"data":[{"type":"party","attributes":{"created_at":"2026-01-04T15:30:00+1"}}]}',
     b'"2026-01-04'),
], ids=["int-digits", "timestamp", "decimal-exponent", "offset"])
def test_decode_errors_point_at_the_value_in_both_passes(target, body, at):
    want = body.index(at)
    for deferred in (False, True):
        with pytest.raises(custlist.DecodeError) as info:
            fd.BY_NAME[target].decode_deferred(body, 64) if deferred else decode(target, body)
        assert type(info.value) is custlist.DecodeError
        assert info.value.offset == want, (deferred, str(info.value))


# ---------------------------------------------------------------------------
# Big bodies, made here rather than committed


def test_huge_strings():
    for text in ("x" * (8 << 20), "\u00e9\U0001F680a" * (1 << 20)):
        body = json.dumps({"data": {"items": [{"customerReference": text, "state": "linked",
                                               "invitedAt": 0}]}}, ensure_ascii=False).encode()
        (item,) = pyng.CUSTOMERS.decode(body).items
        assert item.customer_reference == text and item.state is LINKED
    escaped = json.dumps({"traceId": "\u00e9\n" * (1 << 20)}).encode()
    assert pyng.CUSTOMERS.decode(escaped).trace_id == "\u00e9\n" * (1 << 20)
    bad = b'{"traceId":"' + b"a" * (4 << 20) + b'\xff"}'
    with pytest.raises(custlist.DecodeError) as info:
        pyng.CUSTOMERS.decode(bad)
    assert info.value.offset == len(bad) - 3
    cut = b'{"traceId":"' + b"a" * (4 << 20)
    with pytest.raises(custlist.DecodeError) as info:
        pyng.CUSTOMERS.decode(cut)
    assert info.value.offset == len(cut)


def test_many_items_and_deep_closed_nesting():
    items = [{"customerReference": str(i), "state": "invited", "invitedAt": i} for i in range(100_000)]
    page = pyng.CUSTOMERS.decode(json.dumps({"data": {"items": items}}).encode())
    assert len(page.items) == 100_000 and page.items[-1].customer_reference == "99999"
    assert page.items[12345].invited_at == EPOCH + dt.timedelta(milliseconds=12345)
    deep = b'{"x":' + b"[" * 100_000 + b"]" * 100_000 + b',"data":{}}'
    with pytest.raises(custlist.DecodeError) as info:
        pyng.CUSTOMERS.decode(deep)
    assert info.value.offset == 5 + 63
    raw = pyng.CUSTOMERS.decode(b'{"data":{"items":[' + b"[" * 61 + b"]" * 61 + b"]}}", raw=True)
    assert raw.items == (_nested(61),)


# ---------------------------------------------------------------------------
# Properties: random pages from json.dumps decode to what json.loads gives

POOLS = ["abcXYZ", "0123456789", " -_:./@", "\"\\/\b\f\n\r\t\x00\x1f\x7f", "\u00e9\u00ff\u0100",
         "\u4e2d\u6587\u2028\u2029\ufeff\uffff\ue000", "\U0001F680\U00010000\U0010FFFF\U0001D11E"]


def rtext(rng, n=12):
    return "".join(rng.choice(rng.choice(POOLS)) for _ in range(rng.randrange(n)))


def rjson(rng, depth=0):
    r = rng.randrange(10 if depth < 3 else 6)
    if r == 0:
        return None
    if r == 1:
        return rng.random() < 0.5
    if r == 2:
        return rng.randrange(-10 ** rng.randrange(1, 30), 10 ** rng.randrange(1, 30))
    if r == 3:
        return rng.choice([rng.uniform(-1e6, 1e6), -0.0, 1e300, 5e-324, rng.random()])
    if r in (4, 5):
        return rtext(rng)
    if r in (6, 7):
        return [rjson(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rtext(rng, 6): rjson(rng, depth + 1) for _ in range(rng.randrange(4))}


def maybe(rng, value, p=0.8):
    return value if rng.random() < p else None


def rdatetime(rng):
    """(ISO text in one of the accepted spellings, the UTC datetime it means)."""
    t = D(1, 1, 2) + dt.timedelta(microseconds=rng.randrange(315_537_000_000 * 10 ** 6))
    off = rng.choice([None, 0, rng.randrange(-23 * 60 - 59, 23 * 60 + 60)])
    local = t + dt.timedelta(minutes=off or 0)
    frac = rng.choice(["", f".{local.microsecond:06d}", f".{local.microsecond // 1000:03d}"])
    if frac == f".{local.microsecond // 1000:03d}":
        t -= dt.timedelta(microseconds=local.microsecond % 1000)
    elif frac == "":
        t -= dt.timedelta(microseconds=local.microsecond)
    zone = "Z" if off is None else (
        f"{'+' if off >= 0 else '-'}{abs(off) // 60:02d}{rng.choice([':', ''])}{abs(off) % 60:02d}")
    text = (f"{local.year:04d}-{local.month:02d}-{local.day:02d}{rng.choice('Tt ')}"
            f"{local.hour:02d}:{local.minute:02d}:{local.second:02d}{frac}{zone}")
    return text, t


def extra_keys(rng, doc):
    for _ in range(rng.randrange(3)):
        doc[rtext(rng, 8) or "k"] = rjson(rng)
    return doc


def shuffled(rng, doc):
    items = list(doc.items())
    rng.shuffle(items)
    return dict(items)


def gen_pyng(rng):
    items, want = [], []
    for _ in range(rng.randrange(12)):
        # the reference, state and invitation time are required: never absent
        ref, state = rtext(rng), rng.choice(["invited", "linked", rtext(rng)])
        ms = [maybe(rng, rng.randrange(-62135596800000, 253402300799999 + 1)) for _ in range(3)]
        ms[0] = rng.randrange(-62135596800000, 253402300799999 + 1)
        doc = extra_keys(rng, {"customerReference": ref, "state": state, "invitedAt": ms[0],
                               "expiresAt": ms[1], "linkedAt": ms[2]})
        items.append(shuffled(rng, doc))
        at = [None if v is None else EPOCH + dt.timedelta(milliseconds=v) for v in ms]
        want.append(pyng.Customer(customer_reference=ref,
                                  state=pyng.LinkState(state) if state in ("invited", "linked") else state,
                                  invited_at=at[0], expires_at=at[1], linked_at=at[2]))
    total, nxt, trace = rng.randrange(1 << 62), maybe(rng, rtext(rng)), rtext(rng)
    doc = {"data": shuffled(rng, {"items": items, "totalItems": total, "nextHref": nxt}), "traceId": trace}
    return extra_keys(rng, doc), Page(tuple(want), total=total, next_href=nxt, trace_id=trace), items


def gen_natural(rng):
    items, want = [], []
    for _ in range(rng.randrange(8)):
        kind = rng.choice(["party", "delegation_invitation", "customer_group", None])
        when, when_dt = rdatetime(rng)
        cents = rng.randrange(-10 ** 12, 10 ** 12)
        dollars = f"{'-' if cents < 0 else ''}{abs(cents) // 100}.{abs(cents) % 100:02d}"
        perms = [rtext(rng) for _ in range(rng.randrange(4))]
        status = rng.choice(["ACTIVE", "REVOKED", rtext(rng)])
        attrs = shuffled(rng, extra_keys(rng, {
            "status": status, "permissions": perms, "created_at": when,
            "wallet_available_minor": cents, "wallet_available_dollars": dollars,
            "email": maybe(rng, rtext(rng))}))
        doc = {"id": rtext(rng), "attributes": attrs}
        if kind is not None:
            doc["type"] = kind
        doc = shuffled(rng, doc)
        items.append(doc)
        if kind in ("party", "delegation_invitation"):
            cls = natural.Party if kind == "party" else natural.DelegationInvitation
            want.append(cls(type=kind, id=doc["id"], email=attrs["email"],
                            status=natural.Status(status) if status in ("ACTIVE", "REVOKED") else status,
                            permissions=tuple(perms), created_at=when_dt,
                            wallet_available_minor=cents, wallet_available_dollars=Decimal(dollars)))
        else:
            want.append(natural.UnknownResource(type=kind, id=doc["id"], attributes=json.loads(
                json.dumps(attrs))))
    more, cursor = rng.random() < 0.5, maybe(rng, rtext(rng))
    camel = rng.random() < 0.5
    pagination = {"hasMore" if camel else "has_more": more, "nextCursor" if camel else "next_cursor": cursor}
    return ({"data": items, "meta": {"pagination": pagination}},
            Page(tuple(want), cursor=cursor, has_more=more), items)


def gen_commenda(rng):
    items, want = [], []
    for _ in range(rng.randrange(8)):
        secs = rng.randrange(-62135596800, 253402300799 + 1)
        old = rng.random() < 0.5
        line1, city = rtext(rng), maybe(rng, rtext(rng))
        addr = {"address_line_1" if old else "line1": line1, "city": city}
        doc = shuffled(rng, extra_keys(rng, {"id": rtext(rng), "created_at": secs,
                                             "shipping_address": addr}))
        items.append(doc)
        want.append(commenda.Customer(id=doc["id"], created_at=EPOCH + dt.timedelta(seconds=secs),
                                      shipping_address=commenda.Address(line1=line1, city=city)))
    total, cursor = rng.randrange(1000), maybe(rng, rtext(rng))
    body = {"customers": items, "total_customers": total, "cursor": cursor}
    if rng.random() < 0.5:
        body = {"data": body, "message": "ok"}
    return body, Page(tuple(want), total=total, cursor=cursor), items


GENERATORS = {"pyng": gen_pyng, "natural": gen_natural, "commenda": gen_commenda}


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_random_pages_match_json_loads(name):
    rng = random.Random(f"pages-{name}")
    endpoint = fd.BY_NAME[name].endpoint
    for i in range(120):
        doc, want, wire_items = GENERATORS[name](rng)
        indent = rng.choice([None, None, 1, "\t"])
        body = json.dumps(doc, ensure_ascii=bool(i % 2), indent=indent).encode()
        page = endpoint.decode(body)
        assert fd.same(page, want), f"\n got: {page!r}\nwant: {want!r}"
        raw = endpoint.decode(body, raw=True)
        wire = json.loads(body)
        wire = {"pyng": lambda: wire["data"]["items"], "natural": lambda: wire["data"],
                "commenda": lambda: (wire["data"] if "data" in wire else wire)["customers"]}[name]()
        assert fd.same(raw.items, tuple(wire))
        for target in (name, name + "-raw"):
            check(target, body)                            # the reference and the two-pass decode


def test_every_prefix_of_a_page_is_refused():
    rng = random.Random("prefixes")
    for name, gen in sorted(GENERATORS.items()):
        doc, _, _ = gen(rng)
        body = json.dumps(doc, ensure_ascii=False).encode()
        endpoint = fd.BY_NAME[name].endpoint
        for cut in range(len(body)):
            with pytest.raises(custlist.DecodeError) as info:
                endpoint.decode(body[:cut])
            assert 0 <= info.value.offset <= cut


def test_random_mutations_keep_the_contract():
    rng = random.Random("mutations")
    seeds = [(t, p.read_bytes()) for p in VALID for t in [p.parent.name] if len(p.read_bytes()) < 4096]
    tokens = [b'"', b"\\", b"{", b"}", b"[", b"]", b",", b":", b"null", b"-0", b"1e999", b"\\u00e9",
              b"\xff", b"\xed\xa0\x80", b"\xf0\x9f\x9a\x80", b'"2026-02-30"', b"9" * 25]
    for _ in range(3000):
        target, body = rng.choice(seeds)
        body = bytearray(body)
        for _ in range(rng.randrange(1, 4)):
            op, at = rng.randrange(4), rng.randrange(len(body) + 1)
            if op == 0 and body:
                body[min(at, len(body) - 1)] = rng.randrange(256)
            elif op == 1:
                body[at:at] = rng.choice(tokens)
            elif op == 2:
                del body[at:at + rng.randrange(1, 8)]
            else:
                body[at:at] = body[rng.randrange(len(body) + 1):][:rng.randrange(1, 16)]
        check(target, bytes(body))
