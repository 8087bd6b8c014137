"""Commenda (sales tax): ``GET /customers`` of a corporation; cursor paging
with a top-level ``cursor``.  The body comes bare
(``{customers, total_customers, cursor}``) or wrapped (``{data: {...},
message}``); both are accepted, as are the older ``address_line_N`` keys."""
from __future__ import annotations

from typing import Any, Sequence

from ._client import BearerToken, Client, takes_settings
from ._fanout import FanOut, fan_out
from ._pager import Pager
from ._spec import (CursorPaging, Endpoint, Field, Param, Record, StrEnum, StrList, UnixSeconds,
                    encode_params)

__all__ = ["Commenda", "Customer", "Address", "ExemptionMetadata", "ExpirationStatus",
           "ExemptionStatus", "BASE_URL", "EXTEND_OPTIONS"]

BASE_URL = "https://api.prod.commenda.io/api/v1"
EXTEND_OPTIONS = frozenset({"shipping_address", "exemption_metadata"})


class ExpirationStatus(StrEnum):
    ACTIVE = "ACTIVE"
    EXPIRED = "EXPIRED"


class ExemptionStatus(StrEnum):
    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"


class Address(Record):
    line1 = Field(str, aliases=["address_line_1"])
    line2 = Field(str, aliases=["address_line_2"])
    line3 = Field(str, aliases=["address_line_3"])
    city = Field(str)
    state = Field(str)
    postal_code = Field(str)
    country = Field(str)


class ExemptionMetadata(Record):
    has_exemption = Field(bool)
    certificate_type = Field(str)
    exemption_jurisdiction = Field(str)
    expiration_status = Field(ExpirationStatus)
    exemption_status = Field(ExemptionStatus)


class Customer(Record):
    """A customer of a corporation.  ``shipping_address`` and
    ``exemption_metadata`` are filled only when requested with ``extend``.
    The id is always there."""

    id = Field(str, required=True)
    name = Field(str)
    email = Field(str)
    corporation_id = Field(str)
    created_at = Field(UnixSeconds)
    source_platform = Field(str)
    source_platform_id = Field(str)
    shipping_address = Field(Address)
    exemption_metadata = Field(ExemptionMetadata)


CUSTOMERS = Endpoint(
    "/customers", Customer,
    CursorPaging(items=["customers", "data.customers"], cursor=["cursor", "data.cursor"],
                 total=["total_customers", "data.total_customers"]),
    name="commenda.customers", page_size="limit", default_page_size=10, max_page_size=100)

_PARAMS = (
    Param("corporation_id", required=True),
    Param("limit", kind="int", min=1, max=100),
    Param("name"),
    Param("search_term"),
    Param("source_platforms", kind="csv"),
    Param("source_platform_ids", kind="csv"),
    Param("extend", kind="csv", choices=EXTEND_OPTIONS),
    Param("certificate_types", kind="csv"),
    Param("exemption_jurisdiction"),
    Param("expiration_status", kind="enum", choices=ExpirationStatus, open_enum=True),
    Param("exemption_status", kind="enum", choices=ExemptionStatus, open_enum=True),
    Param("has_exemption", kind="bool"),
)


class Commenda(Client):
    """Client of the Commenda sales-tax API.  Transport settings: see ``Client``."""

    _endpoints = (CUSTOMERS,)

    @takes_settings
    def __init__(self, token: str, *, base_url: str = BASE_URL, **settings):
        super().__init__(base_url=base_url, auth=BearerToken(token), **settings)

    def customers(self, corporation_id: str, *, limit: int | None = None,
                  name: str | None = None, search_term: str | None = None,
                  source_platforms: StrList | None = None,
                  source_platform_ids: StrList | None = None, extend: StrList | None = None,
                  certificate_types: StrList | None = None,
                  exemption_jurisdiction: str | None = None,
                  expiration_status: ExpirationStatus | str | None = None,
                  exemption_status: ExemptionStatus | str | None = None,
                  has_exemption: bool | None = None, start_cursor: str | None = None,
                  raw: bool = False, max_items: int | None = None,
                  start: dict[str, Any] | None = None,
                  progress: bool = False) -> Pager[Customer]:
        """Iterate the corporation's customers.  ``limit`` is the page size,
        1..100 (server default 10), not a cap: ``max_items`` stops after that
        many records; ``start`` continues from ``pager.checkpoint()``.  List
        filters take Python lists; ``extend`` takes "shipping_address" and/or
        "exemption_metadata"."""
        values = dict(locals())
        query = encode_params(_PARAMS, values)
        return self.paginate(CUSTOMERS, CUSTOMERS.path, query, raw=raw, start_cursor=start_cursor,
                             max_items=max_items, start=start,
                             progress=progress)

    def customers_many(self, corporation_ids: Sequence[str], *, concurrency: int = 8,
                       raise_errors: bool = False, **filters: Any) -> FanOut[str, Customer]:
        """Every customer of every corporation in ``corporation_ids``, listed
        concurrently (see ``custlist.fan_out``): yields ``(corporation_id,
        Customer)``, each corporation's customers in order.  ``filters``
        are ``customers()``'s keywords and apply to every corporation."""
        corps = list(corporation_ids)
        if isinstance(corporation_ids, str) or len(set(corps)) != len(corps):
            raise ValueError("corporation_ids must be a sequence of distinct corporation ids")
        for name in ("start_cursor", "start"):
            if name in filters:
                raise TypeError(f"customers_many() takes no {name}: resume a corporation "
                                f"with customers({name}=...) in custlist.fan_out")
        pagers = {c: self.customers(c, **filters) for c in corps}
        return fan_out(pagers, concurrency, raise_errors=raise_errors)
