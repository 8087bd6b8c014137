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
import urllib.parse
from typing import Any, NamedTuple

VERSION = 1
_KEYS = {"custlist", "endpoint", "path", "query", "page", "skip", "count", "done"}


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
    parts = re.split(r"\{[^}]*\}", path)
    # a parameter is one path segment, never "." or ".." (which would lead elsewhere)
    param = r"(?!\.\.?(?![^/?#]))[^/?#]+"
    return re.compile("".join(re.escape(p) + param for p in parts[:-1]) + re.escape(parts[-1]))


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
    if not isinstance(cp_path, str) or not _template(endpoint.path).fullmatch(cp_path):
        raise _bad(f"path {cp_path!r} is not one of {endpoint.path}")
    if not isinstance(cp_query, list) or not all(
            isinstance(kv, (list, tuple)) and len(kv) == 2
            and all(isinstance(x, str) for x in kv) for kv in cp_query):
        raise _bad("query must be a list of [name, value] pairs of str")
    for name, value in cp_query:
        if name == endpoint.page_size and not (value.isascii() and value.isdigit()):
            raise _bad(f"page size {name}={value!r} is not a whole number")
    for key in ("skip", "count"):
        if isinstance(cp[key], bool) or not isinstance(cp[key], int) or cp[key] < 0:
            raise _bad(f"{key} must be an int >= 0")
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
        link = urllib.parse.urlsplit(page).path
        own = urllib.parse.urlsplit(base_url + cp_path).path
        if link != own:
            raise _bad(f"its link leads to {link}, not to {own}")
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
