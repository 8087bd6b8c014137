"""Natural: ``GET /customers`` (a mixed list of parties and delegation
invitations) and ``GET /customers/invitations``; cursor paging in
``meta.pagination``."""
from __future__ import annotations

import datetime as _dt
import re
from decimal import Decimal
from typing import Any

from . import errors as _errors
from ._client import BearerToken, Client, ErrorFactory, takes_settings
from ._pager import Pager
from ._spec import CursorPaging, Endpoint, Field, OneOf, Param, Record, StrEnum, encode_params

__all__ = ["Natural", "Party", "DelegationInvitation", "CustomerResource", "UnknownResource",
           "CustomerInvitation", "AgentInvitation", "Agent", "PartyRef", "Status",
           "WalletAccess", "BASE_URL", "SANDBOX_BASE_URL"]

BASE_URL = "https://api.natural.co"
SANDBOX_BASE_URL = "https://sandbox.api.natural.co"
_AGENT_ID = re.compile(r"^agt_[0-9A-Za-z]+$")


class Status(StrEnum):
    """Delegation / invitation status.  The set is open: an unknown value is
    kept as a plain str."""

    ACTIVE = "ACTIVE"
    PENDING = "PENDING"
    SUSPENDED = "SUSPENDED"
    REVOKED = "REVOKED"
    EXPIRED = "EXPIRED"


class WalletAccess(StrEnum):
    """Whether the customer's wallet is shared; unknown values stay str."""

    GRANTED = "granted"
    DENIED = "denied"


class PartyRef(Record):
    """The party behind a customer."""

    id = Field(str, required=True)
    name = Field(str)
    email = Field(str)


class CustomerResource(Record):
    """Fields shared by both kinds of item on ``/customers``: the type and
    the id are always there."""

    type = Field(str, required=True)
    id = Field(str, required=True)
    email = Field(str, "attributes.email")
    status = Field(Status, "attributes.status")
    permissions = Field(tuple[str, ...], "attributes.permissions",
                        doc="kept verbatim: separators vary (payments:read, wallets.read)")
    created_at = Field(_dt.datetime, "attributes.created_at")
    wallet_available_minor = Field(int, "attributes.wallet_available_minor")
    wallet_available_dollars = Field(Decimal, "attributes.wallet_available_dollars", scale=2)
    wallet_access = Field(WalletAccess, "attributes.wallet_access")
    party = Field(PartyRef, "attributes.party")


class Party(CustomerResource):
    """``type == "party"``: an active delegation (``pty_`` id)."""


class DelegationInvitation(CustomerResource):
    """``type == "delegation_invitation"`` (``din_`` id)."""


class UnknownResource(Record):
    """An item whose ``type`` this version of custlist does not know:
    its attributes are kept as a plain dict."""

    type = Field(str)
    id = Field(str, required=True)
    attributes = Field(dict)


class Agent(Record):
    id = Field(str, required=True)
    name = Field(str)


class AgentInvitation(Record):
    invitation_id = Field(str, "invitationId", required=True)
    agent = Field(Agent)
    permissions = Field(tuple[str, ...])
    created_at = Field(_dt.datetime, "createdAt")
    expires_at = Field(_dt.datetime, "expiresAt")


class CustomerInvitation(Record):
    """An item of ``/customers/invitations``; its ``id`` is an email address.
    The type and the id are always there."""

    type = Field(str, required=True)
    id = Field(str, required=True)
    status = Field(Status, "attributes.status")
    party = Field(PartyRef, "attributes.party")
    email = Field(str, "attributes.email")
    created_at = Field(_dt.datetime, "attributes.createdAt")
    wallet_available_minor = Field(int, "attributes.walletAvailableMinor")
    wallet_access = Field(WalletAccess, "attributes.walletAccess")
    agent_invitations = Field(tuple[AgentInvitation, ...], "attributes.agentInvitations")


def _paging():
    # Each endpoint documents one spelling; accept both on either.
    return CursorPaging(
        items="data",
        cursor=["meta.pagination.next_cursor", "meta.pagination.nextCursor"],
        has_more=["meta.pagination.has_more", "meta.pagination.hasMore"])


CUSTOMERS = Endpoint(
    "/customers",
    OneOf("type", {"party": Party, "delegation_invitation": DelegationInvitation},
          fallback=UnknownResource),
    _paging(), name="natural.customers", page_size="limit", default_page_size=20,
    max_page_size=100)
INVITATIONS = Endpoint("/customers/invitations", CustomerInvitation, _paging(),
                       name="natural.customer_invitations", page_size="limit",
                       default_page_size=20, max_page_size=100)

_PARAMS = (Param("limit", kind="int", min=1, max=100),)


class NaturalErrors(ErrorFactory):
    """``{"errors":[{"code","detail","status","source","meta":{"supportId"}}]}``"""

    by_code = {"invalid_pagination_cursor": _errors.InvalidCursorError}

    def parse(self, doc):
        errs = doc.get("errors") if isinstance(doc, dict) else None
        if not isinstance(errs, list) or not errs or not isinstance(errs[0], dict):
            return super().parse(doc)
        first = errs[0]
        source = first.get("source") if isinstance(first.get("source"), dict) else {}
        meta = first.get("meta") if isinstance(first.get("meta"), dict) else {}
        target = next((v for v in source.values() if isinstance(v, str)), None)
        return {"code": first.get("code"), "message": first.get("detail") or first.get("title"),
                "target": target, "trace_id": meta.get("supportId"),
                "errors": [e for e in errs if isinstance(e, dict)]}


class Natural(Client):
    """Client of the Natural API (``sk_ntl_…`` bearer keys).

    ``agent_id`` (``agt_…``) and ``instance_id`` (a session or conversation
    id, at most 1024 characters, required with an agent id) are sent as
    ``X-Agent-ID`` / ``X-Instance-ID``.  Transport settings: see ``Client``."""

    _errors = NaturalErrors()
    _endpoints = (CUSTOMERS, INVITATIONS)

    @takes_settings
    def __init__(self, token: str, *, agent_id: str | None = None,
                 instance_id: str | None = None, base_url: str = BASE_URL, **settings):
        headers = {}
        if agent_id is not None:
            if not isinstance(agent_id, str) or not _AGENT_ID.match(agent_id):
                raise ValueError("agent_id must look like 'agt_…'")
            if instance_id is None:
                raise ValueError("instance_id is required when agent_id is given")
            headers["X-Agent-ID"] = agent_id
        if instance_id is not None:
            if not isinstance(instance_id, str):
                raise TypeError("instance_id must be a str")
            if not instance_id or len(instance_id) > 1024:
                raise ValueError("instance_id must be 1 to 1024 characters")
            headers["X-Instance-ID"] = instance_id
        super().__init__(base_url=base_url, auth=BearerToken(token), headers=headers, **settings)
        self.agent_id, self.instance_id = agent_id, instance_id

    def customers(self, *, limit: int | None = None, start_cursor: str | None = None,
                  raw: bool = False, max_items: int | None = None,
                  start: dict[str, Any] | None = None, progress: bool = False,
                  ) -> Pager[Party | DelegationInvitation | UnknownResource]:
        """Iterate customers: ``Party`` and ``DelegationInvitation`` records
        (``UnknownResource`` for a type not known yet).  ``limit`` is the page
        size, 1..100 (server default 20), not a cap: ``max_items`` stops after
        that many records; ``start`` continues from ``pager.checkpoint()``."""
        query = encode_params(_PARAMS, {"limit": limit})
        return self.paginate(CUSTOMERS, CUSTOMERS.path, query, raw=raw, start_cursor=start_cursor,
                             max_items=max_items, start=start,
                             progress=progress)

    def customer_invitations(self, *, limit: int | None = None,
                             start_cursor: str | None = None, raw: bool = False,
                             max_items: int | None = None,
                             start: dict[str, Any] | None = None,
                             progress: bool = False) -> Pager[CustomerInvitation]:
        """Iterate ``CustomerInvitation`` records (page size 1..100, default
        20; ``max_items`` and ``start`` as for ``customers``)."""
        query = encode_params(_PARAMS, {"limit": limit})
        return self.paginate(INVITATIONS, INVITATIONS.path, query, raw=raw,
                             start_cursor=start_cursor, max_items=max_items, start=start,
                             progress=progress)
