"""The decoder's fuzz contract, shared by the fuzzer and the corpus tests.

An input is one selector byte followed by a body.  The selector picks what
decodes the body: one of the four endpoints (typed or raw), or a schema that
covers every field kind.  For ANY input the decode either succeeds or raises
custlist.DecodeError -- never a crash, never another exception -- and when it
succeeds on a body that json.loads also accepts, the records agree with it.
"""
import datetime as dt
import json
from decimal import Decimal

import custlist
from custlist import Field, OneOf, Record, StrEnum, UnixMillis, UnixSeconds, commenda, natural, pyng
from custlist._core import Schema

ENDPOINTS = [
    (pyng.CUSTOMERS, ("data", "items")),
    (natural.CUSTOMERS, ("data",)),
    (natural.INVITATIONS, ("data",)),
    (commenda.CUSTOMERS, ("customers",)),
]


class Kind(StrEnum):
    A = "a"
    B = "b"


class Leaf(Record):
    n = Field(int)
    s = Field(str, aliases=["old_s"])


class Other(Record):
    kind = Field(str)
    rest = Field(dict)


class Every(Record):
    s = Field(str)
    i = Field(int)
    f = Field(float)
    b = Field(bool)
    d = Field(Decimal)
    t = Field(dt.datetime)
    ts = Field(UnixSeconds)
    tms = Field(UnixMillis)
    e = Field(Kind)
    leaf = Field(Leaf, "x.y.leaf")
    leaves = Field(tuple[Leaf, ...])
    strs = Field(list[str])
    u = Field(tuple[OneOf("kind", {"leaf": Leaf}, fallback=Other), ...])
    anything = Field(dict)


SCHEMAS = [Schema(Every.__schema_spec__()), Schema(("list", Every.__schema_spec__())),
           Schema(("any",)), Schema(("list", ("decimal",))), Schema(("list", ("unix_ms",)))]


def expected_items(doc, path):
    """The items list json.loads sees at `path`, or None if there is none."""
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    return doc


def run(data: bytes):
    """Decode one fuzz input under the contract; returns the result."""
    if not data:
        return None
    sel, body = data[0], data[1:]
    try:
        if sel < 128:
            endpoint, path = ENDPOINTS[sel % len(ENDPOINTS)]
            raw = bool(sel & 4)
            page = endpoint.decode(body, raw=raw, max_depth=32)
            check_against_json(page, body, path, raw)
            return page
        return SCHEMAS[(sel - 128) % len(SCHEMAS)].decode(body, max_depth=32)
    except custlist.DecodeError as e:
        assert isinstance(e.offset, int) and 0 <= e.offset <= len(body), (e.offset, len(body))
        return e


def check_against_json(page, body, path, raw):
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return                     # the decoder may accept less than json.loads, never more
    items = expected_items(doc, path)
    if path == ("customers",) and items is None:
        items = expected_items(doc, ("data", "customers"))
    if isinstance(items, list):
        assert len(page.items) == len(items), (len(page.items), len(items))
        if raw:
            assert list(page.items) == items
