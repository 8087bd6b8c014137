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
from typing import Any, Iterable

from . import _core

__all__ = ["jsonable", "table", "Table", "RecordDisplay"]


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
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "\u2026"


def _html_table(header: list, rows: list) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="custlist"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


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
        if len(repr(self)) <= _PRETTY_WIDTH:
            p.text(repr(self))
            return
        p.begin_group(4, f"{name}(")
        for field, value in _fields(self):
            p.break_()
            p.text(f"{field}=")
            p.pretty(value)
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
    ``key=value`` pairs.  Iterating gives the records back."""

    def __init__(self, records: Iterable[Any], columns: Iterable[str] | None = None,
                 max_rows: int = 200):
        self.records = list(records)
        self.max_rows = max_rows
        if columns is None:
            seen: dict = {}
            for rec in self.records:
                names = type(rec).__fields__ if isinstance(rec, _core.Record) else list(rec)
                seen.update(dict.fromkeys(names))
            columns = seen
        self.columns = list(columns)

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
        hidden = len(self.records) - self.max_rows
        return f"... {hidden} more rows" if hidden > 0 else ""

    def __str__(self) -> str:
        rows = self._rows(30)
        widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(self.columns)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(self.columns, widths)).rstrip(),
                 "  ".join("-" * w for w in widths)]
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
        if self._more():
            lines.append(self._more())
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<custlist.Table: {len(self.records)} rows x {len(self.columns)} columns>"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))

    def _repr_html_(self) -> str:
        out = _html_table(self.columns, self._rows(80))
        more = self._more()
        return out + (f"<p>{html.escape(more)}</p>" if more else "")


def table(records: Iterable[Any], columns: Iterable[str] | None = None,
          max_rows: int = 200) -> Table:
    """Show `records` (records, or raw dicts) as a table: ``custlist.table(
    pager)`` in a notebook renders HTML, ``print(custlist.table(...))`` plain
    text.  Only the first ``max_rows`` are shown; all are kept."""
    return Table(records, columns, max_rows)
