"""How the decoder builds leaf values: strings straight from validated UTF-8,
the per-decode caches of repeated values, decimals, timestamps, and which
containers it leaves out of the garbage collector's scans.  Every value is
checked against what Python itself builds from the same text."""
import datetime as dt
import gc
import json
import random
import sys
from decimal import Decimal

import pytest

import custlist
from custlist import _core

STR = _core.Schema(("str",))
STRS = _core.Schema(("list", ("str",)))
ANY = _core.Schema(("any",))


def _same_str(got, want):
    """Equal, and built the way CPython builds it: the same kind (width per
    character) and length, so hashing, comparison and sizes all agree."""
    assert type(got) is str and got == want and hash(got) == hash(want)
    assert sys.getsizeof(got) == sys.getsizeof(want), (got, want)
    assert got.isascii() == want.isascii()


# ---------------------------------------------------------------------------
# Strings from UTF-8 bytes

BOUNDARIES = [
    "", "a", "\x7f", "\x80", "\xe9", "\xff",              # ASCII, Latin-1 (one byte a char)
    "\u0100", "\u07ff", "\u0800", "\ud7ff", "\ue000", "\uffff",   # two bytes a char
    "\U00010000", "\U0001f680", "\U0010ffff",             # four bytes a char
    "Zürich", "株式会社テスト", "Rocket 🚀 Labs", "ab\xe9\u0100\U0001f680z",
    "\xe9" * 40 + "\u20ac", "\u20ac" + "x" * 70 + "\U0001f680",
]


@pytest.mark.parametrize("text", BOUNDARIES, ids=[ascii(t) for t in BOUNDARIES])
def test_non_ascii_strings_are_built_as_python_decodes_them(text):
    raw = json.dumps(text, ensure_ascii=False).encode()
    escaped = json.dumps(text).encode()                   # \\uXXXX escapes, surrogate pairs
    for body in (raw, escaped, raw[:-1] + b'\\n"'):
        want = json.loads(body)
        _same_str(STR.decode(body), want)
        _same_str(ANY.decode(body), want)
        got = STRS.decode(b"[" + body + b"," + body + b"]")
        _same_str(got[0], want)
        _same_str(got[1], want)


def test_random_strings_of_every_width_match_json_loads():
    rng = random.Random(7)
    ranges = [(0x20, 0x7e), (0x80, 0xff), (0x100, 0x7ff), (0x800, 0xd7ff), (0xe000, 0xffff),
              (0x10000, 0x10ffff)]
    for _ in range(2000):
        chars = []
        for _ in range(rng.randrange(0, 12)):
            lo, hi = rng.choice(ranges[:rng.randrange(1, len(ranges) + 1)])
            chars.append(chr(rng.randint(lo, hi)))
        text = "".join(chars)
        for body in (json.dumps(text, ensure_ascii=False).encode(), json.dumps(text).encode()):
            _same_str(STR.decode(body), text)


# Each invalid sequence sits after 'ok' inside the string: the error points
# at its first byte, in a field, a list element and a generic value alike.
INVALID_UTF8 = {
    "lone continuation": b"\x80",
    "continuation run": b"\xbf\xbf",
    "two-byte lead at the end": b"\xc3",
    "two-byte lead, ASCII after": b"\xc3(",
    "overlong two bytes (C0)": b"\xc0\xaf",
    "overlong two bytes (C1)": b"\xc1\xbf",
    "three-byte, one continuation": b"\xe2\x82",
    "three-byte, bad second": b"\xe2(\xac",
    "three-byte, bad third": b"\xe2\x82(",
    "overlong three bytes": b"\xe0\x80\xaf",
    "overlong three bytes, top": b"\xe0\x9f\xbf",
    "surrogate D800": b"\xed\xa0\x80",
    "surrogate DFFF": b"\xed\xbf\xbf",
    "four-byte, truncated": b"\xf0\x9f\x9a",
    "overlong four bytes": b"\xf0\x80\x80\xaf",
    "overlong four bytes, top": b"\xf0\x8f\xbf\xbf",
    "beyond U+10FFFF": b"\xf4\x90\x80\x80",
    "lead F5": b"\xf5\x80\x80\x80",
    "lead FF": b"\xff",
}


@pytest.mark.parametrize("bad", INVALID_UTF8.values(), ids=INVALID_UTF8.keys())
def test_invalid_utf8_is_a_decode_error_at_its_first_byte(bad):
    with pytest.raises(UnicodeDecodeError):
        bad.decode("utf-8")
    for schema, prefix in ((STR, b""), (STRS, b'["x", '), (ANY, b'{"k": ')):
        body = prefix + b'"ok' + bad + b'zz"' + (b"]" if schema is STRS else b"}" if schema is ANY else b"")
        with pytest.raises(custlist.DecodeError) as info:
            schema.decode(body)
        assert info.value.offset == len(prefix) + 3, (info.value, body)
