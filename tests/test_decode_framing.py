"""How the typed decoder frames objects: a union's discriminator (a OneOf
decodes as the variant the *last* copy of its key names, like json.loads,
and refuses a body at the offset its look-ahead over the whole object would)
and key matching (any key order, unknown keys anywhere, repeated keys: the
last copy wins).

Each case states its one right answer: the value the reference decoder in
tests/decode_targets.py derives from json.loads, or a DecodeError at a
given offset."""
import json
import pathlib

import pytest

import custlist
from custlist import _core
from custlist._spec import Field, Record

from . import decode_targets as fd


def decode(target, body, max_depth=64):
    return fd.BY_NAME[target].decode(body, max_depth)


def reference(target, body):
    doc, _ = fd.parse(body, page=False)
    assert doc is not fd.NOT_JSON
    return fd.ref(fd.BY_NAME[target].spec, doc)


def assert_decodes_as_reference(target, body):
    want = reference(target, body)
    got = decode(target, body)
    assert fd.same(got, want), f"\n got: {got!r}\nwant: {want!r}"
    return got


def assert_refused_at(target, body, offset):
    with pytest.raises(custlist.DecodeError) as info:
        decode(target, body)
    assert type(info.value) is custlist.DecodeError
    assert info.value.offset == offset, str(info.value)


# ---- unions: the variant is the one the last copy of the key names ----------

@pytest.mark.parametrize("body", [
    b'[{"kind":"leaf","n":1,"kind":"leaf"}]',                      # repeated, same value
    b'[{"kind":"leaf","n":1,"kind":"tagged"}]',                    # repeated, other value
    b'[{"kind":"tagged","meta":{"when":5},"kind":"leaf","n":2}]',
    b'[{"kind":"leaf","n":1,"k\\u0069nd":"tagged"}]',              # escaped second copy
    b'[{"n":1,"s":"x","kind":"leaf"}]',                            # after other keys
    b'[{"n":1,"meta":{"when":3},"kind":"tagged","kind":"leaf"}]',
    b'[{"kind":5,"kind":"leaf","n":1}]',                           # first not a string
    b'[{"kind":null,"n":1,"kind":"leaf"}]',
    b'[{"kind":"zzz","kind":"leaf","n":1}]',                       # first unknown
    b'[{"kind":"tagged","meta":{"kind":"leaf","when":1}}]',         # a nested "kind" is no tag
    b'[{"kind":"leaf","n":"x","kind":"tagged"}]',                  # "n" is no field of the last
    b'[{"kind":"leaf","n":1},{"n":2,"kind":"leaf"},{"kind":"leaf","kind":"tagged"},'
    b'{"kind":"tagged","kind":"leaf","n":3},{"kind":"leaf","n":4}]',
], ids=["same-value", "other-value", "other-value-after-group", "escaped-copy", "tag-last",
        "tag-last-repeated", "non-string-first", "null-first", "unknown-first",
        "nested-kind", "moot-type-error", "mixed-in-one-list"])
def test_union_takes_the_variant_of_the_last_discriminator(body):
    assert_decodes_as_reference("union", body)
    fd.check(bytes([fd.selector("union")]) + body)


@pytest.mark.parametrize("body, want", [
    (b'{"u":[{"kind":"leaf","n":1,"kind":"zzz"}]}', fd.Fallback(kind="zzz")),
    (b'{"u":[{"kind":"zzz","n":1,"kind":"leaf"}]}', fd.Leaf(n=1)),
    (b'{"u":[{"n":1,"rest":{"a":1}}]}', fd.Fallback(rest={"a": 1})),
    (b'{"u":[{"kind":"leaf","n":1,"kind":null}]}', fd.Fallback()),
], ids=["known-then-unknown", "unknown-then-known", "missing", "known-then-null"])
def test_union_with_a_fallback(body, want):
    got = assert_decodes_as_reference("every", body)
    assert fd.same(got.u, (want,)), got.u


@pytest.mark.parametrize("body, marker", [
    (b'[{"n":1}]', b'{"n"'),                                   # missing, no fallback
    (b'[{"kind":5,"n":1}]', b'{"kind"'),                       # not a string
    (b'[{"kind":"leaf","n":1,"kind":"zzz"}]', b'{"kind"'),     # the last copy is unknown
    (b'[{"kind":"leaf","n":1,"kind":{}}]', b'{"kind"'),        # the last copy is no string
    # the look-ahead over the whole object refuses before the variant's decode
    (b'[{"kind":"leaf","n":"x","y":tru}]', b'tru'),
    (b'[{"kind":"leaf","legacy":{"s":5},"n":1 "x"}]', b'"x"'),
    (b'[{"kind":"leaf","n":"x","kind":"tagged","s":}]', b'}]'),
    # the decode of the variant refuses (the look-ahead skips nested values)
    (b'[{"kind":"leaf","n":"x"}]', b'"x"'),
    (b'[{"kind":"leaf","legacy":{"s":tru}}]', b'tru'),
    (b'[{"kind":"leaf","n":1,"kind":"tagged","meta":{"when":"x"}}]', b'"x"'),
], ids=["missing", "not-a-string", "last-unknown", "last-not-a-string", "framing-after-type",
        "framing-after-nested", "framing-after-second-copy", "type", "nested-literal",
        "type-in-last-variant"])
def test_union_refusals_point_where_the_full_look_ahead_does(body, marker):
    assert_refused_at("union", body, body.index(marker))
    # and as a later element of the array
    before = b'{"kind":"leaf"},'
    assert_refused_at("union", b'[' + before + body[1:], body.index(marker) + len(before))


# Nested unions: a OneOf whose variants hold a list of the same OneOf, to
# any depth; the variants differ in one field ("n" in A, "m" in B).

class NodeA(Record):
    kind = Field(str)
    n = Field(int)
    kids = Field(tuple)


class NodeB(Record):
    kind = Field(str)
    m = Field(int)
    kids = Field(tuple)


def nested_union_spec(levels):
    spec = ("any",)
    for _ in range(levels):
        def variant(cls, field):
            return ("record", cls, 3, ((("kind",), 0, ("str",)), ((field,), 1, ("int",)),
                                       (("kids",), 2, ("list", spec))))
        spec = ("union", "kind", {"a": variant(NodeA, "n"), "b": variant(NodeB, "m")}, None)
    return ("list", spec)


NESTED = nested_union_spec(4)


def decode_nested(body, max_depth=64):
    return _core.Schema(NESTED).decode(body, max_depth=max_depth)


@pytest.mark.parametrize("body", [
    b'[{"kind":"a","kids":[{"kind":"a","n":1,"kind":"b","m":2}]}]',
    b'[{"kind":"a","n":1,"kids":[{"kind":"b","m":1}],"kind":"b","m":3}]',
    b'[{"kind":"a","kids":[{"kind":"a","n":"x","kind":"b"}],"kind":"b"}]',
    b'[{"kids":[{"kind":"a","n":"x","kind":"b"},{"kind":"b","m":"y","kind":"a","n":4}],'
    b'"kind":"a","n":5}]',
    b'[{"kind":"b","kids":[{"kind":"a","kids":[{"kind":"b","m":"x","kind":"a"}],"kind":"b"}]}]',
], ids=["inner-repeated", "outer-repeated-after-inner", "both-repeated",
        "moot-type-errors-inner", "three-levels"])
def test_nested_unions_take_the_last_discriminator_at_every_level(body):
    doc, _ = fd.parse(body, page=False)
    want = fd.ref(NESTED, doc)
    got = decode_nested(body)
    assert fd.same(got, want), f"\n got: {got!r}\nwant: {want!r}"


@pytest.mark.parametrize("body, marker", [
    # the outer look-ahead refuses after the inner object's type error
    (b'[{"kind":"a","kids":[{"kind":"a","n":"x"}],"n":2 "z"}]', b'"z"'),
    (b'[{"kind":"a","kids":[{"kind":"a","n":"x","kind":"b"}],"n":2 "z"}]', b'"z"'),
    # the inner look-ahead refuses after the inner object's own type error
    (b'[{"kind":"a","kids":[{"kind":"a","n":"x","q":nul}]}]', b'nul}'),
    (b'[{"kind":"a","kids":[{"kind":"a","n":"x"}]}]', b'"x"'),
    (b'[{"kind":"a","kids":[{"kind":"b","m":1,"kind":"zzz"}]}]', b'{"kind":"b"'),
], ids=["outer-framing", "outer-framing-inner-repeated", "inner-framing", "inner-type",
        "inner-last-unknown"])
def test_nested_union_refusals_point_where_the_full_look_ahead_does(body, marker):
    with pytest.raises(custlist.DecodeError) as info:
        decode_nested(body)
    assert info.value.offset == body.index(marker), str(info.value)


def test_deeply_nested_repeated_discriminators():
    # Every level names "a" first and "b" last, and the innermost object holds
    # a value only "a" refuses: every level's first guess is wrong.
    levels = 10
    body = b'{"kind":"a","n":"x","kind":"b"}'
    for _ in range(levels - 1):
        body = b'{"kind":"a","n":1,"kids":[' + body + b'],"kind":"b","m":2}'
    body = b'[' + body + b']'
    spec = nested_union_spec(levels)
    got = _core.Schema(spec).decode(body, max_depth=64)
    assert fd.same(got, fd.ref(spec, fd.parse(body, page=False)[0]))
    for depth in range(levels):
        assert type(got[0]) is NodeB and got[0].m == (2 if depth < levels - 1 else None)
        got = got[0].kids



def test_natural_page_with_discriminators_anywhere():
    body = (b'{"data":[{"id":"p1","type":"party","attributes":{"status":"ACTIVE"}},'
            b'{"type":"party","id":"p2","type":"party"},'
            b'{"type":"grp","id":"g1","type":"party"},'
            b'{"type":"party","id":"x","attributes":{"status":"ACTIVE"},"type":"grp"}]}')
    page = custlist.natural.CUSTOMERS.decode(body)
    raw = json.loads(body)["data"]
    assert [type(r).__name__ for r in page.items] == ["Party", "Party", "Party", "UnknownResource"]
    assert [r.id for r in page.items] == [d["id"] for d in raw]
    assert page.items[0].status is custlist.natural.Status.ACTIVE
    assert page.items[3].type == "grp"


# ---- whitespace: compact JSON and the same tokens spaced out agree ----------

WS = [b" ", b"\n", b"\t", b"\r\n  "]


def spaced(body):
    """The body with whitespace before and after each bracket, comma and
    colon outside strings, and where each original byte went."""
    out, where, in_str, esc, k = bytearray(), [], False, False, 0
    for i, c in enumerate(body):
        structural = not in_str and c in b"{}[],:"
        if structural:
            out += WS[k % len(WS)]
            k += 1
        where.append(len(out))
        out.append(c)
        if structural:
            out += WS[k % len(WS)]
            k += 1
        elif esc:
            esc = False
        elif in_str and c == 0x5C:
            esc = True
        elif c == 0x22:
            in_str = not in_str
    where.append(len(out))
    return bytes(out), where


def outcome(target, body, deferred=False):
    t = fd.BY_NAME[target]
    try:
        return t.decode_deferred(body, 64) if deferred else t.decode(body, 64), None
    except custlist.DecodeError as e:
        return None, e


CORPUS_FILES = sorted((pathlib.Path(__file__).resolve().parent / "corpus").glob("*/*/*.bin"))


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: f"{p.parent.parent.name}/"
                         f"{p.parent.name}/{p.stem}")
def test_spaced_out_body_decodes_like_the_compact_one(path):
    # Compact bodies take the framing's fast path, spaced ones the general
    # one: same values, and errors at the same byte of the original.
    target, body = path.parent.name, path.read_bytes()
    wide, where = spaced(body)
    for deferred in ((False, True) if fd.BY_NAME[target].endpoint is not None else (False,)):
        got, err = outcome(target, body, deferred)
        got_wide, err_wide = outcome(target, wide, deferred)
        assert (err is None) == (err_wide is None), (err, err_wide)
        if err is None:
            assert fd.same(got, got_wide)
            continue
        # an error points at a byte, or right after the token before it
        before = where[err.offset] - (where[err.offset - 1] + 1 if err.offset else 0)
        assert err_wide.offset in (where[err.offset], where[err.offset] - before), \
            (str(err), str(err_wide))
        assert str(err).split(" (at byte")[0] == str(err_wide).split(" (at byte")[0]


# ---- key matching: any order, unknown keys anywhere, the last copy wins -----

def _s(rng):
    return json.dumps(rng.choice(["a", "b", "Ünal", "x\\ty", "", "0123456789abcdefghij"]))


def _junk(rng):
    return rng.choice(['1', 'null', '"v"', '[1,{"id":"no"}]', '{"name":"no","id":{}}', 'true'])


# (key as on the wire, value maker): known keys, aliases, escaped spellings
# of known keys, and unknown keys that share a known key's length and first
# 8 or 16 bytes, or are longer than 16 bytes
ADDRESS_KEYS = [(k, _s) for k in ("line1", "address_line_1", "line2", "address_line_2", "line3",
                                  "city", "state", "postal_code", "country", "c\\u0069ty")] + [
    (k, _junk) for k in ("cityx", "postal_codx", "address_line_1_", "an_unknown_key_longer_than_16")]
EXEMPTION_KEYS = [
    ("has_exemption", lambda rng: rng.choice(["true", "false"])),
    ("certificate_type", _s), ("exemption_jurisdiction", _s), ("exemption_jurisdictiom", _junk),
    ("expiration_status", lambda rng: rng.choice(['"ACTIVE"', '"EXPIRED"', '"other"', "null"])),
    ("exemption_status", lambda rng: rng.choice(['"ACTIVE"', '"INACTIVE"', "null"])),
    ("exemption_statuz", _junk)]


def _obj(rng, keys, p_dup=0.1):
    pairs = [(k, f) for k, f in keys if rng.random() < 0.7]
    rng.shuffle(pairs)
    if pairs and rng.random() < 0.5:
        pairs.sort(key=lambda kf: [k for k, _ in keys].index(kf[0]))    # the usual order
    for k, f in list(pairs):
        if rng.random() < p_dup:                                         # a key again, later
            pairs.insert(rng.randrange(len(pairs) + 1), (k, f))
    return "{" + ",".join(f'"{k}":{f(rng)}' for k, f in pairs) + "}"


CUSTOMER_KEYS = [(k, _s) for k in ("id", "name", "email", "corporation_id", "source_platform",
                                   "source_platform_id", "n\\u0061me")] + [
    ("created_at", lambda rng: str(rng.randrange(2 * 10**9))),
    ("shipping_address", lambda rng: rng.choice(["null", _obj(rng, ADDRESS_KEYS)])),
    ("exemption_metadata", lambda rng: rng.choice(["null", _obj(rng, EXEMPTION_KEYS)]))] + [
    (k, _junk) for k in ("x", "source_platform_ix", "source_platform_i", "corporation_ix", "idx",
                         "an_unknown_key_of_thirty_bytes", "emai\\u006c2")]


@pytest.mark.parametrize("seed", range(40))
def test_keys_in_any_order_match_like_json_loads(seed):
    # One page whose records change their key order, drop keys, add unknown
    # ones and repeat keys from record to record: the decoder's memory of
    # the last record's keys must never pick a wrong field.  Groups are
    # not repeated here (a repeated group replaces the first one whole,
    # which the reference does not model: see test_corpus.py).
    import random
    rng = random.Random(seed)
    records = []
    for _ in range(30):
        rec = _obj(rng, CUSTOMER_KEYS, p_dup=0.0)
        # the id is always there (required); another copy of it may follow
        rec = '{"id":' + _s(rng) + ("," if rec != "{}" else "") + rec[1:]
        if rng.random() < 0.3:                              # repeat a scalar key
            k, f = rng.choice(CUSTOMER_KEYS[:7])
            rec = rec[:-1] + ("," if rec != "{}" else "") + f'"{k}":{f(rng)}' + "}"
        records.append(rec)
    body = ('{"customers":[' + ",".join(records) + '],"has_more":false}').encode()
    doc, _ = fd.parse(body, page=True)
    want = fd.ref_page(fd.BY_NAME["commenda"], doc)
    for deferred in (False, True):
        got = (fd.BY_NAME["commenda"].decode_deferred(body, 64) if deferred
               else decode("commenda", body))
        assert fd.same(got, want), f"\n got: {got!r}\nwant: {want!r}"


def test_same_key_map_in_two_orders_alternating():
    # Two records' key orders alternate, each key moved: every key is
    # predicted wrong once per record and still lands in its own field.
    a = b'{"id":"1","name":"n1","email":"e1","unknown_key":1,"created_at":1}'
    b = b'{"created_at":2,"email":"e2","unknown_key":[2],"name":"n2","id":"2"}'
    body = b'{"customers":[' + b",".join([a, b] * 5) + b"]}"
    page = decode("commenda", body)
    assert [r.id for r in page.items] == ["1", "2"] * 5
    assert [r.name for r in page.items] == ["n1", "n2"] * 5
    assert [r.email for r in page.items] == ["e1", "e2"] * 5
    assert [r.created_at.timestamp() for r in page.items] == [1, 2] * 5


def test_unknown_key_alike_a_known_one_is_not_taken_for_it():
    # Same length and first 16 bytes as "source_platform_id"; the first
    # record teaches the decoder that the real key comes at that place.
    body = (b'{"customers":[{"id":"1","source_platform_id":"real"},'
            b'{"id":"2","source_platform_ix":"fake"},'
            b'{"id":"3","source_platform_ix":"fake","source_platform_id":"real3"},'
            b'{"id":"4","source_platform_id":"real4","source_platform_id":"last"}]}')
    page = decode("commenda", body)
    assert [r.source_platform_id for r in page.items] == ["real", None, "real3", "last"]


def test_remembered_key_matched_in_place_only_when_its_spelling_is_plain():
    # An unknown key learnt from an escaped spelling ("x\u0022" is x")
    # must not be matched by its bytes in place: there `"x""` is the key
    # "x" followed by a stray quote, which is refused where the colon was due.
    learn = b'{"s":"a","x\\u0022":1,"i":1},' * 3
    body = b'[' + learn + b'{"s":"b","x"":1,"i":2},' + learn[:-1] + b']'
    assert fd.parse(body, page=False)[0] is fd.NOT_JSON
    assert_refused_at("every-list", body, body.index(b'"x""') + 3)


@pytest.mark.parametrize("record", [
    b'{"id":"2","name" :"b","email":"e"}',          # space before the colon
    b'{"id":"2","name": "b","email":"e"}',          # space after it
    b'{"id":"2","n\\u0061me":"b","email":"e"}',     # the key escaped
    b'{"id":"2" ,"name":"b","email":"e"}',          # space before the comma
    b'{"id":"2","namex":"b","email":"e"}',          # a longer key alike
    b'{"id":"2","nam":"b","email":"e"}',            # a shorter one
])
def test_remembered_keys_in_other_spellings_match_like_json_loads(record):
    learn = b'{"id":"1","name":"a","email":"e"},' * 3
    body = b'{"customers":[' + learn + record + b',' + learn[:-1] + b']}'
    doc, _ = fd.parse(body, page=True)
    want = fd.ref_page(fd.BY_NAME["commenda"], doc)
    got = decode("commenda", body)
    assert fd.same(got, want), f"\n got: {got!r}\nwant: {want!r}"


def test_repeated_discriminator_found_when_the_keys_are_remembered():
    # The first record, decoded exactly as a Leaf, teaches Leaf's keys that
    # "kind" comes after "n"; in the second the fast mode takes it for a
    # Leaf and meets its second "kind" at that remembered place: still
    # seen, so the last copy names the variant.
    a = b'{"kind":"tagged","n":1,"kind":"leaf"},'
    b = b'{"kind":"leaf","n":1,"kind":"tagged"},'
    body = b'[' + (a + b) * 3 + b'{"kind":"leaf","n":1,"s":"a"}]'
    got = assert_decodes_as_reference("union", body)
    assert [type(r).__name__ for r in got] == ["Leaf", "Tagged"] * 3 + ["Leaf"]
