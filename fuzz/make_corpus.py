"""Write the checked-in corpus: tests/corpus/hostile/*.bin must raise
DecodeError, tests/corpus/valid/*.bin must decode.  Each file is a fuzz
input (selector byte + body), so the fuzzer starts from the corpus too.

    python fuzz/make_corpus.py
"""
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1] / "tests" / "corpus"
PYNG, NAT, INV, COM, PYNG_RAW = 0, 1, 2, 3, 4
EVERY = 128                      # the every-kind record schema

PAGE = json.dumps({"data": {"items": [
    {"customerReference": "ACME-002", "state": "invited", "invitedAt": 1777852800000,
     "expiresAt": 1778457600000},
    {"customerReference": "ACME-\u00e9\ud83d\ude80", "state": "linked", "invitedAt": 1777680000000,
     "linkedAt": 1777683600000}], "totalItems": 3, "nextHref": "https://x/y"},
    "traceId": "t"}).encode()

NAT_PAGE = json.dumps({"data": [{"type": "party", "id": "pty_1", "attributes": {
    "email": None, "status": "ACTIVE", "permissions": ["payments:read", "wallets.read"],
    "created_at": "2026-01-04T15:30:00Z", "wallet_available_minor": 950000,
    "wallet_available_dollars": "9500.00", "wallet_access": "granted",
    "party": {"id": "pty_1", "name": "N", "email": "e"}}}],
    "meta": {"pagination": {"has_more": False, "next_cursor": None}}}).encode()


def every(**fields):
    return bytes([EVERY]) + json.dumps(fields).encode()


HOSTILE = {
    "empty": bytes([PYNG]),
    "null_body": bytes([PYNG]) + b"null",
    "array_body": bytes([PYNG]) + b"[]",
    "trailing_garbage": bytes([PYNG]) + PAGE + b" x",
    "two_documents": bytes([PYNG]) + PAGE + PAGE,
    "bad_utf8_ff": bytes([PYNG]) + PAGE.replace(b"ACME-002", b"ACME-\xff"),
    "bad_utf8_overlong": bytes([PYNG]) + PAGE.replace(b"ACME-002", b"\xc0\xafACME"),
    "bad_utf8_surrogate": bytes([PYNG]) + PAGE.replace(b"ACME-002", b"\xed\xa0\x80AC"),
    "bad_utf8_truncated": bytes([PYNG]) + PAGE.replace(b"ACME-002\"", b"ACME-\xe2\x82\""),
    "bad_utf8_above_max": bytes([PYNG]) + PAGE.replace(b"ACME-002", b"\xf4\x90\x80\x80AC"),
    "lone_high_surrogate": bytes([PYNG]) + PAGE.replace(b"ACME-002", b"\\ud83dACME"),
    "lone_low_surrogate": bytes([PYNG]) + PAGE.replace(b"ACME-002", b"\\ude80ACME"),
    "reversed_surrogates": bytes([PYNG]) + PAGE.replace(b"ACME-002", b"\\ude80\\ud83d"),
    "bad_escape": bytes([PYNG]) + PAGE.replace(b"ACME-002", b"AC\\xME"),
    "short_unicode_escape": bytes([PYNG]) + PAGE.replace(b"ACME-002", b"AC\\u12"),
    "control_char": bytes([PYNG]) + PAGE.replace(b"ACME-002", b"AC\x01ME"),
    "raw_newline": bytes([PYNG]) + PAGE.replace(b"ACME-002", b"AC\nME"),
    "unterminated_string": bytes([PYNG]) + b'{"data":{"items":[{"customerReference":"ACME',
    "truncated_in_key": bytes([PYNG]) + b'{"data":{"ite',
    "truncated_after_colon": bytes([PYNG]) + b'{"data":',
    "truncated_in_number": bytes([PYNG]) + b'{"data":{"items":[],"totalItems":12',
    "missing_colon": bytes([PYNG]) + b'{"data" {}}',
    "missing_comma": bytes([PYNG]) + b'{"data":{} "x":1}',
    "trailing_comma_object": bytes([PYNG]) + b'{"data":{"items":[]},}',
    "trailing_comma_array": bytes([PYNG]) + b'{"data":{"items":[1,]}}',
    "leading_comma_array": bytes([PYNG]) + b'{"data":{"items":[,1]}}',
    "unquoted_key": bytes([PYNG]) + b'{data:{}}',
    "single_quotes": bytes([PYNG]) + b"{'data':{}}",
    "deep_nesting": bytes([PYNG]) + b'{"data":{"x":' + b"[" * 20000 + b"]" * 20000 + b"}}",
    "deep_items": bytes([PYNG]) + b'{"data":{"items":[' + b"[" * 5000 + b"]" * 5000 + b"]}}",
    "deep_unclosed": bytes([PYNG]) + b"{" + b'"a":{' * 50,
    "number_nan": bytes([PYNG]) + b'{"data":{"totalItems":NaN}}',
    "number_infinity": bytes([PYNG]) + b'{"data":{"totalItems":Infinity}}',
    "number_leading_zero": bytes([PYNG]) + b'{"data":{"totalItems":01}}',
    "number_trailing_dot": bytes([PYNG]) + b'{"data":{"totalItems":1.}}',
    "number_leading_dot": bytes([PYNG]) + b'{"data":{"totalItems":.5}}',
    "number_plus": bytes([PYNG]) + b'{"data":{"totalItems":+1}}',
    "number_bare_minus": bytes([PYNG]) + b'{"data":{"totalItems":-}}',
    "number_empty_exponent": bytes([PYNG]) + b'{"data":{"totalItems":1e}}',
    "total_is_float": bytes([PYNG]) + b'{"data":{"items":[],"totalItems":1.5}}',
    "total_is_string": bytes([PYNG]) + b'{"data":{"items":[],"totalItems":"3"}}',
    "items_is_object": bytes([PYNG]) + b'{"data":{"items":{}}}',
    "item_is_number": bytes([PYNG]) + b'{"data":{"items":[1]}}',
    "state_is_number": bytes([PYNG]) + PAGE.replace(b'"invited"', b"7"),
    "invited_at_is_string": bytes([PYNG]) + PAGE.replace(b"1777852800000", b'"soon"'),
    "invited_at_is_float": bytes([PYNG]) + PAGE.replace(b"1777852800000", b"1777852800000.5"),
    "invited_at_beyond_9999": bytes([PYNG]) + PAGE.replace(b"1777852800000", b"253402300800000"),
    "invited_at_huge": bytes([PYNG]) + PAGE.replace(b"1777852800000", b"99999999999999999999999"),
    "literal_typo": bytes([PYNG]) + b'{"data":nul}',
    "literal_true_as_total": bytes([PYNG]) + b'{"data":{"totalItems":true}}',
    "bom_twice": bytes([PYNG]) + b"\xef\xbb\xbf\xef\xbb\xbf{}",
    "natural_dollars_exponent": bytes([NAT]) + NAT_PAGE.replace(b'"9500.00"', b'"1e5"'),
    "natural_dollars_nan": bytes([NAT]) + NAT_PAGE.replace(b'"9500.00"', b'"NaN"'),
    "natural_dollars_empty": bytes([NAT]) + NAT_PAGE.replace(b'"9500.00"', b'""'),
    "natural_dollars_bool": bytes([NAT]) + NAT_PAGE.replace(b'"9500.00"', b"true"),
    "natural_created_month_13": bytes([NAT]) + NAT_PAGE.replace(b"2026-01-04", b"2026-13-04"),
    "natural_created_feb_30": bytes([NAT]) + NAT_PAGE.replace(b"2026-01-04", b"2026-02-30"),
    "natural_created_year_0": bytes([NAT]) + NAT_PAGE.replace(b"2026-01-04", b"0000-01-04"),
    "natural_created_leap_second": bytes([NAT]) + NAT_PAGE.replace(b"15:30:00Z", b"23:59:60Z"),
    "natural_created_bad_offset": bytes([NAT]) + NAT_PAGE.replace(b"15:30:00Z", b"15:30:00+1"),
    "natural_permissions_object": bytes([NAT]) + NAT_PAGE.replace(b'["payments:read", "wallets.read"]', b"{}"),
    "natural_party_array": bytes([NAT]) + NAT_PAGE.replace(b'{"id": "pty_1", "name"', b'[{"id": "pty_1", "name"').replace(b'"e"}}}', b'"e"}]}}'),
    "natural_has_more_string": bytes([NAT]) + NAT_PAGE.replace(b'"has_more": false', b'"has_more": "no"'),
    "natural_attributes_string": bytes([NAT]) + b'{"data":[{"type":"party","id":"p","attributes":"x"}]}',
    "commenda_created_string": bytes([COM]) + b'{"customers":[{"id":"c","created_at":"2024"}]}',
    "commenda_address_string": bytes([COM]) + b'{"customers":[{"id":"c","shipping_address":"x"}]}',
    "every_int_float": every(i=1.5),
    "every_float_inf": bytes([EVERY]) + b'{"f": 1e999}',
    "every_decimal_exponent": every(d="1e5"),
    "every_decimal_double_dot": every(d="1.2.3"),
    "every_decimal_trailing_dot": every(d="1."),
    "every_unix_s_range": every(ts=253402300800),
    "every_unix_ms_negative_range": every(tms=-62135596800001),
    "every_datetime_number": every(t=0),
    "every_datetime_junk_suffix": every(t="2026-01-01T00:00:00Zjunk"),
    "every_enum_number": every(e=1),
    "every_leaves_object": every(leaves={"n": 1}),
    "every_strs_numbers": every(strs=[1, 2]),
    "every_union_not_object": every(u=[1]),
    "every_nested_group_not_object": every(x=[1]),
}

VALID = {
    "pyng_page": bytes([PYNG]) + PAGE,
    "pyng_page_raw": bytes([PYNG_RAW]) + PAGE,
    "pyng_bom": bytes([PYNG]) + b"\xef\xbb\xbf" + PAGE,
    "pyng_whitespace": bytes([PYNG]) + b" \n\t\r" + PAGE + b" \n",
    "pyng_duplicate_keys": bytes([PYNG]) + b'{"data":{"items":[],"totalItems":1,"totalItems":2}}',
    "pyng_nulls": bytes([PYNG]) + b'{"data":{"items":[{"customerReference":null,"state":null}],"totalItems":null}}',
    "pyng_unknown_state": bytes([PYNG]) + PAGE.replace(b'"linked"', b'"archived"'),
    "pyng_huge_int_unknown_key": bytes([PYNG]) + b'{"data":{"items":[],"zz":123456789012345678901234567890}}',
    "pyng_escaped_key": bytes([PYNG]) + b'{"d\\u0061ta":{"\\u0069tems":[{"customerReference":"\\u00e9\\ud83d\\ude80\\n\\"\\\\\\/"}]}}',
    "pyng_negative_zero": bytes([PYNG]) + b'{"data":{"items":[],"totalItems":-0}}',
    "pyng_nul_char": bytes([PYNG]) + b'{"data":{"items":[{"customerReference":"a\\u0000b"}]}}',
    "natural_page": bytes([NAT]) + NAT_PAGE,
    "natural_tag_last": bytes([NAT]) + b'{"data":[{"attributes":{"status":"NEW"},"id":"x","type":"party"}]}',
    "natural_unknown_type": bytes([NAT]) + b'{"data":[{"type":"mystery","id":"m","attributes":{"a":[1,{"b":null}]}}]}',
    "natural_no_type": bytes([NAT]) + b'{"data":[{"id":"m","attributes":{}}]}',
    "commenda_wrapped": bytes([COM]) + b'{"data":{"customers":[{"id":"c1","created_at":0}],"total_customers":1},"message":"ok"}',
    "commenda_old_address": bytes([COM]) + b'{"customers":[{"id":"c","shipping_address":{"address_line_1":"1 Rd","address_line_3":"x"}}]}',
    "every_kinds": every(s="x", i=-9223372036854775809, f=-0.0, b=False, d="-0.10", t="2026-03-01T12:00:00.5+02:00",
                         ts=-62135596800, tms=253402300799999, e="a", x={"y": {"leaf": {"n": 1, "old_s": "o"}}},
                         leaves=[{"n": 1}, {"n": 2}], strs=["a", "a", "b"],
                         u=[{"kind": "leaf", "n": 3}, {"kind": "zzz", "rest": {}}], anything={"k": [1.5, None]}),
    "every_datetime_lowercase": every(t="2026-03-01t12:00:00z"),
    "every_datetime_nanoseconds": every(t="2026-03-01T12:00:00.123456789Z"),
    "every_decimal_number": bytes([EVERY]) + b'{"d": 12.3400}',
    "any_big_document": bytes([EVERY + 2]) + json.dumps([{"k": i, "v": str(i) * 3} for i in range(500)]).encode(),
}


def main():
    for kind, cases in (("hostile", HOSTILE), ("valid", VALID)):
        folder = ROOT / kind
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in cases.items():
            (folder / f"{name}.bin").write_bytes(data)
    print(f"wrote {len(HOSTILE)} hostile and {len(VALID)} valid inputs under {ROOT}")


if __name__ == "__main__":
    main()
