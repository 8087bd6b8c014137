"""The four listings of the sandbox, described once for the tests that run
the same scenario on each: how to list, which route serves it, its paging,
its page size default and the key of a record."""
from dataclasses import dataclass
from typing import Callable

import custlist

from .conftest import FAST


@dataclass(frozen=True)
class Listing:
    name: str
    route: str
    mode: str
    default_size: int
    key: str                      # a field that identifies a record
    client: Callable              # (sandbox, **settings) -> client
    list: Callable                # (client, **kwargs) -> Pager

    def __str__(self) -> str:
        return self.name


LISTINGS = [
    Listing("pyng.customers", "pyng.customers", "href", 50, "customer_reference",
            lambda sb, **kw: custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url,
                                           **FAST, **kw),
            lambda c, **kw: c.customers("site_1", **kw)),
    Listing("natural.customers", "natural.customers", "cursor", 20, "id",
            lambda sb, **kw: custlist.Natural(sb.natural_token, base_url=sb.natural_url,
                                              **FAST, **kw),
            lambda c, **kw: c.customers(**kw)),
    Listing("natural.customer_invitations", "natural.invitations", "cursor", 20, "id",
            lambda sb, **kw: custlist.Natural(sb.natural_token, base_url=sb.natural_url,
                                              **FAST, **kw),
            lambda c, **kw: c.customer_invitations(**kw)),
    Listing("commenda.customers", "commenda.customers", "cursor", 10, "id",
            lambda sb, **kw: custlist.Commenda(sb.commenda_token, base_url=sb.commenda_url,
                                               **FAST, **kw),
            lambda c, **kw: c.customers("corp_123", **kw)),
]

_FULL: dict = {}


def full(sb, listing: Listing) -> list:
    """Every record of the listing, in order (listed once per sandbox)."""
    key = (id(sb), listing.name)
    if key not in _FULL:
        with listing.client(sb) as client:
            _FULL[key] = list(listing.list(client, limit=100))
    return _FULL[key]


def requests_of(sb, listing: Listing) -> list:
    return [r for r in sb.requests if r.route == listing.route]
