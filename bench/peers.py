"""The peers: the same typed records built the way each library's docs
suggest (msgspec Structs; json/orjson + dataclasses; requests, httpx and
pycurl loops).

Every peer keeps the fields custlist's records keep, with the same types:
aware UTC datetimes, Decimal, tuples for lists, and enum members (str
enums of the same values) where custlist gives enum members.  The peers'
enums are closed (an unknown value fails the msgspec decode), custlist's
are open; the benchmark's records use only known values, except Pyng's
"archived" state, which every peer keeps as a plain str as custlist does."""
from __future__ import annotations

import datetime as dt
import enum
import io
import json
from dataclasses import dataclass
from decimal import Decimal

import msgspec
import orjson

UTC = dt.timezone.utc


def iso(s):
    return None if s is None else dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


def from_ms(v):
    return None if v is None else dt.datetime.fromtimestamp(v / 1000, UTC)


def from_s(v):
    return None if v is None else dt.datetime.fromtimestamp(v, UTC)


class LinkState(str, enum.Enum):
    INVITED = "invited"
    LINKED = "linked"


class Status(str, enum.Enum):
    ACTIVE = "ACTIVE"
    PENDING = "PENDING"
    SUSPENDED = "SUSPENDED"
    REVOKED = "REVOKED"
    EXPIRED = "EXPIRED"


class WalletAccess(str, enum.Enum):
    GRANTED = "granted"
    DENIED = "denied"


class ExpirationStatus(str, enum.Enum):
    ACTIVE = "ACTIVE"
    EXPIRED = "EXPIRED"


class ExemptionStatus(str, enum.Enum):
    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"


def open_enum(cls, v):
    try:
        return cls(v)
    except ValueError:
        return v


# ---- dataclasses ---------------------------------------------------------

@dataclass(slots=True)
class PyngCustomer:
    customer_reference: str
    state: object
    invited_at: dt.datetime
    expires_at: dt.datetime | None
    linked_at: dt.datetime | None


@dataclass(slots=True)
class PartyRef:
    id: str | None
    name: str | None
    email: str | None


@dataclass(slots=True)
class NaturalCustomer:
    type: str
    id: str
    email: str | None
    status: Status
    permissions: tuple
    created_at: dt.datetime
    wallet_available_minor: int | None
    wallet_available_dollars: Decimal | None
    wallet_access: WalletAccess
    party: PartyRef | None


@dataclass(slots=True)
class Agent:
    id: str
    name: str


@dataclass(slots=True)
class AgentInvitation:
    invitation_id: str
    agent: Agent
    permissions: tuple
    created_at: dt.datetime
    expires_at: dt.datetime


@dataclass(slots=True)
class Invitation:
    type: str
    id: str
    status: Status
    party: PartyRef | None
    email: str
    created_at: dt.datetime
    wallet_available_minor: int | None
    wallet_access: WalletAccess
    agent_invitations: tuple


@dataclass(slots=True)
class Address:
    line1: str | None
    line2: str | None
    line3: str | None
    city: str | None
    state: str | None
    postal_code: str | None
    country: str | None


@dataclass(slots=True)
class Exemption:
    has_exemption: bool | None
    certificate_type: str | None
    exemption_jurisdiction: str | None
    expiration_status: ExpirationStatus | None
    exemption_status: ExemptionStatus | None


@dataclass(slots=True)
class CommendaCustomer:
    id: str
    name: str
    email: str | None
    corporation_id: str
    created_at: dt.datetime
    source_platform: str | None
    source_platform_id: str | None
    shipping_address: Address | None
    exemption_metadata: Exemption | None


def maybe(cls, v):
    return None if v is None else cls(v)


def party(p):
    return None if p is None else PartyRef(p["id"], p["name"], p["email"])


def build_pyng(doc):
    items = [PyngCustomer(c["customerReference"], open_enum(LinkState, c["state"]),
                          from_ms(c["invitedAt"]), from_ms(c.get("expiresAt")),
                          from_ms(c.get("linkedAt"))) for c in doc["data"]["items"]]
    return items, doc["data"].get("nextHref")


def build_natural(doc):
    out = []
    for c in doc["data"]:
        a = c["attributes"]
        d = a["wallet_available_dollars"]
        out.append(NaturalCustomer(c["type"], c["id"], a["email"], Status(a["status"]),
                                   tuple(a["permissions"]), iso(a["created_at"]),
                                   a["wallet_available_minor"], None if d is None else Decimal(d),
                                   WalletAccess(a["wallet_access"]), party(a["party"])))
    p = doc["meta"]["pagination"]
    return out, p["next_cursor"] if p["has_more"] else None


def build_invitations(doc):
    out = []
    for c in doc["data"]:
        a = c["attributes"]
        agents = tuple(AgentInvitation(x["invitationId"], Agent(x["agent"]["id"], x["agent"]["name"]),
                                       tuple(x["permissions"]), iso(x["createdAt"]), iso(x["expiresAt"]))
                       for x in a["agentInvitations"])
        out.append(Invitation(c["type"], c["id"], Status(a["status"]), party(a["party"]), a["email"],
                              iso(a["createdAt"]), a["walletAvailableMinor"],
                              WalletAccess(a["walletAccess"]), agents))
    p = doc["meta"]["pagination"]
    return out, p["nextCursor"] if p["hasMore"] else None


def build_commenda(doc):
    out = []
    for c in doc["customers"]:
        s = c.get("shipping_address")
        addr = None if s is None else Address(s.get("line1", s.get("address_line_1")),
                                              s.get("line2", s.get("address_line_2")),
                                              s.get("line3", s.get("address_line_3")), s.get("city"),
                                              s.get("state"), s.get("postal_code"), s.get("country"))
        m = c.get("exemption_metadata")
        ex = None if m is None else Exemption(m["has_exemption"], m["certificate_type"],
                                              m["exemption_jurisdiction"],
                                              maybe(ExpirationStatus, m["expiration_status"]),
                                              maybe(ExemptionStatus, m["exemption_status"]))
        out.append(CommendaCustomer(c["id"], c["name"], c["email"], c["corporation_id"],
                                    from_s(c["created_at"]), c.get("source_platform"),
                                    c.get("source_platform_id"), addr, ex))
    return out, doc.get("cursor")


BUILDERS = {"pyng": build_pyng, "natural": build_natural, "invitations": build_invitations,
            "commenda": build_commenda}


# ---- msgspec Structs -----------------------------------------------------

class MPyngItem(msgspec.Struct):
    customerReference: str
    state: str
    invitedAt: int
    expiresAt: int | None = None
    linkedAt: int | None = None


class MPyngData(msgspec.Struct):
    items: list[MPyngItem]
    totalItems: int
    nextHref: str | None = None
    prevHref: str | None = None


class MPyngPage(msgspec.Struct):
    data: MPyngData
    traceId: str


class MParty(msgspec.Struct):
    id: str | None = None
    name: str | None = None
    email: str | None = None


class MNatAttrs(msgspec.Struct):
    email: str | None
    status: Status
    permissions: tuple[str, ...]
    created_at: dt.datetime
    wallet_available_minor: int | None
    wallet_available_dollars: Decimal | None
    wallet_access: WalletAccess
    party: MParty | None


class MNatItem(msgspec.Struct):
    type: str
    id: str
    attributes: MNatAttrs


class MPagination(msgspec.Struct):
    has_more: bool = False
    next_cursor: str | None = None
    hasMore: bool = False
    nextCursor: str | None = None


class MMeta(msgspec.Struct):
    pagination: MPagination


class MNatPage(msgspec.Struct):
    data: list[MNatItem]
    meta: MMeta


class MAgent(msgspec.Struct):
    id: str
    name: str


class MAgentInv(msgspec.Struct):
    invitationId: str
    agent: MAgent
    permissions: tuple[str, ...]
    createdAt: dt.datetime
    expiresAt: dt.datetime


class MInvAttrs(msgspec.Struct):
    status: Status
    party: MParty | None
    email: str
    createdAt: dt.datetime
    walletAvailableMinor: int | None
    walletAccess: WalletAccess
    agentInvitations: tuple[MAgentInv, ...]


class MInvItem(msgspec.Struct):
    type: str
    id: str
    attributes: MInvAttrs


class MInvPage(msgspec.Struct):
    data: list[MInvItem]
    meta: MMeta


class MAddress(msgspec.Struct):
    line1: str | None = None
    line2: str | None = None
    line3: str | None = None
    address_line_1: str | None = None
    address_line_2: str | None = None
    address_line_3: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None


class MExemption(msgspec.Struct):
    has_exemption: bool | None = None
    certificate_type: str | None = None
    exemption_jurisdiction: str | None = None
    expiration_status: ExpirationStatus | None = None
    exemption_status: ExemptionStatus | None = None


class MComItem(msgspec.Struct):
    id: str
    name: str
    email: str | None
    corporation_id: str
    created_at: dt.datetime          # unix seconds, accepted with strict=False
    source_platform: str | None = None
    source_platform_id: str | None = None
    shipping_address: MAddress | None = None
    exemption_metadata: MExemption | None = None


class MComPage(msgspec.Struct):
    customers: list[MComItem]
    total_customers: int
    cursor: str | None = None


class MPyngCustomer(msgspec.Struct):
    customer_reference: str
    state: object
    invited_at: dt.datetime
    expires_at: dt.datetime | None
    linked_at: dt.datetime | None


_pyng_dec = msgspec.json.Decoder(MPyngPage)


def msgspec_pyng(body):
    page = _pyng_dec.decode(body)
    # unix milliseconds are not a msgspec datetime (strict=False reads seconds only):
    # convert after decoding, into a Struct of the record's fields and types
    return [MPyngCustomer(c.customerReference, open_enum(LinkState, c.state), from_ms(c.invitedAt),
                          from_ms(c.expiresAt), from_ms(c.linkedAt)) for c in page.data.items]


MSGSPEC = {
    "pyng": msgspec_pyng,
    "natural": msgspec.json.Decoder(MNatPage).decode,
    "invitations": msgspec.json.Decoder(MInvPage).decode,
    "commenda": msgspec.json.Decoder(MComPage, strict=False).decode,
}


# ---- HTTP loops ----------------------------------------------------------

def next_url(kind, first, nxt):
    if nxt is None:
        return None
    if kind == "pyng":
        return nxt
    return first + ("&" if "?" in first else "?") + "cursor=" + nxt


def requests_loop(kind, first, headers):
    import requests
    n, url, s = 0, first, requests.Session()
    while url:
        items, nxt = BUILDERS[kind](s.get(url, headers=headers).json())
        n += len(items)
        url = next_url(kind, first, nxt)
    return n


def httpx_loop(kind, first, headers):
    import httpx
    n, url = 0, first
    with httpx.Client(headers=headers) as c:
        while url:
            items, nxt = BUILDERS[kind](c.get(url).json())
            n += len(items)
            url = next_url(kind, first, nxt)
    return n


def pycurl_loop(kind, first, headers):
    import pycurl
    c = pycurl.Curl()
    c.setopt(pycurl.HTTPHEADER, [f"{k}: {v}" for k, v in headers.items()])
    c.setopt(pycurl.ENCODING, "gzip")
    n, url = 0, first
    while url:
        buf = io.BytesIO()
        c.setopt(pycurl.URL, url)
        c.setopt(pycurl.WRITEDATA, buf)
        c.perform()
        items, nxt = BUILDERS[kind](orjson.loads(buf.getvalue()))
        n += len(items)
        url = next_url(kind, first, nxt)
    c.close()
    return n


def json_dataclasses(kind, body):
    return BUILDERS[kind](json.loads(body))[0]


def orjson_dataclasses(kind, body):
    return BUILDERS[kind](orjson.loads(body))[0]
