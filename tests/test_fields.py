"""Records described the way dataclass and msgspec users write them: fields
as annotations (``id: str`` required, ``T | None`` optional), ``Field(...)``
as the default for a wire key or an option, converters in ``Annotated``;
every mistake refused when the class is made, with the spelling that works;
required fields enforced by both sinks; decode errors that name the record,
the field, its wire path and the item."""
from __future__ import annotations

import datetime as dt
import inspect
from decimal import Decimal
from typing import Annotated, Any, ClassVar

import pytest

import custlist
from custlist import CursorPaging, Endpoint, Field, OneOf, Record, UnixSeconds, errors

from .conftest import FAST

QUERY = {"corporation_id": "corp_123", "limit": 50}
UTC = dt.timezone.utc


def commenda(sb, **kw):
    return custlist.Commenda(sb.commenda_token, base_url=sb.commenda_url, **FAST, **kw)


def rows(sb):
    return sb.data.commenda["corp_123"]


def endpoint(item):
    return Endpoint("/customers", item, CursorPaging(items="customers", cursor="cursor",
                                                     total="total_customers"),
                    name="mine.customers")


class Address(Record):
    city: str | None = None
    line1: str | None = Field(aliases=["address_line_1"])


class Account(Record):
    """Annotation style, as a dataclass user writes it."""

    id: str
    name: str | None = None
    created: Annotated[dt.datetime, UnixSeconds] = Field(wire="created_at")
    city: str | None = Field(wire="shipping_address.city", doc="where it ships")
    kind: ClassVar[str] = "account"


class Shipped(Record):
    id: str
    shipping_address: Address | None = None


def test_annotated_fields_decode(sb):
    got = list(commenda(sb).paginate(endpoint(Account), "/customers",
                                     {**QUERY, "extend": "shipping_address"}))
    shipped = list(commenda(sb).paginate(endpoint(Shipped), "/customers",
                                         {**QUERY, "extend": "shipping_address"}))
    want = rows(sb)
    assert [a.id for a in got] == [r["id"] for r in want]
    assert [a.name for a in got] == [r["name"] for r in want]
    assert got[0].created == dt.datetime.fromtimestamp(want[0]["created_at"], UTC)
    for a, s, r in zip(got, shipped, want):
        addr = r["shipping_address"]
        assert a.city == (addr or {}).get("city")
        assert (s.shipping_address is None) == (addr is None)
        if addr is not None:
            assert s.shipping_address.line1 == addr.get("line1", addr.get("address_line_1"))
    assert Account.__fields__ == ("id", "name", "created", "city")
    assert Account.__required__ == (0, 2) and Account.kind == "account"
    assert "where it ships" in Account.city.__doc__
    sig = inspect.signature(Account)
    assert str(sig.parameters["id"].annotation) == "<class 'str'>"
    assert sig.parameters["name"].annotation == str | None


def test_plain_annotations_with_string_evaluation_in_a_function(sb):
    class Inner(Record):
        id: str

    class Outer(Record):                       # annotations are strings here
        id: str
        party: Inner | None = Field(wire="shipping_address")

    page = endpoint(Outer).decode(b'{"customers":[{"id":"a","shipping_address":{"id":"b"}}]}')
    assert page.items == (Outer("a", Inner("b")),)


@pytest.mark.parametrize("body, expected", [
    ("    name: str = 'x'", "Bad.name = 'x': a record field has no default value; write "
                             "'name: str | None = None' for a field that may be absent, or "
                             "'name: str = Field(wire=...)' for a wire key or an option"),
    ("    name: str = None", "Bad.name: a field whose default is None may be absent: annotate "
                            "it 'name: str | None = None'"),
    ("    tags: list[str]", "Bad.tags: a JSON array decodes as a tuple: annotate "
                           "'tags: tuple[str, ...]'"),
    ("    tags: set[str] | None", "Bad.tags: set[str] is not a field type"),
    ("    created: int = Field(UnixSeconds)", "Bad.created: annotated int, but "
                                              "Field(UnixSeconds) reads as datetime: annotate "
                                              "'created: datetime'"),
    ("    created: str | None = Field(str, required=True)", "Bad.created: required=True, but "
                                                            "annotated as maybe None"),
    ("    x: int | str", "Bad.x: int | str names several types"),
    ("    x: frozenset", "Bad.x: frozenset is not a field type"),
    ("    x = Field()", "Bad.x: Field() needs a type here: Field(str), or annotate"),
    ("    a: dict | None = None\n    b: str | None = Field(wire='a.b')",
     "Bad.b: wire key 'a.b' lies inside 'a', which Bad.a holds whole"),
    ("    a: str | None = None\n    b: str | None = Field(wire='a')",
     "Bad.b: wire key 'a' is already Bad.a's"),
])
def test_mistakes_are_refused_when_the_class_is_made(body, expected):
    src = f"class Bad(Record):\n{body}\n"
    with pytest.raises(TypeError) as info:
        exec(src, {"Record": Record, "Field": Field, "UnixSeconds": UnixSeconds})
    assert str(info.value).startswith(expected)


@pytest.mark.parametrize("make, exc, expected", [
    (lambda: Field("str"), TypeError, "Field: the field type is the string 'str': give the "
                                      "type itself, Field(str), not Field('str')"),
    (lambda: Field(set[str]), TypeError, "Field: set[str] is not a field type"),
    (lambda: Field(str | None), TypeError, "Field: give the type without None, Field(str)"),
    (lambda: Field(tuple[str, int]), TypeError, "Field: tuple[str, int] is a fixed-length"),
    (lambda: Field(bytes), TypeError, "Field: unsupported field type bytes"),
    (lambda: Field(str, ""), ValueError, "wire must be a key, or keys joined by dots, not ''"),
    (lambda: Field(str, "a..b"), ValueError, "wire must be a key"),
    (lambda: Field(str, 5), TypeError, "wire must be a str"),
    (lambda: Field(str, aliases="old"), TypeError, "aliases must be a list of keys, not the "
                                                   "str 'old': aliases=['old']"),
    (lambda: Field(str, doc=3), TypeError, "doc must be a str"),
    (lambda: Field(str, required="yes"), TypeError, "required must be True or False"),
    (lambda: Field(int, scale=2), TypeError, "scale= applies to Decimal fields"),
    (lambda: Field(OneOf("t", {"a": int})), TypeError, "Field: OneOf variants must be Record"),
])
def test_every_field_argument_is_checked_at_once(make, exc, expected):
    with pytest.raises(exc) as info:
        make()
    assert str(info.value).startswith(expected)


class Strict(Record):
    id = Field(str, required=True)
    created = Field(UnixSeconds, "created_at")


class StrictAnnotated(Record):
    id: str
    created: Annotated[dt.datetime, UnixSeconds] | None = Field(wire="created_at")


def bad_second_page(sb, item):
    body = {"customers": [{"id": r["id"], "created_at": r["created_at"]}
                          for r in rows(sb)[50:100]], "total_customers": 161, "cursor": "x"}
    body["customers"][3] = item
    sb.inject("commenda.customers", skip=1, body=body)


@pytest.mark.parametrize("cls", [Strict, StrictAnnotated])
@pytest.mark.parametrize("item, what", [({"created_at": 1}, "missing"),
                                        ({"id": None, "created_at": 1}, "null")])
def test_required_field_absent_or_null_is_a_decode_error(sb, cls, item, what):
    c = commenda(sb)
    bad_second_page(sb, item)
    pager = c.paginate(endpoint(cls), "/customers", QUERY)
    got = []
    with pytest.raises(errors.DecodeError) as info:
        for r in pager:
            got.append(r)
    e = info.value
    assert type(e) is errors.DecodeError
    assert str(e).startswith(f"a required field is {what}: {cls.__name__}.id (wire key 'id'), "
                             "item 3 of the page (at byte ")
    assert (e.record, e.field, e.path, e.index) == (cls.__name__, "id", "id", 3)
    assert [r.id for r in got] == [r["id"] for r in rows(sb)[:50]]
    # nothing lost, nothing repeated: the bad page is asked again on resume
    sb.clear_faults()
    rest = list(c.paginate(endpoint(cls), "/customers", QUERY, start=pager.checkpoint()))
    assert [r.id for r in got + rest] == [r["id"] for r in rows(sb)]


@pytest.mark.parametrize("item, what", [({"created_at": 1}, "missing"),
                                        ({"id": None, "created_at": 1}, "null")])
def test_arrow_output_enforces_required_fields(sb, item, what):
    bad_second_page(sb, item)
    with pytest.raises(errors.DecodeError) as info:
        commenda(sb).paginate(endpoint(StrictAnnotated), "/customers", QUERY).to_arrow()
    # named as the record path names it (test above)
    assert str(info.value).startswith(f"a required field is {what}: StrictAnnotated.id "
                                      "(wire key 'id'), item 3 of the page (at byte ")
    assert info.value.index == 3
    table = commenda(sb).paginate(endpoint(StrictAnnotated), "/customers", QUERY).to_arrow()
    assert table.column("id").to_pylist() == [r["id"] for r in rows(sb)]


class WrongTime(Record):
    id: str
    created = Field(dt.datetime, "created_at")         # the page sends unix seconds


def test_decode_error_names_record_field_wire_path_and_item(sb):
    pager = commenda(sb).paginate(endpoint(WrongTime), "/customers", QUERY)
    with pytest.raises(errors.DecodeError) as info:
        list(pager)
    e = info.value
    assert str(e) == (f"expected an ISO-8601 timestamp string: WrongTime.created (wire key "
                      f"'created_at'), item 0 of the page (at byte {e.offset})")
    assert (e.record, e.field, e.path, e.index) == ("WrongTime", "created", "created_at", 0)
    with pytest.raises(errors.DecodeError) as info:
        commenda(sb).paginate(endpoint(WrongTime), "/customers", QUERY).to_arrow()
    assert str(info.value).startswith("expected an ISO-8601 timestamp string: WrongTime.created "
                                      "(wire key 'created_at'), item 0 of the page (at byte ")


class Agent(Record):
    id: str
    name: str | None = None


class Invitation(Record):
    id: str
    agents: tuple[Agent, ...] | None = Field(wire="attributes.agentInvitations")


def test_decode_error_in_a_nested_list_names_the_element():
    ep = Endpoint("/x", Invitation, CursorPaging(items="data", cursor="next"))
    body = (b'{"data":[{"id":"a"},{"id":"b","attributes":{"agentInvitations":'
            b'[{"id":"x"},{"id":"y","name":5}]}}]}')
    with pytest.raises(errors.DecodeError) as info:
        ep.decode(body)
    e = info.value
    assert str(e) == ("expected a string: Invitation.agents[1].name (wire key "
                      f"'attributes.agentInvitations[1].name'), item 1 of the page "
                      f"(at byte {body.index(b'5}')})")
    assert e.index == 1 and e.field == "agents[1].name"


def test_decode_error_outside_a_record_says_what_it_said():
    with pytest.raises(errors.DecodeError) as info:
        endpoint(Strict).decode(b'{"customers":[{"id":"a"},]}')
    assert str(info.value) == "trailing comma in array (at byte 25)"
    assert info.value.field is None and info.value.index is None


def test_required_fields_pickle_and_compare():
    import pickle
    a = StrictAnnotated("x", None)
    assert pickle.loads(pickle.dumps(a)) == a
    assert StrictAnnotated.__required__ == (0,) and Strict.__required__ == (0,)
    assert "Always present" in StrictAnnotated.id.__doc__


def test_field_types_any_and_dict_annotations():
    class Loose(Record):
        id: str
        extra: dict[str, Any] | None = None
        blob: Any = None

    page = Endpoint("/x", Loose, CursorPaging(items="d", cursor="c")).decode(
        b'{"d":[{"id":"a","extra":{"k":[1]},"blob":[true]}]}')
    assert page.items == (Loose("a", {"k": [1]}, [True]),)
    assert Loose.__required__ == (0,)


def test_decimal_scale_in_annotation_style():
    class Money(Record):
        amount: Decimal | None = Field(scale=2)

    assert Money.__schema_spec__()[3] == ((("amount",), 0, ("decimal", 38, 2)),)


@pytest.mark.parametrize("vendor, route, body, expected", [
    ("pyng", "pyng.customers",
     {"data": {"items": [{"customerReference": "A", "state": "linked"}], "totalItems": 1}},
     "a required field is missing: Customer.invited_at (wire key 'invitedAt'), item 0 of the page"),
    ("natural", "natural.customers",
     {"data": [{"type": "party", "attributes": {"status": "ACTIVE"}}],
      "meta": {"pagination": {"has_more": False}}},
     "a required field is missing: Party.id (wire key 'id'), item 0 of the page"),
    ("commenda", "commenda.customers",
     {"customers": [{"id": None, "name": "x"}], "total_customers": 1, "cursor": None},
     "a required field is null: Customer.id (wire key 'id'), item 0 of the page"),
])
def test_bundled_vendors_require_the_fields_their_pages_always_carry(
        sb, pyng, natural, vendor, route, body, expected):
    client = {"pyng": lambda: pyng.customers("site_1"), "natural": natural.customers,
              "commenda": lambda: commenda(sb).customers("corp_123")}[vendor]
    # the sandbox always sends them
    assert all(r is not None for r in list(client()))
    sb.inject(route, body=body)
    with pytest.raises(errors.DecodeError) as info:
        list(client())
    assert str(info.value).startswith(expected)
    types = {"pyng": custlist.pyng.Customer, "natural": custlist.natural.Party,
             "commenda": custlist.commenda.Customer}
    assert types[vendor].__required__


def test_decode_error_pickles_with_its_location():
    import pickle

    class Local(Record):                  # a class pickle cannot name: its name travels
        id: str

    with pytest.raises(errors.DecodeError) as info:
        Endpoint("/x", Local, CursorPaging(items="d", cursor="c")).decode(b'{"d":[{"id":5}]}')
    back = pickle.loads(pickle.dumps(info.value))
    assert str(back) == str(info.value) == ("expected a string: Local.id (wire key 'id'), "
                                            "item 0 of the page (at byte 12)")
    assert (back.record, back.field, back.path, back.index, back.offset) == \
        ("Local", "id", "id", 0, 12)
