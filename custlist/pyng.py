"""Pyng billing: ``GET /billing/sites/{siteId}/customers`` (href paging).

Auth is a ready access token or OAuth 2.0 client credentials exchanged at
``POST /billing/oauth2/token``; every request carries ``Pyng-Api-Version``.
"""
from __future__ import annotations

import datetime as _dt
import urllib.parse
from typing import Any, Sequence

from . import errors as _errors
from ._client import BearerToken, Client, ClientCredentials, ErrorFactory, takes_settings
from ._fanout import FanOut, fan_out
from ._pager import Pager
from ._spec import Endpoint, Field, HrefPaging, Param, Record, StrEnum, UnixMillis, encode_params

__all__ = ["Pyng", "Customer", "LinkState", "API_VERSION"]

API_VERSION = "urn:pyng:api:billing:version:v1"
SCOPE = "billing:customers:read"
_ERR = "urn:pyng:platform:billing:error:"


class LinkState(StrEnum):
    """Link state of a customer.  Pyng may add values: an unknown state is
    kept as a plain str rather than failing."""

    INVITED = "invited"
    LINKED = "linked"


class Customer(Record):
    """A CustomerSummary: one customer the partner invited.  The reference,
    state and invitation time are always there (Pyng documents them as
    required)."""

    customer_reference = Field(str, "customerReference", required=True)
    state = Field(LinkState, required=True)
    invited_at = Field(UnixMillis, "invitedAt", required=True)
    expires_at = Field(UnixMillis, "expiresAt")
    linked_at = Field(UnixMillis, "linkedAt")


CUSTOMERS = Endpoint(
    "/billing/sites/{site_id}/customers", Customer,
    HrefPaging(items="data.items", next_href="data.nextHref", prev_href="data.prevHref",
               total="data.totalItems", trace_id="traceId"),
    name="pyng.customers", page_size="limit", default_page_size=50, max_page_size=100)

_PARAMS = (
    Param("limit", kind="int", min=1, max=100),
    Param("state", kind="enum", choices=LinkState, open_enum=True),
    Param("invited_from", "invitedFrom", kind="ms", min=0),
    Param("invited_to", "invitedTo", kind="ms", min=0),
)


def _day_bound(value: Any, end: bool) -> Any:
    """A ``date`` as the bound it means: its first millisecond (UTC) for
    ``invited_from``, its last for ``invited_to``; other values as given."""
    if isinstance(value, _dt.date) and not isinstance(value, _dt.datetime):
        start = _dt.datetime(value.year, value.month, value.day, tzinfo=_dt.timezone.utc)
        if end:
            return int((start + _dt.timedelta(days=1)).timestamp() * 1000) - 1
        return start
    return value


class PyngErrors(ErrorFactory):
    """``{"errors":[{"code","displayMessage","target"}],"traceId"}``"""

    by_code = {_ERR + "customers:invalid-pagination-link": _errors.InvalidPaginationLinkError}

    def parse(self, doc):
        errs = doc.get("errors") if isinstance(doc, dict) else None
        if not isinstance(errs, list) or not errs or not isinstance(errs[0], dict):
            return super().parse(doc)
        first = errs[0]
        return {"code": first.get("code"), "message": first.get("displayMessage"),
                "target": first.get("target"), "trace_id": doc.get("traceId"),
                "errors": [e for e in errs if isinstance(e, dict)]}


class Pyng(Client):
    """Client of the Pyng billing API.

    Give either ``token`` (a ready access token) or ``client_id`` and
    ``client_secret`` (exchanged for a token, cached until shortly before it
    expires and renewed on a 401).  Transport settings: see ``Client``."""

    _errors = PyngErrors()
    _endpoints = (CUSTOMERS,)

    @takes_settings
    def __init__(self, token: str | None = None, *, client_id: str | None = None,
                 client_secret: str | None = None, base_url: str,
                 api_version: str = API_VERSION, scope: str = SCOPE, **settings):
        if (token is None) == (client_id is None and client_secret is None):
            raise ValueError("give either token or client_id and client_secret")
        if not isinstance(api_version, str) or not api_version:
            raise ValueError("api_version must be a non-empty str")
        super().__init__(base_url=base_url, auth=None,
                         headers={"Pyng-Api-Version": api_version}, **settings)
        if token is not None:
            self._auth = BearerToken(token)
        else:
            self._auth = ClientCredentials(self.base_url + "/billing/oauth2/token", client_id,
                                           client_secret, scope, transport=self._transport)
        self.api_version = api_version

    def customers(self, site_id: str, *, state: LinkState | str | None = None,
                  invited_from: _dt.datetime | _dt.date | int | None = None,
                  invited_to: _dt.datetime | _dt.date | int | None = None,
                  limit: int | None = None,
                  start_href: str | None = None, raw: bool = False,
                  max_items: int | None = None, start: dict[str, Any] | None = None,
                  progress: bool = False) -> Pager[Customer]:
        """Iterate the site's customers, most recently invited first.

        ``invited_from`` / ``invited_to`` are inclusive bounds: aware
        datetimes, unix milliseconds, or dates (a whole day in UTC: from its
        start, to its end).  ``start_href`` resumes from a saved
        ``pager.next_href`` (it already encodes the filters).  Returns a
        Pager: iterate it for ``Customer`` records (dicts with ``raw=True``);
        ``.pages()``, ``.total``, ``.next_href`` and ``.prev_href`` are there
        too.  ``limit`` is the page size, not a cap: ``max_items`` stops after
        that many records; ``start`` continues from ``pager.checkpoint()``."""
        if not isinstance(site_id, str):
            raise TypeError(f"site_id must be a str, not {type(site_id).__name__}")
        if not site_id.strip():
            raise ValueError("site_id must not be empty")
        if site_id in (".", ".."):   # a dot segment: the URL would lead to another endpoint
            raise ValueError(f"site_id must not be {site_id!r}")
        query = encode_params(_PARAMS, dict(limit=limit, state=state,
                                            invited_from=_day_bound(invited_from, False),
                                            invited_to=_day_bound(invited_to, True)))
        bounds = dict(query)
        if "invitedFrom" in bounds and "invitedTo" in bounds \
                and int(bounds["invitedFrom"]) > int(bounds["invitedTo"]):
            raise ValueError("invited_from must not be after invited_to")
        path = CUSTOMERS.path.format(site_id=urllib.parse.quote(site_id, safe=""))
        return self.paginate(CUSTOMERS, path, query, raw=raw, start_href=start_href,
                             max_items=max_items, start=start,
                             progress=progress)

    def customers_many(self, site_ids: Sequence[str], *, concurrency: int = 8,
                       raise_errors: bool = False, state: LinkState | str | None = None,
                       invited_from: _dt.datetime | _dt.date | int | None = None,
                       invited_to: _dt.datetime | _dt.date | int | None = None,
                       limit: int | None = None, raw: bool = False,
                       max_items: int | None = None) -> FanOut[str, Customer]:
        """Every customer of every site in ``site_ids``, listed concurrently
        (see ``custlist.fan_out``): yields ``(site_id, Customer)``, each
        site's customers in order; the filters, and ``max_items`` (records
        per site), apply to every site."""
        sites = list(site_ids)
        if isinstance(site_ids, str) or len(set(sites)) != len(sites):
            raise ValueError("site_ids must be a sequence of distinct site ids")
        pagers = {s: self.customers(s, state=state, invited_from=invited_from,
                                    invited_to=invited_to, limit=limit, raw=raw,
                                    max_items=max_items) for s in sites}
        return fan_out(pagers, concurrency, raise_errors=raise_errors)
