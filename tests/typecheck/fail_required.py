"""A required field is typed without None; an optional one keeps it, and
the constructor's keywords follow the annotations."""
import datetime as dt
from typing import Annotated

from custlist import Field, Record, UnixSeconds


class Account(Record):
    id: str
    name: str | None = None
    created: Annotated[dt.datetime, UnixSeconds] = Field(wire="created_at")


def names(accounts: list[Account]) -> list[str]:
    return [a.name for a in accounts]  # error: misc


def ids(accounts: list[Account]) -> list[str]:
    return [a.id for a in accounts]


now = dt.datetime.now(dt.timezone.utc)
Account(id="a", created=now)
Account(name="x", created=now)  # error: call-arg
Account(id=None, created=now)  # error: arg-type
Account(id="a", created=now, nme="x")  # error: call-arg
