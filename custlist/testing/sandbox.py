"""A faithful local server of the four APIs custlist lists from.

It serves the Pyng, Natural and Commenda endpoints as their documentation
describes them (auth, headers, parameters, limits, defaults, ordering,
paging, error bodies), from deterministic generated data, on a loopback
port.  A generic "demo" API lists one more set of customers in the paging
styles users' own APIs have (see Sandbox.demo_customers): offset/limit,
page numbers with and without a total, and a Link header.  Faults can be injected per route to reproduce what real servers do:
error statuses, Retry-After, latency, reset connections, truncated or
trickled bodies, hostile content.

    with Sandbox(pyng_customers=500) as sb:
        client = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url)
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import http.server
import json
import math
import random
import re
import secrets
import select
import socket
import struct
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field

from . import data as _data

PYNG_VERSION = "urn:pyng:api:billing:version:v1"
PYNG_RETIRED = "urn:pyng:api:billing:version:v0"
PYNG_SCOPE = "billing:customers:read"
_PYNG_ERR = "urn:pyng:platform:billing:error:"
_INVALID_LINK = "The pagination link is not valid. Restart pagination from the first page."


class ApiError(Exception):
    """Raised inside a route: becomes the vendor's error body."""

    def __init__(self, status: int, code: str, message: str, target: str | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.target = status, code, message, target
        self.headers = headers or {}


@dataclass
class Fault:
    """One injected fault; see Sandbox.inject."""

    route: str
    times: int | None = 1
    skip: int = 0
    status: int | None = None
    body: object = None               # bytes, or a callable of the request's query
    headers: dict = field(default_factory=dict)
    content_type: str | None = None
    delay: float = 0.0
    reset: bool = False
    truncate: int | None = None
    trickle: tuple | None = None
    content_length_lie: bool = False
    hits: int = 0
    path: str | None = None
    query: dict | None = None         # only requests whose query holds these pairs


@dataclass
class LoggedRequest:
    route: str
    method: str
    path: str
    query: dict
    headers: dict
    body: bytes
    at: float = 0.0                 # time.monotonic() of its arrival


class _Data:
    """The data sets, in the order each API returns them."""

    def __init__(self):
        self.pyng: dict = {}
        self.demo: list = []
        self.natural_customers: list = []
        self.natural_invitations: list = []
        self.commenda: dict = {}


class _Signer:
    """Opaque, tamper-evident cursors: base64url(JSON) + "." + HMAC."""

    def __init__(self, key: bytes):
        self.key = key

    def sign(self, payload: dict) -> str:
        raw = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode())
        mac = hmac.new(self.key, raw, hashlib.sha256).digest()[:12]
        return raw.decode().rstrip("=") + "." + base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def verify(self, token: str) -> dict | None:
        try:
            raw, mac = token.split(".")
            raw_b = raw.encode() + b"=" * (-len(raw) % 4)
            expected = hmac.new(self.key, base64.urlsafe_b64encode(
                base64.urlsafe_b64decode(raw_b)), hashlib.sha256).digest()[:12]
            given = base64.urlsafe_b64decode(mac.encode() + b"=" * (-len(mac) % 4))
            if not hmac.compare_digest(expected, given):
                return None
            payload = json.loads(base64.urlsafe_b64decode(raw_b))
            return payload if isinstance(payload, dict) else None
        except (ValueError, TypeError):
            return None


def _int_param(query: dict, name: str, default=None, lo=None, hi=None):
    if name not in query:
        return default
    value = query[name]
    if not re.fullmatch(r"-?\d{1,18}", value):
        raise ValueError(name)
    n = int(value)
    if (lo is not None and n < lo) or (hi is not None and n > hi):
        raise ValueError(name)
    return n


class Sandbox:
    """The sandbox server.  Use as a context manager or call start()/stop().

    Data (generated from ``seed``, the same for the same arguments):

    - ``pyng_customers``: customers of Pyng site ``site_1`` (``site_2`` has
      half as many); ``pyng_sites`` more sites ``site_0001``... (listed in
      ``pyng_site_ids``) with ``pyng_site_customers`` customers each.
    - ``natural_customers`` / ``natural_invitations``: Natural's
      ``/customers`` (parties and delegation invitations) and
      ``/customers/invitations``.
    - ``commenda_customers``: customers of Commenda corporation ``corp_123``
      (``corp_456`` has a quarter as many); ``commenda_corporations`` more
      corporations ``corp_0001``... (``commenda_corporation_ids``) with
      ``commenda_corporation_customers`` each.
    - ``demo_customers``: the demo API's customers, served by offset, page
      number and Link header (see ``demo_url``).
    - ``pyng_unknown_state_every`` / ``natural_unknown_type_every``: every
      Nth item has a state or type the clients do not know (0: none).

    Behaviour:

    - ``commenda_shape``: Commenda's body ``"bare"``, ``"wrapped"`` in
      ``data``, or ``"mixed"`` (the two in turn, page by page).
    - ``token_ttl``: seconds a Pyng OAuth token lives; ``link_ttl``: seconds
      a Pyng next or previous link stays valid.
    - ``latency``: seconds each request of a route waits before its answer,
      as a remote server's would: ``{"natural.customers": 0.05}``, or
      ``{"*": 0.05}`` for every route.
    - ``rate_limit``: ``(requests, per_seconds)`` per token, in fixed
      windows; over it, 429 with Retry-After.  ``rate_limit_headers``: how
      each answer tells what is left: ``"x"`` (X-RateLimit-*), ``"ietf"``
      (RateLimit-*) or None.

    Serving: ``host`` and ``port`` (0: a free port) to listen on;
    ``ssl_context``, a server-side ``ssl.SSLContext``, makes it https.

    Each API's address and credentials are properties (``pyng_url``,
    ``pyng_token``, ``pyng_client_id``, ``natural_url``, ``natural_token``,
    ``commenda_url``, ``commenda_token``, ``demo_url``, ``demo_token``...);
    ``inject()`` makes requests fail, ``requests`` logs what arrived."""

    def __init__(self, pyng_customers: int = 120, natural_customers: int = 90,
                 natural_invitations: int = 60, commenda_customers: int = 80, seed: int = 0,
                 commenda_shape: str = "bare", token_ttl: int = 3600, link_ttl: int = 3600,
                 pyng_unknown_state_every: int = 0, natural_unknown_type_every: int = 0,
                 host: str = "127.0.0.1", port: int = 0, ssl_context=None,
                 demo_customers: int = 75, pyng_sites: int = 0, pyng_site_customers: int = 50,
                 commenda_corporations: int = 0, commenda_corporation_customers: int = 30,
                 latency: dict | None = None, rate_limit: tuple | None = None,
                 rate_limit_headers: str | None = "x"):
        if commenda_shape not in ("bare", "wrapped", "mixed"):
            raise ValueError("commenda_shape must be 'bare', 'wrapped' or 'mixed'")
        self.commenda_shape, self.token_ttl, self.link_ttl = commenda_shape, token_ttl, link_ttl
        self.host, self._port = host, port
        # An ssl.SSLContext (server side) makes it an https server.
        self.ssl_context = ssl_context
        rng = random.Random(seed)
        self.data = _Data()
        self.data.pyng["site_1"] = _data.pyng_customers(rng, pyng_customers, pyng_unknown_state_every)
        self.data.pyng["site_2"] = _data.pyng_customers(rng, pyng_customers // 2)
        self.data.natural_customers = _data.natural_customers(rng, natural_customers,
                                                              natural_unknown_type_every)
        self.data.natural_invitations = _data.natural_invitations(rng, natural_invitations)
        self.data.commenda["corp_123"] = _data.commenda_customers(rng, commenda_customers, "corp_123")
        self.data.commenda["corp_456"] = _data.commenda_customers(rng, commenda_customers // 4, "corp_456")
        # The demo API's data and token from their own generator: the other
        # data sets stay what they are for a seed.
        demo_rng = random.Random(f"demo-{seed}")
        self.data.demo = _demo_customers(demo_rng, demo_customers)
        self.demo_token = f"demo_{demo_rng.getrandbits(96):024x}"
        # Many accounts for fan-out: site_0001.., corp_0001.. (also in pyng_site_ids
        # and commenda_corporation_ids), each with its own generated customers,
        # from their own generator too.
        accounts_rng = random.Random(f"accounts-{seed}")
        self.pyng_site_ids = [f"site_{i:04d}" for i in range(1, pyng_sites + 1)]
        for site in self.pyng_site_ids:
            self.data.pyng[site] = _data.pyng_customers(accounts_rng, pyng_site_customers)
        self.commenda_corporation_ids = [f"corp_{i:04d}" for i in range(1, commenda_corporations + 1)]
        for corp in self.commenda_corporation_ids:
            self.data.commenda[corp] = _data.commenda_customers(accounts_rng, commenda_corporation_customers,
                                                                corp)
        # Seconds every request of a route ("pyng.customers", ..., or "*") waits
        # before it is answered, as a remote server's latency would.
        self.latency = dict(latency or {})
        # Requests being answered now (until the handler is done with them).
        self.in_flight = 0
        # The most requests at once whose answers the client could not yet
        # have: each counts from its arrival until just before the bytes that
        # complete its answer go out.  Counting until the handler returns
        # instead would let a client that sends one request at a time, the
        # next on another connection as soon as an answer is whole, find the
        # last one still counted, and look like two at once.
        self.in_flight_max = 0
        self._unanswered = 0
        self.connections = 0                 # TCP connections accepted
        self._open: set = set()              # accepted sockets not yet shut down
        self._arriving = 0                   # requests whose first bytes were read
        # A server-side limit per token: (requests, per seconds) in fixed
        # windows; over it, 429 with Retry-After.  Every answer of a limited
        # route tells what is left: X-RateLimit-Limit/-Remaining/-Reset
        # ("x"), RateLimit-Limit/-Remaining/-Reset ("ietf"), or nothing (None).
        if rate_limit_headers not in ("x", "ietf", None):
            raise ValueError("rate_limit_headers must be 'x', 'ietf' or None")
        self.rate_limit, self.rate_limit_headers = rate_limit, rate_limit_headers
        self._windows: dict = {}             # token -> (window start, requests)
        self.throttled = 0                   # 429s sent by the rate limit
        self.natural_token = f"sk_ntl_sandbox_{rng.getrandbits(96):024x}"
        self.commenda_token = f"cmd_sandbox_{rng.getrandbits(96):024x}"
        self.pyng_token = f"pyng_static_{rng.getrandbits(96):024x}"
        self.pyng_client_id, self.pyng_client_secret = "sandbox-client", f"s3cret-{seed}"
        self.pyng_noscope_client_id = "sandbox-invites-only"
        self.pyng_noscope_client_secret = f"s3cret-noscope-{seed}"
        self.pyng_api_version = PYNG_VERSION
        self._signer = _Signer(secrets.token_bytes(32))
        self._issued: dict = {}              # OAuth token -> (expiry, scope)
        self._lock = threading.Lock()
        self._faults: list = []
        self.requests: list = []
        self._server = None
        self._thread = None

    # ---- lifecycle -------------------------------------------------------

    def start(self) -> "Sandbox":
        handler = type("Handler", (_Handler,), {"sandbox": self})
        self._server = _Server((self.host, self._port), handler)
        self._server.sandbox = self
        if self.ssl_context is not None:
            # the handshake happens in the request's thread, not in accept()
            self._server.socket = self.ssl_context.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False)
        self._thread = threading.Thread(target=self._server.serve_forever, name="custlist-sandbox",
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = None

    def __enter__(self) -> "Sandbox":
        return self.start()

    def busy(self) -> bool:
        """Whether a request may still reach the log: one is being read or
        answered, or bytes wait on an accepted connection or the listener.
        A client that let go of a transfer after sending it (a closed pager's
        page sent ahead) leaves such bytes for the server to read later."""
        with self._lock:
            if self._arriving or self.in_flight:
                return True
            socks = list(self._open)
        if self._server is not None:
            socks.append(self._server.socket)
        try:
            ready, _, _ = select.select(socks, [], [], 0)
        except (OSError, ValueError):         # one closed meanwhile: look again
            return True
        return bool(ready)

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{'https' if self.ssl_context is not None else 'http'}://{host}:{port}"

    @property
    def pyng_url(self) -> str:
        return self.url + "/pyng"

    @property
    def natural_url(self) -> str:
        return self.url + "/natural"

    @property
    def commenda_url(self) -> str:
        return self.url + "/commenda/api/v1"

    @property
    def demo_url(self) -> str:
        return self.url + "/demo"

    # ---- controls --------------------------------------------------------

    def inject(self, route: str, *, times: int | None = 1, skip: int = 0, status: int | None = None,
               body=None, headers: dict | None = None, retry_after: str | None = None,
               content_type: str | None = None, delay: float = 0.0, reset: bool = False,
               truncate: int | None = None, trickle: tuple | None = None,
               content_length_lie: bool = False, path: str | None = None,
               query: dict | None = None) -> Fault:
        """Apply a fault to the next matching requests of `route` ("*" for
        any): after `skip` of them, to `times` of them (None: all).  `path`:
        only requests whose path contains it (one site of many, say);
        `query`: only requests whose query holds these name/value pairs (one
        page of many: ``{"offset": "40"}``).  `body`
        may be a callable of the request's query (a dict) returning the body,
        for servers whose every answer differs."""
        body = _as_body(body)
        hdrs = dict(headers or {})
        if retry_after is not None:
            hdrs["Retry-After"] = str(retry_after)
        fault = Fault(route, times, skip, status, body, hdrs, content_type, delay, reset,
                      truncate, trickle, content_length_lie, path=path,
                      query={str(k): str(v) for k, v in query.items()} if query else None)
        with self._lock:
            self._faults.append(fault)
        return fault

    def _rate_check(self, route: str, headers: dict):
        """Count a request against its token's window: (headers to send,
        over the limit, Retry-After), or None when no limit applies."""
        if self.rate_limit is None or route.endswith(".token"):
            return None
        limit, per = self.rate_limit
        key = headers.get("authorization", "")
        with self._lock:
            now = time.monotonic()
            start, count = self._windows.get(key, (now, 0))
            if now - start >= per:
                start, count = now, 0
            count += 1
            self._windows[key] = (start, count)
            over = count > limit
            if over:
                self.throttled += 1
        reset = str(max(1, math.ceil(start + per - now)))
        prefix = {"x": "X-RateLimit-", "ietf": "RateLimit-"}.get(self.rate_limit_headers)
        sent = {} if prefix is None else {prefix + "Limit": str(limit),
                                         prefix + "Remaining": str(max(limit - count, 0)),
                                         prefix + "Reset": reset}
        return sent, over, reset

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def add_pyng_customers(self, site: str, items: list) -> None:
        """New customers of a Pyng site (CustomerSummary dicts), served from
        the next request on in their place in the API's order: data that
        arrives between two loads."""
        with self._lock:
            rows = self.data.pyng[site] + [dict(c) for c in items]
            rows.sort(key=lambda c: (c["invitedAt"], c["customerReference"]), reverse=True)
            self.data.pyng[site] = rows

    def revoke_pyng_tokens(self) -> None:
        """Every OAuth-issued token stops working (the static one stays valid)."""
        with self._lock:
            self._issued.clear()

    def _take_fault(self, route: str, path: str = "", query: dict | None = None) -> Fault | None:
        chosen = None
        with self._lock:
            for f in self._faults:
                if f.route not in ("*", route) or (f.path is not None and f.path not in path):
                    continue
                if f.query is not None and any((query or {}).get(k) != v
                                               for k, v in f.query.items()):
                    continue
                if f.skip > 0:
                    f.skip -= 1
                elif chosen is None and (f.times is None or f.times > 0):
                    chosen = f
                    f.hits += 1
                    if f.times is not None:
                        f.times -= 1
        return chosen

    # ---- Pyng --------------------------------------------------------------

    def _pyng_auth(self, headers: dict) -> None:
        auth = headers.get("authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else None
        if token == self.pyng_token:
            scope = PYNG_SCOPE
        else:
            with self._lock:
                expiry, scope = self._issued.get(token, (0, ""))
            if time.time() >= expiry:
                raise ApiError(401, _PYNG_ERR + "auth:unauthenticated",
                               "The access token is missing, invalid or expired.")
        if PYNG_SCOPE not in scope.split():
            raise ApiError(403, _PYNG_ERR + "auth:insufficient-scope",
                           f"The access token lacks the scope {PYNG_SCOPE}.", "scope")

    def _pyng_version(self, headers: dict) -> None:
        version = headers.get("pyng-api-version")
        if version is None:
            raise ApiError(400, _PYNG_ERR + "version:missing",
                           "The Pyng-Api-Version header is required.", "Pyng-Api-Version")
        if version == PYNG_RETIRED:
            raise ApiError(410, _PYNG_ERR + "version:gone", "This API version is retired.",
                           "Pyng-Api-Version",
                           headers={"Deprecation": "@1767225600", "Sunset": "Thu, 01 Jan 2026 00:00:00 GMT"})
        if version != PYNG_VERSION:
            raise ApiError(400, _PYNG_ERR + "version:unsupported",
                           "The requested API version is not supported.", "Pyng-Api-Version")

    def pyng_customers(self, site: str, query: dict, headers: dict) -> dict:
        self._pyng_auth(headers)
        self._pyng_version(headers)
        if site not in self.data.pyng:
            raise ApiError(403, _PYNG_ERR + "auth:forbidden",
                           "The site does not belong to the calling organisation.", "siteId")
        if "cursor" in query:
            state = self._signer.verify(query["cursor"])
            target = "prevHref" if state and state.get("d") == "p" else "nextHref"
            if (state is None or state.get("s") != site
                    or time.time() - state.get("t", 0) > self.link_ttl):
                raise ApiError(400, _PYNG_ERR + "customers:invalid-pagination-link",
                               _INVALID_LINK, target)
            offset, limit, filters = state["o"], state["l"], state["f"]
        else:
            offset, filters = 0, {}
            try:
                limit = _int_param(query, "limit", 50, 1, 100)
            except ValueError:
                raise ApiError(400, _PYNG_ERR + "validation:invalid-limit",
                               "limit must be an integer between 1 and 100.", "limit") from None
            if "state" in query:
                if query["state"] not in ("invited", "linked"):
                    raise ApiError(400, _PYNG_ERR + "validation:invalid-state",
                                   "state must be one of invited, linked.", "state")
                filters["state"] = query["state"]
            for name in ("invitedFrom", "invitedTo"):
                try:
                    value = _int_param(query, name, None, 0)
                except ValueError:
                    raise ApiError(400, _PYNG_ERR + "validation:invalid-timestamp",
                                   f"{name} must be a unix timestamp in milliseconds.", name) from None
                if value is not None:
                    filters[name] = value
            if filters.get("invitedFrom", 0) > filters.get("invitedTo", float("inf")):
                raise ApiError(400, _PYNG_ERR + "validation:invalid-range",
                               "invitedFrom must not be after invitedTo.", "invitedFrom")
        rows = [c for c in self.data.pyng[site]
                if c["state"] == filters.get("state", c["state"])
                and filters.get("invitedFrom", 0) <= c["invitedAt"] <= filters.get("invitedTo", 1 << 62)]
        page = {"items": rows[offset:offset + limit], "totalItems": len(rows)}
        base = f"{self.pyng_url}/billing/sites/{site}/customers?limit={limit}&cursor="
        now = int(time.time())
        if offset + limit < len(rows):
            page["nextHref"] = base + urllib.parse.quote(self._signer.sign(
                {"s": site, "o": offset + limit, "l": limit, "f": filters, "d": "n", "t": now}), safe="")
        if offset > 0:
            page["prevHref"] = base + urllib.parse.quote(self._signer.sign(
                {"s": site, "o": max(0, offset - limit), "l": limit, "f": filters, "d": "p", "t": now}),
                safe="")
        return {"data": page, "traceId": str(uuid.uuid4())}

    def pyng_token_grant(self, headers: dict, body: bytes) -> dict:
        auth = headers.get("authorization", "")
        try:
            cid, _, secret = base64.b64decode(auth[6:]).decode().partition(":") \
                if auth.startswith("Basic ") else ("", "", "")
        except (ValueError, UnicodeDecodeError):
            cid, secret = "", ""
        cid, secret = urllib.parse.unquote(cid), urllib.parse.unquote(secret)
        clients = {self.pyng_client_id: (self.pyng_client_secret, PYNG_SCOPE),
                   self.pyng_noscope_client_id: (self.pyng_noscope_client_secret,
                                                 "billing:invitations:write")}
        if cid not in clients or not hmac.compare_digest(clients[cid][0], secret):
            raise ApiError(401, "invalid_client", "Client authentication failed.")
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        if form.get("grant_type") != ["client_credentials"]:
            raise ApiError(400, "unsupported_grant_type", "Only client_credentials is supported.")
        allowed = clients[cid][1]
        scope = form.get("scope", [allowed])[0]
        if not set(scope.split()) <= {PYNG_SCOPE, "billing:invitations:write"}:
            raise ApiError(400, "invalid_scope", "The requested scope is unknown.")
        if scope == PYNG_SCOPE and allowed != PYNG_SCOPE:
            scope = allowed                         # granted what the client is allowed
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._issued[token] = (time.time() + self.token_ttl, scope)
        return {"access_token": token, "token_type": "Bearer", "expires_in": self.token_ttl,
                "scope": scope}

    def pyng_invite(self, site: str, headers: dict, body: bytes) -> dict:
        self._pyng_auth_any(headers)
        self._pyng_version(headers)
        if site not in self.data.pyng:
            raise ApiError(403, _PYNG_ERR + "auth:forbidden", "Unknown site.", "siteId")
        try:
            ref = json.loads(body)["customerReference"]
            assert isinstance(ref, str) and ref
        except Exception:
            raise ApiError(400, _PYNG_ERR + "validation:invalid-body",
                           "customerReference is required.", "customerReference") from None
        now = int(time.time() * 1000)
        item = {"customerReference": ref, "state": "invited", "invitedAt": now,
                "expiresAt": now + 7 * _data.DAY_MS}
        with self._lock:
            self.data.pyng[site].insert(0, item)
        return {"data": {"customerReference": ref,
                         "signupUrl": f"{self.url}/signup/{secrets.token_urlsafe(8)}",
                         "expiresAt": item["expiresAt"], "state": "invited"},
                "traceId": str(uuid.uuid4())}

    def _pyng_auth_any(self, headers: dict) -> None:
        token = headers.get("authorization", "")[7:]
        with self._lock:
            ok = token == self.pyng_token or time.time() < self._issued.get(token, (0, ""))[0]
        if not ok:
            raise ApiError(401, _PYNG_ERR + "auth:unauthenticated", "Invalid access token.")

    # ---- Natural -----------------------------------------------------------

    def _natural_checks(self, query: dict, headers: dict, instance_required: bool) -> int:
        if headers.get("authorization") != "Bearer " + self.natural_token:
            raise ApiError(401, "unauthenticated", "Missing or invalid API key.")
        agent = headers.get("x-agent-id")
        instance = headers.get("x-instance-id")
        if agent is not None and not re.fullmatch(r"agt_[0-9a-f]{32}", agent):
            raise ApiError(400, "invalid_value", "X-Agent-ID must look like agt_xxx.",
                           {"header": "X-Agent-ID"})
        if agent is not None and instance is None and instance_required:
            raise ApiError(400, "invalid_value", "X-Instance-ID is required with X-Agent-ID.",
                           {"header": "X-Instance-ID"})
        if instance is not None and len(instance) > 1024:
            raise ApiError(400, "invalid_value", "X-Instance-ID is longer than 1024 characters.",
                           {"header": "X-Instance-ID"})
        try:
            return _int_param(query, "limit", 20, 1, 100)
        except ValueError:
            raise ApiError(400, "invalid_value", "limit must be between 1 and 100.",
                           {"pointer": "/limit"}) from None

    def _natural_page(self, rows: list, query: dict, limit: int, kind: str) -> tuple:
        offset = 0
        if query.get("cursor"):
            state = self._signer.verify(query["cursor"])
            if state is None or state.get("k") != kind:
                raise ApiError(400, "invalid_pagination_cursor", "The pagination cursor is invalid.",
                               {"parameter": "cursor"})
            offset = state["o"]
        end = offset + limit
        more = end < len(rows)
        cursor = self._signer.sign({"k": kind, "o": end}) if more else None
        return rows[offset:end], more, cursor

    def natural_customers(self, query: dict, headers: dict) -> dict:
        limit = self._natural_checks(query, headers, instance_required=False)
        rows, more, cursor = self._natural_page(self.data.natural_customers, query, limit, "c")
        return {"data": rows, "meta": {"pagination": {"has_more": more, "next_cursor": cursor}}}

    def natural_invitations(self, query: dict, headers: dict) -> dict:
        limit = self._natural_checks(query, headers, instance_required=True)
        rows, more, cursor = self._natural_page(self.data.natural_invitations, query, limit, "i")
        return {"data": rows, "meta": {"pagination": {"hasMore": more, "nextCursor": cursor}}}

    # ---- Commenda ----------------------------------------------------------

    _COMMENDA_LISTS = ("source_platforms", "source_platform_ids", "certificate_types")

    def commenda_customers(self, query: dict, headers: dict) -> dict:
        if headers.get("authorization") != "Bearer " + self.commenda_token:
            raise ApiError(401, "UNAUTHORIZED", "Invalid or missing bearer token.")
        corp = query.get("corporation_id")
        if not corp:
            raise ApiError(400, "BAD_REQUEST", "corporation_id is required.")
        try:
            limit = _int_param(query, "limit", 10, 1, 100)
        except ValueError:
            raise ApiError(400, "BAD_REQUEST", "limit must be between 1 and 100.") from None
        extend = set(filter(None, query.get("extend", "").split(",")))
        if not extend <= {"shipping_address", "exemption_metadata"}:
            raise ApiError(400, "BAD_REQUEST", "extend accepts shipping_address, exemption_metadata.")
        if query.get("has_exemption", "true") not in ("true", "false"):
            raise ApiError(400, "BAD_REQUEST", "has_exemption must be true or false.")
        rows = [c for c in self.data.commenda.get(corp, []) if self._commenda_match(c, query)]
        offset, page_no = 0, 0
        if "cursor" in query:
            state = self._signer.verify(query["cursor"])
            if state is None or state.get("k") != "m":
                raise ApiError(400, "BAD_REQUEST", "Invalid cursor.")
            offset, page_no = state["o"], state["p"]
        end = offset + limit
        items = [self._commenda_view(c, extend) for c in rows[offset:end]]
        cursor = self._signer.sign({"k": "m", "o": end, "p": page_no + 1}) if end < len(rows) else None
        body = {"customers": items, "total_customers": len(rows), "cursor": cursor}
        shape = self.commenda_shape
        if shape == "mixed":
            if cursor is None:
                del body["cursor"]             # the end, said by absence
            shape = "wrapped" if page_no % 2 else "bare"
        if shape == "wrapped":
            return {"data": body, "message": "Successfully fetched customers."}
        return body

    def _commenda_match(self, c: dict, q: dict) -> bool:
        meta = c["exemption_metadata"]
        lists = {k: q[k].split(",") for k in self._COMMENDA_LISTS if k in q}
        return all([
            "name" not in q or c["name"] == q["name"],
            "search_term" not in q or q["search_term"].lower() in c["name"].lower(),
            "source_platforms" not in lists or c["source_platform"] in lists["source_platforms"],
            "source_platform_ids" not in lists or c["source_platform_id"] in lists["source_platform_ids"],
            "certificate_types" not in lists or meta["certificate_type"] in lists["certificate_types"],
            "exemption_jurisdiction" not in q or meta["exemption_jurisdiction"] == q["exemption_jurisdiction"],
            "expiration_status" not in q or meta["expiration_status"] == q["expiration_status"],
            "exemption_status" not in q or meta["exemption_status"] == q["exemption_status"],
            "has_exemption" not in q or meta["has_exemption"] == (q["has_exemption"] == "true"),
        ])

    @staticmethod
    def _commenda_view(c: dict, extend: set) -> dict:
        return {k: v for k, v in c.items()
                if k not in ("shipping_address", "exemption_metadata") or k in extend}

    # ---- demo: the paging styles of users' own APIs ------------------------
    #
    #   GET /demo/offset/customers?offset=0&limit=20    {"items", "total"}
    #   GET /demo/pages/customers?page=1&per_page=20    {"data", "page", "total_pages"}
    #   GET /demo/numbered/customers?page=1&per_page=20 {"data"} (ends on a short page)
    #   GET /demo/linked/customers?per_page=20          {"customers"} + Link: <...>; rel="next"
    #
    # limit / per_page: 1 to 50, default 20.  Bearer demo_token.

    @staticmethod
    def _demo_int(query: dict, name: str, default: int, lo: int, hi: int | None = None) -> int:
        try:
            return _int_param(query, name, default, lo, hi)
        except ValueError:
            upto = f" and at most {hi}" if hi is not None else ""
            raise ApiError(400, "bad_request", f"{name} must be a number >= {lo}{upto}.") from None

    def _demo_checks(self, query: dict, headers: dict, size: str) -> int:
        if headers.get("authorization") != "Bearer " + self.demo_token:
            raise ApiError(401, "unauthorized", "Invalid or missing bearer token.")
        return self._demo_int(query, size, 20, 1, 50)

    def demo_offset(self, query: dict, headers: dict) -> dict:
        limit = self._demo_checks(query, headers, "limit")
        offset = self._demo_int(query, "offset", 0, 0)
        rows = self.data.demo
        return {"items": rows[offset:offset + limit], "total": len(rows)}

    def _demo_page(self, query: dict, headers: dict) -> tuple:
        per_page = self._demo_checks(query, headers, "per_page")
        page = self._demo_int(query, "page", 1, 1)
        start = (page - 1) * per_page
        return self.data.demo[start:start + per_page], page, per_page

    def demo_pages(self, query: dict, headers: dict) -> dict:
        rows, page, per_page = self._demo_page(query, headers)
        pages = -(-len(self.data.demo) // per_page)
        return {"data": rows, "page": page, "total_pages": pages}

    def demo_numbered(self, query: dict, headers: dict) -> dict:
        return {"data": self._demo_page(query, headers)[0]}

    def demo_linked(self, query: dict, headers: dict) -> tuple:
        per_page = self._demo_checks(query, headers, "per_page")
        rows, start = self.data.demo, 0
        if "after" in query:
            start = next((i + 1 for i, c in enumerate(rows) if c["id"] == query["after"]), None)
            if start is None:
                raise ApiError(400, "bad_request", "after is not a customer id.")
        page = rows[start:start + per_page]
        base = f"{self.url}/demo/linked/customers?per_page={per_page}"
        links = [f'<{base}>; rel="first"']
        if start + per_page < len(rows):
            links.insert(0, f'<{base}&after={page[-1]["id"]}>; rel="next"')
        return {"customers": page}, {"Link": ", ".join(links)}

    # ---- error bodies ------------------------------------------------------

    def error_body(self, vendor: str, e: ApiError) -> dict:
        if vendor == "pyng.token":
            return {"error": e.code, "error_description": e.message}
        if vendor.startswith("pyng"):
            err = {"code": e.code, "displayMessage": e.message}
            if e.target:
                err["target"] = e.target
            return {"errors": [err], "traceId": str(uuid.uuid4())}
        if vendor.startswith("natural"):
            err = {"code": e.code, "detail": e.message, "status": str(e.status),
                   "meta": {"supportId": "sup_" + secrets.token_hex(8)}}
            if e.target:
                err["source"] = e.target
            return {"errors": [err]}
        return {"message": e.message, "statusCode": e.status, "error": e.code}


_DEFAULT_CODES = {
    "pyng": {400: "validation:bad-request", 401: "auth:unauthenticated", 403: "auth:forbidden",
             404: "resource:not-found", 409: "resource:conflict", 410: "version:gone",
             429: "rate:too-many-requests"},
    "natural": {400: "invalid_value", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
                409: "conflict", 429: "rate_limited", 500: "server_error", 502: "bad_gateway",
                503: "service_unavailable"},
}


def _demo_customers(rng: random.Random, n: int) -> list:
    """The demo API's customers: plain flat records, oldest first."""
    plans = ("free", "pro", "team")
    out = []
    for i in range(1, n + 1):
        name = f"{rng.choice(_DEMO_FIRST)} {rng.choice(_DEMO_LAST)}"
        out.append({"id": f"dcus_{i:05d}", "name": name,
                    "email": f"{name.lower().replace(' ', '.')}.{i}@example.com",
                    "plan": rng.choice(plans), "created": 1_700_000_000 + i * 3_600})
    return out


_DEMO_FIRST = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Radia", "Donald")
_DEMO_LAST = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Perlman")


def _as_body(body):
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    return body


def _fault_error(vendor: str, status: int) -> ApiError:
    family = "pyng" if vendor.startswith("pyng") else vendor.split(".")[0]
    codes = _DEFAULT_CODES.get(family, {})
    code = codes.get(status, "server:internal" if status >= 500 else f"http-{status}")
    if family == "pyng":
        code = _PYNG_ERR + code
    return ApiError(status, code, http.HTTPStatus(status).phrase if status in
                    http.HTTPStatus._value2member_map_ else "Error")


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def process_request(self, request, client_address):
        with self.sandbox._lock:
            self.sandbox._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self.sandbox._lock:
            self.sandbox._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address):
        # A client that goes away mid-response (a pager closed early, a
        # timeout) is routine here, not worth a traceback.
        import ssl
        import sys
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError, ssl.SSLError)):
            super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    sandbox: Sandbox
    _counted = False                     # in the sandbox's count of unanswered requests
    server_version = "custlist-sandbox"

    def setup(self):
        super().setup()
        with self.sandbox._lock:
            self.sandbox.connections += 1
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle_one_request(self):
        # Wait for the next request's first bytes, then count it as arriving
        # until it is answered, so that busy() sees it while it is parsed.
        if not self.rfile.peek(1):
            self.close_connection = True
            return
        sb = self.sandbox
        with sb._lock:
            sb._arriving += 1
        try:
            super().handle_one_request()
        finally:
            with sb._lock:
                sb._arriving -= 1

    def log_message(self, fmt, *args):      # quiet
        pass

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def _route(self, method: str, path: str):
        sb = self.sandbox
        m = re.fullmatch(r"/pyng/billing/sites/([^/]+)/customers(/invitations)?", path)
        if m and method == "GET" and not m.group(2):
            site = urllib.parse.unquote(m.group(1))
            return "pyng.customers", lambda q, h, b: (200, sb.pyng_customers(site, q, h))
        if m and method == "POST" and m.group(2):
            site = urllib.parse.unquote(m.group(1))
            return "pyng.invitations", lambda q, h, b: (201, sb.pyng_invite(site, h, b))
        if path == "/pyng/billing/oauth2/token" and method == "POST":
            return "pyng.token", lambda q, h, b: (200, sb.pyng_token_grant(h, b))
        if path == "/natural/customers" and method == "GET":
            return "natural.customers", lambda q, h, b: (200, sb.natural_customers(q, h))
        if path == "/natural/customers/invitations" and method == "GET":
            return "natural.invitations", lambda q, h, b: (200, sb.natural_invitations(q, h))
        if path == "/commenda/api/v1/customers" and method == "GET":
            return "commenda.customers", lambda q, h, b: (200, sb.commenda_customers(q, h))
        if path == "/demo/linked/customers" and method == "GET":
            return "demo.linked", lambda q, h, b: (200, *sb.demo_linked(q, h))
        m = re.fullmatch(r"/demo/(offset|pages|numbered)/customers", path)
        if m and method == "GET":
            serve = getattr(sb, "demo_" + m.group(1))
            return "demo." + m.group(1), lambda q, h, b: (200, serve(q, h))
        return "unknown", None

    def _dispatch(self, method: str):
        parts = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        headers = {k.lower(): v for k, v in self.headers.items()}
        length = int(headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        route, handler = self._route(method, parts.path)
        sb = self.sandbox
        with sb._lock:
            sb.requests.append(LoggedRequest(route, method, parts.path, query, headers, body,
                                             time.monotonic()))
            sb.in_flight += 1
            sb._unanswered += 1
            sb.in_flight_max = max(sb.in_flight_max, sb._unanswered)
        self._counted = True
        try:
            self._answer(method, parts.path, route, handler, query, headers, body)
        finally:
            self._answered()
            with sb._lock:
                sb.in_flight -= 1

    def _answered(self):
        """The answer's last bytes go out next (or none will): the client may
        have it whole from now on."""
        if self._counted:
            self._counted = False
            with self.sandbox._lock:
                self.sandbox._unanswered -= 1

    def _answer(self, method, path, route, handler, query, headers, body):
        sb = self.sandbox
        limit = sb._rate_check(route, headers) if handler is not None else None
        delay = sb.latency.get(route, sb.latency.get("*", 0.0))
        if delay and not (limit and limit[1]):
            time.sleep(delay)
        fault = sb._take_fault(route, path, query)
        extra = {}
        try:
            if handler is None:
                raise ApiError(404, "not_found", f"No route for {method} {path}")
            if limit is not None and limit[1]:
                over = _fault_error(route, 429)
                over.headers = {**limit[0], "Retry-After": limit[2]}
                raise over
            if fault is not None and fault.status is not None:
                raise _fault_error(route, fault.status)
            status, doc, *more = handler(query, headers, body)
            extra = dict(more[0]) if more else {}
        except ApiError as e:
            status, doc, extra = e.status, sb.error_body(route, e), e.headers
        if limit is not None:
            extra = {**limit[0], **extra}
        ascii_only = route == "natural.invitations"
        payload = json.dumps(doc, separators=(",", ":"), ensure_ascii=ascii_only).encode()
        content_type = "application/json;charset=UTF-8"
        if fault is not None:
            if fault.body is not None and fault.status is None:
                status = 200                  # the injected body is the whole answer
            if callable(fault.body):
                payload = _as_body(fault.body(query))
            elif fault.body is not None:
                payload = fault.body
            content_type = fault.content_type or content_type
            extra = {**extra, **fault.headers}
        self._send(status, payload, content_type, extra, headers, fault)

    def _send(self, status, payload, content_type, extra, req_headers, fault):
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if fault is not None and fault.reset:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        if "gzip" in req_headers.get("accept-encoding", "") and fault is None:
            payload = gzip.compress(payload, compresslevel=1)
            extra = {**extra, "Content-Encoding": "gzip"}
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        length = len(payload) + (100 if fault is not None and fault.content_length_lie else 0)
        self.send_header("Content-Length", str(length))
        for k, v in extra.items():
            self.send_header(k, v)
        if not length:
            self._answered()                 # the headers are the whole answer
        self.end_headers()
        if fault is not None and fault.truncate is not None:
            self._answered()
            self.wfile.write(payload[:fault.truncate])
            self.wfile.flush()
            self.close_connection = True
            return
        if fault is not None and fault.trickle:
            chunk, interval = fault.trickle
            try:
                for i in range(0, len(payload), chunk):
                    if i + chunk >= len(payload):
                        self._answered()
                    self.wfile.write(payload[i:i + chunk])
                    self.wfile.flush()
                    time.sleep(interval)
            except OSError:
                self.close_connection = True
            return
        self._answered()
        if fault is not None and fault.content_length_lie:
            self.wfile.write(payload)
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(payload)
