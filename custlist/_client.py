"""What every vendor client shares: transport settings, the pager factory,
turning error responses into exceptions, and bearer / OAuth credentials."""
from __future__ import annotations

import base64
import concurrent.futures
import contextvars
import functools
import inspect
import json
import math
import os
import threading
import urllib.parse
import weakref
from typing import Any, Callable, Literal, Mapping, Sequence, TypeVar, overload

from . import _checkpoint, _core, _display, _parallel, _progress
from . import errors as _errors
from ._pager import Pager
from ._parallel import ParallelPager
from ._proxy import check_proxy, resolve_proxy
from ._spec import Endpoint, Page, check_base_url
from ._tls import resolve_ca

T = TypeVar("T")
Query = Sequence[tuple[str, object]] | Mapping[str, object] | None

USER_AGENT = f"custlist/0.1.0 libcurl/{_core.libcurl_version}"
# A token response is a few hundred bytes; anything near this is not one.
TOKEN_MAX_BODY = 256 * 1024
# Largest number of seconds any timing setting accepts.
MAX_SECONDS = 1_000_000.0


def check_seconds(name: str, value: object, *, least: float = 0.0) -> float:
    """A timing setting as float seconds, or a ValueError that names it.
    Timeouts pass least=0.001: libcurl counts milliseconds and reads 0 as
    "no limit", so a shorter timeout would silently become none."""
    # the range first: an int too large for a float is refused, not an OverflowError
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not least <= value <= MAX_SECONDS or not math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number of seconds from {least:g} to "
                         f"{MAX_SECONDS:.0f}, not {value!r}")
    return float(value)


def check_token(token: object, what: str = "token") -> str:
    """A bearer token fit for an Authorization header: a non-empty str
    without control characters (a line break would inject headers)."""
    if not isinstance(token, str) or not token.strip():
        raise ValueError(f"{what} must be a non-empty str")
    if any(c < " " or c == "\x7f" for c in token):
        raise ValueError(f"{what} must not contain control characters such as line breaks")
    return token
MAX_DEPTH = 1000              # the engine's bound on max_depth (csrc/decode.h)


def parse_headers(raw: bytes) -> dict:
    """Raw response header lines -> {lower-case name: value}."""
    out = {}
    for line in raw.decode("latin-1").split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        if sep:
            out[name.strip().lower()] = value.strip()
    return out


def parse_json(body: bytes):
    """The body as JSON, or None: a server's error or token body is read
    whatever it holds (nested past the recursion limit, too)."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def first_text(body: bytes) -> str | None:
    """A short human-readable excerpt of a non-JSON body (an HTML proxy page)."""
    text = body[:2048].decode("utf-8", "replace")
    lower = text.lower()
    start = lower.find("<title>")
    if start >= 0:
        end = lower.find("</title>", start)
        text = text[start + 7:end if end > 0 else None]
    text = " ".join(text.split())
    return text[:200] or None


class ErrorFactory:
    """Builds the exception for an error response.

    A vendor subclass overrides ``parse`` to read its error body shape, and
    lists codes that deserve a more specific class in ``by_code``."""

    by_code: dict = {}

    def __call__(self, status, raw_headers, body, url, attempts):
        headers = parse_headers(raw_headers)
        doc = parse_json(body)
        info = self.parse(doc) if doc is not None else {}
        if not info.get("message") and doc is None:
            info["message"] = first_text(body)
        info.setdefault("trace_id", headers.get("x-trace-id") or headers.get("x-request-id"))
        cls = self.by_code.get(info.get("code")) or _errors.class_for_status(status)
        return cls(info.pop("message", None), status=status, attempts=attempts, url=url,
                   headers=headers, body=body, **info)

    def parse(self, doc) -> dict:
        """Generic: {"message"|"error"|"detail", "code"} in whatever shape."""
        if not isinstance(doc, dict):
            return {}
        inner: dict[str, Any] = doc["error"] if isinstance(doc.get("error"), dict) else doc
        message = next((inner[k] for k in ("message", "error_description", "detail", "error")
                        if isinstance(inner.get(k), str)), None)
        code = next((str(inner[k]) for k in ("code", "error_code", "error", "statusCode")
                     if isinstance(inner.get(k), (str, int)) and inner.get(k) != message), None)
        return {"message": message, "code": code}


class BearerToken:
    """A fixed bearer token.  Never shown by repr()."""

    def __init__(self, token: str):
        self._header = "Bearer " + check_token(token)

    def __call__(self, force: bool = False) -> str:
        return self._header

    def __repr__(self) -> str:
        return "BearerToken(***)"


class Transport:
    """How every request of a client travels: timeouts, the stall guard,
    the proxy and the trusted CAs.  The API requests and the OAuth token
    request read the same settings, so the same rules hold for both.

    timeout: total seconds per request; connect_timeout: seconds to connect
    (both at least 0.001); stall_timeout: abort a response that delivers
    under 1 byte/s for this many seconds; proxy: a proxy URL, "" for none,
    None to read the environment (see custlist._proxy); ca_bundle: a PEM
    file or hashed directory of trusted CAs, None to resolve them (see
    custlist._tls); allow_insecure_http: accept plain http to a non-loopback
    host or through a proxy."""

    def __init__(self, *, timeout: float = 60.0, connect_timeout: float = 10.0,
                 stall_timeout: int = 30, proxy: str | None = None,
                 ca_bundle: str | os.PathLike[str] | None = None, allow_insecure_http: bool = False,
                 user_agent: str | None = None):
        self.timeout = check_seconds("timeout", timeout, least=0.001)
        self.connect_timeout = check_seconds("connect_timeout", connect_timeout, least=0.001)
        if isinstance(stall_timeout, bool) or not isinstance(stall_timeout, int) \
                or not 1 <= stall_timeout <= MAX_SECONDS:
            raise ValueError(f"stall_timeout must be an int of seconds from 1 to "
                             f"{MAX_SECONDS:.0f}, not {stall_timeout!r}")
        if proxy is not None and not isinstance(proxy, str):
            raise TypeError("proxy must be a str (a proxy URL, or '' for none) or None")
        self.proxy = check_proxy(proxy) if proxy else proxy
        self.stall_timeout = stall_timeout
        self.ca = resolve_ca(ca_bundle)
        self.allow_insecure_http = bool(allow_insecure_http)
        if user_agent is not None and (not isinstance(user_agent, str)
                                       or any(c < " " or c == "\x7f" for c in user_agent)):
            raise ValueError("user_agent must be a str without control characters "
                             "such as line breaks")
        self.user_agent = user_agent or USER_AGENT

    def for_url(self, url: str) -> dict[str, Any]:
        """The engine's transport keywords for requests to ``url``; raises
        UnsafeURLError for a URL (or a proxy) that would expose credentials."""
        check_base_url(url, self.allow_insecure_http)
        return dict(connect_timeout=self.connect_timeout, timeout=self.timeout,
                    low_speed_limit=1, low_speed_time=self.stall_timeout,
                    user_agent=self.user_agent,
                    proxy=resolve_proxy(url, self.proxy,
                                        allow_insecure_http=self.allow_insecure_http),
                    ca_file=self.ca.file, ca_path=self.ca.path)


class LoopSide:
    """Set (in ``_ON_LOOP``) while an event loop thread calls into a pager
    (custlist._aio): credentials then never fetch a token nor wait for their
    lock there; they hand out the token in hand (fetched off the loop just
    before), or raise ``error``, the failure of that fetch, where a plain
    iteration would have fetched and failed.  ``sent`` is the token handed
    out, so that a 401 renews exactly the token it refused."""

    __slots__ = ("error", "sent")

    def __init__(self, error: BaseException | None = None):
        self.error = error
        self.sent: str | None = None

    def hand_out(self, header: str) -> str:
        if self.error is not None:
            raise self.error
        self.sent = header
        return header


_ON_LOOP: contextvars.ContextVar[LoopSide | None] = contextvars.ContextVar(
    "custlist_on_loop", default=None)


class ClientCredentials:
    """OAuth 2.0 client credentials (RFC 6749 section 4.4): the access token
    is fetched on first use, cached until shortly before it expires, and
    fetched again when the API answers 401.

    The token POST goes through custlist's engine like every API request:
    it never follows a redirect, obeys the timeouts and stall guard, reads
    at most TOKEN_MAX_BODY bytes, and uses the proxy and CA settings of the
    client it is given to (before that, of ``transport``, or the defaults).

    The token lives in a cell (``_core.TokenCell``) that the listings' fetch
    threads read without Python.  Bound to a transport, the cell is given
    the token request, and a fetch thread renews by itself, in C without
    the GIL, when a request it is about to send finds the token missing or
    expiring, or one it sent was refused with 401: one request for every
    listing of the client, whoever (a fetch thread or Python) asks first.
    A renewal that fails there is raised by the listing's consumer from
    the response recorded, with the exception a call here would raise."""

    def __init__(self, token_url: str, client_id: str, client_secret: str,
                 scope: str | None = None, timeout: float = 30.0, *,
                 transport: Transport | None = None):
        for name, value in (("client_id", client_id), ("client_secret", client_secret)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty str")
        self.token_url, self.scope = token_url, scope
        pair = f"{urllib.parse.quote(client_id, safe='')}:{urllib.parse.quote(client_secret, safe='')}"
        self._basic = "Basic " + base64.b64encode(pair.encode()).decode()
        self._lock = threading.Lock()       # held while a token is fetched
        # the token request an event loop waits for (see _token_request)
        self._flight: concurrent.futures.Future[str] | None = None
        self._flight_lock = threading.Lock()   # never held while fetching
        # the token, where the pagers' fetch threads read (and renew) it
        # without Python: the one place it is kept
        self._cell = _core.TokenCell()
        self.timeout = check_seconds("timeout", timeout, least=0.001)
        # Given to a Client, it is bound to the client's transport then; used
        # on its own, to a default one at the first fetch.
        self._request: dict[str, Any] | None = None
        if transport is not None:
            self._bind(transport)

    def _bind(self, transport: Transport) -> None:
        """Send the token request the way ``transport`` says (raises
        UnsafeURLError if that would expose the client secret)."""
        self._request = transport.for_url(self.token_url)
        self.timeout = transport.timeout
        self._cell._configure(*self._token_post(), max_body=TOKEN_MAX_BODY, **self._request)

    def _token_post(self) -> tuple[str, str, tuple[str, ...], bytes]:
        """The token request: method, URL, header lines, form body."""
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        return ("POST", self.token_url,
                (f"Authorization: {self._basic}",
                 "Content-Type: application/x-www-form-urlencoded",
                 "Accept: application/json", "Expect:"),
                urllib.parse.urlencode(form).encode())

    @property
    def fetches(self) -> int:
        """Tokens fetched so far, by a call here or by a fetch thread."""
        return self._cell.generation

    @property
    def _header(self) -> str:
        """The Authorization value in the cell ("" before the first token)."""
        return self._cell._peek()[0]

    def __repr__(self) -> str:
        return f"ClientCredentials(token_url={self.token_url!r}, client_id=***)"

    def __call__(self, force: bool = False) -> str:
        side = _ON_LOOP.get()
        if side is not None and (side.error is not None or self._header):
            return side.hand_out(self._header)
        with self._lock:
            if force or not self._usable(None):
                self._fetch_once(self._cell.generation)
            return self._header

    def _renew(self, refused: int, failed: int = 0) -> str:
        """After a 401 to a request sent with token generation `refused`:
        a new token, unless another listing of the client got one since
        (one renewal serves them all).  ``failed``: a fetch thread's
        renewal for it failed, recorded in the cell under that number: its
        exception is raised, from the response it got."""
        with self._lock:
            if failed:
                self._raise_failed(failed)
            if self._cell.generation == refused or not self._usable(None):
                self._fetch_once(refused)
            return self._header

    def _raise_failed(self, seq: int) -> None:
        """The exception of the renewal a fetch thread made, recorded as
        ``seq``: a failed transfer raises in the cell, a response is read
        here as a fetch reads its own (should it hold a token after all,
        that token is taken)."""
        got = self._cell._failure(seq, self.token_url)
        if got is not None:
            self._accept(*got)

    def _usable(self, stale: str | None) -> bool:
        """The token in hand will do: there is one, it has not expired, and
        it is not ``stale`` (the one a 401 refused)."""
        header, left = self._cell._peek()
        return bool(header) and header != stale and left > 0

    def _fetch_once(self, refused: int) -> None:
        """Fetch a token, unless a renewal in flight (a fetch thread's, or
        another thread's here) brings one newer than generation ``refused``:
        the cell lets one token request go at a time."""
        claimed = False
        try:
            claimed = self._cell._begin(refused)
            if claimed:
                self._fetch()
        finally:
            if claimed:
                self._cell._end()

    def _token_request(self, stale: str | None,
                       start: Callable[[Callable[[], None]], object]) -> \
            concurrent.futures.Future[str] | None:
        """For a caller that must not wait (an event loop): None when the
        token in hand will do, else the one token request that replaces it,
        already under way or started now by ``start(job)`` on another thread.
        However many listings need a token at once, one request serves them
        all; a caller that is cancelled does not cancel it for the others."""
        if self._flight is None and self._usable(stale):
            return None
        with self._flight_lock:
            if self._flight is not None:
                return self._flight
            if self._usable(stale):
                return None
            flight: concurrent.futures.Future[str] = concurrent.futures.Future()
            flight.set_running_or_notify_cancel()      # from now on it cannot be cancelled
            self._flight = flight
        try:
            start(lambda: self._fly(flight, stale))
        except BaseException as e:
            self._land(flight, None, e)
        return flight

    def _fly(self, flight: concurrent.futures.Future[str], stale: str | None) -> None:
        try:
            with self._lock:
                if not self._usable(stale):     # unless a plain call just fetched one
                    self._fetch_once(self._cell.generation)
                header = self._header
        except BaseException as e:
            self._land(flight, None, e)
        else:
            self._land(flight, header, None)

    def _land(self, flight: concurrent.futures.Future[str], header: str | None,
              error: BaseException | None) -> None:
        with self._flight_lock:
            if self._flight is flight:
                self._flight = None
        if error is not None:
            flight.set_exception(error)
        else:
            flight.set_result(header or "")

    def _fetch(self) -> None:
        if self._request is None:
            self._bind(Transport(timeout=self.timeout))
        assert self._request is not None
        self._accept(*_core.request(*self._token_post(), max_body=TOKEN_MAX_BODY,
                                    **self._request))

    def _accept(self, status: int, raw_headers: bytes, body: bytes) -> None:
        """The token response: its token into the cell, or its exception."""
        headers = parse_headers(raw_headers)
        if 300 <= status < 400:
            where = urllib.parse.urlsplit(headers.get("location", ""))
            to = f" to {where.scheme}://{where.netloc}" if where.netloc else ""
            raise _errors.AuthenticationError(
                f"the token endpoint redirected{to}: custlist never follows a redirect with "
                "credentials; configure the final token URL", status=status, url=self.token_url,
                headers=headers, body=body)
        if not 200 <= status < 300:
            raise self._token_error(status, body, headers)
        doc = parse_json(body)
        token = doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(token, str):
            raise _errors.AuthenticationError("token response has no access_token", status=status)
        try:
            check_token(token, "the access_token in the token response")
        except ValueError as e:
            raise _errors.AuthenticationError(str(e), status=status) from None
        if str(doc.get("token_type", "bearer")).lower() != "bearer":
            raise _errors.AuthenticationError(f"unsupported token_type {doc.get('token_type')!r}",
                                              status=status)
        lifetime = doc.get("expires_in")
        lifetime = float(lifetime) if isinstance(lifetime, (int, float)) \
            and not isinstance(lifetime, bool) and math.isfinite(lifetime) else 3600.0
        lifetime = min(max(lifetime, 0.0), 10 * 365 * 86400.0)
        self._cell.set("Bearer " + token, lifetime - min(60.0, lifetime * 0.1))

    @staticmethod
    def _token_error(status, body, headers):
        doc = parse_json(body) or {}
        cls = _errors.AuthenticationError if status in (400, 401) else _errors.class_for_status(status)
        return cls(doc.get("error_description") if isinstance(doc, dict) else None,
                   status=status, code=doc.get("error") if isinstance(doc, dict) else None,
                   headers=headers, body=body)


def make_limiter(rate_limit: Any, pause_max: float) -> _core.RateLimiter | None:
    """The rate limiter every pager of a client shares (see Client)."""
    if rate_limit is False:
        return None
    if rate_limit is None or rate_limit is True:
        return _core.RateLimiter(0, 1.0, pause_max)
    if isinstance(rate_limit, _core.RateLimiter):
        return rate_limit
    if isinstance(rate_limit, tuple) and len(rate_limit) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in rate_limit):
        requests, per = rate_limit
        if 0 < requests <= 1e9 and per > 0:     # (a larger int would not fit a float)
            return _core.RateLimiter(float(requests), float(check_seconds("per", per)), pause_max)
    raise ValueError("rate_limit must be (requests, per_seconds) with both over 0, a "
                     f"custlist.RateLimiter, None or False, not {rate_limit!r}")


class Client:
    """Settings shared by every request of a client.

    timeout: total seconds per request; connect_timeout: seconds to connect;
    stall_timeout: abort a response that delivers under 1 byte/s for this
    many seconds; proxy: a proxy URL, "" for none, None (the default) for
    the environment's; ca_bundle: a PEM file or hashed directory of trusted
    CAs (default: resolved as the README says; TLS is always verified);
    max_retries / backoff / backoff_max: retries of 429, 5xx,
    resets and timeouts with exponential backoff and full jitter;
    retry_after_max: cap on an honoured Retry-After; max_body: largest
    response accepted (bytes); max_depth: deepest JSON nesting accepted
    (at most 1000); max_items_per_page: most array elements (records and
    the values inside them) one page may build, so memory stays in
    proportion to max_body; max_pages: most pages one listing fetches
    (None: no limit) -- asking for one more raises PagingError, with the
    resume point at that page; prefetch: fetch the next page while the
    current one is consumed;
    rate_limit: every pager of the client (threads and fan-outs included)
    shares one rate limiter: (requests, per_seconds) for at most that many
    requests in any per_seconds (evenly spaced; at least one request in 1e6
    seconds), a custlist.RateLimiter to
    share one between clients, None (the default) for no limit of its own,
    False for no limiter at all.  Unless False, the server is heard: a 429's
    Retry-After pauses every pager of the client, and (X-)RateLimit-Remaining
    / -Reset headers hold them back before a 429 (pauses capped at
    retry_after_max); ``client.rate_limiter.stats()`` counts them."""

    _errors = ErrorFactory()
    _endpoints: tuple[Endpoint[Any], ...] = ()      # what resume() may continue

    def __init__(self, *, base_url: str, auth, headers=None, timeout: float = 60.0,
                 connect_timeout: float = 10.0, stall_timeout: int = 30, max_retries: int = 3,
                 backoff: float = 0.5, backoff_max: float = 30.0, retry_after_max: float = 60.0,
                 max_body: int = 64 * 1024 * 1024, max_depth: int = 64,
                 max_items_per_page: int = 1_000_000, max_pages: int | None = None,
                 prefetch: bool = True,
                 allow_insecure_http: bool = False, user_agent: str | None = None,
                 proxy: str | None = None, ca_bundle: str | os.PathLike[str] | None = None,
                 rate_limit: tuple[float, float] | _core.RateLimiter | bool | None = None):
        self.base_url = check_base_url(base_url, allow_insecure_http)
        self._auth = auth
        self._headers = dict(headers or {})
        self._transport = Transport(timeout=timeout, connect_timeout=connect_timeout,
                                    stall_timeout=stall_timeout, proxy=proxy, ca_bundle=ca_bundle,
                                    allow_insecure_http=allow_insecure_http, user_agent=user_agent)
        for name, value in (("backoff", backoff), ("backoff_max", backoff_max),
                            ("retry_after_max", retry_after_max)):
            check_seconds(name, value)
        for name, value, low, high in (("max_retries", max_retries, 0, None),
                                       ("max_body", max_body, 1, None),
                                       ("max_depth", max_depth, 2, MAX_DEPTH),
                                       ("max_items_per_page", max_items_per_page, 1, None),
                                       ("max_pages", 1 if max_pages is None else max_pages, 1,
                                        None)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}")
            if high is not None and value > high:
                raise ValueError(f"{name} must be an int <= {high}")
        self._settings: dict[str, Any] = dict(
            max_retries=max_retries, backoff=float(backoff), backoff_max=float(backoff_max),
            retry_after_max=float(retry_after_max), max_body=max_body, max_depth=max_depth,
            max_items_per_page=max_items_per_page, max_pages=max_pages, prefetch=bool(prefetch),
            **self._transport.for_url(self.base_url))
        if isinstance(auth, ClientCredentials):
            auth._bind(self._transport)
        self.rate_limiter = make_limiter(rate_limit, retry_after_max)
        self._pagers: weakref.WeakSet[Pager[Any]] = weakref.WeakSet()   # closed by close()
        self._closed = False
        # close() and the registration of a new pager exclude each other:
        # every pager is either closed by close() or refused after it
        self._pagers_lock = threading.Lock()

    def __reduce_ex__(self, protocol: Any) -> Any:
        name = type(self).__name__
        raise TypeError(
            f"a {name} client cannot be pickled or copied: it holds connections, a rate "
            f"limiter and credentials. Send a picklable factory instead, such as "
            f"functools.partial(custlist.{name}, ...) with the same arguments, and make the "
            "client where it is used (a process, a dask worker)")

    def __repr__(self) -> str:
        # never raises, even on a client whose __init__ failed half-way
        return f"{type(self).__name__}(base_url={getattr(self, 'base_url', None)!r})"

    def close(self) -> None:
        """Close every pager this client made that is still alive (their
        resume points stay readable); the client makes no new ones."""
        with self._pagers_lock:
            self._closed = True
            pagers = list(self._pagers)
        for pager in pagers:
            pager.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _header_lines(self, extra) -> tuple:
        merged = {"Accept": "application/json", **self._headers, **(extra or {})}
        for name, value in merged.items():
            if any(c in str(name) + str(value) for c in "\r\n"):
                raise ValueError(f"header {name!r} must not contain line breaks")
        return tuple(f"{k}: {v}" for k, v in merged.items())

    @overload
    def paginate(self, endpoint: Endpoint[T], path: str, query: Query = None, *,
                 headers: Mapping[str, str] | None = None, raw: Literal[False] = False,
                 start_cursor: str | None = None, start_href: str | None = None,
                 max_items: int | None = None, start: Mapping[str, Any] | None = None,
                 progress: bool = False, concurrency: None = None,
                 total: None = None) -> Pager[T]: ...
    @overload
    def paginate(self, endpoint: Endpoint[Any], path: str, query: Query = None, *,
                 headers: Mapping[str, str] | None = None, raw: Literal[True],
                 start_cursor: str | None = None, start_href: str | None = None,
                 max_items: int | None = None, start: Mapping[str, Any] | None = None,
                 progress: bool = False, concurrency: None = None,
                 total: None = None) -> Pager[dict[str, Any]]: ...
    @overload
    def paginate(self, endpoint: Endpoint[Any], path: str, query: Query = None, *,
                 headers: Mapping[str, str] | None = None, raw: bool,
                 start_cursor: str | None = None, start_href: str | None = None,
                 max_items: int | None = None, start: Mapping[str, Any] | None = None,
                 progress: bool = False, concurrency: None = None,
                 total: None = None) -> Pager[Any]: ...

    @overload
    def paginate(self, endpoint: Endpoint[T], path: str, query: Query = None, *,
                 headers: Mapping[str, str] | None = None, raw: Literal[False] = False,
                 start_cursor: None = None, start_href: None = None,
                 max_items: int | None = None, start: Mapping[str, Any] | None = None,
                 progress: Literal[False] = False, concurrency: int,
                 total: int | None = None) -> ParallelPager[T]: ...
    @overload
    def paginate(self, endpoint: Endpoint[Any], path: str, query: Query = None, *,
                 headers: Mapping[str, str] | None = None, raw: bool,
                 start_cursor: None = None, start_href: None = None,
                 max_items: int | None = None, start: Mapping[str, Any] | None = None,
                 progress: Literal[False] = False, concurrency: int,
                 total: int | None = None) -> ParallelPager[Any]: ...

    def paginate(self, endpoint: Endpoint[Any], path: str, query: Query = None, *,
                 headers: Mapping[str, str] | None = None, raw: bool = False,
                 start_cursor: str | None = None, start_href: str | None = None,
                 max_items: int | None = None, start: Mapping[str, Any] | None = None,
                 progress: bool = False, concurrency: int | None = None,
                 total: int | None = None) -> Pager[Any] | ParallelPager[Any]:
        """A Pager over `endpoint` starting at base_url + path + query, or at
        a saved start_href / start_cursor, or at an exact checkpoint
        (`start`, taken from a listing with the same path and query).
        ``raw=True`` yields plain dicts; at most `max_items` records;
        ``progress=True`` shows a tqdm bar of them.

        ``concurrency=N`` (offset and page-number paging only; ValueError
        for the others): once the listing's total is known (its first page's
        ``total`` / ``total_pages``, or ``total=``, the records the listing
        holds), the other pages are fetched N at a time, records still in
        order: a ParallelPager (see custlist._parallel)."""
        if concurrency is not None:
            return self._parallel(endpoint, path, query, headers=headers, raw=raw,
                                  start_cursor=start_cursor, start_href=start_href,
                                  max_items=max_items, start=start, progress=progress,
                                  concurrency=concurrency, total=total)
        if total is not None:
            raise ValueError("total= plans the pages of a parallel listing: give it with "
                             "concurrency=")
        if start_cursor is not None and not isinstance(start_cursor, str):
            raise TypeError("start_cursor must be a str")
        if start_href is not None and (not isinstance(start_href, str) or not start_href):
            raise TypeError("start_href must be a non-empty str")
        max_items = _checkpoint.check_max_items(max_items)
        tqdm = _progress.bar_class() if progress else None
        if self._closed:
            raise ValueError(f"this {type(self).__name__} client is closed")
        given = query.items() if isinstance(query, Mapping) else (query or ())
        pairs = [(str(k), str(v)) for k, v in given]
        paging = endpoint.paging
        if paging.first is not None and any(k == paging.param for k, _ in pairs):
            raise ValueError(f"{paging.param!r} is the paging position of this endpoint, "
                             "kept by the pager: resume with start_cursor= or start= instead")
        at = _checkpoint.Start(None, 0, 0, False)
        if start is not None:
            if start_cursor is not None or start_href is not None:
                raise ValueError("give start= or start_cursor / start_href, not both")
            at = _checkpoint.read(start, endpoint, self.base_url, path, pairs)
            if paging.resume == "cursor":
                start_cursor = at.page
            else:
                start_href = at.page
        sent, sizes = _checkpoint.sizing(endpoint, pairs, max_items, at.skip,
                                         from_link=start_href is not None)
        url = self.base_url + path
        if sent:
            url += "?" + urllib.parse.urlencode(sent, quote_via=urllib.parse.quote)
        page_schema, item_schema = endpoint.schemas(raw, deferred=self._settings["prefetch"])
        if start_cursor is None and not at.done:
            start_cursor = paging.first         # offset 0, page 1: said explicitly
        elif paging.mode == "page" and start_cursor is not None and start_cursor.isdigit() \
                and int(start_cursor) < int(paging.first or 0):
            raise ValueError(f"the pages of this endpoint count from {paging.first}, "
                             f"not {start_cursor!r}")
        pager: Pager[Any] = (Pager if tqdm is None else _progress.ProgressPager)(
            start_href or url, page_schema, item_schema, paging.mode,
            self.base_url, self._errors, Page, headers=self._header_lines(headers),
            auth=self._auth, cursor_param=paging.param, start_cursor=start_cursor,
            # a fixed token, or client credentials through their token cell
            # (attached below): the engine's fetch thread may send the next
            # request itself
            auth_static=type(self._auth) in (BearerToken, ClientCredentials),
            max_items=-1 if max_items is None else max_items, skip=at.skip, finished=at.done,
            **sizes, **self._settings)._describe(self.base_url + path, dict(pairs))
        first = None
        if paging.resume == "href" and start_href is None and not at.done:
            first = pager._position()[0]
        elif paging.first is not None:
            first = paging.first
        pager._auth_fn = self._auth
        if type(self._auth) is ClientCredentials:
            self._auth._cell._attach(pager)
        _display.remember_listing(pager, self, headers, raw)
        # From its start or a checkpoint, the records before this pager are
        # known, so an end short of the pages' total is caught.
        given_start = start is None and (start_cursor is not None and start_cursor != paging.first
                                         or start_href is not None)
        pager._count_from(-1 if given_start else at.before)
        pager._listing = _checkpoint.Listing(endpoint, path, pairs, first, at.before, max_items)
        if isinstance(pager, _progress.ProgressPager):
            pager._start_progress(tqdm)
        if self.rate_limiter is not None:
            self.rate_limiter._attach(pager)
        with self._pagers_lock:
            closed = self._closed
            if not closed:
                self._pagers.add(pager)
        if closed:                          # close() ran meanwhile, in another thread
            pager.close()
            raise ValueError(f"this {type(self).__name__} client is closed")
        return pager

    def _parallel(self, endpoint: Endpoint[Any], path: str, query: Query, *,
                  headers: Mapping[str, str] | None, raw: bool, start_cursor: str | None,
                  start_href: str | None, max_items: int | None,
                  start: Mapping[str, Any] | None, progress: bool, concurrency: object,
                  total: object) -> ParallelPager[Any]:
        """paginate(..., concurrency=N): checked before any request."""
        given = query.items() if isinstance(query, Mapping) else (query or ())
        pairs = [(str(k), str(v)) for k, v in given]
        size = _parallel.check_concurrency(endpoint, concurrency, total, pairs)
        if start_cursor is not None or start_href is not None:
            raise ValueError("a parallel listing starts at a checkpoint (start=), not at "
                             "start_cursor / start_href")
        if progress:
            raise ValueError("progress=True shows one pager's progress: not with concurrency=")
        max_items = _checkpoint.check_max_items(max_items)
        skip = 0
        if start is not None:
            skip = _checkpoint.read(start, endpoint, self.base_url, path, pairs).skip
        # the first page alone: it tells the total the others are planned from
        first = max(size - skip, 1) if max_items is None else min(max(size - skip, 1), max_items)
        head = self.paginate(endpoint, path, pairs, headers=headers, raw=raw, max_items=first,
                             start=start)
        assert isinstance(concurrency, int) and (total is None or isinstance(total, int))
        return _parallel.ParallelPager(self, endpoint, path, pairs, head, size, concurrency,
                                       total=total, max_items=max_items, headers=headers,
                                       raw=raw)

    def resume(self, checkpoint: Mapping[str, Any], *, max_items: int | None = None,
               raw: bool = False, progress: bool = False,
               concurrency: int | None = None) -> Pager[Any] | ParallelPager[Any]:
        """Continue a listing from ``pager.checkpoint()`` (a dict, e.g.
        read back from JSON) with the very next record: a Pager of the same
        endpoint, path and filters, handing out at most ``max_items`` more
        (``concurrency=N``: a ParallelPager, see paginate)."""
        name = checkpoint.get("endpoint") if isinstance(checkpoint, dict) else None
        endpoint = next((e for e in self._endpoints if e.name == name), None)
        if endpoint is None:
            known = ", ".join(e.name for e in self._endpoints)
            raise ValueError(f"{type(self).__name__} cannot resume a checkpoint of {name!r} "
                             f"(its listings: {known}); pass what pager.checkpoint() returned")
        _checkpoint.read(checkpoint, endpoint, self.base_url)
        if concurrency is not None:
            return self._parallel(endpoint, checkpoint["path"], checkpoint["query"],
                                  headers=None, raw=raw, start_cursor=None, start_href=None,
                                  max_items=max_items, start=checkpoint, progress=progress,
                                  concurrency=concurrency, total=None)
        return self.paginate(endpoint, checkpoint["path"], checkpoint["query"], raw=raw,
                             max_items=max_items, start=checkpoint, progress=progress)


F = TypeVar("F", bound=Callable[..., None])

# Keywords of Client.__init__ that a vendor client fills in itself.
_NOT_SETTINGS = ("base_url", "auth", "headers")


def takes_settings(init: F) -> F:
    """Decorates a vendor client's ``__init__(self, ..., **settings)``: its
    signature lists Client's transport settings as keyword parameters (so
    help(), editors and the generated stubs show each one, and a setting
    added to Client appears everywhere), and a misspelled keyword is a
    TypeError naming the client before anything else runs."""
    own = inspect.signature(init)
    params = [p for p in own.parameters.values() if p.kind is not p.VAR_KEYWORD]
    taken = {p.name for p in params}
    params += [p for p in inspect.signature(Client.__init__).parameters.values()
               if p.kind is p.KEYWORD_ONLY and p.name not in taken and p.name not in _NOT_SETTINGS]
    sig = own.replace(parameters=params)

    @functools.wraps(init)
    def __init__(self: Client, *args: Any, **kwargs: Any) -> None:
        try:
            sig.bind(self, *args, **kwargs)
        except TypeError as e:
            raise TypeError(f"{type(self).__name__}(): {e}") from None
        init(self, *args, **kwargs)

    __init__.__signature__ = sig  # type: ignore[attr-defined]
    return __init__  # type: ignore[return-value]
