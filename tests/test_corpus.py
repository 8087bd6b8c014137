"""Replay the checked-in decoder corpus (tests/corpus, written by
fuzz/make_corpus.py; fuzzer findings are added there as they are fixed)."""
import json
import pathlib
import random
import sys

import pytest

import custlist
from custlist import pyng

ROOT = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "fuzz"))
import targets  # noqa: E402

HOSTILE = sorted((ROOT / "corpus" / "hostile").glob("*.bin"))
VALID = sorted((ROOT / "corpus" / "valid").glob("*.bin"))


def test_corpus_is_there():
    assert len(HOSTILE) >= 60 and len(VALID) >= 20


@pytest.mark.parametrize("path", HOSTILE, ids=lambda p: p.stem)
def test_hostile_input_raises_decode_error(path):
    result = targets.run(path.read_bytes())
    assert isinstance(result, custlist.DecodeError), result


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_input_decodes(path):
    result = targets.run(path.read_bytes())
    assert result is not None and not isinstance(result, custlist.DecodeError), result


@pytest.mark.parametrize("name, offset", [
    ("trailing_garbage", None), ("truncated_after_colon", 8), ("missing_colon", 8),
    ("unquoted_key", 1), ("item_is_number", 18), ("number_leading_zero", 23),
])
def test_offsets_point_at_the_fault(name, offset):
    data = (ROOT / "corpus" / "hostile" / f"{name}.bin").read_bytes()
    e = targets.run(data)
    body = data[1:]
    if offset is None:                       # the byte after the first document
        offset = body.rindex(b" x") + 1
    assert e.offset == offset, (e, body[:e.offset + 5])


def test_escaped_keys_and_strings():
    data = (ROOT / "corpus" / "valid" / "pyng_escaped_key.bin").read_bytes()
    (item,) = targets.run(data).items
    assert item.customer_reference == "\u00e9\U0001F680\n\"\\/"


def random_text(rng):
    pools = ["abc", "é", "中", "\U0001F680", "\"\\/", "\n\t\x00\x1f", "\u2028", "\ud7ff\ue000\uffff"]
    return "".join(rng.choice(pools) for _ in range(rng.randrange(0, 12)))


@pytest.mark.parametrize("seed", range(40))
def test_random_pages_match_json_loads(seed):
    rng = random.Random(seed)
    items = [{"customerReference": random_text(rng), "state": rng.choice(["invited", "linked", "x"]),
              "invitedAt": rng.randrange(-62135596800000, 253402300799999),
              rng.choice(["expiresAt", "linkedAt", "other"]): rng.randrange(0, 1 << 44),
              random_text(rng) or "k": [random_text(rng), {"n": rng.random()}]}
             for _ in range(rng.randrange(0, 30))]
    doc = {"data": {"items": items, "totalItems": rng.randrange(1 << 62)}, "traceId": random_text(rng)}
    body = json.dumps(doc, ensure_ascii=bool(seed % 2)).encode()
    page = pyng.CUSTOMERS.decode(body)
    raw = pyng.CUSTOMERS.decode(body, raw=True)
    assert list(raw.items) == json.loads(body)["data"]["items"]
    assert page.total == doc["data"]["totalItems"] and page.trace_id == doc["traceId"]
    for rec, wire in zip(page.items, items):
        assert rec.customer_reference == wire["customerReference"]
        assert rec.state == wire["state"]
        assert int(rec.invited_at.timestamp() * 1000) == wire["invitedAt"] or \
            abs(rec.invited_at.timestamp() * 1000 - wire["invitedAt"]) < 1
        assert (rec.expires_at is None) == ("expiresAt" not in wire)
