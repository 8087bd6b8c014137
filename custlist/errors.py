"""The custlist exception hierarchy.

Everything custlist raises on purpose derives from :class:`CustlistError`.
HTTP failures are :class:`APIError` subclasses chosen by status and vendor
error code; the transport, decoding and paging failures have their own.
Messages never contain credentials.
"""
from __future__ import annotations

import email.utils
import time

__all__ = [
    "CustlistError", "TransportError", "RequestTimeoutError", "DecodeError",
    "ResponseTooLargeError", "PagingError", "PagingLoopError", "MissingKeyError",
    "IncompleteListingError", "UnsafeURLError",
    "PagerClosedError",
    "APIError", "BadRequestError", "InvalidPaginationLinkError", "InvalidCursorError",
    "AuthenticationError", "PermissionDeniedError", "NotFoundError", "ConflictError",
    "GoneError", "RateLimitError", "ServerError",
]


class CustlistError(Exception):
    """Base class of every error custlist raises."""


class TransportError(CustlistError):
    """The request never produced an HTTP response (connect, DNS, reset...).

    ``curl_code`` is libcurl's code, ``url`` the page requested and
    ``attempts`` how many tries were made before giving up."""

    curl_code: int | None = None
    url: str | None = None
    attempts: int | None = None


class RequestTimeoutError(TransportError):
    """A connect timeout, the per-request timeout or the stall guard fired."""


class PagerClosedError(CustlistError, RuntimeError):
    """The pager cannot fetch: ``close()`` was called (from another thread)
    while a page was on its way, the interpreter is shutting down, or the
    pager was inherited through ``fork()`` (a pager belongs to the process
    that created it: its connection is the parent's).  Records already
    received were delivered; resume from ``cursor`` / ``next_href`` with a
    new pager."""


class DecodeError(CustlistError, ValueError):
    """The body is not the JSON the endpoint describes.  ``offset`` is the
    byte offset in the body where decoding stopped; where a record's field
    failed, ``index`` is the item's index in the page, ``record`` its
    record class, ``field`` the attribute (dotted through nested records,
    ``[i]`` for an element of a list) and ``path`` its wire path: the
    message names them all."""

    def __init__(self, message: str, offset: int | None = None):
        super().__init__(message if offset is None else f"{message} (at byte {offset})")
        self.message = message
        self.offset = offset
        # set by the decoder as the error unwinds, innermost first
        self.where: list[tuple] = []

    def _located(self) -> tuple[int | None, type | str | None, str | None, str | None]:
        fixed = getattr(self, "_fixed", None)
        if fixed is not None:           # unpickled: the names, not the classes
            return fixed
        index: int | None = None
        record: type | None = None
        fields: list[str] = []
        wire: list[str] = []
        current: type | None = None
        for seg in reversed(getattr(self, "where", None) or ()):
            kind = seg[0]
            if kind == "index":
                if record is None and current is None:
                    if index is None:
                        index = seg[1]
                elif wire:
                    wire[-1] += f"[{seg[1]}]"
                    if fields:
                        fields[-1] += f"[{seg[1]}]"
            elif kind == "record":
                current = seg[1]
                if record is None:
                    record = current
            elif kind == "key" and current is not None:
                wire.append(seg[1])
                names = getattr(current, "__fields__", ())
                if seg[2] >= 0 and seg[2] < len(names):
                    fields.append(names[seg[2]])
            elif kind == "missing" and current is not None:
                names = getattr(current, "__fields__", ())
                if seg[1] < len(names):
                    name = names[seg[1]]
                    fields.append(name)
                    defs = getattr(current, "__field_defs__", {})
                    paths = defs[name].paths(name) if name in defs else [(name,)]
                    wire.append(".".join(paths[0]))
            elif kind == "column":
                if seg[1]:
                    wire.append(seg[1])
                if seg[2]:
                    fields.append(seg[2])
        return (index, record, ".".join(fields) or None,
                ".".join(wire).replace(".[", "[") or None)

    @property
    def index(self) -> int | None:
        """The failing item's index in the page (None: not within an item)."""
        return self._located()[0]

    @property
    def record(self) -> str | None:
        """The name of the record class whose field failed."""
        cls = self._located()[1]
        return cls if cls is None or isinstance(cls, str) else cls.__name__

    @property
    def field(self) -> str | None:
        """The field that failed: its attribute name (dotted into nested records)."""
        return self._located()[2]

    @property
    def path(self) -> str | None:
        """The wire path of the field that failed (keys joined by dots)."""
        return self._located()[3]

    def __str__(self) -> str:
        index, record, field, path = self._located()
        if index is None and field is None and path is None:
            return super().__str__()
        parts = []
        if record is not None or field is not None:
            name = ".".join(x for x in (self.record, field) if x)
            parts.append(name + (f" (wire key '{path}')" if path else ""))
        elif path is not None:
            parts.append(f"wire key '{path}'")
        if index is not None:
            parts.append(f"item {index} of the page")
        text = f"{self.message}: {', '.join(parts)}"
        return text if self.offset is None else f"{text} (at byte {self.offset})"

    def __reduce__(self):
        index, _, field, path = self._located()
        state = {k: v for k, v in self.__dict__.items() if k != "where"}
        state["_fixed"] = (index, self.record, field, path)
        return (_rebuild_decode_error, (type(self), self.message, self.offset, state))


def _rebuild_decode_error(cls, message, offset, state):
    exc = cls(message, offset)
    exc.__dict__.update(state)
    return exc


class ResponseTooLargeError(TransportError):
    """The response body exceeded the client's ``max_body`` limit."""


class PagingError(CustlistError):
    """The server's paging data is inconsistent (more pages but no cursor)."""


class PagingLoopError(PagingError):
    """The server handed back a cursor or link it had already sent."""


class MissingKeyError(PagingError):
    """A page lacks a key the endpoint's description says it holds: the
    items (on any page), or the next cursor or link where the page says
    there is more, or where fewer records than its ``total`` have arrived.
    Usually a misspelt key in a ``CursorPaging``/``HrefPaging``.  ``paths``
    lists the wire paths looked for (dotted), ``keys`` the keys the page
    does have where the path stops.  The records before it were delivered;
    the checkpoint resumes right after them (with the description fixed)."""

    def __init__(self, message: str, paths: tuple[str, ...] = (), keys: tuple[str, ...] = ()):
        super().__init__(message)
        self.paths = tuple(paths)
        self.keys = tuple(keys)

    def __reduce__(self):
        return (type(self), (self.args[0] if self.args else "", self.paths, self.keys))


class IncompleteListingError(PagingError):
    """The listing ended with fewer records than the total its pages state:
    ``received`` records arrived in all (across resumes), ``total`` were
    announced.  Every record received was delivered; the checkpoint points
    after the last of them."""

    def __init__(self, message: str, received: int = 0, total: int = 0):
        super().__init__(message)
        self.received = received
        self.total = total

    def __reduce__(self):
        return (type(self), (self.args[0] if self.args else "", self.received, self.total))


class UnsafeURLError(CustlistError, ValueError):
    """A URL would send credentials somewhere they do not belong: another
    origin than the client's, a scheme other than http(s), or plain http to
    a non-loopback host without ``allow_insecure_http=True``."""


class APIError(CustlistError):
    """The API answered with an error status.

    Attributes: ``status`` (HTTP status), ``code`` (the vendor's error code),
    ``message`` (its human-readable text), ``target`` (the parameter or field
    it concerns), ``trace_id`` (the vendor's request id), ``errors`` (every
    error the body listed, as dicts), ``attempts`` (tries made), ``url``,
    ``headers`` (response headers, lower-case names), ``body`` (raw bytes,
    truncated to 4 KiB) and ``retry_after`` (the server's Retry-After in
    seconds, or None)."""

    def __init__(self, message: str | None = None, *, status: int = 0, code: str | None = None,
                 target: str | None = None, trace_id: str | None = None, errors=(),
                 attempts: int = 1, url: str | None = None, headers=None, body: bytes = b""):
        self.status = status
        self.code = code
        self.message = message
        self.target = target
        self.trace_id = trace_id
        self.errors = list(errors)
        self.attempts = attempts
        self.url = url
        self.headers = dict(headers or {})
        self.body = body[:4096]
        super().__init__(self._describe())

    @property
    def retry_after(self) -> float | None:
        """Seconds the server asked to wait (from delay-seconds or an
        HTTP-date), or None when it sent no usable Retry-After."""
        value = self.headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        return max(0.0, when.timestamp() - time.time())

    def _describe(self) -> str:
        text = f"HTTP {self.status}"
        if self.code:
            text += f" {self.code}"
        if self.message:
            text += f": {self.message}"
        if self.target:
            text += f" (target: {self.target})"
        if self.trace_id:
            text += f" [trace {self.trace_id}]"
        if self.attempts > 1:
            text += f" after {self.attempts} attempts"
        return text

    def __reduce__(self):
        kwargs = dict(status=self.status, code=self.code, target=self.target,
                      trace_id=self.trace_id, errors=self.errors, attempts=self.attempts,
                      url=self.url, headers=self.headers, body=self.body)
        return (_rebuild_api_error, (type(self), self.message, kwargs))


def _rebuild_api_error(cls, message, kwargs):
    return cls(message, **kwargs)


class BadRequestError(APIError):
    """400: the request was invalid."""


class InvalidPaginationLinkError(BadRequestError):
    """Pyng rejected a tampered, expired or otherwise invalid nextHref/prevHref.
    Restart paging from the first page."""


class InvalidCursorError(BadRequestError):
    """The API rejected the pagination cursor (invalid or expired)."""


class AuthenticationError(APIError):
    """401, or an OAuth token request refused (``code`` holds the RFC 6749
    error such as ``invalid_client``)."""


class PermissionDeniedError(APIError):
    """403: the credentials lack the scope or access to this resource."""


class NotFoundError(APIError):
    """404."""


class ConflictError(APIError):
    """409."""


class GoneError(APIError):
    """410: for Pyng, the requested API version is retired."""


class RateLimitError(APIError):
    """429 after the retries were used up, or at once when the server's
    Retry-After is longer than ``retry_after_max``.  ``retry_after`` holds
    the server's Retry-After in seconds when it sent one."""


class ServerError(APIError):
    """5xx after the retries were used up."""


_BY_STATUS = {400: BadRequestError, 401: AuthenticationError, 403: PermissionDeniedError,
              404: NotFoundError, 409: ConflictError, 410: GoneError, 429: RateLimitError}


def class_for_status(status: int) -> type[APIError]:
    """The APIError subclass for an HTTP status."""
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, APIError)
