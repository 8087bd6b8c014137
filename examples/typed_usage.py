"""custlist with a type checker: every endpoint, and records of your own.

Runs against the bundled sandbox (loopback only, no token needed):

    python examples/typed_usage.py
    make typecheck        # mypy --strict over this file; the revealed types are checked

A line ``reveal_type(x)  # revealed: T`` states the type mypy infers for x
(tests/typecheck/check.py compares them); at run time reveal_type does nothing.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import custlist
from custlist import CursorPaging, Endpoint, Field, Pager, Record, UnixSeconds
from custlist.testing import Sandbox

if not TYPE_CHECKING:
    def reveal_type(value):
        return value


# A record of your own: each attribute is typed from its Field.
class Account(Record):
    """Commenda's customers, described by hand."""

    id = Field(str)
    name = Field(str)
    created = Field(UnixSeconds, "created_at")
    city = Field(str, "shipping_address.city")


# Annotating a field with its Field type also types the constructor.
class Balance(Record):
    """Natural's customers, only the money."""

    id: Field[str] = Field(str)
    dollars: Field[Decimal] = Field(Decimal, "attributes.wallet_available_dollars",
                                    doc="available balance in dollars")


# Fields as annotations, as with dataclasses or msgspec: a plain type is
# always there (typed without None; a page without it is a DecodeError),
# ``T | None`` may be absent; Field(...) as the default gives the wire key.
class Client_(Record):
    """Commenda's customers again, in the annotation style."""

    id: str
    name: str | None = None
    created: Annotated[dt.datetime, UnixSeconds] = Field(wire="created_at")
    city: str | None = Field(wire="shipping_address.city")


# The older style says it with required=True.
class Party(Record):
    id = Field(str, required=True)
    email = Field(str, "attributes.email")


ACCOUNTS = Endpoint("/customers", Account, CursorPaging(items="customers", cursor="cursor"))
CLIENTS = Endpoint("/customers", Client_, CursorPaging(items="customers", cursor="cursor",
                                                         total="total_customers"))
PARTIES = Endpoint("/customers", Party,
                   CursorPaging(items="data", cursor="meta.pagination.next_cursor",
                                has_more="meta.pagination.has_more"))
BALANCES = Endpoint("/customers", Balance,
                    CursorPaging(items="data", cursor="meta.pagination.next_cursor",
                                 has_more="meta.pagination.has_more"))


def pyng_names(client: custlist.Pyng) -> list[str]:
    pager = client.customers("site_1", state=custlist.LinkState.LINKED, limit=50)
    reveal_type(pager)  # revealed: custlist._pager.Pager[custlist.pyng.Customer]
    out = []
    for c in pager:
        reveal_type(c.customer_reference)  # revealed: str
        reveal_type(c.state)  # revealed: str
        reveal_type(c.invited_at)  # revealed: datetime.datetime
        reveal_type(c.linked_at)  # revealed: datetime.datetime | None
        out.append(c.customer_reference)
    reveal_type(pager.next_href)  # revealed: str | None
    return out


def natural_rows(client: custlist.Natural) -> list[tuple[str, Decimal | None]]:
    rows = []
    customers = client.customers(limit=25)
    reveal_type(customers)  # revealed: custlist._pager.Pager[custlist.natural.Party | custlist.natural.DelegationInvitation | custlist.natural.UnknownResource]
    for c in customers:
        if isinstance(c, custlist.natural.UnknownResource):
            reveal_type(c.attributes)  # revealed: dict[str, Any] | None
            continue
        reveal_type(c)  # revealed: custlist.natural.Party | custlist.natural.DelegationInvitation
        party = c.party
        reveal_type(party)  # revealed: custlist.natural.PartyRef | None
        name = party.name if party is not None else None
        rows.append((name or c.id or "?", c.wallet_available_dollars))
    for page in client.customer_invitations().pages():
        reveal_type(page)  # revealed: custlist._spec.Page[custlist.natural.CustomerInvitation]
        reveal_type(page.items)  # revealed: tuple[custlist.natural.CustomerInvitation, ...]
        for inv in page.items:
            for agent_inv in inv.agent_invitations or ():
                reveal_type(agent_inv.expires_at)  # revealed: datetime.datetime | None
    raw = client.customer_invitations(raw=True)
    reveal_type(raw)  # revealed: custlist._pager.Pager[dict[str, Any]]
    return rows


def commenda_cities(client: custlist.Commenda) -> set[str]:
    pager = client.customers("corp_123", extend=["shipping_address"], has_exemption=False)
    reveal_type(pager)  # revealed: custlist._pager.Pager[custlist.commenda.Customer]
    cities = set()
    for c in pager:
        reveal_type(c.shipping_address)  # revealed: custlist.commenda.Address | None
        if c.shipping_address is not None and c.shipping_address.city:
            cities.add(c.shipping_address.city)
        meta = c.exemption_metadata
        if meta is not None:
            reveal_type(meta.expiration_status)  # revealed: str | None
    return cities


def own_records(com: custlist.Commenda, nat: custlist.Natural) -> Decimal:
    accounts = com.paginate(ACCOUNTS, "/customers", {"corporation_id": "corp_123", "limit": 50})
    reveal_type(accounts)  # revealed: custlist._pager.Pager[typed_usage.Account]
    for a in accounts:
        reveal_type(a.created)  # revealed: datetime.datetime | None
        reveal_type(a.city)  # revealed: str | None
    balances: Pager[Balance] = nat.paginate(BALANCES, "/customers")
    total = Decimal(0)
    for b in balances:
        reveal_type(b.dollars)  # revealed: decimal.Decimal | None
        total += b.dollars or 0
    page = BALANCES.decode(b'{"data": [{"id": "pty_1", "attributes": '
                           b'{"wallet_available_dollars": "12.50"}}]}')
    reveal_type(page)  # revealed: custlist._spec.Page[typed_usage.Balance]
    mine = Balance(id="pty_2", dollars=Decimal("1.25"))
    assert page.items == (Balance("pty_1", Decimal("12.50")),) and mine.dollars == Decimal("1.25")
    return total


def required_fields(com: custlist.Commenda, nat: custlist.Natural) -> list[str]:
    # The bundled vendors' always-present fields are required too.
    ids: list[str] = [c.id for c in nat.customers()]     # no None to rule out
    for cust in com.customers("corp_123"):
        reveal_type(cust.id)  # revealed: str
        reveal_type(cust.name)  # revealed: str | None
    clients = com.paginate(CLIENTS, "/customers", {"corporation_id": "corp_123"})
    ids += [c.id for c in clients]
    for c in com.paginate(CLIENTS, "/customers", {"corporation_id": "corp_456"}):
        reveal_type(c.id)  # revealed: str
        reveal_type(c.created)  # revealed: datetime.datetime
        reveal_type(c.city)  # revealed: str | None
        ids.append(c.created.isoformat())
    for p in nat.paginate(PARTIES, "/customers"):
        reveal_type(p.id)  # revealed: str
        reveal_type(p.email)  # revealed: str | None
        ids.append(p.id)
    mine = Client_(id="cust_1", created=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
    reveal_type(mine.name)  # revealed: str | None
    return ids + [mine.id]


def main() -> None:
    with Sandbox(seed=3) as sb:
        pyng = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, timeout=10.0,
                             max_retries=1)
        nat = custlist.Natural(sb.natural_token, base_url=sb.natural_url, timeout=10.0)
        com = custlist.Commenda(sb.commenda_token, base_url=sb.commenda_url, timeout=10.0)
        names = pyng_names(pyng)
        rows = natural_rows(nat)
        cities = commenda_cities(com)
        total = own_records(com, nat)
        ids = required_fields(com, nat)
        since = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
        recent = pyng.customers("site_2", invited_from=since)
        print(f"pyng: {len(names)} linked, {sum(1 for _ in recent)} on site_2 since 2020; "
              f"natural: {len(rows)} customers, {total} dollars available; "
              f"commenda: {len(cities)} cities; {len(ids)} ids")


if __name__ == "__main__":
    main()
