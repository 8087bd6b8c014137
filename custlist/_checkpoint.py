"""Where a listing stands, exactly: ``pager.checkpoint()`` and its reading
back by ``client.resume(checkpoint)`` or a listing's ``start=``; and how
``max_items`` sizes the requests so as not to fetch records it would drop.

A checkpoint is a small JSON-ready dict: the page that holds the next record
(its cursor, or its link on link-paged endpoints; None for the listing's
first page), how many of that page's records were already handed out, and
the listing it belongs to (endpoint name, path and query) so that it cannot
be resumed against another one.  Pages are re-requested with the same query,
so resuming continues with the very next record: mid-page, at a page
boundary, after ``max_items`` or after an error."""
from __future__ import annotations

import re
import unicodedata
import urllib.parse
from typing import Any, NamedTuple

from .errors import UnsafeURLError

VERSION = 1
_KEYS = {"custlist", "endpoint", "path", "query", "page", "skip", "count", "done"}
# The engine counts positions and page sizes in 64-bit signed integers.
_MAX_INT = 2**63 - 1
# Characters a URL may hold before its query (RFC 3986): no backslash, space,
# control or non-ASCII character, which URL parsers read differently.
_URL_HEAD = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/%\[\]]*")
# The query and fragment: no space or control character.
_URL_TAIL = re.compile(r"[^\x00-\x20\x7f]*")


class Listing(NamedTuple):
    """What a pager lists: kept by the pager for its checkpoints."""

    endpoint: Any
    path: str
    query: list
    first: str | None       # link of the first page (link paging, from the query)
    before: int             # records the listing handed out before this pager
    max_items: int | None


class Start(NamedTuple):
    page: str | None
    skip: int
    before: int
    done: bool


def check_max_items(max_items) -> int | None:
    if max_items is None:
        return None
    if isinstance(max_items, bool) or not isinstance(max_items, int):
        raise TypeError(f"max_items must be an int or None, not {type(max_items).__name__}")
    if max_items < 0:
        raise ValueError(f"max_items must not be negative, got {max_items}")
    return max_items


def take(pager) -> dict[str, Any]:
    """The checkpoint of `pager` now."""
    listing = pager._listing
    page, skip, done = pager._position()
    if page is not None and page == listing.first:
        page = None                 # the listing's own first request
    return {"custlist": VERSION, "endpoint": listing.endpoint.name, "path": listing.path,
            "query": [[k, v] for k, v in listing.query], "page": page, "skip": skip,
            "count": listing.before + pager.consumed, "done": done}


def _bad(why: str) -> ValueError:
    return ValueError(f"not a usable checkpoint: {why} (pass what pager.checkpoint() returned)")


def _template(path: str) -> re.Pattern:
    """The endpoint's path with each parameter one captured segment."""
    parts = re.split(r"\{[^}]*\}", path)
    return re.compile("".join(re.escape(p) + r"([^/?#]+)" for p in parts[:-1])
                      + re.escape(parts[-1]))


def _leads_elsewhere(text: str) -> bool:
    """Whether `text`, read as part of a path, holds a segment that servers,
    gateways or file systems may take for "." or "..": split at "/" and at
    "\\", its ";" parameters dropped, a segment of dots and spaces only, also
    once compatibility characters are folded (NFKC: a fullwidth full stop or
    a two-dot leader is dots then); or a control character (a NUL may cut
    it short)."""
    for form in (text, unicodedata.normalize("NFKC", text)):
        if any(ord(ch) < 0x20 or ord(ch) == 0x7f for ch in form):
            return True
        for segment in re.split(r"[/\\]", form):
            segment = segment.split(";", 1)[0]
            if segment and not segment.strip(". "):
                return True
    return False


def _param_segment_ok(segment: str) -> bool:
    """A path parameter exactly as a listing writes it (every character but
    the unreserved ones percent-encoded, in upper case), and no dot segment
    in any decoded form: decoded once, twice... until nothing changes, as a
    chain of servers that each decode it might."""
    try:
        decoded = urllib.parse.unquote(segment, errors="strict")
    except UnicodeDecodeError:
        return False
    if urllib.parse.quote(decoded, safe="") != segment:
        return False
    form = segment
    for _ in range(16):
        if _leads_elsewhere(form):
            return False
        try:
            nxt = urllib.parse.unquote(form, errors="strict")
        except UnicodeDecodeError:
            return False
        if nxt == form:
            return True
        form = nxt
    return False


def _port(parts: urllib.parse.SplitResult) -> int | None:
    try:
        port = parts.port
    except ValueError:
        return -1
    return port if port is not None else {"http": 80, "https": 443}.get(parts.scheme.lower())


def _check_link(page: str, base_url: str, own_path: str) -> None:
    """A checkpoint's link (href and Link paging) must be one the listing
    could have followed: the client's origin (scheme, host, port, no user
    info) and the listing's own path, written plainly."""
    head, _, tail = page.partition("?")
    if "#" in head:
        head, _, tail = page.partition("#")
    if not _URL_HEAD.fullmatch(head) or not _URL_TAIL.fullmatch(tail):
        raise _bad("its link holds characters a URL does not (a backslash, a space, a "
                   "control or non-ASCII character)")
    parts, base = urllib.parse.urlsplit(page), urllib.parse.urlsplit(base_url)
    if (parts.scheme.lower(), parts.hostname, _port(parts)) \
            != (base.scheme.lower(), base.hostname, _port(base)) \
            or "@" in parts.netloc or not parts.netloc:
        raise UnsafeURLError(
            "not a usable checkpoint: its link is not on the client's origin "
            f"{base.scheme}://{base.netloc} (pass what pager.checkpoint() returned)")
    if parts.path != own_path:
        raise _bad(f"its link leads to {parts.path}, not to {own_path}")


def read(cp, endpoint, base_url: str, path: str | None = None,
         query: list | None = None) -> Start:
    """Validate checkpoint `cp` for `endpoint` (and, when given, for the
    listing of `path` and `query`); its position."""
    if not isinstance(cp, dict) or cp.get("custlist") != VERSION:
        raise _bad("not a custlist checkpoint, or one of another version")
    if set(cp) != _KEYS:
        raise _bad(f"keys {sorted(set(cp) ^ _KEYS)} differ")
    if cp["endpoint"] != endpoint.name:
        raise ValueError(f"this checkpoint is of {cp['endpoint']!r}, not {endpoint.name!r}")
    cp_path, cp_query, page = cp["path"], cp["query"], cp["page"]
    matched = _template(endpoint.path).fullmatch(cp_path) if isinstance(cp_path, str) else None
    if matched is None or not all(_param_segment_ok(seg) for seg in matched.groups()):
        raise _bad(f"path {cp_path!r} is not one of {endpoint.path}")
    if not isinstance(cp_query, list) or not all(
            isinstance(kv, (list, tuple)) and len(kv) == 2
            and all(isinstance(x, str) for x in kv) for kv in cp_query):
        raise _bad("query must be a list of [name, value] pairs of str")
    largest = endpoint.max_page_size or _MAX_INT
    for name, value in cp_query:
        if name == endpoint.page_size and not (value.isascii() and value.isdigit()
                                               and len(value) <= 19
                                               and 1 <= int(value) <= largest):
            raise _bad(f"page size {name}={value!r} is not a whole number from 1 to {largest}")
    for key in ("skip", "count"):
        if isinstance(cp[key], bool) or not isinstance(cp[key], int) \
                or not 0 <= cp[key] <= _MAX_INT:
            raise _bad(f"{key} must be an int from 0 to 2**63 - 1")
    # a page never holds more records than the largest page the endpoint sends
    # (all of them handed out: the page that showed a paging error)
    if endpoint.max_page_size is not None and cp["skip"] > endpoint.max_page_size:
        raise _bad(f"skip {cp['skip']} is beyond the largest page of {endpoint.name} "
                   f"({endpoint.max_page_size} records)")
    if not isinstance(cp["done"], bool):
        raise _bad("done must be a bool")
    if page is not None and (not isinstance(page, str) or not page):
        raise _bad("page must be a non-empty str or None")
    pairs = [tuple(kv) for kv in cp_query]
    if path is not None and (cp_path != path or pairs != list(query or ())):
        raise ValueError(
            "this checkpoint was taken from a listing with other arguments "
            f"({cp_path}?{urllib.parse.urlencode(pairs)}): give the same ones, "
            "or call client.resume(checkpoint)")
    if page is not None and endpoint.paging.resume == "href":
        _check_link(page, base_url, urllib.parse.urlsplit(base_url + cp_path).path)
    return Start(page, cp["skip"], cp["count"], cp["done"])


def sizing(endpoint, query: list, max_items: int | None, skip: int,
           from_link: bool) -> tuple[list, dict]:
    """(query, pager settings) so that no record beyond max_items is
    fetched where the endpoint lets the client say how many it wants.

    Cursor paging: every request carries the page size, the last one only
    what remains (the engine adds it).  Link paging: the links repeat the
    first request's page size, so that one is chosen to spread max_items
    evenly over the fewest pages (at most one record per page beyond it)."""
    param, mode = endpoint.page_size, endpoint.paging.mode
    # Page numbers count from the endpoint's first page (0 or 1): the
    # engine needs it to stop at total_pages.
    numbered = {"first_page": int(endpoint.paging.first)} if mode == "page" else {}
    if param is None:
        return query, numbered
    given = dict(query).get(param)
    size = int(given) if given is not None else endpoint.default_page_size
    if size is not None and size > _MAX_INT:
        raise ValueError(f"page size {param}={given} is beyond what custlist counts (2**63 - 1)")
    rest = [kv for kv in query if kv[0] != param]
    # Offset and page paging also need the size asked for, to end on a
    # short page; page numbers count in pages of one size, kept as asked.
    if mode == "page":
        return query, {**numbered, "page_size": size or -1}
    if mode == "offset":
        return rest, {"page_size_param": param, "page_size": size or -1}
    if max_items is None and skip == 0:
        return query, {}
    if mode == "cursor":
        return rest, {"page_size_param": param, "page_size": size or -1}
    if from_link or skip or not max_items or not size:
        return query, {}
    pages = -(-max_items // size)
    first = -(-max_items // pages)
    if given is None:
        return query + [(param, str(first))], {}
    return [(k, str(first) if k == param else v) for k, v in query], {}
