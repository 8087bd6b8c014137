"""What every vendor client shares: transport settings, the pager factory,
turning error responses into exceptions, and bearer / OAuth credentials."""
from __future__ import annotations

import base64
import functools
import inspect
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from typing import Any, Callable, Literal, Mapping, Sequence, TypeVar, overload

from . import _core
from . import errors as _errors
from ._pager import Pager
from ._spec import Endpoint, Page, check_base_url

T = TypeVar("T")
Query = Sequence[tuple[str, str]] | Mapping[str, str] | None

USER_AGENT = f"custlist/0.1.0 libcurl/{_core.libcurl_version}"


def parse_headers(raw: bytes) -> dict:
    """Raw response header lines -> {lower-case name: value}."""
    out = {}
    for line in raw.decode("latin-1").split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        if sep:
            out[name.strip().lower()] = value.strip()
    return out


def parse_json(body: bytes):
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
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
        if not isinstance(token, str) or not token.strip():
            raise ValueError("token must be a non-empty str")
        if any(c in token for c in "\r\n"):
            raise ValueError("token must not contain line breaks")
        self._header = "Bearer " + token

    def __call__(self, force: bool = False) -> str:
        return self._header

    def __repr__(self) -> str:
        return "BearerToken(***)"


class ClientCredentials:
    """OAuth 2.0 client credentials (RFC 6749 section 4.4): the access token
    is fetched on first use, cached until shortly before it expires, and
    fetched again when the API answers 401."""

    def __init__(self, token_url: str, client_id: str, client_secret: str, scope: str | None,
                 timeout: float = 30.0):
        for name, value in (("client_id", client_id), ("client_secret", client_secret)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty str")
        self.token_url, self.scope, self.timeout = token_url, scope, timeout
        pair = f"{urllib.parse.quote(client_id, safe='')}:{urllib.parse.quote(client_secret, safe='')}"
        self._basic = "Basic " + base64.b64encode(pair.encode()).decode()
        self._lock = threading.Lock()
        self._header = ""
        self._expires = 0.0
        self.fetches = 0

    def __repr__(self) -> str:
        return f"ClientCredentials(token_url={self.token_url!r}, client_id=***)"

    def __call__(self, force: bool = False) -> str:
        with self._lock:
            if force or not self._header or time.monotonic() >= self._expires:
                self._fetch()
            return self._header

    def _fetch(self) -> None:
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        req = urllib.request.Request(
            self.token_url, data=urllib.parse.urlencode(form).encode(), method="POST",
            headers={"Authorization": self._basic, "User-Agent": USER_AGENT,
                     "Content-Type": "application/x-www-form-urlencoded",
                     "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                doc = parse_json(resp.read())
        except urllib.error.HTTPError as e:
            raise self._token_error(e.code, e.read(), dict(e.headers)) from None
        except (urllib.error.URLError, OSError) as e:
            raise _errors.TransportError(f"token request failed: {getattr(e, 'reason', e)}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("access_token"), str):
            raise _errors.AuthenticationError("token response has no access_token", status=200)
        if str(doc.get("token_type", "bearer")).lower() != "bearer":
            raise _errors.AuthenticationError(f"unsupported token_type {doc.get('token_type')!r}",
                                              status=200)
        lifetime = doc.get("expires_in")
        lifetime = float(lifetime) if isinstance(lifetime, (int, float)) else 3600.0
        self._header = "Bearer " + doc["access_token"]
        self._expires = time.monotonic() + lifetime - min(60.0, lifetime * 0.1)
        self.fetches += 1

    @staticmethod
    def _token_error(status, body, headers):
        doc = parse_json(body) or {}
        cls = _errors.AuthenticationError if status in (400, 401) else _errors.class_for_status(status)
        return cls(doc.get("error_description") if isinstance(doc, dict) else None,
                   status=status, code=doc.get("error") if isinstance(doc, dict) else None,
                   headers={k.lower(): v for k, v in headers.items()}, body=body)


class Client:
    """Settings shared by every request of a client.

    timeout: total seconds per request; connect_timeout: seconds to connect;
    stall_timeout: abort a response that delivers under 1 byte/s for this
    many seconds; max_retries / backoff / backoff_max: retries of 429, 5xx,
    resets and timeouts with exponential backoff and full jitter;
    retry_after_max: cap on an honoured Retry-After; max_body: largest
    response accepted (bytes); max_depth: deepest JSON nesting accepted;
    prefetch: fetch the next page while the current one is consumed."""

    _errors = ErrorFactory()

    def __init__(self, *, base_url: str, auth, headers=None, timeout: float = 60.0,
                 connect_timeout: float = 10.0, stall_timeout: int = 30, max_retries: int = 3,
                 backoff: float = 0.5, backoff_max: float = 30.0, retry_after_max: float = 60.0,
                 max_body: int = 64 * 1024 * 1024, max_depth: int = 64, prefetch: bool = True,
                 allow_insecure_http: bool = False, user_agent: str | None = None):
        self.base_url = check_base_url(base_url, allow_insecure_http)
        self._auth = auth
        self._headers = dict(headers or {})
        for name, value in (("timeout", timeout), ("connect_timeout", connect_timeout),
                            ("backoff", backoff), ("backoff_max", backoff_max),
                            ("retry_after_max", retry_after_max)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a non-negative number")
        for name, value, low in (("max_retries", max_retries, 0), ("max_body", max_body, 1),
                                 ("max_depth", max_depth, 2), ("stall_timeout", stall_timeout, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}")
        self._settings: dict[str, Any] = dict(
            connect_timeout=float(connect_timeout), timeout=float(timeout),
            low_speed_limit=1, low_speed_time=stall_timeout, max_retries=max_retries,
            backoff=float(backoff), backoff_max=float(backoff_max),
            retry_after_max=float(retry_after_max), max_body=max_body, max_depth=max_depth,
            prefetch=bool(prefetch), user_agent=user_agent or USER_AGENT)
        self._pagers: weakref.WeakSet[Pager[Any]] = weakref.WeakSet()   # closed by close()
        self._closed = False

    def __repr__(self) -> str:
        # never raises, even on a client whose __init__ failed half-way
        return f"{type(self).__name__}(base_url={getattr(self, 'base_url', None)!r})"

    def close(self) -> None:
        """Close every pager this client made that is still alive (their
        resume points stay readable); the client makes no new ones."""
        self._closed = True
        for pager in list(self._pagers):
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
                 start_cursor: str | None = None, start_href: str | None = None) -> Pager[T]: ...
    @overload
    def paginate(self, endpoint: Endpoint[Any], path: str, query: Query = None, *,
                 headers: Mapping[str, str] | None = None, raw: Literal[True],
                 start_cursor: str | None = None,
                 start_href: str | None = None) -> Pager[dict[str, Any]]: ...
    @overload
    def paginate(self, endpoint: Endpoint[Any], path: str, query: Query = None, *,
                 headers: Mapping[str, str] | None = None, raw: bool,
                 start_cursor: str | None = None, start_href: str | None = None) -> Pager[Any]: ...

    def paginate(self, endpoint: Endpoint[Any], path: str, query: Query = None, *,
                 headers: Mapping[str, str] | None = None, raw: bool = False,
                 start_cursor: str | None = None, start_href: str | None = None) -> Pager[Any]:
        """A Pager over `endpoint` starting at base_url + path + query, or at
        a saved start_href / start_cursor.  ``raw=True`` yields plain dicts."""
        if start_cursor is not None and not isinstance(start_cursor, str):
            raise TypeError("start_cursor must be a str")
        if start_href is not None and (not isinstance(start_href, str) or not start_href):
            raise TypeError("start_href must be a non-empty str")
        if self._closed:
            raise ValueError(f"this {type(self).__name__} client is closed")
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
        page_schema, item_schema = endpoint.schemas(raw, deferred=self._settings["prefetch"])
        pager: Pager[Any] = Pager(
            start_href or url, page_schema, item_schema, endpoint.paging.mode,
            self.base_url, self._errors, Page, headers=self._header_lines(headers),
            auth=self._auth, cursor_param=endpoint.paging.param, start_cursor=start_cursor,
            **self._settings)._describe(self.base_url + path, dict(query or ()))
        self._pagers.add(pager)
        return pager


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
