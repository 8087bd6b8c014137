"""How the decoder builds leaf values: strings straight from validated UTF-8,
the per-decode caches of repeated values, decimals, timestamps, and which
containers it leaves out of the garbage collector's scans.  Every value is
checked against what Python itself builds from the same text."""
import datetime as dt
import enum
import gc
import json
import random
import sys
import sysconfig
import threading
import time
import weakref
from decimal import Decimal

import pytest

import custlist
from custlist import _core
from custlist._spec import Field, Record, type_spec

STR = _core.Schema(("str",))
STRS = _core.Schema(("list", ("str",)))
ANY = _core.Schema(("any",))


def _same_str(got, want):
    """Equal, and built the way CPython builds it: the same kind (width per
    character) and length, so hashing, comparison and sizes all agree."""
    assert type(got) is str and got == want and hash(got) == hash(want)
    if not (len(want) == 1 and ord(want) < 256):
        # (3.13's one-character Latin-1 strs are static, their UTF-8 cached)
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


# Characters from each end of each UTF-8 length and str width, placed at
# every offset of an ASCII run long enough to hold whole 8-byte words before
# and after them: the characters are counted and the width found eight
# bytes at a time, and ASCII runs are copied eight at a time.
WIDTH_EDGES = ["\x80", "\xc3", "\xff", "\u0100", "\u01ff", "\u07ff", "\u0800", "\u0fff",
               "\uffff", "\U00010000", "\U0003ffff", "\U0010ffff"]


@pytest.mark.parametrize("char", WIDTH_EDGES, ids=[ascii(c) for c in WIDTH_EDGES])
def test_a_wide_character_anywhere_in_a_long_string_sets_its_width(char):
    for before in range(0, 20):
        for after in (0, 1, 7, 8, 9, 17):
            for text in ("a" * before + char + "b" * after,
                         "\xe9" + "a" * before + char + "b" * after,
                         char * 3 + "x" * before + "\xe9" + "y" * after):
                body = json.dumps(text, ensure_ascii=False).encode()
                _same_str(STR.decode(body), text)
                _same_str(STR.decode(body[:-1] + b'\\t"'), text + "\t")   # unescaped copy


def test_long_random_strings_of_every_width_match_json_loads():
    rng = random.Random(11)
    pools = ["abcdefgh", "\xe0\xe9\xff", "\u0100\u20ac\u0800\uffff", "\U00010000\U0001f680"]
    for _ in range(1500):
        text = "".join(rng.choice(rng.choice(pools[:rng.randrange(1, 5)]))
                       for _ in range(rng.randrange(0, 60)))
        for body in (json.dumps(text, ensure_ascii=False).encode(), json.dumps(text).encode()):
            _same_str(STR.decode(body), text)
            _same_str(ANY.decode(body), text)


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


# ---------------------------------------------------------------------------
# Repeated values: one object per text within a decode, learnt per field


class Account(Record):
    status = Field(str)
    code = Field(str)
    amount = Field(Decimal)
    label = Field(str)


ACCOUNTS = custlist.Schema(type_spec(tuple[Account, ...]))


def _accounts(rows):
    return json.dumps([dict(zip(("status", "code", "amount", "label"), r)) for r in rows]).encode()


def test_a_repeated_short_str_is_one_object_within_a_decode():
    rows = [("ACTIVE", "US", "12.50", "Zürich")] * 10
    got = ACCOUNTS.decode(_accounts(rows))
    assert [(a.status, a.code, a.amount, a.label) for a in got] == [
        ("ACTIVE", "US", Decimal("12.50"), "Zürich")] * 10
    assert all(a.status is got[0].status and a.code is got[0].code for a in got)
    assert all(a.label is got[0].label for a in got)
    assert all(a.amount is got[0].amount for a in got)    # Decimal is immutable: shared
    # a direct-mapped table: other texts may evict one, never change a value
    rows = [("ACTIVE", "US", "12.50", f"n{i}") for i in range(300)]
    got = ACCOUNTS.decode(_accounts(rows))
    assert [(a.status, a.code, a.amount, a.label) for a in got] == [
        (s, c, Decimal(m), l) for s, c, m, l in rows]
    assert len({id(a.status) for a in got}) < 10


def test_texts_that_differ_only_in_length_padding_or_escapes_stay_apart():
    texts = ["ab", "ab\x00", "a\x00", "a", "", "\x00", "abcdefgh", "abcdefgh\x00",
             "abcdefghijklmnop", "abcdefghijklmno\x00", "é", "e\u0301", "\u20ac", "ab" * 8 + "c"]
    body = json.dumps(texts * 3).encode()        # \\u0000 and \\u00e9 escapes: the unescaped bytes are the key
    assert STRS.decode(body) == tuple(texts * 3)
    raw = json.dumps(texts * 3, ensure_ascii=False).encode()
    got = STRS.decode(raw)
    assert got == tuple(texts * 3)
    for t, s in zip(texts * 3, got):
        _same_str(s, t)
    assert ANY.decode(body) == texts * 3


def test_str_and_decimal_of_the_same_text_stay_apart():
    got = ACCOUNTS.decode(_accounts([("12.50", "12.50", "12.50", "12.50")] * 3))
    for a in got:
        assert type(a.status) is str and type(a.amount) is Decimal
        assert a.status == "12.50" and a.amount == Decimal("12.50")


def test_a_field_whose_values_do_not_repeat_stops_using_the_cache_and_tries_again_later():
    schema = custlist.Schema(type_spec(tuple[Account, ...]))    # a fresh policy
    unique = [("S", f"u{i}", "1", "x") for i in range(64)]      # 64 look-ups, no hit: off
    got = schema.decode(_accounts(unique + [("S", "same", "1", "x")] * 2))
    assert got[-1].code == got[-2].code == "same"
    assert got[-1].code is not got[-2].code                     # built twice: not cached
    assert got[-1].status is got[-2].status                     # other fields unaffected
    # the field skips the cache for 1024 values, then tries again
    got = schema.decode(_accounts([("S", "same", "1", "x")] * 1030))
    assert got[0].code is not got[1].code
    assert got[-1].code is got[-2].code


def test_repeated_values_decode_correctly_from_many_threads_at_once():
    rng = random.Random(3)
    rows = [(rng.choice(["ACTIVE", "PENDING", "É"]), rng.choice(["US", "DE", f"x{i}"]),
             rng.choice(["1", "-0", "2.50", f"{i}.{i:02d}"]), f"label {i}") for i in range(300)]
    body = _accounts(rows)
    want = [(s, c, Decimal(a), l) for s, c, a, l in rows]
    errors = []

    def work():
        try:
            for _ in range(20):
                got = ACCOUNTS.decode(body)
                assert [(a.status, a.code, a.amount, a.label) for a in got] == want
        except BaseException as e:          # reported below, in the test's thread
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


# ---------------------------------------------------------------------------
# Decimals: exact, whatever the form

DECIMALS = ["0", "-0", "0.0", "-0.00", "1", "-1", "12.50", "9500.00", "0.000001",
            "1e5", "1E+5", "-1e-5", "1.5e-10", "-2.5E+300", "1e999999", "123456789012345678",
            "12345678901234567890123456789012345678901234567890.123456789",
            "-99999999999999999999999999999999.99"]


@pytest.mark.parametrize("text", DECIMALS)
def test_decimals_are_exact(text):
    dec = _core.Schema(("list", ("decimal",)))
    want = Decimal(text)
    for body in (f"[{text}, {text}]".encode(),
                 f'["{text}", "{text}"]'.encode() if "e" not in text.lower() else None):
        if body is None:
            continue
        got = dec.decode(body)
        for g in got:
            assert type(g) is Decimal and str(g) == str(want) and g.as_tuple() == want.as_tuple()


def test_many_distinct_decimals_in_one_decode_are_each_exact():
    """Every amount of a page goes through Decimal's constructor with the
    same argument tuple: each one still gets its own text."""
    rng = random.Random(5)
    texts = [t for t in DECIMALS if "e" not in t.lower() and "999999" not in t]
    texts += [f"{rng.choice(['', '-'])}{rng.randrange(10 ** rng.randrange(1, 30))}"
              f".{rng.randrange(100):02d}" for _ in range(2000)]
    dec = _core.Schema(("list", ("decimal",)))
    for body in (("[" + ",".join(texts) + "]").encode(),
                 ("[" + ",".join(f'"{t}"' for t in texts) + "]").encode()):
        for _ in range(2):
            got = dec.decode(body)
            assert len(got) == len(texts)
            for g, t in zip(got, texts):
                assert type(g) is Decimal and g.as_tuple() == Decimal(t).as_tuple(), t


def test_a_gc_callback_during_a_decode_sees_only_whole_tuples():
    """The decoder keeps one argument tuple for Decimal's constructor, its
    item empty between amounts: it must never reach Python code, not even
    through gc.get_objects() in a gc callback run while records are built."""
    seen, holes = [0], []

    def look(phase, info):
        for o in gc.get_objects():
            if type(o) is tuple:
                seen[0] += 1
                if len(o) == 1 and "<NULL>" in repr(o):     # how a missing item prints
                    holes.append(o)

    body = _accounts([("S", "c", f"{i}.{i % 100:02d}", "x") for i in range(100)])
    old = gc.get_threshold()
    gc.callbacks.append(look)
    try:
        if sysconfig.get_config_var("Py_GIL_DISABLED"):
            # A free-threaded build schedules collections by net allocations
            # in per-thread batches and scales the threshold by the objects
            # alive: thresholds do not place them. Another thread collects
            # over and over instead, each collection stopping this one
            # wherever it can be stopped.
            stop, collections = threading.Event(), [0]

            def collect():
                while not stop.is_set() or not collections[0]:
                    gc.collect()
                    collections[0] += 1

            collector = threading.Thread(target=collect)
            collector.start()
            try:
                for _ in range(50):
                    assert len(ACCOUNTS.decode(body)) == 100
            finally:
                stop.set()
                collector.join()
        else:
            for threshold in (1, 2, 3, 5, 7):      # collections at many offsets between amounts
                gc.set_threshold(threshold)
                assert len(ACCOUNTS.decode(body)) == 100
    finally:
        gc.callbacks.remove(look)
        gc.set_threshold(*old)
    assert seen[0] > 0 and not holes, holes


def test_a_decimal_out_of_range_among_others_fails_and_the_next_decode_works():
    dec = _core.Schema(("list", ("decimal",)))
    body = b"[1.25, 2.5, 1e9999999999999999999999, 3]"
    with pytest.raises(custlist.DecodeError) as e:
        dec.decode(body)
    assert e.value.offset == body.index(b"1e9")
    assert list(dec.decode(b"[1.25, 2.5, 3.75]")) == [Decimal("1.25"), Decimal("2.5"), Decimal("3.75")]


# ---------------------------------------------------------------------------
# Tuples and records the garbage collector need not scan


class Shade(enum.Enum):
    LIGHT = "light"
    DARK = "dark"


class Leaf(Record):
    name = Field(str)
    tags = Field(tuple[str, ...])


class Branch(Record):
    leaves = Field(tuple[Leaf, ...])
    extra = Field(object)


ATOMIC_LISTS = [
    (("list", ("str",)), b'["a", "b\\u00e9", null]'),
    (("list", ("int",)), b"[1, 2, 99999999999999999999999]"),
    (("list", ("float",)), b"[1.5, -0.0]"),
    (("list", ("bool",)), b"[true, false]"),
    (("list", ("decimal",)), b'[1.5, "2.50"]'),
    (("list", ("datetime",)), b'["2026-01-02T03:04:05Z"]'),
    (("list", ("unix_ms",)), b"[1767225600000]"),
    (("list", ("enum", {"light": Shade.LIGHT, "dark": Shade.DARK})), b'["light", "dark", "new"]'),
    (("list", ("any",)), b'["a", 1, 2.5, true, null]'),
    (("list", ("list", ("str",))), b'[["a"], [], ["b", "c"]]'),
    (type_spec(tuple[Leaf, ...]), b'[{"name": "x", "tags": ["a"]}, {"name": "y"}]'),
]


@pytest.mark.parametrize("spec,body", ATOMIC_LISTS, ids=[repr(s)[:40] for s, _ in ATOMIC_LISTS])
def test_tuples_of_atomic_values_are_not_tracked(spec, body):
    got = custlist.Schema(spec).decode(body)
    assert type(got) is tuple and len(got) > 0
    assert not gc.is_tracked(got)
    assert got == custlist.Schema(spec).decode(body)       # and still compare, hash, index
    hash(got) if all(not isinstance(x, (dict, list)) for x in got) else None


MAY_CYCLE_LISTS = [
    (("list", ("any",)), b'["a", {"k": 1}]'),                # a dict
    (("list", ("any",)), b'[1, [2]]'),                       # a list
    (("list", ("list", ("any",))), b'[["a"], [{"k": 1}]]'),  # a tuple holding a dict
    (type_spec(tuple[Branch, ...]), b'[{"leaves": [], "extra": {"k": 1}}]'),   # a tracked record
]


@pytest.mark.parametrize("spec,body", MAY_CYCLE_LISTS, ids=[body.decode() for _, body in MAY_CYCLE_LISTS])
def test_tuples_that_can_lead_to_a_mutable_value_stay_tracked(spec, body):
    assert gc.is_tracked(custlist.Schema(spec).decode(body))


def test_records_follow_their_tuples():
    schema = custlist.Schema(type_spec(Branch))
    r = schema.decode(b'{"leaves": [{"name": "a", "tags": ["x"]}], "extra": "text"}')
    assert not gc.is_tracked(r) and not gc.is_tracked(r.leaves) and not gc.is_tracked(r.leaves[0])
    r = schema.decode(b'{"leaves": [{"name": "a"}], "extra": [[{"k": 1}]]}')
    assert gc.is_tracked(r) and gc.is_tracked(r.extra)


class Watched:
    """Something to watch in a cycle: an instance, for a free-threaded
    CPython 3.13 keeps a class made after other threads have run past
    gc.collect()."""


def collect_until(done, tries=5):
    """gc.collect() until done(): a collection another thread has under way
    (a test server's, say) makes gc.collect() return without collecting. What
    the collector cannot see (an untracked tuple on the cycle) stays alive
    however often it runs."""
    for _ in range(tries):
        gc.collect()
        if done():
            return
        time.sleep(0.05)


def test_a_cycle_through_a_tracked_tuple_is_collected():
    schema = custlist.Schema(("list", ("list", ("any",))))
    t = schema.decode(b'[[{"k": 1}]]')
    alive = weakref.ref(Shade)                               # something reachable: a class
    holder = Watched()
    watch = weakref.ref(holder)
    t[0][0]["back"] = t                                      # tuple -> tuple -> dict -> tuple
    t[0][0]["holder"] = holder
    del t, holder
    collect_until(lambda: watch() is None)
    assert watch() is None and alive() is Shade


class Inner(Record):
    extra = Field(object)


class Outer(Record):
    inner = Field(Inner)
    name = Field(str)


def test_a_record_holding_a_record_that_holds_a_dict_is_tracked_and_collected():
    # the nested record is of a Record subclass (its own deallocator): it
    # still counts as a record that may lead back
    r = custlist.Schema(type_spec(Outer)).decode(b'{"inner": {"extra": {"k": 1}}, "name": "n"}')
    assert gc.is_tracked(r.inner) and gc.is_tracked(r)
    holder = Watched()
    watch = weakref.ref(holder)
    r.inner.extra["back"] = r                    # record -> record -> dict -> record
    r.inner.extra["holder"] = holder
    del r, holder
    collect_until(lambda: watch() is None)
    assert watch() is None
    plain = custlist.Schema(type_spec(Outer)).decode(b'{"inner": {"extra": "x"}, "name": "n"}')
    assert not gc.is_tracked(plain) and not gc.is_tracked(plain.inner)


def test_a_union_with_a_generic_fallback_tracks_only_what_needs_it():
    from custlist import natural
    from custlist.testing import data
    items = data.natural_customers(random.Random(5), 12, unknown_type_every=4)
    body = json.dumps({"data": items, "meta": {"pagination": {"has_more": False}}}).encode()
    for page in (natural.CUSTOMERS.decode(body), natural.CUSTOMERS.decode(body, raw=False)):
        known = [r for r, it in zip(page.items, items) if it["type"] != "agent_grant"]
        unknown = [r for r, it in zip(page.items, items) if it["type"] == "agent_grant"]
        assert len(unknown) == 3 and len(known) == 9
        assert not any(gc.is_tracked(r) for r in known)
        assert all(gc.is_tracked(r) for r in unknown)        # attributes: a dict
        assert gc.is_tracked(page.items)
    only_known = [it for it in items if it["type"] != "agent_grant"]
    body = json.dumps({"data": only_known, "meta": {"pagination": {"has_more": False}}}).encode()
    assert not gc.is_tracked(natural.CUSTOMERS.decode(body).items)


# ---------------------------------------------------------------------------
# Timestamps: UTC ones built from their fields, others through the epoch


def _reference_datetime(text):
    t = text.replace("z", "Z").replace("t", "T")
    leap = ":60" in t
    if leap:
        t = t.replace(":60", ":59")
    # Spelled as Python 3.10's fromisoformat reads it too: a +HH:MM offset,
    # a fraction of exactly six digits.
    date, _, time = t.replace("Z", "+00:00").partition("T")
    off = ""
    for sign in "+-":
        if sign in time:
            time, off = time.split(sign)
            off = sign + off[:2] + ":" + (off[2:].lstrip(":") or "00")
    if "." in time:
        time, frac = time.split(".")
        time += "." + (frac + "000000")[:6]
    value = dt.datetime.fromisoformat(date + ("T" + time if time else "") + off)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    value = value.astimezone(dt.timezone.utc)
    if leap:
        value = value.replace(microsecond=999999)
    return value


def test_timestamps_with_and_without_offsets_match_python():
    rng = random.Random(11)
    texts = ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z", "2026-01-01",
             "2016-12-31T23:59:60Z", "2016-12-31T23:59:60.5+00:00", "2017-01-01T05:29:60+05:30",
             "2024-02-29T12:00:00+00:00", "2024-02-29T12:00:00-00:00", "2026-03-04t05:06z",
             "2026-03-04 05:06:07.1234567Z", "0001-01-01T05:00:00+05:00"]
    for _ in range(500):
        y, m = rng.randint(1, 9998), rng.randint(1, 12)
        day = rng.randint(1, 28)
        frac = rng.choice(["", ".5", ".123", ".123456"])
        off = rng.choice(["Z", "", "+00:00", "-05:30", "+14:00", "+0100", "-08"])
        texts.append(f"{y:04d}-{m:02d}-{day:02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:"
                     f"{rng.randint(0, 59):02d}{frac}{off}")
    schema = _core.Schema(("list", ("datetime",)))
    got = schema.decode(json.dumps(texts).encode())
    for text, value in zip(texts, got):
        ref = text
        if ref.endswith("+0100"):
            ref = ref[:-5] + "+01:00"
        elif ref.endswith("-08"):
            ref = ref[:-3] + "-08:00"
        want = _reference_datetime(ref.replace(".1234567", ".123456"))
        assert value == want and value.tzinfo is dt.timezone.utc, (text, value, want)
        assert value.utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize("text", ["0000-12-31T23:00:00Z", "2026-02-29T00:00:00Z",
                                  "2026-01-01T24:00:00Z", "2016-12-31T23:58:60Z",
                                  "0001-01-01T00:00:00+00:01", "9999-12-31T23:59:59-00:01"])
def test_bad_or_out_of_range_timestamps_point_at_the_value(text):
    body = b'["2026-01-01T00:00:00Z", "' + text.encode() + b'"]'
    with pytest.raises(custlist.DecodeError) as info:
        _core.Schema(("list", ("datetime",))).decode(body)
    assert info.value.offset == body.index(b'", "') + 3


# ---------------------------------------------------------------------------
# Unix timestamps: one pass over the digits, eight at a time where it can

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _unix_texts():
    rng = random.Random(5)
    texts = ["0", "-0", "1", "-1", "9", "10", "99999999", "100000000", "12345678", "123456789",
             "253402300799", "-62135596800", "253402300799999", "-62135596800000"]
    for digits in range(1, 19):
        for _ in range(6):
            first = rng.choice("123456789")
            texts.append(rng.choice(["", "-"]) + first
                         + "".join(rng.choice("0123456789") for _ in range(digits - 1)))
    return texts


@pytest.mark.parametrize("kind,unit", [("unix_s", 1_000_000), ("unix_ms", 1_000)])
def test_unix_timestamps_of_every_length_match_python(kind, unit):
    lo, hi = -62135596800 * 1_000_000, 253402300800 * 1_000_000 - 1     # years 1 to 9999
    for text in _unix_texts():
        t = int(text)
        # alone (the body ends right after the digits), last in a list, and before a key
        bodies = [(("list", (kind,)), f"[{text}]"), ((kind,), text),
                  (("list", (kind,)), f"[{text},{text}]")]
        for spec, body in bodies:
            schema = _core.Schema(spec)
            if lo <= t * unit <= hi:
                got = schema.decode(body.encode())
                want = _EPOCH + dt.timedelta(microseconds=t * unit)
                for value in (got if isinstance(got, tuple) else (got,)):
                    assert value == want and value.tzinfo is dt.timezone.utc, (kind, text, value)
            else:
                with pytest.raises(custlist.DecodeError, match="timestamp out of range") as info:
                    schema.decode(body.encode())
                assert info.value.offset == body.index(text), (kind, body)


@pytest.mark.parametrize("text,message", [
    ("1.5", "an integer timestamp"), ("12345678.5", "an integer timestamp"),
    ("123456789.0", "an integer timestamp"), ("1e3", "an integer timestamp"),
    ("12345678E1", "an integer timestamp"), ("1234567890123456789", "timestamp out of range"),
    ("-12345678901234567890", "timestamp out of range"), ("-", "invalid number"),
    ("-a", "invalid number"), ("01", "expected ',' or ']'"), ("123456789012a", "expected ',' or ']'"),
])
def test_unix_timestamps_that_are_not_plain_integers_are_refused(text, message):
    body = f"[1766469708811,{text}, 1]".encode()
    with pytest.raises(custlist.DecodeError, match=message):
        _core.Schema(("list", ("unix_ms",))).decode(body)


def test_unix_timestamps_give_the_right_date_on_every_day_of_years_1_to_9999():
    """The civil date of a unix timestamp, for every day the range holds
    (leap days, century and 400-year rules, both ends), at a time of day
    that moves from day to day."""
    first = dt.date(1, 1, 1).toordinal()
    epoch = dt.date(1970, 1, 1).toordinal()
    last = dt.date(9999, 12, 31).toordinal()
    schema = _core.Schema(("list", ("unix_s",)))
    for start in range(first, last + 1, 400_000):
        days = range(start, min(start + 400_000, last + 1))
        secs = [(d - epoch) * 86400 + d * 7919 % 86400 for d in days]
        got = schema.decode(("[" + ",".join(map(str, secs)) + "]").encode())
        assert len(got) == len(days)
        for d, s, value in zip(days, secs, got):
            if value.toordinal() != d or value.hour * 3600 + value.minute * 60 + value.second != s % 86400:
                assert value == _EPOCH + dt.timedelta(seconds=s), (d, s)


@pytest.mark.parametrize("text", [
    "2026-01-01T00:00:6Z", "2026-01-01T00:0a:00Z", "2026/01/01T00:00:00Z", "2026-01-01X00:00:00Z",
    "20260-01-01T00:00:00", "2026-01-01T00:00:00.Z", "2026-01-01T00:00:00+", "2026-1-01T00:00:00Z",
    "2026-01-01T00-00:00Z", "2026-01-01T00:00-00Z", "0000-01-01T00:00:00Z", "2026-00-01T00:00:00Z",
    "2026-04-31T00:00:00Z", "2026-01-01T23:60:00Z", "2026-01-01T12:00:60Z", "2026-01-01T00:00:00ZZ",
    "2026-01-01T00:00:00\u00b9",
])
def test_iso_spellings_near_the_usual_one_are_refused(text):
    body = json.dumps(["2026-01-01T00:00:00Z", text]).encode()
    with pytest.raises(custlist.DecodeError, match="invalid ISO-8601 timestamp") as info:
        _core.Schema(("list", ("datetime",))).decode(body)
    assert info.value.offset == body.index(b'"', 2 + len("2026-01-01T00:00:00Z") + 1)


@pytest.mark.parametrize("text", ["2026-01-01 00:00:00", "2026-01-01t00:00:00z",
                                  "2026-01-01T00:00:00,5", "2024-02-29T23:59:59.1234567-0130"])
def test_iso_spellings_near_the_usual_one_are_read(text):
    got = _core.Schema(("datetime",)).decode(json.dumps(text).encode())
    assert got == _reference_datetime(text.replace(",", "."))
