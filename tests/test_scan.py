"""The scanner's block steps: a string's special byte (quote, backslash,
control, non-ASCII) is found at every position within and across 8- and
16-byte blocks, near the end of the body too; keys and enum values are
matched on every byte, not only on their first eight.  Each body also goes
through the fuzz target's whole contract check (one-pass and two-pass
decodes agree with each other and with json.loads)."""
import json

import pytest

import custlist
from custlist import pyng

from . import decode_targets as fd

LINKED = pyng.LinkState.LINKED
SPECIALS = ['"', "\\", "\u00e9", "\n", "\U0001F680", "\x1f", "/"]


def page(item, tail=""):
    item = {"invitedAt": 0, **item}                   # required, with the reference and state
    return json.dumps({"data": {"items": [item]}, "traceId": tail}, ensure_ascii=False).encode()


def checked(body):
    res = fd.check(bytes([fd.selector("pyng")]) + body)
    assert not isinstance(res, custlist.DecodeError), res
    return res


@pytest.mark.parametrize("special", SPECIALS)
def test_special_byte_at_every_position(special):
    for width in (1, 7, 8, 9, 15, 16, 17, 33):
        for i in range(width + 1):
            text = "a" * i + special + "b" * (width - i)
            (item,) = checked(page({"customerReference": text, "state": "linked"})).items
            assert item.customer_reference == text
            # the same string as the last one of the body: fewer than a block left
            body = page({"customerReference": "x", "state": "linked"}, tail=text)
            assert checked(body).trace_id == text


def test_raw_control_and_bad_utf8_are_refused_at_their_byte():
    for width in (7, 8, 16, 33):
        for i in range(width):
            for bad in (b"\x01", b"\xff", b"\xc3"):
                text = b"a" * i + bad + b"b" * (width - i)
                body = b'{"data":{"items":[]},"traceId":"' + text + b'"}'
                with pytest.raises(custlist.DecodeError) as info:
                    pyng.CUSTOMERS.decode(body)
                assert info.value.offset == body.index(text) + i
                # and through the structure skip of the two-pass decode
                fd.check(bytes([fd.selector("pyng")]) + body)


def test_keys_differing_after_eight_bytes_are_not_confused():
    item = {"customerReferenceX": "no", "customerReferenc": "no", "customerRefXrence": "no",
            "customerReferencf": "no", "customerReference": "yes",
            "stat": "no", "states": "no", "state": "linked"}
    (got,) = checked(page(item)).items
    assert got.customer_reference == "yes" and got.state is LINKED


def test_escaped_keys_and_enum_values_match_by_all_their_bytes():
    body = (b'{"data":{"items":[{"\\u0063ustomerReference":"a","st\\u0061te":"linke\\u0064",'
            b'"invitedAt":0},{"customerReference":"b","state":"linkedX","invitedAt":0},'
            b'{"customerReference":"c","state":"linke","invitedAt":0}]}}')
    a, b, c = checked(body).items
    assert a.customer_reference == "a" and a.state is LINKED
    assert type(b.state) is str and b.state == "linkedX"
    assert type(c.state) is str and c.state == "linke"


# ---- the structure skip (the Pager's locating pass) --------------------------
# The items array is stepped over by its brackets, 64 bytes at a time, and
# byte by byte in a block with a backslash: wherever a quote, an escape, a
# run of backslashes or a bracket inside a string falls against the block
# edges, the skip must end on the array's own bracket, and a body cut short
# or nested too deep must be refused as the byte loop refused it.

def deferred(body, max_depth=64):
    page, item = pyng.CUSTOMERS.schemas(True, deferred=True)
    return custlist._core.decode_page(page, item, body, max_depth)


def envelope(items_json: str) -> bytes:
    return ('{"data":{"items":' + items_json + ',"nextHref":"/n?c=]}"},"traceId":"t[{"}').encode()


TRICKY = ['"', "\\", "\\\\", "\\\"", "]", "}", "[{", '"]', "\\]", "é", "\\u005d"]


@pytest.mark.parametrize("tricky", TRICKY)
def test_structure_skip_ends_on_the_items_bracket_wherever_the_blocks_fall(tricky):
    for pad in range(0, 140):
        items = [{"a": "x" * pad + tricky + "y", "b": [[], {}, ["]"]]}, "z" * (pad % 7)]
        body = envelope(json.dumps(items, ensure_ascii=False))
        got, slots = deferred(body)
        assert got == tuple(items) or list(got) == items
        assert slots[6] == "t[{" and slots[4] == "/n?c=]}"


def test_a_backslash_outside_a_string_in_the_items_is_refused_at_its_byte_by_both_passes():
    # The skip reads a block's escapes as if every backslash were in a
    # string; one outside a string sends the block back to the byte rules,
    # where it escapes nothing: the quote after it opens a string, and the
    # bracket in that string does not end the items early.
    for pad in range(0, 140):
        item = {"invitedAt": 0, "customerReference": "x" * pad, "state": "linked"}
        items_json = "[" + json.dumps(item) + ', \\"]", {}]'
        body = envelope(items_json)
        at = body.index(b"\\")
        for decode in (pyng.CUSTOMERS.decode, deferred):
            with pytest.raises(custlist.DecodeError) as info:
                decode(body)
            assert info.value.offset == at, (pad, decode)


def test_structure_skip_refuses_nesting_past_max_depth_at_the_array():
    for pad in range(0, 140, 3):
        for extra in (0, 1):
            depth = 10
            # envelope 2 levels + items array 1 + (depth - 3 + extra) nested lists
            inner = "[" * (depth - 3 + extra) + "]" * (depth - 3 + extra)
            items_json = '["' + "x" * pad + '",' + inner + "]"
            body = envelope(items_json)
            if not extra:
                assert deferred(body, depth)[1][6] == "t[{"
                continue
            with pytest.raises(custlist.DecodeError) as info:
                deferred(body, depth)
            assert info.value.offset == body.index(b"[", len('{"data":{"items":') - 1)
            assert "nested deeper than 10" in str(info.value)


def test_structure_skip_refuses_a_body_cut_short_inside_the_items():
    items_json = json.dumps([{"s": "a\\\"b" * 20 + "]" * 5, "t": [1, [2, {"u": "}"}]]}] * 4)
    full = envelope(items_json)
    start = full.index(b"[")
    for cut in range(start + 1, start + len(items_json) - 1):
        body = full[:cut]
        with pytest.raises(custlist.DecodeError) as info:
            deferred(body)
        assert info.value.offset == len(body), cut
        assert "unexpected end of body inside an array or object" in str(info.value), cut
