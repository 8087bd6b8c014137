"""Annotated fields in a module without ``from __future__ import
annotations``: on CPython 3.14+ such a class body keeps its annotations in
an annotate function, not in ``__annotations__`` (the full suite runs this on
3.15, the other test files of fields use the future import)."""
import datetime as dt
from typing import Annotated

from custlist import CursorPaging, Endpoint, Field, Record, UnixSeconds


class Plain(Record):
    id: str
    name: str | None = None
    plan: str | None = Field(doc="the customer's plan")
    created: Annotated[dt.datetime, UnixSeconds] | None = None
    kind: "str | None" = None               # a string annotation among the others


def test_annotated_fields_without_the_future_import():
    assert Plain.__fields__ == ("id", "name", "plan", "created", "kind")
    endpoint = Endpoint("/plain", Plain, CursorPaging(items="data", cursor="next"))
    page = endpoint.decode(b'{"data": [{"id": "a", "plan": "pro", "created": 0},'
                           b' {"id": "b", "name": "B", "kind": "k"}]}')
    assert [r.to_dict() for r in page.items] == [
        {"id": "a", "name": None, "plan": "pro",
         "created": dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc), "kind": None},
        {"id": "b", "name": "B", "plan": None, "created": None, "kind": "k"}]
