"""How records look outside Python code: JSON-ready values, IPython and
Jupyter display, and tables of records.

    json.dumps(record.to_json_dict())     # ISO timestamps, decimal strings, enum values
    custlist.table(records)               # a list of records as a table (HTML in Jupyter)
"""
from __future__ import annotations

import datetime as _dt
import decimal
import enum
import html
import itertools
import re
import unicodedata
import weakref
from typing import Any, Iterable

from . import _core

__all__ = ["jsonable", "table", "Table", "RecordDisplay", "visible"]


def jsonable(value: Any) -> Any:
    """`value` (a record, or anything a record holds) as data ``json.dumps``
    accepts: records become dicts, tuples lists, timestamps ISO 8601 strings
    (UTC as ``Z``), decimals strings (no precision lost), enums their wire
    value.  Other values are returned as they are."""
    if isinstance(value, _core.Record):
        return {name: jsonable(getattr(value, name)) for name in type(value).__fields__}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, _dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, (_dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    return value


# Characters a terminal acts on instead of showing (C0 and C1 controls: ESC
# starts the sequences that move the cursor or retitle the window, BEL
# rings, CSI is ESC [ in one), and the invisible marks that reorder the text
# around them (bidirectional overrides).  Text from a server shows them as
# escapes, never sends them to the screen.
_UNSHOWN = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """`text` with its control characters (C0, DEL, C1) and bidirectional
    marks written as escapes (``\\x1b``, ``\\u202e``): safe to print to a
    terminal whatever a server sent."""
    return _UNSHOWN.sub(_escape, text)


def _char_width(ch: str) -> int:
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def text_width(text: str) -> int:
    """Columns `text` takes on a terminal: CJK and most emoji take two,
    combining marks and zero-width characters none."""
    if text.isascii():
        return len(text)
    return sum(_char_width(ch) for ch in text)


def pad(text: str, width: int) -> str:
    """`text` padded with spaces to `width` terminal columns."""
    return text + " " * (width - text_width(text))


def clip(text: str, width: int) -> str:
    """`text` cut to at most `width` terminal columns, an ellipsis marking
    the cut."""
    if text_width(text) <= width:
        return text
    out, used = [], 0
    for ch in text:
        w = _char_width(ch)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "\u2026"


def _fields(rec) -> list:
    return [(name, getattr(rec, name)) for name in type(rec).__fields__]


# One line per field once the one-line repr is longer than this.
_PRETTY_WIDTH = 79


def _cell_text(value: Any, width: int = 60) -> str:
    """A short one-line text for a table cell."""
    if value is None:
        return ""
    if isinstance(value, enum.Enum):
        text = str(value.value)
    elif isinstance(value, _dt.datetime):
        text = value.isoformat(sep=" ").replace("+00:00", "Z")
    elif isinstance(value, _core.Record):
        text = ", ".join(f"{k}={_cell_text(v, width)}" for k, v in _fields(value) if v is not None)
    elif isinstance(value, (list, tuple)):
        text = ", ".join(_cell_text(v, width) for v in value)
    else:
        text = str(value)
    return clip(visible(" ".join(text.split())), width)


def _html_table(header: list, rows: list) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="custlist"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _pretty_value(p: Any, value: Any, column: int) -> None:
    """A field's value after ``name=`` at `column`: a tuple or list too long
    for the line gets one item per line, indented under the field, like the
    record's own fields."""
    if not isinstance(value, (tuple, list)) or not value \
            or column + len(repr(value)) + 1 <= _PRETTY_WIDTH:
        p.pretty(value)
        return
    opening, closing = "()" if isinstance(value, tuple) else "[]"
    p.begin_group(4, opening)
    for item in value:
        p.break_()
        p.pretty(item)
        p.text(",")
    p.end_group(4, "")
    p.break_()
    p.text(closing)


class RecordDisplay:
    """Display and JSON methods every record has (a mixin of ``Record``)."""

    __slots__ = ()

    def to_json_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data: ``json.dumps(r.to_json_dict())``
        works.  See ``custlist.jsonable`` for how values convert."""
        return jsonable(self)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        """IPython: the one-line repr when it fits, else one field per line."""
        name = type(self).__name__
        if cycle:
            p.text(f"{name}(...)")
            return
        if getattr(p, "indentation", 0) + len(repr(self)) <= _PRETTY_WIDTH:
            p.text(repr(self))
            return
        p.begin_group(4, f"{name}(")
        for field, value in _fields(self):
            p.break_()
            p.text(f"{field}=")
            _pretty_value(p, value, getattr(p, "indentation", 4) + len(field) + 1)
            p.text(",")
        p.end_group(4, "")
        p.break_()
        p.text(")")

    def _repr_html_(self) -> str:
        """Jupyter: a compact two-column table of the fields (escaped)."""
        rows = [[name, _cell_text(value, 200)] for name, value in _fields(self)]
        return _html_table([type(self).__name__, ""], rows)


class Table:
    """Records shown as a table: plain text by ``str()`` / ``print``, HTML in
    Jupyter.  Columns are the fields of the records, in order of first
    appearance (mixed record types share a table); nested records show as
    ``key=value`` pairs; text from the server shows its control characters
    as escapes.  Iterating gives the records back.

    A list (any collection with a length) is kept whole and its first
    ``max_rows`` are shown.  A pager or any other iterator is read only as
    far as the rows shown: a pager made by a client is not advanced at all
    (the table reads the same records through a listing of its own that
    stops at ``max_rows``, so only the pages holding them are requested),
    and a line under the rows says when the listing has more."""

    def __init__(self, records: Iterable[Any], columns: Iterable[str] | None = None,
                 max_rows: int = 200):
        if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 0:
            raise ValueError(f"max_rows must be an int >= 0, not {max_rows!r}")
        self.max_rows = max_rows
        self._footer = ""
        if hasattr(records, "__len__") and not isinstance(records, _core.Pager):
            self.records = list(records)              # in memory already: kept whole
            hidden = len(self.records) - max_rows
            if hidden > 0:
                self._footer = f"... {hidden} more rows"
        elif isinstance(records, _core.Pager):
            self.records = self._from_pager(records, max_rows)
        else:
            self.records = list(itertools.islice(records, max_rows + 1))
            if len(self.records) > max_rows:
                self._footer = "... more rows, not read"
        if columns is None:
            seen: dict = {}
            for rec in self.records:
                names = type(rec).__fields__ if isinstance(rec, _core.Record) else list(rec)
                seen.update(dict.fromkeys(names))
            columns = seen
        self.columns = list(columns)

    def _from_pager(self, pager: Any, max_rows: int) -> list:
        """The next `max_rows` records of `pager`, through a listing of their
        own when the pager's client can make one."""
        reader = _bounded_copy(pager, max_rows)
        if reader is None:                   # not a client's listing: read the pager itself
            reader = pager
            records = list(itertools.islice(pager, max_rows))
        else:
            with reader:
                records = list(reader)
        if not reader.done:
            total = reader.total
            left = None
            if total is not None and getattr(reader, "_listing", None) is not None:
                left = total - reader.checkpoint()["count"]
            self._footer = ("... more rows in the listing, not read" if left is None or left <= 0
                            else f"... {left} more rows in the listing, not read")
        return records

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self):
        return iter(self.records)

    def _value(self, rec, col):
        return rec.get(col) if isinstance(rec, dict) else getattr(rec, col, None)

    def _rows(self, width: int) -> list:
        return [[_cell_text(self._value(r, c), width) for c in self.columns]
                for r in self.records[:self.max_rows]]

    def _more(self) -> str:
        return self._footer

    def __str__(self) -> str:
        rows = self._rows(30)
        header = [visible(c) for c in self.columns]
        widths = [max([text_width(c)] + [text_width(r[i]) for r in rows])
                  for i, c in enumerate(header)]
        lines = ["  ".join(pad(c, w) for c, w in zip(header, widths)).rstrip(),
                 "  ".join("-" * w for w in widths)]
        lines += ["  ".join(pad(v, w) for v, w in zip(r, widths)).rstrip() for r in rows]
        if self._more():
            lines.append(self._more())
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<custlist.Table: {len(self.records)} rows x {len(self.columns)} columns>"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))

    def _repr_html_(self) -> str:
        out = _html_table([visible(c) for c in self.columns], self._rows(80))
        more = self._more()
        return out + (f"<p>{html.escape(more)}</p>" if more else "")


def _bounded_copy(pager: Any, max_rows: int) -> Any:
    """A new pager of the same listing from where `pager` stands, stopping
    after `max_rows` records; None when `pager` was not made by a client
    that can still list."""
    again = getattr(pager, "_again", None)
    listing = getattr(pager, "_listing", None)
    if again is None or listing is None:
        return None
    client_ref, headers, raw = again
    client = client_ref()
    if client is None or getattr(client, "_closed", True):
        return None
    if listing.max_items is not None:        # no further than the pager itself would go
        max_rows = min(max_rows, max(listing.max_items - pager.consumed, 0))
    return client.paginate(listing.endpoint, listing.path, listing.query, headers=headers,
                           raw=raw, start=pager.checkpoint(), max_items=max_rows)


def remember_listing(pager: Any, client: Any, headers: Any, raw: bool) -> None:
    """Let `custlist.table` list again what `pager` lists (see Table)."""
    pager._again = (weakref.ref(client), headers, raw)


def table(records: Iterable[Any], columns: Iterable[str] | None = None,
          max_rows: int = 200) -> Table:
    """Show `records` (records, or raw dicts) as a table: ``custlist.table(
    pager)`` in a notebook renders HTML, ``print(custlist.table(...))`` plain
    text.  Only the first ``max_rows`` are shown, and only they are read from
    a pager or an iterator; a list is kept whole.  A pager made by a client
    is left where it was (see ``Table``)."""
    return Table(records, columns, max_rows)
