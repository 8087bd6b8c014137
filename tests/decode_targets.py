"""The decoder's fuzz targets and contract, shared by tests/test_corpus.py and
the fuzzer (fuzz/decode_fuzzer.py, atheris / libFuzzer).

An input is one selector byte followed by a body.  ``selector % len(TARGETS)``
picks what decodes the body: every endpoint's schema in typed and raw mode
(``Endpoint.decode``, cross-checked against the two-pass "deferred" decode the
Pager uses), or a ``Schema`` whose root is one of the field kinds.  Selectors
past the first ``len(TARGETS)`` decode with a small ``max_depth`` instead of
the default 64.

The contract checked for every input:

* the decode returns or raises ``custlist.DecodeError`` whose ``offset`` lies
  inside the body -- any other exception is a finding (a crash is one too);
* whatever decodes is JSON that ``json.loads`` accepts (a leading UTF-8 BOM
  aside, which page bodies tolerate), and equals, value for value and type for
  type, what a small reference decoder written here in Python derives from the
  ``json.loads`` parse and the same schema.  The C decoder may reject more than
  the reference (NaN, lone surrogates, escapes inside timestamps...), never
  accept something different.
* for the typed endpoint targets, the Arrow path (``Pager._arrow_stream``,
  the body served over loopback) converts the first page to the record
  path's values, or fails with a DecodeError: whenever the record path
  does, and otherwise only on an Arrow type's own limit (int64,
  decimal128...).  ``CUSTLIST_FUZZ_ARROW=0`` leaves it out.

    bash fuzz/run.sh [seconds]                    # the fuzzer, sanitizers on
    python fuzz/decode_fuzzer.py --replay FILE... # re-run inputs, print outcomes
    python fuzz/decode_fuzzer.py --targets        # the selector of each target
"""
from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import sys
from decimal import Decimal

import custlist
from custlist import _core, commenda, natural, pyng
from custlist._spec import Field, OneOf, Page, Record, StrEnum, UnixMillis, UnixSeconds, type_spec

DEFAULT_DEPTH = 64
UTC = dt.timezone.utc
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


class Finding(AssertionError):
    """The decoder broke its contract on this input."""


class Reject(Exception):
    """The reference decoder refuses the document (a type or range error)."""


# ---------------------------------------------------------------------------
# Schemas beyond the endpoints: one root per kind, and records mixing them


class Color(StrEnum):
    RED = "red"
    GREEN = "green"


class Leaf(Record):
    n = Field(int)
    s = Field(str, aliases=["old_s", "legacy.s"])


class Tagged(Record):
    kind = Field(str)
    when = Field(UnixSeconds, "meta.when")


class Fallback(Record):
    kind = Field(str)
    rest = Field(dict)


class Every(Record):
    """One field of every kind, with dotted paths and aliases."""

    s = Field(str)
    i = Field(int, aliases=["int_old"])
    f = Field(float)
    b = Field(bool)
    d = Field(Decimal, "money.amount")
    t = Field(dt.datetime, "times.iso")
    ts = Field(UnixSeconds, "times.unix_s", aliases=["ts"])
    tms = Field(UnixMillis, "times.unix_ms")
    e = Field(Color)
    leaf = Field(Leaf, "x.y.leaf")
    leaves = Field(tuple[Leaf, ...])
    strs = Field(list[str])
    u = Field(tuple[OneOf("kind", {"tagged": Tagged, "leaf": Leaf}, fallback=Fallback), ...])
    any_ = Field(dict, "any")


UNION_NO_FALLBACK = OneOf("kind", {"tagged": Tagged, "leaf": Leaf})

ENDPOINTS = [("pyng", pyng.CUSTOMERS), ("natural", natural.CUSTOMERS),
             ("invitations", natural.INVITATIONS), ("commenda", commenda.CUSTOMERS)]

SCHEMA_SPECS = [
    ("every", type_spec(Every)),
    ("every-list", type_spec(tuple[Every, ...])),
    ("union", type_spec(tuple[UNION_NO_FALLBACK, ...])),
    ("any", ("any",)),
    ("str", ("str",)),
    ("int", ("int",)),
    ("float", ("float",)),
    ("bool", ("bool",)),
    ("decimal", ("decimal",)),
    ("datetime", ("datetime",)),
    ("unix_s", ("unix_s",)),
    ("unix_ms", ("unix_ms",)),
    ("enum", type_spec(Color)),
    ("list-decimal", ("list", ("decimal",))),
    ("list-unix_ms", ("list", ("unix_ms",))),
    ("list-str", ("list", ("str",))),
]


class Target:
    def __init__(self, name, spec, endpoint=None, raw=False):
        self.name, self.spec, self.endpoint, self.raw = name, spec, endpoint, raw
        if endpoint is None:
            self.schema = _core.Schema(spec)

    def decode(self, body: bytes, max_depth: int):
        if self.endpoint is not None:
            return self.endpoint.decode(body, raw=self.raw, max_depth=max_depth)
        return self.schema.decode(body, max_depth=max_depth)

    def decode_deferred(self, body: bytes, max_depth: int):
        """The Pager's two-pass decode: items located first, decoded after."""
        page, item = self.endpoint.schemas(self.raw, deferred=True)
        items, slots = _core.decode_page(page, item, body, max_depth)
        return Page(items, *slots[1:])


def _targets():
    out = []
    for name, ep in ENDPOINTS:
        for raw in (False, True):
            item = ("list", ("any",) if raw else type_spec(ep.item))
            out.append(Target(name + ("-raw" if raw else ""), ep.paging.page_spec(item), ep, raw))
    out += [Target(name, spec) for name, spec in SCHEMA_SPECS]
    return out


TARGETS = _targets()
BY_NAME = {t.name: t for t in TARGETS}


def selector(name: str) -> int:
    """The selector byte of the target called `name` (default max_depth)."""
    return next(i for i, t in enumerate(TARGETS) if t.name == name)


def split(data: bytes):
    """(target, body, max_depth) of one fuzz input."""
    sel = data[0]
    depth = DEFAULT_DEPTH if sel < len(TARGETS) else 2 + (sel // len(TARGETS)) % 8
    return TARGETS[sel % len(TARGETS)], data[1:], depth


# ---------------------------------------------------------------------------
# The reference decoder: json.loads, then the schema applied in Python


class Num(str):
    """A JSON number kept as its text."""
    is_int = True


class Frac(Num):
    is_int = False


class Obj(list):
    """A JSON object as its (key, value) pairs, in wire order."""


def _constant(name):
    raise ValueError(f"{name} is not JSON")


NOT_JSON = object()


def parse(body: bytes, page: bool):
    """json.loads of the body, numbers as text and objects as pairs (NOT_JSON
    if json.loads refuses it), and whether some object repeats a key."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return NOT_JSON, False
    if page and text.startswith("\ufeff"):
        text = text[1:]
    dups = []

    def pairs(p):
        if len({k for k, _ in p}) != len(p):
            dups.append(True)
        return Obj(p)

    try:
        doc = json.loads(text, parse_int=Num, parse_float=Frac, parse_constant=_constant,
                         object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        return NOT_JSON, False
    return doc, bool(dups)


def depth_of(v) -> int:
    """Nesting depth as the decoder counts it (a container is one level)."""
    best, stack = 0, [(v, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, Obj):
            best = max(best, d)
            stack += [(x, d + 1) for _, x in v]
        elif isinstance(v, list):
            best = max(best, d)
            stack += [(x, d + 1) for x in v]
    return best


def has_surrogate(v) -> bool:
    stack = [v]
    while stack:
        v = stack.pop()
        if isinstance(v, str) and not isinstance(v, Num):
            if any(0xD800 <= ord(c) <= 0xDFFF for c in v):
                return True
        elif isinstance(v, Obj):
            for k, x in v:
                stack += [k, x]
        elif isinstance(v, list):
            stack += v
    return False


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:                  # beyond the int/str digit limit
        old = sys.get_int_max_str_digits()
        sys.set_int_max_str_digits(0)
        try:
            return int(text)
        finally:
            sys.set_int_max_str_digits(old)


def _float(text: str) -> float:
    v = float(text)
    if math.isinf(v):
        raise Reject("float out of range")
    return v


ISO = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
                 r"(?:[Tt ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:[.,]([0-9]+))?)?"
                 r"(?:[Zz]|([+-])([0-9]{2})(?::?([0-9]{2}))?)?)?")
PLAIN_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def ref_iso(s: str) -> dt.datetime:
    m = ISO.fullmatch(s)
    if m is None:
        raise Reject("not ISO-8601")
    y, mo, d, hh, mi, ss, frac, sign, oh, om = m.groups()
    if hh is not None and (int(hh) > 23 or int(mi) > 59 or int(ss or 0) > 60):
        raise Reject("bad time")
    om = om or "0"                      # "+hh": whole hours
    if sign is not None and (int(oh) > 23 or int(om) > 59):
        raise Reject("bad offset")
    us = int((frac or "")[:6].ljust(6, "0"))
    leap = ss == "60"                   # a leap second clamps to :59.999999
    if leap:
        ss, us = "59", 999999
    try:
        t = dt.datetime(int(y), int(mo), int(d), int(hh or 0), int(mi or 0), int(ss or 0), us,
                        tzinfo=UTC)
        if sign is not None:
            off = dt.timedelta(hours=int(oh), minutes=int(om))
            t = t - off if sign == "+" else t + off
    except (ValueError, OverflowError):
        raise Reject("date out of range") from None
    if leap and (t.hour, t.minute) != (23, 59):
        raise Reject("no leap second outside 23:59 UTC")
    return t


def ref_unix(text: Num, unit: str) -> dt.datetime:
    if not text.is_int:
        raise Reject("not an integer timestamp")
    if len(text) > 18:
        raise Reject("timestamp out of range")
    t = int(text)
    if abs(t) > (253402300799 if unit == "s" else 253402300799999):
        raise Reject("timestamp out of range")
    try:
        return EPOCH + (dt.timedelta(seconds=t) if unit == "s" else dt.timedelta(milliseconds=t))
    except OverflowError:
        raise Reject("timestamp out of range") from None


def to_plain(v):
    """A parsed value as the decoder's "any" kind builds it."""
    if isinstance(v, Num):
        return _int(v) if v.is_int else _float(v)
    if isinstance(v, Obj):
        out = {}
        for k, x in v:
            out[k] = to_plain(x)
        return out
    if isinstance(v, list):
        return [to_plain(x) for x in v]
    return v


def keymap(fields) -> dict:
    root = {}
    for path, slot, spec in fields:
        m = root
        for key in path[:-1]:
            m = m.setdefault(key, {})
        m[path[-1]] = (slot, spec)
    return root


def fill(km: dict, obj: Obj, slots: list):
    for key, v in obj:
        ent = km.get(key)
        if ent is None:
            continue
        if isinstance(ent, dict):               # a group: nested object, same record
            if v is None:
                continue
            if not isinstance(v, Obj):
                raise Reject("group is not an object")
            fill(ent, v, slots)
        else:
            slots[ent[0]] = ref(ent[1], v)


def ref(spec: tuple, v):
    """The value the schema `spec` gives for the parsed JSON value `v`."""
    kind = spec[0]
    if v is None:
        return None
    if kind == "any":
        return to_plain(v)
    if kind == "str":
        if isinstance(v, str) and not isinstance(v, Num):
            return str(v)
        raise Reject("not a string")
    if kind == "int":
        if isinstance(v, Num) and v.is_int:
            return _int(v)
        raise Reject("not an integer")
    if kind == "float":
        if isinstance(v, Num):
            return _float(v)
        raise Reject("not a number")
    if kind == "bool":
        if isinstance(v, bool):
            return v
        raise Reject("not a boolean")
    if kind == "decimal":
        if isinstance(v, Num):
            return Decimal(str(v))
        if isinstance(v, str) and PLAIN_DECIMAL.fullmatch(v):
            return Decimal(v)
        raise Reject("not a decimal")
    if kind in ("datetime", "unix_s", "unix_ms"):
        if isinstance(v, Num) and kind != "datetime":
            return ref_unix(v, "s" if kind == "unix_s" else "ms")
        if isinstance(v, str) and not isinstance(v, Num):
            return ref_iso(v)
        raise Reject("not a timestamp")
    if kind == "enum":
        if isinstance(v, str) and not isinstance(v, Num):
            return spec[1].get(str(v), str(v))
        raise Reject("not a string")
    if kind == "list":
        if isinstance(v, list) and not isinstance(v, Obj):
            return tuple(ref(spec[1], x) for x in v)
        raise Reject("not an array")
    if kind == "record":
        if not isinstance(v, Obj):
            raise Reject("not an object")
        _, cls, nslots, fields = spec
        slots = [None] * nslots
        fill(keymap(fields), v, slots)
        if any(slots[i] is None for i in getattr(cls, "__required__", ())):
            raise Reject("a required field is absent or null")
        return slots if cls is None else cls(*slots)
    if kind == "union":
        if not isinstance(v, Obj):
            raise Reject("not an object")
        _, tag, variants, fallback = spec
        value = dict(v).get(tag)                # json.loads: the last occurrence wins
        target = variants.get(value) if isinstance(value, str) and not isinstance(value, Num) \
            else None
        target = target or fallback
        if target is None:
            raise Reject("unknown discriminator")
        return ref(target, v)
    raise AssertionError(f"unknown kind {kind!r}")


def ref_page(target: Target, doc):
    slots = ref(target.spec, doc)
    if slots is None:
        raise Reject("page body is null")
    return Page(slots[0] if slots[0] is not None else (), *slots[1:])


# ---------------------------------------------------------------------------
# Strict comparison: equal values of identical types


def same(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, Decimal):
        return a.as_tuple() == b.as_tuple()
    if isinstance(a, dt.datetime):
        return a == b and a.tzinfo == b.tzinfo and a.utcoffset() == b.utcoffset()
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, Record):
        return all(same(getattr(a, f), getattr(b, f)) for f in type(a).__fields__)
    return a == b


def _short(v, n=300):
    r = repr(v)
    return r if len(r) <= n else r[:n] + "..."


# ---------------------------------------------------------------------------
# The contract


def call(fn, body, max_depth):
    """(result, None) or (None, DecodeError); anything else is a finding."""
    try:
        return fn(body, max_depth), None
    except custlist.DecodeError as e:
        if type(e.offset) is not int or not 0 <= e.offset <= len(body):
            raise Finding(f"DecodeError offset {e.offset!r} outside the body "
                          f"({len(body)} bytes): {e}") from e
        return None, e
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as e:
        raise Finding(f"{type(e).__name__} escaped instead of DecodeError: {e}") from e


# ---------------------------------------------------------------------------
# The Arrow path (arrow.c) on the same body: served over loopback to a Pager,
# its first record batch converted from the scan must hold the very values
# of the record path's first page, or fail with a DecodeError: always when
# the record path fails, and otherwise only on an Arrow type's own limit.

ARROW = os.environ.get("CUSTLIST_FUZZ_ARROW", "1") == "1"
ARROW_LIMITS = ("int64", "decimal128", "2 GiB", "distinct values")
_served: list = []


def _arrow_server():
    if not _served:
        import http.server
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = _served[1]
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:             # the pager was closed meanwhile
                    pass

            def log_message(self, *args):
                pass
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        srv.daemon_threads = True
        srv.handle_error = lambda *args: None
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        _served[:] = [srv, b""]
    return "http://127.0.0.1:%d" % _served[0].server_address[1]


def _plain(v):
    if isinstance(v, Record):
        return {f: _plain(getattr(v, f)) for f in v.__fields__}
    if isinstance(v, (tuple, list)):
        return [_plain(x) for x in v]
    return v


def arrow_first_batch(target: Target, body: bytes, max_depth: int):
    """(rows, None) or (None, DecodeError) of the Arrow path's first batch
    (rows None and no error: no batch at all)."""
    import pyarrow as pa
    url = _arrow_server()
    _served[1] = body
    client = custlist.Client(base_url=url, auth=custlist.BearerToken("t"), max_depth=max_depth,
                             max_retries=0)
    ep = target.endpoint
    path = ep.path.replace("{site_id}", "s")
    pager = client.paginate(ep, path)
    errors: list = []
    try:
        reader = pa.RecordBatchReader._import_from_c_capsule(pager._arrow_stream(errors, 1))
        try:
            return reader.read_next_batch().to_pylist(), None
        except StopIteration:
            return None, None
        except Exception as e:
            err = errors[-1] if errors else e
            if not isinstance(err, custlist.DecodeError):
                if isinstance(err, (custlist.errors.PagingError, custlist.errors.UnsafeURLError)):
                    # the loop guard (the body repeats itself), or the body's own next
                    # link refused, after its rows, as the record path raises them
                    return None, None
                if isinstance(err, custlist.errors.APIError):
                    return None, None          # the body's own next link, refused by this server (414)
                raise Finding(f"Arrow path: {type(err).__name__} instead of DecodeError: "
                              f"{err}") from err
            if type(err.offset) is not int or not 0 <= err.offset <= len(body):
                raise Finding(f"Arrow DecodeError offset {err.offset!r} outside the body")
            return None, err
    finally:
        pager.close()


def check_arrow(target: Target, body: bytes, depth: int, result, err, dups: bool) -> None:
    rows, aerr = arrow_first_batch(target, body, depth)
    if err is not None:
        if rows is not None:
            raise Finding(f"the record path fails ({err}) but Arrow converts: {_short(rows)}")
        return
    items = list(result.items or ())
    if aerr is not None:
        if items and not any(w in str(aerr) for w in ARROW_LIMITS):
            raise Finding(f"Arrow fails where the record path decodes: {aerr}")
        return
    if not items or dups:
        return
    if rows is None or len(rows) != len(items):
        raise Finding(f"Arrow gives {None if rows is None else len(rows)} rows for "
                      f"{len(items)} records")
    for row, rec in zip(rows, items):
        want = _plain(rec) if isinstance(rec, Record) else None
        for name, got in row.items():
            exp = want.get(name) if want is not None else None
            if isinstance(got, str) and isinstance(exp, (dict, list)):
                got = json.loads(got)
            if got != exp or type(got) is bool != (type(exp) is bool):
                raise Finding(f"Arrow column {name}: {_short(got)} where the record holds "
                              f"{_short(exp)}")


def check(data: bytes):
    """Decode one fuzz input and assert the contract; returns the result
    (or the DecodeError)."""
    if not data:
        return None
    target, body, depth = split(data)
    result, err = call(target.decode, body, depth)
    if target.endpoint is not None:
        deferred, derr = call(target.decode_deferred, body, depth)
        if (err is None) != (derr is None):
            raise Finding(f"one-pass and deferred decodes disagree: {_short(result or err)} "
                          f"vs {_short(deferred or derr)}")
        if err is None and not same(result, deferred):
            raise Finding(f"one-pass and deferred decodes differ:\n  {_short(result)}\n"
                          f"  {_short(deferred)}")
    if ARROW and target.endpoint is not None and not target.raw:
        check_arrow(target, body, depth, result, err,
                    err is None and parse(body, page=True)[1])
    if err is not None:
        return err
    doc, dups = parse(body, page=target.endpoint is not None)
    if doc is NOT_JSON:
        raise Finding(f"decoded a body json.loads refuses: {_short(result)}")
    if has_surrogate(doc) or depth_of(doc) > depth:
        raise Finding(f"accepted a lone surrogate or nesting past max_depth={depth}")
    if dups and not (target.raw or target.name == "any"):
        return result             # duplicate keys: no one answer (see tests/test_corpus.py)
    try:
        expected = ref_page(target, doc) if target.endpoint is not None else ref(target.spec, doc)
    except Reject as e:
        raise Finding(f"decoded what the schema rejects ({e}): {_short(result)}") from None
    if not same(result, expected):
        raise Finding(f"decoded to a different value than json.loads gives:\n"
                      f"  decoder:   {_short(result, 2000)}\n  reference: {_short(expected, 2000)}")
    return result
