"""Write the decoder corpus:  python tests/corpus/generate.py

    hostile/<target>/<case>.bin   must raise custlist.DecodeError
    valid/<target>/<case>.bin     must decode (tests/test_corpus.py holds the
                                  exact values each one decodes to)

<target> names what decodes the body (see tests/decode_targets.py):
an endpoint ("pyng", "natural", "invitations", "commenda", each also
"-raw"), or a Schema rooted at one kind ("every", "datetime", "decimal"...).
The files are plain bodies; fuzz/run.sh seeds the fuzzer with them.  Inputs
the fuzzer finds go in by hand (or as a case here), once the bug is fixed.
Existing files that no case writes are left alone.
"""
import json
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
CASES = {"hostile": {}, "valid": {}}


def hostile(target, name, body):
    CASES["hostile"][(target, name)] = body


def valid(target, name, body):
    CASES["valid"][(target, name)] = body


def dumps(doc) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


# ---------------------------------------------------------------------------
# Base documents

PYNG = dumps({"data": {"items": [
    {"customerReference": "ACME-001", "state": "invited", "invitedAt": 1777852800000,
     "expiresAt": 1778457600000},
    {"customerReference": "ACME-\u00e9\U0001F680", "state": "linked", "invitedAt": 1777680000000,
     "linkedAt": 1777683600123}],
    "totalItems": 2, "nextHref": "https://api.example/next?c=1", "prevHref": None},
    "traceId": "tr-1"})

PARTY = {"type": "party", "id": "pty_1", "attributes": {
    "email": "a@example.com", "status": "ACTIVE", "permissions": ["payments:read", "wallets.read"],
    "created_at": "2026-01-04T15:30:00Z", "wallet_available_minor": 950000,
    "wallet_available_dollars": "9500.00", "wallet_access": "granted",
    "party": {"id": "pty_1", "name": "Nat", "email": "n@example.com"}}}
NATURAL = dumps({"data": [PARTY], "meta": {"pagination": {"has_more": False, "next_cursor": None}}})

INVITATION = {"type": "customer_invitation", "id": "c@example.com", "attributes": {
    "status": "PENDING", "party": {"id": "pty_9", "name": "C"}, "email": "c@example.com",
    "createdAt": "2026-02-01T08:00:00.250Z", "walletAvailableMinor": 0, "walletAccess": "denied",
    "agentInvitations": [{"invitationId": "ai_1", "agent": {"id": "agt_1", "name": "Bot"},
                          "permissions": ["read"], "createdAt": "2026-02-01T08:00:00Z",
                          "expiresAt": "2026-03-01T08:00:00+01:00"}]}}
INVITATIONS = dumps({"data": [INVITATION],
                     "meta": {"pagination": {"hasMore": True, "nextCursor": "cur_2"}}})

CUSTOMER = {"id": "cus_1", "name": "Shop", "email": "s@example.com", "corporation_id": "corp_1",
            "created_at": 1767225600, "source_platform": "shopify", "source_platform_id": "42",
            "shipping_address": {"line1": "1 Main St", "line2": None, "city": "Austin",
                                 "state": "TX", "postal_code": "78701", "country": "US"},
            "exemption_metadata": {"has_exemption": True, "certificate_type": "resale",
                                   "exemption_jurisdiction": "TX", "expiration_status": "ACTIVE",
                                   "exemption_status": "INACTIVE"}}
COMMENDA = dumps({"customers": [CUSTOMER], "total_customers": 1, "cursor": "c2"})


def pyng_item(**fields):
    item = {"customerReference": "R", "state": "invited", "invitedAt": 0}
    item.update(fields)
    return dumps({"data": {"items": [item]}})


def pyng_raw_item(text: bytes) -> bytes:
    """A Pyng page whose one item value is given as raw bytes."""
    return b'{"data":{"items":[{"customerReference":' + text + b'}]}}'


def natural_attr(**attrs):
    item = {"type": "party", "id": "pty_1", "attributes": attrs}
    return dumps({"data": [item]})


def every(**fields):
    return dumps(fields)


# ---------------------------------------------------------------------------
# Hostile: must raise DecodeError

# Empty and non-object bodies.
hostile("pyng", "empty", b"")
hostile("pyng", "whitespace_only", b" \r\n\t ")
hostile("pyng", "null_body", b"null")
hostile("pyng", "array_body", b"[]")
hostile("pyng", "string_body", b'"data"')
hostile("pyng", "number_body", b"1")
hostile("pyng", "bom_only", b"\xef\xbb\xbf")
hostile("pyng", "bom_twice", b"\xef\xbb\xbf\xef\xbb\xbf{}")
hostile("pyng", "bom_after_space", b" \xef\xbb\xbf{}")
hostile("any", "bom", b"\xef\xbb\xbf{}")        # a bare Schema takes no BOM
hostile("natural", "empty", b"")
hostile("commenda", "null_body", b"null")
hostile("every", "empty", b"")
hostile("every-list", "object_not_list", b"{}")

# Truncated at many points of a valid page (a proper prefix is never JSON).
for cut in (1, 2, 9, 18, 21, 41, 52, 60, 77, 100, 150, 200, 260, 300, len(PYNG) - 1):
    hostile("pyng", f"truncated_{cut:03d}", PYNG[:cut])
for cut in (30, 120, 250, len(NATURAL) - 1):
    hostile("natural", f"truncated_{cut:03d}", NATURAL[:cut])
for cut in (50, 200, len(INVITATIONS) - 2):
    hostile("invitations", f"truncated_{cut:03d}", INVITATIONS[:cut])
for cut in (15, 300, len(COMMENDA) - 1):
    hostile("commenda-raw", f"truncated_{cut:03d}", COMMENDA[:cut])
hostile("pyng", "truncated_in_literal", b'{"data":{"prevHref":nul')
hostile("pyng", "truncated_in_escape", b'{"data":{"nextHref":"a\\')
hostile("pyng", "truncated_in_unicode_escape", b'{"data":{"nextHref":"a\\u00')
hostile("pyng", "truncated_in_surrogate_pair", b'{"data":{"nextHref":"a\\ud83d\\ude')
hostile("pyng", "truncated_in_utf8", b'{"data":{"nextHref":"a\xe2\x82')
hostile("any", "truncated_number_minus", b"-")
hostile("any", "truncated_exponent", b"1e")
hostile("int", "truncated_fraction", b"1.")
hostile("unix_ms", "truncated_exponent_sign", b"1e+")

# Structure.
hostile("pyng", "trailing_garbage", PYNG + b" x")
hostile("pyng", "trailing_nul", PYNG + b"\x00")
hostile("pyng", "two_documents", PYNG + PYNG)
hostile("pyng", "trailing_comma_object", b'{"data":{"items":[]},}')
hostile("pyng", "trailing_comma_array",
        b'{"data":{"items":[{"customerReference":"R","state":"s","invitedAt":0},]}}')
# A required field absent or null.
hostile("pyng", "required_missing", b'{"data":{"items":[{"state":"invited","invitedAt":0}]}}')
hostile("pyng", "required_null", b'{"data":{"items":[{"customerReference":"R","state":null,'
                                 b'"invitedAt":0}]}}')
hostile("natural", "required_id_missing", b'{"data":[{"type":"party","attributes":{}}]}')
hostile("commenda", "required_id_null", b'{"customers":[{"id":null}]}')
hostile("pyng-raw", "trailing_comma_array", b'{"data":{"items":[1,]}}')
hostile("pyng", "leading_comma_array", b'{"data":{"items":[,{}]}}')
hostile("pyng", "double_comma", b'{"data":{},,"traceId":"t"}')
hostile("pyng", "missing_colon", b'{"data" {}}')
hostile("pyng", "missing_comma", b'{"data":{} "traceId":"t"}')
hostile("pyng", "unquoted_key", b'{data:{}}')
hostile("pyng", "single_quotes", b"{'data':{}}")
hostile("pyng", "comment", b'{"data":{} // c\n}')
hostile("pyng", "mismatched_brackets", b'{"data":{"items":[}]}')
hostile("pyng", "mismatched_in_unknown", b'{"x":[1}],"data":{}}')
hostile("pyng-raw", "mismatched_in_items", b'{"data":{"items":[{"a":[1}]}]}}')
hostile("any", "literal_typo", b"[tru]")
hostile("any", "literal_capital", b"True")
hostile("any", "literal_prefix", b"nulll")
hostile("any", "form_feed_whitespace", b"[\x0c1]")
hostile("any", "nbsp_whitespace", b"[\xc2\xa01]")

# Invalid UTF-8 (in values, keys and skipped values alike).
for name, bad in [("ff", b"\xff"), ("fe", b"\xfe"), ("lone_continuation", b"\x80"),
                  ("overlong_slash", b"\xc0\xaf"), ("overlong_c1", b"\xc1\xbf"),
                  ("overlong_3byte", b"\xe0\x80\xaf"), ("overlong_4byte", b"\xf0\x8f\xbf\xbf"),
                  ("surrogate_d800", b"\xed\xa0\x80"), ("surrogate_dfff", b"\xed\xbf\xbf"),
                  ("surrogate_pair_cesu", b"\xed\xa0\xbd\xed\xb8\x80"),
                  ("above_10ffff", b"\xf4\x90\x80\x80"), ("f5_lead", b"\xf5\x80\x80\x80"),
                  ("truncated_2of3", b"\xe2\x82"), ("truncated_1of2", b"\xc3"),
                  ("truncated_3of4", b"\xf0\x9f\x9a")]:
    hostile("pyng", f"utf8_{name}", pyng_item(customerReference="AC@ME").replace(b"@", bad))
hostile("pyng", "utf8_bad_in_key", b'{"da\xfft\x61":{}}')
hostile("pyng", "utf8_bad_in_skipped_value", b'{"unknown":["ok","\xc0\xaf"],"data":{}}')
hostile("pyng", "utf8_bad_at_end_of_body", b'{"data":{"nextHref":"\xe2')
hostile("pyng-raw", "utf8_bad_in_raw_key", b'{"data":{"items":[{"k\xed\xa0\x80":1}]}}')
hostile("any", "utf8_bad_outside_string", b"[1,\xc3\xa9]")

# Escapes and control characters.
for name, esc in [("lone_high_surrogate", b"\\ud83d"), ("lone_low_surrogate", b"\\ude80"),
                  ("reversed_surrogates", b"\\ude80\\ud83d"), ("high_then_char", b"\\ud83dx"),
                  ("high_then_high", b"\\ud83d\\ud83d"), ("high_then_bmp", b"\\ud83d\\u0041"),
                  ("high_then_short", b"\\ud83d\\ude8"), ("bad_escape_x", b"\\x41"),
                  ("bad_escape_quote", b"\\'"), ("bad_escape_U", b"\\U0001F680"),
                  ("bad_escape_0", b"\\0"), ("short_unicode", b"\\u12"),
                  ("nonhex_unicode", b"\\u12G4"), ("escaped_newline", b"\\\n"),
                  ("control_01", b"\x01"), ("control_1f", b"\x1f"), ("raw_newline", b"\n"),
                  ("raw_tab", b"\t"), ("raw_nul", b"\x00"), ("raw_cr", b"\r")]:
    hostile("pyng", f"string_{name}", pyng_item(customerReference="AC@ME").replace(b"@", esc))
hostile("pyng", "escape_lone_surrogate_in_key", b'{"\\udc00":1,"data":{}}')
hostile("any", "lone_surrogate_in_any", b'["\\ud800"]')
hostile("natural", "lone_surrogate_in_skipped", dumps({"data": [], "x": "@"}).replace(b"@", b"\\udfff"))

# Deep nesting, and the default max_depth of 64 (65 levels here).
hostile("pyng", "deep_unclosed_100k", b'{"x":' + b"[" * 100_000)
hostile("pyng", "deep_objects_unclosed", b'{"data":' + b'{"a":' * 5000)
hostile("pyng-raw", "deep_in_items", b'{"data":{"items":[' + b"[" * 70 + b"]" * 70 + b"]}}")
hostile("pyng", "deep_65_levels", b'{"x":' + b"[" * 64 + b"]" * 64 + b"}")
hostile("any", "deep_65_levels", b"[" * 65 + b"]" * 65)
hostile("every", "deep_any_field", b'{"any":' + b'{"a":' * 64 + b"1" + b"}" * 64 + b"}")

# Numbers: grammar (skipped values are validated too) and range.
for name, num in [("nan", b"NaN"), ("infinity", b"Infinity"), ("minus_infinity", b"-Infinity"),
                  ("leading_zero", b"01"), ("minus_leading_zero", b"-01"), ("trailing_dot", b"1."),
                  ("leading_dot", b".5"), ("plus", b"+1"), ("bare_minus", b"-"),
                  ("empty_exponent", b"1e"), ("exponent_sign_only", b"1E-"), ("hex", b"0x10"),
                  ("double_dot", b"1.2.3"), ("minus_dot", b"-.5"), ("dot_exponent", b"1.e5")]:
    hostile("pyng", f"number_{name}", b'{"unknown":' + num + b',"data":{}}')
    hostile("any", f"number_{name}", b"[" + num + b"]")
hostile("float", "1e999", b"1e999")
hostile("float", "minus_1e999", b"-1e999")
hostile("any", "1e999", b"[1e999]")
hostile("every", "float_1e400", b'{"f":1E400}')
hostile("pyng-raw", "float_inf_in_item", b'{"data":{"items":[{"x":1e999}]}}')

# Wrong types for every field kind.
hostile("pyng", "data_is_array", b'{"data":[]}')
hostile("pyng", "data_is_string", b'{"data":"x"}')
hostile("pyng", "items_is_object", b'{"data":{"items":{}}}')
hostile("pyng", "items_is_string", b'{"data":{"items":"[]"}}')
hostile("pyng-raw", "items_is_number", b'{"data":{"items":1}}')
hostile("pyng", "item_is_number", b'{"data":{"items":[1]}}')
hostile("pyng", "item_is_array", b'{"data":{"items":[[]]}}')
hostile("pyng", "item_is_string", b'{"data":{"items":["x"]}}')
hostile("pyng", "total_is_string", b'{"data":{"totalItems":"3"}}')
hostile("pyng", "total_is_float", b'{"data":{"totalItems":3.0}}')
hostile("pyng", "total_is_exponent", b'{"data":{"totalItems":3e0}}')
hostile("pyng", "total_is_bool", b'{"data":{"totalItems":true}}')
hostile("pyng", "next_href_is_array", b'{"data":{"nextHref":[]}}')
hostile("pyng", "trace_id_is_number", b'{"traceId":1}')
hostile("pyng", "reference_is_number", pyng_item(customerReference=12))
hostile("pyng", "reference_is_object", pyng_item(customerReference={}))
hostile("pyng", "state_is_number", pyng_item(state=1))
hostile("pyng", "state_is_bool", pyng_item(state=False))
hostile("pyng", "invited_at_is_word", pyng_item(invitedAt="soon"))
hostile("pyng", "invited_at_is_float", pyng_item(invitedAt=1777852800000.5))
hostile("pyng", "invited_at_is_exponent", b'{"data":{"items":[{"invitedAt":1e12}]}}')
hostile("pyng", "invited_at_is_bool", pyng_item(invitedAt=True))
hostile("pyng", "invited_at_is_array", pyng_item(invitedAt=[1]))
hostile("pyng", "invited_at_beyond_9999", pyng_item(invitedAt=253402300800000))
hostile("pyng", "invited_at_before_year_1", pyng_item(invitedAt=-62135596800001))
hostile("pyng", "invited_at_19_digits", pyng_item(invitedAt=1000000000000000000))
hostile("pyng", "invited_at_huge", pyng_item(invitedAt=10 ** 40))
hostile("pyng", "invited_at_huge_negative", pyng_item(invitedAt=-10 ** 40))

hostile("natural", "data_is_object", b'{"data":{}}')
hostile("natural", "item_is_string", b'{"data":["party"]}')
hostile("natural", "type_is_number", b'{"data":[{"type":5,"id":"x"}]}')
hostile("natural", "type_is_array", b'{"data":[{"type":["party"],"id":"x"}]}')
hostile("natural", "attributes_is_string", b'{"data":[{"type":"party","attributes":"x"}]}')
hostile("natural", "attributes_is_array", b'{"data":[{"type":"party","attributes":[]}]}')
hostile("natural", "status_is_number", natural_attr(status=1))
hostile("natural", "permissions_is_object", natural_attr(permissions={}))
hostile("natural", "permissions_is_string", natural_attr(permissions="payments:read"))
hostile("natural", "permission_is_number", natural_attr(permissions=["a", 1]))
hostile("natural", "permission_is_null_then_bad", natural_attr(permissions=[None, True]))
hostile("natural", "minor_is_float", natural_attr(wallet_available_minor=1.5))
hostile("natural", "minor_is_string", natural_attr(wallet_available_minor="950000"))
hostile("natural", "access_is_number", natural_attr(wallet_access=0))
hostile("natural", "party_is_array", natural_attr(party=[]))
hostile("natural", "party_name_is_number", natural_attr(party={"name": 1}))
hostile("natural", "has_more_is_string", b'{"data":[],"meta":{"pagination":{"has_more":"false"}}}')
hostile("natural", "has_more_is_number", b'{"data":[],"meta":{"pagination":{"hasMore":0}}}')
hostile("natural", "cursor_is_number", b'{"data":[],"meta":{"pagination":{"next_cursor":2}}}')
hostile("natural", "pagination_is_array", b'{"data":[],"meta":{"pagination":[]}}')
hostile("natural", "meta_is_string", b'{"data":[],"meta":"x"}')
for name, amount in [("exponent", "1e5"), ("nan", "NaN"), ("empty", ""), ("trailing_dot", "9500."),
                     ("leading_dot", ".5"), ("thousands", "9,500.00"), ("plus", "+5"),
                     ("space", " 5"), ("minus_only", "-"), ("infinity", "Infinity"),
                     ("two_dots", "1.2.3"), ("hex", "0x10"), ("fullwidth", "\uff19")]:
    hostile("natural", f"dollars_{name}", natural_attr(wallet_available_dollars=amount))
hostile("natural", "dollars_bool", natural_attr(wallet_available_dollars=True))
hostile("natural", "dollars_object", natural_attr(wallet_available_dollars={}))
hostile("natural", "dollars_escaped", natural_attr(wallet_available_dollars="9500.00")
        .replace(b"9500.00", b"\\u0039500.00"))
for name, when in [("year_0", "0000-01-01T00:00:00Z"), ("year_10000", "10000-01-01T00:00:00Z"),
                   ("month_13", "2026-13-01T00:00:00Z"), ("month_0", "2026-00-10T00:00:00Z"),
                   ("feb_30", "2026-02-30T00:00:00Z"), ("feb_29_not_leap", "2025-02-29T00:00:00Z"),
                   ("feb_29_1900", "1900-02-29"), ("day_0", "2026-01-00"),
                   ("apr_31", "2026-04-31"), ("second_61", "2016-12-31T23:59:61Z"), ("second_60_midday", "2026-01-04T12:00:60Z"),
                   ("second_60_local_midnight", "2017-01-01T23:59:60+01:00"),
                   ("hour_24", "2026-01-04T24:00:00Z"), ("minute_60", "2026-01-04T15:60:00Z"),
                   ("offset_hour_24", "2026-01-04T15:30:00+24:00"),
                   ("offset_minute_60", "2026-01-04T15:30:00+01:60"),
                   ("offset_one_digit", "2026-01-04T15:30:00+1"),
                   ("offset_long", "2026-01-04T15:30:00+01:000"),
                   ("fraction_of_minute", "2026-01-04T15:30.25Z"),
                   ("double_z", "2026-01-04T15:30:00ZZ"), ("empty_fraction", "2026-01-04T15:30:00.Z"),
                   ("unpadded", "2026-1-4"), ("trailing_space", "2026-01-04 "),
                   ("no_minutes", "2026-01-04T15"), ("seconds_one_digit", "2026-01-04T15:30:0"),
                   ("slashes", "2026/01/04"), ("empty", ""), ("words", "yesterday"),
                   ("fullwidth_digits", "\uff12\uff10\uff12\uff16-01-04"),
                   ("after_9999_by_offset", "9999-12-31T23:59:59-00:01"),
                   ("before_year_1_by_offset", "0001-01-01T00:00:00+00:01"),
                   ("negative_year", "-001-01-01"), ("timezone_name", "2026-01-04T15:30:00 UTC")]:
    hostile("natural", f"created_{name}", natural_attr(created_at=when))
hostile("natural", "created_is_unix_number", natural_attr(created_at=1767225600))
hostile("natural", "created_escaped", natural_attr(created_at="2026-01-04")
        .replace(b"2026-01-04", b"2026\\u002d01-04"))

hostile("invitations", "agent_invitations_is_object", dumps({"data": [
    {"attributes": {"agentInvitations": {}}}]}))
hostile("invitations", "agent_is_string", dumps({"data": [
    {"attributes": {"agentInvitations": [{"agent": "agt_1"}]}}]}))
hostile("invitations", "expires_at_is_number", dumps({"data": [
    {"attributes": {"agentInvitations": [{"expiresAt": 1777852800}]}}]}))
hostile("invitations", "created_feb_30", dumps({"data": [
    {"attributes": {"createdAt": "2026-02-30T08:00:00Z"}}]}))
hostile("invitations", "status_is_array", dumps({"data": [{"attributes": {"status": []}}]}))
hostile("invitations", "party_is_string", dumps({"data": [{"attributes": {"party": "pty_1"}}]}))

hostile("commenda", "customers_is_object", b'{"customers":{}}')
hostile("pyng", "items_replaced_invalid_json", b'{"data":{"items":[x],"items":[]}}')
hostile("pyng-raw", "items_replaced_invalid_utf8", b'{"data":{"items":["\xff"]},"data":{"items":[]}}')
hostile("natural", "items_replaced_unbalanced", b'{"data":[{"a":[}],"data":[]}')
hostile("pyng", "items_replaced_wrong_item_type", b'{"data":{"items":[5],"items":[]}}')
hostile("pyng", "group_replaced_after_bad_items", b'{"data":{"items":[[]]},"data":{"items":null}}')
hostile("natural", "items_is_string", b'{"data":"x"}')
hostile("natural", "items_is_true", b'{"data":true}')
hostile("pyng", "int_beyond_digit_limit", b'{"data":{"totalItems":' + b"7" * 4400 + b"}}")
hostile("natural", "dollars_exponent_beyond_decimal",
        b'{"data":[{"type":"party","attributes":{"wallet_available_dollars":1e99999999999999999999}}]}')
hostile("commenda", "items_alternative_wrong_type", b'{"customers":5,"data":{"customers":[]}}')
hostile("commenda", "wrapped_data_is_array", b'{"data":[]}')
hostile("commenda", "total_is_string", b'{"customers":[],"total_customers":"1"}')
hostile("commenda", "cursor_is_number", b'{"customers":[],"cursor":7}')
hostile("commenda", "created_is_word", dumps({"customers": [{"created_at": "yesterday"}]}))
hostile("commenda", "created_is_float", dumps({"customers": [{"created_at": 1767225600.5}]}))
hostile("commenda", "created_beyond_9999", dumps({"customers": [{"created_at": 253402300800}]}))
hostile("commenda", "created_before_year_1", dumps({"customers": [{"created_at": -62135596801}]}))
hostile("commenda", "address_is_string", dumps({"customers": [{"shipping_address": "Austin"}]}))
hostile("commenda", "address_line_is_number", dumps({"customers": [
    {"shipping_address": {"address_line_1": 1}}]}))
hostile("commenda", "has_exemption_is_string", dumps({"customers": [
    {"exemption_metadata": {"has_exemption": "yes"}}]}))
hostile("commenda", "expiration_status_is_bool", dumps({"customers": [
    {"exemption_metadata": {"expiration_status": False}}]}))

# The every-kind record, the union and the bare kinds.
for name, fields in [("s_number", {"s": 1}), ("i_float", {"i": 1.0}), ("i_string", {"i": "1"}),
                     ("i_alias_bool", {"int_old": True}), ("f_string", {"f": "1.5"}),
                     ("b_zero", {"b": 0}), ("b_string", {"b": "true"}),
                     ("d_object", {"money": {"amount": {}}}), ("d_exponent_string", {"money": {"amount": "1e5"}}),
                     ("money_not_object", {"money": 5}), ("t_number", {"times": {"iso": 0}}),
                     ("ts_float", {"times": {"unix_s": 0.5}}), ("ts_alias_word", {"ts": "now"}),
                     ("tms_bool", {"times": {"unix_ms": False}}), ("e_number", {"e": 1}),
                     ("leaf_array", {"x": {"y": {"leaf": []}}}), ("x_not_object", {"x": 5}),
                     ("y_not_object", {"x": {"y": "leaf"}}), ("leaf_n_string", {"x": {"y": {"leaf": {"n": "1"}}}}),
                     ("legacy_not_object", {"x": {"y": {"leaf": {"legacy": 1}}}}),
                     ("leaves_object", {"leaves": {}}), ("leaves_item_null_then_number", {"leaves": [None, 1]}),
                     ("strs_number", {"strs": [1]}), ("strs_object", {"strs": {}}),
                     ("union_not_object", {"u": [5]}), ("union_tagged_bad_when", {"u": [
                         {"kind": "tagged", "meta": {"when": "x"}}]}),
                     ("union_fallback_bad_kind", {"u": [{"kind": 5}]})]:
    hostile("every", name, every(**fields))
hostile("union", "unknown_kind", b'[{"kind":"nope"}]')
hostile("union", "missing_kind", b'[{"n":1}]')
hostile("union", "kind_is_number", b'[{"kind":1}]')
hostile("union", "kind_is_null", b'[{"kind":null}]')
hostile("union", "not_object", b'["leaf"]')
hostile("union", "variant_field_bad", b'[{"kind":"leaf","n":"1"}]')
hostile("union", "bad_json_after_kind", b'[{"kind":"leaf",}]')
hostile("union", "bad_utf8_before_kind", b'[{"x":"\xff","kind":"leaf"}]')
hostile("str", "number", b"1")
hostile("str", "unterminated", b'"abc')
hostile("int", "float", b"1.0")
hostile("int", "string", b'"1"')
hostile("int", "trailing_space_then_junk", b"1 2")
hostile("bool", "string", b'"true"')
hostile("bool", "one", b"1")
hostile("bool", "capital", b"True")
hostile("float", "string", b'"1.5"')
hostile("decimal", "exponent_string", b'"1e5"')
hostile("decimal", "nan_string", b'"NaN"')
hostile("decimal", "empty_string", b'""')
hostile("decimal", "bool", b"false")
hostile("decimal", "nan_literal", b"NaN")
hostile("datetime", "number", b"0")
hostile("datetime", "year_0", b'"0000-12-31"')
hostile("unix_s", "beyond_9999", b"253402300800")
hostile("unix_s", "fraction", b"1.5")
hostile("unix_s", "exponent", b"1e3")
hostile("unix_ms", "beyond_9999", b"253402300800000")
hostile("unix_ms", "negative_beyond_year_1", b"-62135596800001")
hostile("unix_ms", "19_digits", b"-1000000000000000000")
hostile("unix_ms", "word", b'"soon"')
hostile("unix_ms", "bool", b"true")
hostile("enum", "number", b"1")
hostile("enum", "array", b'["red"]')
hostile("list-decimal", "exponent_string", b'["1", "1e5"]')
hostile("list-decimal", "trailing_dot", b'["1."]')
hostile("list-unix_ms", "fraction", b"[1, 1.5]")
hostile("list-str", "number", b'["a", 1]')
hostile("list-str", "bad_escape_in_second", b'["a", "\\q"]')


# ---------------------------------------------------------------------------
# Valid edge cases: tests/test_corpus.py asserts what each decodes to

valid("pyng", "page", PYNG)
valid("pyng-raw", "page", PYNG)
valid("pyng", "bom", b"\xef\xbb\xbf" + PYNG)
valid("pyng", "whitespace", b' \t\r\n{ "data" :\n{\t"items"\r: [ ] , "totalItems" : 0 } }\n\t ')
valid("pyng", "empty_object", b"{}")
valid("pyng", "nulls", b'{"data":{"items":[{"customerReference":"R","state":"invited","invitedAt":0,'
                       b'"expiresAt":null,"linkedAt":null},null],"totalItems":null,'
                       b'"nextHref":null,"prevHref":null},"traceId":null}')
valid("pyng", "items_null", b'{"data":{"items":null,"totalItems":0}}')
valid("pyng", "data_null", b'{"data":null,"traceId":"t"}')
valid("pyng", "escapes", b'{"data":{"items":[{"customer\\u0052eference":'
                         b'"\\u00e9\\ud83d\\ude80\\n\\"\\\\\\/\\b\\f\\r\\t\\u0000\\u001f\\uFFFF",'
                         b'"st\\u0061te":"\\u006cinked","invitedAt":0}]}}')
valid("pyng", "utf8_boundaries", pyng_item(customerReference="\u0080\u07ff\u0800\uffff\U00010000"
                                           "\U0010ffff\u2028\u2029\x7f"))
valid("pyng", "unknown_state", pyng_item(state="archived"))
valid("pyng", "duplicate_leaf_keys", b'{"data":{"totalItems":1,"totalItems":2,'
                                     b'"items":[{"customerReference":"a","customerReference":"b",'
                                     b'"state":"invited","invitedAt":0}]}}')
valid("pyng", "negative_zero", b'{"data":{"totalItems":-0,"items":[{"invitedAt":-0,'
                                b'"customerReference":"R","state":"invited"}]}}')
valid("pyng", "unix_ms_bounds", b'{"data":{"items":[{"customerReference":"R","state":"invited",'
                                b'"invitedAt":253402300799999,'
                                b'"expiresAt":-62135596800000,"linkedAt":-1}]}}')
valid("pyng", "iso_string_in_unix_field", pyng_item(invitedAt="2026-05-04T00:00:00.5+02:00"))
valid("pyng", "total_big_int", b'{"data":{"totalItems":123456789012345678901234567890}}')
valid("pyng", "skipped_values", b'{"unknown":[1e999,-0.0e-0,12345678901234567890123,{"a":[true,false,'
                                b'null,"\\ud83d\\ude80"]}],"data":{"x":{"y":[]},"items":[]}}')
valid("pyng", "deep_64_levels", b'{"x":' + b"[" * 63 + b"]" * 63 + b"}")
valid("pyng-raw", "values", b'{"data":{"items":[{"a":-0,"b":-0.0,"c":1.0,"d":1e2,"e":1E-400,'
                            b'"f":12345678901234567890123,"g":"\\ud83d\\ude80\xc3\xa9",'
                            b'"h":[null,true,false,{}],"":"","a":"dup"}]}}')
valid("pyng-raw", "items_of_every_type", b'{"data":{"items":[1,"s",null,true,[],{}]}}')
valid("any", "deep_64_levels", b"[" * 64 + b"]" * 64)
valid("natural", "page", NATURAL)
valid("natural-raw", "page", NATURAL)
valid("natural", "variants", dumps({"data": [
    {"type": "delegation_invitation", "id": "din_1", "attributes": {"status": "PENDING"}},
    {"attributes": {"kind": "x"}, "type": "party", "id": "pty_2"},
    {"type": "customer_group", "id": "grp_1", "attributes": {"members": [1, 2.5, None]}},
    {"id": "no_type", "attributes": None},
    {"type": None, "id": "null_type"}],
    "meta": {"pagination": {"hasMore": True, "nextCursor": "c_2"}}}))
valid("natural", "decimals", b'{"data":[' + b",".join(
    b'{"type":"party","id":"pty_1","attributes":{"wallet_available_dollars":' + v + b"}}"
    for v in [b'"9500.00"', b'"-0.50"', b'"007"', b'"0"', b'"12345678901234567890.123456789"',
              b"12.50", b"1e5", b"-0"]) + b"]}")
valid("natural", "datetimes", dumps({"data": [
    {"type": "party", "id": "pty_1", "attributes": {"created_at": v}}
    for v in ["2026-01-04", "2026-01-04T15:30Z", "2026-01-04t15:30:00z", "2026-01-04 15:30:00+02:00",
              "2026-01-04T15:30:00-0530", "2026-01-04T15:30:00,5", "2026-01-04T15:30:00.123456789Z",
              "2024-02-29T00:00:00Z", "2000-02-29", "0001-01-01T00:00:00Z",
              "9999-12-31T23:59:59.999999Z", "2026-01-04T00:00:00-00:00",
              "0001-01-01T00:30:00+00:30", "9999-12-31T23:00:00-00:59"]]}))
# A leap second clamps to hh:mm:59.999999; "+hh" is an offset of whole hours.
valid("natural", "leap_seconds_and_hour_offsets", dumps({"data": [
    {"type": "party", "id": "pty_1", "attributes": {"created_at": v}}
    for v in ["2016-12-31T23:59:60Z", "2016-12-31T23:59:60.5Z", "2017-01-01T00:59:60+01:00",
              "2026-01-04T15:30:00+01", "2026-01-04T15:30:00-05", "2026-01-04T15:30:00Z"]]}))
valid("natural", "escaped_tag_value", b'{"data":[{"type":"p\\u0061rty","id":"pty_1"}]}')
valid("natural", "permissions", natural_attr(permissions=["payments:read", "wallets.read", "", "payments:read",
                                                          None, "\u00e9"]))
valid("natural", "duplicate_cursor_spellings", b'{"data":[],"meta":{"pagination":{"next_cursor":"a",'
                                               b'"nextCursor":"b","hasMore":true,"has_more":false}}}')
valid("invitations", "page", INVITATIONS)
valid("invitations-raw", "page", INVITATIONS)
valid("commenda", "page", COMMENDA)
valid("commenda-raw", "page", COMMENDA)
valid("commenda", "wrapped", dumps({"data": {"customers": [{"id": "cus_2", "created_at": 0}],
                                             "total_customers": 1, "cursor": None},
                                    "message": "ok"}))
valid("commenda", "old_address_keys", dumps({"customers": [
    {"id": "cus_3", "shipping_address": {"address_line_1": "1 Old Rd", "address_line_2": "Unit 2",
                                         "address_line_3": "", "city": "Reno"}},
    {"id": "cus_4", "shipping_address": {"line1": "new", "address_line_1": "old"}},
    {"id": "cus_5", "shipping_address": {"address_line_1": "old", "line1": "new"}}]}))
valid("commenda", "unknown_status", dumps({"customers": [{"id": "cus_1", "exemption_metadata": {
    "expiration_status": "PENDING_RENEWAL", "exemption_status": "ACTIVE", "has_exemption": False}}]}))
valid("commenda", "created_bounds", dumps({"customers": [
    {"id": "cus_1", "created_at": v}
    for v in [253402300799, -62135596800, -1, "2026-01-01T00:00:00Z"]]}))
valid("every", "all_kinds", every(
    s="s\u00e9", i=-42, f=1.5, b=True, money={"amount": "10.10", "currency": "EUR"},
    times={"iso": "2026-01-04T15:30:00+01:00", "unix_s": 1767225600, "unix_ms": 1767225600123},
    e="green", x={"y": {"leaf": {"n": 1, "s": "new"}}, "z": 0},
    leaves=[{"n": 2, "old_s": "old"}, {"legacy": {"s": "legacy"}}, None],
    strs=["a", "a", "\u00e9"],
    u=[{"kind": "tagged", "meta": {"when": 0}}, {"n": 3, "kind": "leaf"},
       {"kind": "other", "x": [1]}, {"rest": {"k": "v"}}, None],
    any={"k": [1, 2.5, "s", None, True, {"n": {}}]}))
valid("every", "aliases_last_wins", every(i=1, int_old=2, ts=5, times={"unix_s": 6}))
valid("every", "empty_object", b"{}")
valid("every", "null", b"null")
valid("every", "groups_null", every(money=None, times=None, x={"y": None}))
valid("every", "float_forms", every(f=-0.0).replace(b"-0.0", b"-0.0e0"))
valid("every", "float_int_form", every(f=3))
valid("every", "float_tiny", b'{"f":4.9e-324}')
valid("every", "enum_unknown", every(e="blue"))
valid("every", "decimal_number", b'{"money":{"amount":-1.250E+3}}')
valid("every-list", "empty", b"[]")
valid("every-list", "nulls", b"[null,{}]")
valid("union", "both_variants", b'[{"kind":"tagged","meta":{"when":-1}},{"n":7,"kind":"leaf"},null]')
valid("any", "document", dumps({"a": [1, -2, 3.25, "x\u00e9\U0001F680", None, True, False,
                                      {"b": {}}, []], "": 0}))
valid("any", "negative_zero", b"-0")
valid("any", "big_int", b"-123456789012345678901234567890")
valid("any", "tiny_float", b"1e-400")
valid("str", "nul", b'"\\u0000"')
valid("str", "surrounding_whitespace", b' \n"s"\t ')
valid("int", "int64_max", b"9223372036854775807")
valid("int", "int64_min", b"-9223372036854775808")
valid("int", "minus_zero", b"-0")
valid("int", "18_digits", b"-999999999999999999")
valid("int", "19_digits", b"9999999999999999999")
valid("float", "minus_zero", b"-0.0")
valid("float", "max", b"1.7976931348623157e308")
valid("bool", "false", b"false")
valid("decimal", "string", b'"0.10"')
valid("decimal", "number", b"-1.50e-3")
valid("decimal", "big_exponent", b"1e999")
valid("datetime", "fraction_comma", b'"2026-01-04T15:30:00,123Z"')
valid("unix_s", "minus_one", b"-1")
valid("unix_s", "iso", b'"1970-01-01T00:00:01Z"')
valid("unix_ms", "max", b"253402300799999")
valid("unix_ms", "min", b"-62135596800000")
valid("enum", "member", b'"red"')
valid("enum", "unknown", b'"RED"')
valid("list-decimal", "mixed", b'["1", "-2.50", 3, 4.0e1, null]')
valid("list-unix_ms", "mixed", b'[0, "2026-01-04", null, -0]')
valid("list-str", "repeats", b'["a","a","\\u0061","bb"]')


def main():
    count = 0
    for kind, cases in CASES.items():
        for (target, name), body in cases.items():
            path = HERE / kind / target / f"{name}.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists() or path.read_bytes() != body:
                path.write_bytes(body)
            count += 1
    print(f"{count} corpus files under {HERE}")


if __name__ == "__main__":
    main()
