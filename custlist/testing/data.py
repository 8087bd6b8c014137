"""Deterministic data sets for the sandbox, generated from a seed.

The values are realistic and deliberately awkward: non-ASCII names and
emails, quotes, backslashes, control characters, astral-plane emoji, nulls
wherever the vendors' pages allow them, and both key styles where a vendor
has changed its payloads over time."""
from __future__ import annotations

import random
import uuid

NAMES = [
    "Acme Corporation", "Zürich Holding AG", "Société Générale", "株式会社テスト",
    "Straße & Söhne", 'Quote "Inc"', "Back\\slash LLC", "Tab\tCo", "New\nLine Ltd",
    "Rocket 🚀 Labs", "Ünïcödé Ltd", "Slash/Partners", "Ελληνική ΑΕ", "Widgets Pty",
    "O'Brien & Co", "Caffè Nero",
]
PERMISSIONS = ["payments:read", "payments:write", "wallets.read", "payments.create",
               "payments.read"]
STATUSES = ["ACTIVE", "PENDING", "SUSPENDED", "REVOKED", "EXPIRED"]
PLATFORMS = ["shopify", "stripe", "netsuite", "woocommerce"]
JURISDICTIONS = ["US_CA", "US_NY", "US_TX", "US_WA"]
CITIES = [("San Francisco", "CA", "94105"), ("New York", "NY", "10001"),
          ("Austin", "TX", "73301"), ("Seattle", "WA", "98101")]
YEAR_2026_MS = 1767225600000
DAY_MS = 86_400_000


def _hex32(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032x}"


def _name(rng: random.Random, i: int) -> str:
    return f"{rng.choice(NAMES)} {i}"


def _email(rng: random.Random, i: int) -> str:
    local = rng.choice(["ops", "billing", "josé", "ünal", "contact"])
    return f"{local}.{i}@{rng.choice(['acme.com', 'exämple.org', 'natural.co'])}"


def _iso(ms: int, rng: random.Random) -> str:
    import datetime as dt
    t = dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc)
    if rng.random() < 0.5:
        return t.strftime("%Y-%m-%dT%H:%M:%SZ")
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def pyng_customers(rng: random.Random, n: int, unknown_state_every: int = 0) -> list:
    """CustomerSummary items in API order (invitedAt, then reference, descending)."""
    items = []
    for i in range(n):
        ref = f"ACME-{i:04d}" if i % 9 else f"KUNDE-{i:04d}-Ü"
        invited = YEAR_2026_MS + rng.randrange(360 * DAY_MS)
        state = "invited" if rng.random() < 0.45 else "linked"
        if unknown_state_every and i % unknown_state_every == unknown_state_every - 1:
            state = "archived"
        item = {"customerReference": ref, "state": state, "invitedAt": invited}
        if state == "invited":
            item["expiresAt"] = invited + 7 * DAY_MS
        elif state == "linked":
            item["linkedAt"] = invited + rng.randrange(3_600_000, 5 * DAY_MS)
        items.append(item)
    items.sort(key=lambda c: (c["invitedAt"], c["customerReference"]), reverse=True)
    return items


def _party(rng: random.Random, i: int):
    if rng.random() < 0.2:
        return None
    return {"id": "pty_" + _hex32(rng), "name": _name(rng, i),
            "email": None if rng.random() < 0.2 else _email(rng, i)}


def _wallet(rng: random.Random):
    if rng.random() < 0.15:
        return None, None
    minor = rng.randrange(0, 5_000_000)
    return minor, f"{minor // 100}.{minor % 100:02d}"


def natural_customers(rng: random.Random, n: int, unknown_type_every: int = 0) -> list:
    items = []
    for i in range(n):
        if unknown_type_every and i % unknown_type_every == unknown_type_every - 1:
            items.append({"type": "agent_grant", "id": "agr_" + _hex32(rng),
                          "attributes": {"scopes": rng.sample(PERMISSIONS, 2),
                                         "note": _name(rng, i), "level": i}})
            continue
        kind = rng.choice(["party", "delegation_invitation"])
        minor, dollars = _wallet(rng)
        created = YEAR_2026_MS + rng.randrange(300 * DAY_MS)
        items.append({
            "type": kind,
            "id": ("pty_" if kind == "party" else "din_") + _hex32(rng),
            "attributes": {
                "email": None if rng.random() < 0.3 else _email(rng, i),
                "status": rng.choice(STATUSES),
                "permissions": rng.sample(PERMISSIONS, rng.randrange(0, 4)),
                "created_at": _iso(created, rng),
                "wallet_available_minor": minor,
                "wallet_available_dollars": dollars,
                "wallet_access": rng.choice(["granted", "granted", "denied"]),
                "party": _party(rng, i),
            },
        })
    return items


def natural_invitations(rng: random.Random, n: int) -> list:
    items = []
    for i in range(n):
        email = _email(rng, i)
        created = YEAR_2026_MS + rng.randrange(300 * DAY_MS)
        minor, _ = _wallet(rng)
        agents = []
        for _ in range(rng.randrange(0, 4)):
            agents.append({
                "invitationId": "adi_" + _hex32(rng),
                "agent": {"id": "agt_" + _hex32(rng), "name": rng.choice(
                    ["Invoice Agent", "Refunds Agent", "Agent Ωmega", "Reconciler 🤖"])},
                "permissions": rng.sample(PERMISSIONS, rng.randrange(1, 3)),
                "createdAt": _iso(created, rng),
                "expiresAt": _iso(created + 7 * DAY_MS, rng),
            })
        items.append({
            "type": "customerInvitation",
            "id": email,
            "attributes": {
                "status": "PENDING" if rng.random() < 0.9 else "EXPIRED",
                "party": _party(rng, i),
                "email": email,
                "createdAt": _iso(created, rng),
                "walletAvailableMinor": minor,
                "walletAccess": rng.choice(["denied", "granted"]),
                "agentInvitations": agents,
            },
        })
    return items


def _address(rng: random.Random, i: int):
    if i % 11 == 10:
        return None
    city, state, postal = rng.choice(CITIES)
    if i % 4 == 3:                        # an older record: address_line_N keys
        addr = {"address_line_1": f"{i} Old Mill Rd", "address_line_2": f"Unit {i % 7}",
                "address_line_3": "Rear building"}
    else:
        addr = {"line1": f"{100 + i} Main St"}
        if i % 3 == 0:
            addr["line2"] = f"Suite {i}"
    addr.update({"city": city, "state": state, "postal_code": postal, "country": "US"})
    return addr


def _exemption(rng: random.Random):
    if rng.random() < 0.4:
        return {"has_exemption": False, "certificate_type": None, "exemption_jurisdiction": None,
                "expiration_status": None, "exemption_status": None}
    return {"has_exemption": True, "certificate_type": rng.choice(["resale", "exempt_org"]),
            "exemption_jurisdiction": rng.choice(JURISDICTIONS),
            "expiration_status": rng.choice(["ACTIVE", "EXPIRED"]),
            "exemption_status": rng.choice(["ACTIVE", "INACTIVE"])}


def commenda_customers(rng: random.Random, n: int, corporation_id: str) -> list:
    items = []
    for i in range(n):
        ident = str(uuid.UUID(int=rng.getrandbits(128), version=4)) if i % 7 == 6 else f"cust_{i}"
        items.append({
            "id": ident,
            "name": _name(rng, i),
            "email": None if i % 5 == 4 else _email(rng, i),
            "corporation_id": corporation_id,
            "created_at": 1706000000 + rng.randrange(0, 60_000_000),
            "source_platform": rng.choice(PLATFORMS),
            "source_platform_id": f"sp_{corporation_id}_{i}",
            "shipping_address": _address(rng, i),
            "exemption_metadata": _exemption(rng),
        })
    return items
