"""Arrow output built in C (Pager.__arrow_c_stream__, to_arrow, to_pandas,
to_polars) against the record path, on the sandbox over loopback."""
import datetime as dt
import gc
import json
import os
import subprocess
import sys
import textwrap
from decimal import Decimal

import pandas as pd
import pyarrow as pa
import pytest

import custlist
from custlist import errors
from custlist._spec import CursorPaging, Endpoint, Field, Record
from custlist.testing import Sandbox

# Packages this run goes without (CUSTLIST_TESTS_WITHOUT, comma-separated):
# .ci/suite.sh names those with no build for the interpreter (polars and
# duckdb on free-threaded CPython) and leaves out the tests named after them.
WITHOUT = set(os.environ.get("CUSTLIST_TESTS_WITHOUT", "").split(","))
if "polars" not in WITHOUT:
    import polars as pl

FAST = dict(backoff=0.01, backoff_max=0.05, retry_after_max=0.2)
TS = pa.timestamp("us", tz="UTC")
ENUM = pa.dictionary(pa.int32(), pa.string())


@pytest.fixture(scope="module")
def asb():
    """A sandbox whose data has everything the mapping must survive: unknown
    enum values, unknown union types, both Commenda body shapes."""
    with Sandbox(pyng_customers=120, natural_customers=90, natural_invitations=60,
                 commenda_customers=75, seed=11, commenda_shape="mixed",
                 pyng_unknown_state_every=6, natural_unknown_type_every=7) as sb:
        yield sb


@pytest.fixture
def sb2(asb):
    asb.clear_faults()
    asb.requests.clear()
    yield asb
    asb.clear_faults()


def pyng(sb):
    return custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, **FAST)


def natural(sb, **kw):
    return custlist.Natural(sb.natural_token, base_url=sb.natural_url, **FAST, **kw)


def commenda(sb):
    return custlist.Commenda(sb.commenda_token, base_url=sb.commenda_url, **FAST)


LISTINGS = {
    "pyng": lambda sb: pyng(sb).customers("site_1", limit=25),
    "natural-customers": lambda sb: natural(sb).customers(limit=20),
    "natural-invitations": lambda sb: natural(sb).customer_invitations(limit=15),
    "commenda": lambda sb: commenda(sb).customers(
        "corp_123", limit=20, extend=["shipping_address", "exemption_metadata"]),
    "commenda-plain": lambda sb: commenda(sb).customers("corp_123", limit=30),
}

PARTY = pa.struct([("id", pa.string()), ("name", pa.string()), ("email", pa.string())])
SCHEMAS = {
    "pyng": pa.schema([("customer_reference", pa.string()), ("state", ENUM),
                       ("invited_at", TS), ("expires_at", TS), ("linked_at", TS)]),
    "natural-customers": pa.schema([
        ("type", pa.string()), ("id", pa.string()), ("email", pa.string()), ("status", ENUM),
        ("permissions", pa.list_(pa.string())), ("created_at", TS),
        ("wallet_available_minor", pa.int64()),
        ("wallet_available_dollars", pa.decimal128(38, 2)), ("wallet_access", ENUM),
        ("party", PARTY), ("attributes", pa.string())]),     # the fallback's own field
    "natural-invitations": pa.schema([
        ("type", pa.string()), ("id", pa.string()), ("status", ENUM), ("party", PARTY),
        ("email", pa.string()), ("created_at", TS), ("wallet_available_minor", pa.int64()),
        ("wallet_access", ENUM),
        ("agent_invitations", pa.list_(pa.struct([
            ("invitation_id", pa.string()),
            ("agent", pa.struct([("id", pa.string()), ("name", pa.string())])),
            ("permissions", pa.list_(pa.string())), ("created_at", TS), ("expires_at", TS)])))]),
}
SCHEMAS["commenda"] = SCHEMAS["commenda-plain"] = pa.schema([
    ("id", pa.string()), ("name", pa.string()), ("email", pa.string()),
    ("corporation_id", pa.string()), ("created_at", TS), ("source_platform", pa.string()),
    ("source_platform_id", pa.string()),
    ("shipping_address", pa.struct([(k, pa.string()) for k in (
        "line1", "line2", "line3", "city", "state", "postal_code", "country")])),
    ("exemption_metadata", pa.struct([
        ("has_exemption", pa.bool_()), ("certificate_type", pa.string()),
        ("exemption_jurisdiction", pa.string()), ("expiration_status", ENUM),
        ("exemption_status", ENUM)]))])


def plain(v):
    """A record value as Arrow's to_pylist gives it back."""
    if isinstance(v, custlist.Record):
        return {f: plain(getattr(v, f)) for f in v.__fields__}
    if isinstance(v, (tuple, list)):
        return [plain(x) for x in v]
    return v


def cell(v):
    """An Arrow cell as plain() gives the record's value: JSON text (a
    dict field, kept as text) read back."""
    return json.loads(v) if isinstance(v, str) and v[:1] in "{[" else v


def assert_rows_match(table, records):
    rows = table.to_pylist()
    assert len(rows) == len(records)
    for row, rec in zip(rows, records):
        for name in table.column_names:
            if name in rec.__fields__:
                value = plain(getattr(rec, name))
                got = cell(row[name]) if isinstance(value, dict) else row[name]
                assert got == value, (name, row, rec)
            else:                   # a union column this variant lacks
                assert row[name] is None, (name, row, rec)


@pytest.mark.parametrize("listing", sorted(LISTINGS))
def test_values_and_types_match_the_record_path(sb2, listing):
    records = list(LISTINGS[listing](sb2))
    pager = LISTINGS[listing](sb2)
    table = pager.to_arrow()
    assert table.schema == SCHEMAS[listing]
    assert_rows_match(table, records)
    assert pager.done and table.num_rows > 40
    assert table.column(0).num_chunks == 1          # pages coalesced into one batch


def test_nulls_enums_and_unknown_values(sb2):
    table = pyng(sb2).customers("site_1", limit=50).to_arrow()
    assert table.column("expires_at").null_count > 0
    assert table.column("linked_at").null_count > 0
    states = set(table.column("state").to_pylist())
    assert states == {"invited", "linked", "archived"}      # an unknown value kept
    chunk = table.column("state").chunks[0]
    assert chunk.dictionary.to_pylist()[:2] == ["invited", "linked"]


def test_union_unknown_types_keep_type_and_id(sb2):
    table = natural(sb2).customers(limit=30).to_arrow()
    wire = sb2.data.natural_customers
    unknown = [w for w in wire if w["type"] == "agent_grant"]
    assert unknown
    rows = [r for r in table.to_pylist() if r["type"] == "agent_grant"]
    assert [(r["type"], r["id"]) for r in rows] == [(w["type"], w["id"]) for w in unknown]
    # the fallback's own field (attributes, a dict) is carried as JSON text
    assert [json.loads(r["attributes"]) for r in rows] == [w["attributes"] for w in unknown]
    for r in rows:
        assert all(v is None for k, v in r.items() if k not in ("type", "id", "attributes"))
    assert {r["attributes"] for r in table.to_pylist() if r["type"] != "agent_grant"} == {None}
    assert {r["type"] for r in table.to_pylist()} == {"party", "delegation_invitation",
                                                     "agent_grant"}


def one_page(items):
    return json.dumps({"data": items, "meta": {"pagination": {"has_more": False}}})


def natural_item(**attrs):
    base = {"email": "a@b.c", "status": "ACTIVE", "permissions": [],
            "created_at": "2026-01-01T00:00:00Z", "wallet_available_minor": 1,
            "wallet_available_dollars": "0.01", "wallet_access": "granted", "party": None}
    return {"type": "party", "id": "pty_1", "attributes": {**base, **attrs}}


@pytest.mark.parametrize("wire, expected", [
    ("9500.00", Decimal("9500.00")), ("-0.5", Decimal("-0.50")), ("12", Decimal("12.00")),
    ("9500.000", Decimal("9500.00")), (1e2, Decimal("100.00")), ("0.00", Decimal("0")),
    ("9" * 36 + ".99", Decimal("9" * 36 + ".99")), (None, None),
])
def test_decimal128_values_that_fit(sb2, wire, expected):
    body = one_page([natural_item(wallet_available_dollars=wire)])
    sb2.inject("natural.customers", body=body, times=2)
    [rec] = list(natural(sb2).customers())
    table = natural(sb2).customers().to_arrow()
    assert table.schema.field("wallet_available_dollars").type == pa.decimal128(38, 2)
    assert table.column("wallet_available_dollars").to_pylist() == [expected]
    assert rec.wallet_available_dollars == expected


@pytest.mark.parametrize("wire, why", [
    ("12.345", "more than 2 decimal places"),
    ("0.001", "more than 2 decimal places"),
    ("9" * 37 + ".00", "more than 38 digits"),
    ("1" + "0" * 40, "more than 38 digits"),
])
def test_decimal_that_does_not_fit_is_an_error_never_rounded(sb2, wire, why):
    body = one_page([natural_item(), natural_item(wallet_available_dollars=wire)])
    sb2.inject("natural.customers", body=body, times=2)
    [_, rec] = list(natural(sb2).customers())          # records keep it exactly
    assert rec.wallet_available_dollars == Decimal(wire)
    with pytest.raises(errors.DecodeError) as e:
        natural(sb2).customers().to_arrow()
    assert why in str(e.value) and "decimal128(38, 2)" in str(e.value)
    assert "wallet_available_dollars" in str(e.value)
    assert body.encode()[e.value.offset:].startswith(b'"' + wire.encode())


def test_int64_overflow_is_an_error(sb2):
    body = one_page([natural_item(wallet_available_minor=2**63)])
    sb2.inject("natural.customers", body=body, times=2)
    assert next(natural(sb2).customers()).wallet_available_minor == 2**63
    with pytest.raises(errors.DecodeError, match="out of range for int64"):
        natural(sb2).customers().to_arrow()
    body = one_page([natural_item(wallet_available_minor=-2**63)])
    sb2.inject("natural.customers", body=body)
    assert natural(sb2).customers().to_arrow().column(
        "wallet_available_minor").to_pylist() == [-2**63]


PYNG_BAD = [
    {"customerReference": 5, "state": "linked", "invitedAt": 1},
    {"customerReference": "a", "state": 5, "invitedAt": 1},
    {"customerReference": "a", "state": "linked", "invitedAt": "yesterday"},
    {"customerReference": "a", "state": "linked", "invitedAt": 1.5},
    {"customerReference": "a", "state": "linked", "invitedAt": 10**17},
    {"customerReference": "a", "state": "linked", "invitedAt": "10000-01-01T00:00:00Z"},
    {"customerReference": "a", "state": "linked", "invitedAt": True},
]


@pytest.mark.parametrize("bad", PYNG_BAD)
def test_bad_values_fail_as_in_the_record_path(sb2, bad):
    good = {"customerReference": "ok", "state": "linked", "invitedAt": 1700000000000}
    body = json.dumps({"data": {"items": [good, bad]}, "traceId": "t"})
    sb2.inject("pyng.customers", body=body, times=2)
    with pytest.raises(errors.DecodeError) as rec_err:
        list(pyng(sb2).customers("site_1"))
    with pytest.raises(errors.DecodeError) as arrow_err:
        pyng(sb2).customers("site_1").to_arrow()
    assert (arrow_err.value.message, arrow_err.value.offset) == \
        (rec_err.value.message, rec_err.value.offset)


def test_timestamps_of_every_kind(sb2):
    items = [
        {"customerReference": "a", "state": "linked", "invitedAt": 0, "linkedAt": -1},
        {"customerReference": "b", "state": "linked", "invitedAt": 253402300799999},
    ]
    sb2.inject("pyng.customers", body=json.dumps({"data": {"items": items}}), times=2)
    recs = list(pyng(sb2).customers("site_1"))
    table = pyng(sb2).customers("site_1").to_arrow()
    assert table.column("invited_at").type == TS
    assert_rows_match(table, recs)
    utc = dt.timezone.utc
    assert table.column("linked_at").to_pylist()[0] == dt.datetime(1969, 12, 31, 23, 59, 59,
                                                                   999000, tzinfo=utc)
    invites = [{"type": "customerInvitation", "id": "x", "attributes": {
        "createdAt": "2026-03-01T10:00:00.123456+02:00", "agentInvitations": [
            {"invitationId": "i", "createdAt": "2026-03-01", "expiresAt": None,
             "agent": None, "permissions": None}]}}]
    sb2.inject("natural.invitations", body=one_page(invites), times=2)
    recs = list(natural(sb2).customer_invitations())
    table = natural(sb2).customer_invitations().to_arrow()
    assert_rows_match(table, recs)
    assert table.column("created_at").to_pylist() == [
        dt.datetime(2026, 3, 1, 8, 0, 0, 123456, tzinfo=utc)]


def test_nested_structs_lists_and_repeated_keys(sb2):
    """A key met twice in one object (or an alias and its key) keeps the
    last value, as records do, through structs and lists."""
    item = {"id": "c1", "shipping_address": {"line1": "first", "address_line_1": "second",
                                             "city": "X", "city": "Y"},
            "exemption_metadata": None, "created_at": 1}
    text = json.dumps({"customers": [item, {"id": "c2"}], "cursor": None})
    text = text.replace('"city": "Y"', '"city": "X", "city": "Y"')
    sb2.inject("commenda.customers", body=text, times=2)
    recs = list(commenda(sb2).customers("corp_123"))
    table = commenda(sb2).customers("corp_123").to_arrow()
    assert_rows_match(table, recs)
    assert table.column("shipping_address").to_pylist()[0]["line1"] == "second"
    assert table.column("shipping_address").to_pylist()[1] is None
    assert table.column("exemption_metadata").null_count == 2
    party1 = {"id": "p1", "name": "one", "email": None}
    party2 = {"id": "p2", "name": "two", "email": "e"}
    doc = one_page([natural_item(permissions=["a", "b"], party=party1)])
    doc = doc.replace('"party": {', '"permissions": ["c"], "party": ' + json.dumps(party2)
                      + ', "party": {')
    sb2.inject("natural.customers", body=doc, times=2)
    recs = list(natural(sb2).customers())
    table = natural(sb2).customers().to_arrow()
    assert_rows_match(table, recs)
    assert table.column("party").to_pylist() == [party1]
    assert table.column("permissions").to_pylist() == [["c"]]


class Note(Record):
    type = Field(str)
    attributes = Field(dict)
    amounts = Field(list[Decimal], scale=3, precision=10)


def test_user_described_endpoint_any_and_decimal_lists(sb2):
    items = [{"type": "t", "attributes": {"x": [1, {"y": "é\\n"}], "z": 1.5e3},
              "amounts": ["1.5", 2, None]},
             {"type": "u", "attributes": None, "amounts": None}]
    sb2.inject("natural.customers", body=one_page(items), times=2)
    client = natural(sb2)
    endpoint = Endpoint("/customers", Note,
                        CursorPaging(items="data", cursor="meta.pagination.next_cursor",
                                     has_more="meta.pagination.has_more"))
    recs = list(client.paginate(endpoint, "/customers", {}))
    table = client.paginate(endpoint, "/customers", {}).to_arrow()
    assert table.schema == pa.schema([("type", pa.string()), ("attributes", pa.string()),
                                      ("amounts", pa.list_(pa.decimal128(10, 3)))])
    assert [json.loads(a) if a else a for a in table.column("attributes").to_pylist()] == \
        [r.attributes for r in recs]
    assert table.column("amounts").to_pylist() == [[Decimal("1.500"), Decimal("2.000"), None],
                                                   None]


def test_raw_pagers_are_refused(sb2):
    pager = natural(sb2).customers(raw=True)
    with pytest.raises(TypeError, match="raw=True"):
        pager.to_arrow()
    with pytest.raises(TypeError, match="raw=True"):
        pager.__arrow_c_stream__()
    assert sb2.requests == []                        # refused before any request


def test_mid_page_is_refused_and_a_page_boundary_continues(sb2):
    pager = pyng(sb2).customers("site_1", limit=25)
    first = next(pager)
    with pytest.raises(ValueError, match="part-way through a page"):
        pager.to_arrow()
    every = list(pyng(sb2).customers("site_1", limit=25))
    assert first == every[0]


def test_partly_consumed_stream_is_released_and_the_pager_continues(sb2):
    every = list(pyng(sb2).customers("site_1", limit=25))
    pager = pyng(sb2).customers("site_1", limit=25)
    before = sys.getrefcount(pager)
    reader = pa.RecordBatchReader.from_stream(pager)
    batch = reader.read_next_batch()
    assert sys.getrefcount(pager) > before           # the stream holds the pager
    del reader
    gc.collect()
    assert sys.getrefcount(pager) == before
    rest = list(pager)                               # nothing lost, nothing repeated
    assert batch.num_rows == 25
    assert batch.to_pylist() + [plain(r) for r in rest] == [plain(r) for r in every]
    # a capsule never handed to a consumer is released by its destructor
    capsule = pager.__arrow_c_stream__()
    del capsule
    gc.collect()
    assert sys.getrefcount(pager) == before


def test_errors_keep_their_class_and_the_resume_point(sb2):
    every = list(natural(sb2).customers(limit=20))
    sb2.inject("natural.customers", skip=2, status=404)
    pager = natural(sb2).customers(limit=20)
    with pytest.raises(errors.NotFoundError):
        pager.to_arrow()
    sb2.clear_faults()
    # a page that failed to convert is fetched again on resume
    good = sb2.data.natural_customers
    bad = dict(good[40], attributes={**good[40]["attributes"], "wallet_available_minor": "x"})
    page3 = {"data": [bad], "meta": {"pagination": {"has_more": True, "next_cursor": "zz"}}}
    sb2.inject("natural.customers", skip=2, body=json.dumps(page3))
    pager = natural(sb2).customers(limit=20)
    with pytest.raises(errors.DecodeError):
        pager.to_arrow()
    # the table never came: its first two pages were not handed out either
    assert pager.cursor is None and pager.checkpoint()["count"] == 0
    resumed = natural(sb2).customers(limit=20, start_cursor=pager.cursor).to_arrow()
    assert_rows_match(resumed, every)


def test_pyarrow_table_from_the_pager_itself(sb2):
    records = list(pyng(sb2).customers("site_1", limit=40))
    pager = pyng(sb2).customers("site_1", limit=40)
    table = pa.table(pager)
    assert table.schema == SCHEMAS["pyng"]
    assert_rows_match(table, records)
    assert [len(c) for c in table.column(0).chunks] == [40, 40, 40]    # a batch per page
    assert pager.pages_fetched == 3


def test_pages_coalesce_into_batches_of_a_minimum_size(sb2):
    from tests import arrow_c
    tree, rows, error = arrow_c.drain(natural(sb2).customers(limit=20)._arrow_stream(None, 50))
    assert rows == [60, 30] and error is None
    errs = []
    sb2.inject("natural.customers", skip=3, body='{"data":[{"type":"party","id":5}]}')
    pager = natural(sb2).customers(limit=20)
    tree, rows, error = arrow_c.drain(pager._arrow_stream(errs, 50))
    assert rows == [60] and error.startswith("DecodeError")
    assert [type(e) for e in errs] == [errors.DecodeError]
    assert pager.cursor is not None        # the failed page, to fetch again on resume
    # a whole read goes back to where it began: the batch of 60 was dropped too
    pager = natural(sb2).customers(limit=20)
    sb2.inject("natural.customers", skip=3, body='{"data":[{"type":"party","id":5}]}')
    tree, rows, error = arrow_c.drain(pager._arrow_stream([], 50, whole=True))
    assert rows == [60] and error.startswith("DecodeError")
    assert pager.checkpoint()["count"] == 0 and pager.cursor is None
    with pytest.raises(ValueError, match="min_rows"):
        natural(sb2).customers()._arrow_stream(None, 0)


def test_to_pandas_dtypes(sb2):
    df = natural(sb2).customers(limit=50).to_pandas()
    records = list(natural(sb2).customers(limit=50))
    assert len(df) == len(records)
    assert df["created_at"].dtype == pd.ArrowDtype(TS)
    assert df["wallet_available_minor"].dtype == pd.ArrowDtype(pa.int64())
    assert df["wallet_available_dollars"].dtype == pd.ArrowDtype(pa.decimal128(38, 2))
    assert isinstance(df["status"].dtype, pd.CategoricalDtype)
    assert df["wallet_available_minor"].isna().sum() == sum(
        getattr(r, "wallet_available_minor", None) is None for r in records)
    for i, r in enumerate(records):
        if isinstance(r, custlist.natural.Party) and r.wallet_available_dollars is not None:
            assert df["wallet_available_dollars"][i] == r.wallet_available_dollars
            assert isinstance(df["wallet_available_dollars"][i], Decimal)
            assert df["created_at"][i] == pd.Timestamp(r.created_at)
            assert df["created_at"][i].tzinfo is not None
            break
    else:
        raise AssertionError("no party with a wallet")


def test_to_polars_and_polars_dataframe(sb2):
    records = list(commenda(sb2).customers("corp_123", extend=["shipping_address"]))
    df = commenda(sb2).customers("corp_123", extend=["shipping_address"]).to_polars()
    assert df.height == len(records)
    assert df.schema["created_at"] == pl.Datetime("us", "UTC")
    assert isinstance(df.schema["shipping_address"], pl.Struct)
    assert df["id"].to_list() == [r.id for r in records]
    assert df["created_at"].to_list() == [r.created_at for r in records]
    df2 = pl.DataFrame(commenda(sb2).customers("corp_123", extend=["shipping_address"]))
    assert df2.equals(df)


def run_script(code, timeout=120):
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_duckdb_reads_the_pager(asb):
    out = run_script(f"""
        import duckdb, sys, custlist
        client = custlist.Pyng(token={asb.pyng_token!r}, base_url={asb.pyng_url!r})
        pager = client.customers("site_1", limit=30)
        row = duckdb.sql("select count(*), count(linked_at), min(invited_at) from pager").fetchall()[0]
        rel = duckdb.from_arrow(client.customers("site_1", limit=30))
        n = rel.filter("state = 'linked'").aggregate("count(*)").fetchall()[0][0]
        print(row[0], row[1], n, row[2].isoformat())
    """)
    wire = asb.data.pyng["site_1"]
    first = min(w["invitedAt"] for w in wire)
    assert out.split()[:3] == [str(len(wire)), str(sum("linkedAt" in w for w in wire)),
                               str(sum(w["state"] == "linked" for w in wire))]
    stamp = dt.datetime.fromisoformat(out.split()[3])
    assert stamp.timestamp() * 1000 == first


@pytest.mark.parametrize("method, module, extra", [
    ("to_arrow", "pyarrow", "arrow"), ("to_pandas", "pandas", "pandas"),
    ("to_pandas", "pyarrow", "pandas"), ("to_polars", "polars", "polars"),
])
def test_missing_extra_names_the_install(asb, method, module, extra):
    out = run_script(f"""
        import sys
        sys.modules[{module!r}] = None
        import custlist
        client = custlist.Pyng(token={asb.pyng_token!r}, base_url={asb.pyng_url!r})
        pager = client.customers("site_1")
        try:
            pager.{method}()
        except ImportError as e:
            print(e)
        before = set(sys.modules)
        capsule = pager.__arrow_c_stream__()      # the capsule itself needs no library
        print(type(capsule).__name__, sorted(set(sys.modules) - before))
    """)
    assert f"pip install custlist[{extra}]" in out
    assert f"{method}() needs {module}" in out
    assert "PyCapsule []" in out


@pytest.mark.parametrize("item, want", [
    # the discriminator twice: the last one picks the variant, as json.loads keeps it
    ('{"type":"party","type":"grp","id":"x"}', {"type": "grp", "id": "x", "status": None}),
    ('{"type":"grp","type":"party","id":"x","attributes":{"status":"ACTIVE"}}',
     {"type": "party", "id": "x", "status": "ACTIVE"}),
    # an escaped key is the same key
    ('{"typ\\u0065":"party","id":"x","attributes":{"status":"ACTIVE"}}',
     {"type": "party", "id": "x", "status": "ACTIVE"}),
    # a nested object twice: the last one whole
    ('{"type":"party","id":"x","attributes":{"status":"ACTIVE","email":"a"},'
     '"attributes":{"email":"e"}}', {"type": "party", "status": None, "email": "e"}),
    ('{"type":"party","id":"x","attributes":{"status":"ACTIVE"},"attributes":null}',
     {"type": "party", "status": None, "email": None}),
], ids=["tag-first", "tag-last", "escaped-tag", "group-twice", "group-then-null"])
def test_repeated_keys_read_as_json_loads_reads_them(sb2, item, want):
    body = '{"data":[%s],"meta":{"pagination":{"has_more":false}}}' % item
    loaded = json.loads(body)["data"][0]
    assert loaded.get("type") == want["type"]
    sb2.inject("natural.customers", body=body)
    [row] = natural(sb2).customers().to_arrow().to_pylist()
    assert {k: row[k] for k in want} == want


def test_c_stream_callbacks_driven_directly(sb2):
    """Without any Arrow library: the schema, batches, errors and every
    release callback, consumed whole, in part, and moved out of the capsule."""
    from tests import arrow_c
    pager = pyng(sb2).customers("site_1", limit=50)
    tree, rows, error = arrow_c.drain(pager.__arrow_c_stream__(), move=True)
    assert error is None and sum(rows) == 120 and rows[0] == 50
    assert tree == ("", "+s", [
        ("customer_reference", "u", []), ("state", "i", [("<dictionary>", "u", [])]),
        ("invited_at", "tsu:UTC", []), ("expires_at", "tsu:UTC", []),
        ("linked_at", "tsu:UTC", [])])
    sb2.inject("pyng.customers", skip=1, body='{"data":{"items":[{"customerReference":5}]}}')
    tree, rows, error = arrow_c.drain(pyng(sb2).customers("site_1", limit=50).__arrow_c_stream__())
    assert rows == [50]
    assert error.startswith("DecodeError: expected a string: Customer.customer_reference (wire key "
                            "'customerReference'), item 0 of the page (at byte ")
    pager = natural(sb2).customers(limit=10)
    before = sys.getrefcount(pager)
    tree, rows, error = arrow_c.drain(pager.__arrow_c_stream__(), batches=2)
    assert rows == [10, 10] and error is None
    assert [name for name, _, _ in tree[2]][:3] == ["type", "id", "email"]
    assert sys.getrefcount(pager) == before


def test_dictionaries_that_differ_between_batches(sb2):
    """An unknown enum value met in a later page extends that batch's
    dictionary only; every consumer still reads the same values."""
    from collections import Counter
    want = Counter(w["state"] for w in sb2.data.pyng["site_1"])
    assert want["archived"] > 0
    table = pa.table(pyng(sb2).customers("site_1", limit=7))
    dicts = {tuple(c.dictionary.to_pylist()) for c in table.column("state").chunks}
    assert ("invited", "linked") in dicts and ("invited", "linked", "archived") in dicts
    assert Counter(table.column("state").to_pylist()) == want
    assert Counter(table.to_pandas()["state"]) == want
    if "polars" not in WITHOUT:
        df = pl.DataFrame(pyng(sb2).customers("site_1", limit=7))
        assert Counter(df["state"].to_list()) == want


def test_no_python_object_per_record(sb2):
    """The Python heap does not grow with the page: nothing is built per
    record (the records path, measured the same way, grows with it)."""
    import tracemalloc
    from tests import arrow_c

    def peak(n, arrow):
        items = [natural_item(permissions=["a", "b"], party={"id": "p", "name": "n", "email": None})
                 for _ in range(n)]
        sb2.inject("natural.customers", body=one_page(items))
        pager = natural(sb2).customers()
        gc.collect()
        tracemalloc.start()
        try:
            if arrow:
                _, rows, error = arrow_c.drain(pager.__arrow_c_stream__())
                assert rows == [n] and error is None
            else:
                assert len(list(pager)) == n
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, big = peak(200, True), peak(4000, True)
    assert big - small < 64 * 1024, (small, big)
    assert peak(4000, False) - peak(200, False) > 1024 * 1024


class KindA(Record):
    x = Field(int)


class KindB(Record):
    y = Field(str)
    x = Field(int, "nested.x")


def test_oneof_without_a_tag_field_gets_a_tag_column(sb2):
    from custlist._spec import OneOf
    endpoint = Endpoint("/customers", OneOf("kind", {"a": KindA, "b": KindB}),
                        CursorPaging(items="data", cursor="meta.pagination.next_cursor",
                                     has_more="meta.pagination.has_more"))
    items = [{"kind": "a", "x": 1, "y": "ignored"}, {"kind": "b", "y": "s", "nested": {"x": 2}},
             {"x": 3, "kind": "a"}]
    sb2.inject("natural.customers", body=one_page(items), times=2)
    client = natural(sb2)
    recs = list(client.paginate(endpoint, "/customers", {}))
    table = client.paginate(endpoint, "/customers", {}).to_arrow()
    assert table.schema == pa.schema([("x", pa.int64()), ("y", pa.string()),
                                      ("kind", pa.string())])
    assert table.to_pylist() == [{"x": 1, "y": None, "kind": "a"},
                                 {"x": 2, "y": "s", "kind": "b"},
                                 {"x": 3, "y": None, "kind": "a"}]
    assert [(getattr(r, "x"), getattr(r, "y", None)) for r in recs] == [(1, None), (2, "s"),
                                                                         (3, None)]
    # an unknown kind with no fallback fails as the records path fails
    sb2.inject("natural.customers", body=one_page([{"kind": "z"}]), times=2)
    with pytest.raises(errors.DecodeError) as rec_err:
        list(client.paginate(endpoint, "/customers", {}))
    with pytest.raises(errors.DecodeError) as arrow_err:
        client.paginate(endpoint, "/customers", {}).to_arrow()
    assert (arrow_err.value.message, arrow_err.value.offset) == \
        (rec_err.value.message, rec_err.value.offset)


class KindC(Record):
    x = Field(str)


def test_oneof_variants_that_disagree_on_a_type_are_refused(sb2):
    from custlist._spec import OneOf
    endpoint = Endpoint("/customers", OneOf("kind", {"a": KindA, "c": KindC}),
                        CursorPaging(items="data", cursor="meta.pagination.next_cursor"))
    pager = natural(sb2).paginate(endpoint, "/customers", {})
    with pytest.raises(TypeError, match="disagree on the type of field x"):
        pager.to_arrow()
    assert sb2.requests == []


def test_ctrl_c_inside_a_huge_page_stops_its_conversion_and_keeps_the_page():
    # One page of 200,000 records (~85 MB) after a page of 20.  Timed first:
    # to_arrow() of the whole page, and of one record of it (the same
    # download, locating pass and count of the items, which max_items asks
    # for in both, and no conversion), twice each.  Then
    # SIGINT a quarter of the way into the conversion: KeyboardInterrupt must
    # come from inside it (long before it would have ended), and the
    # checkpoint must still point at that page, which a resumed listing
    # fetches and converts whole.
    out = run_script("""
        import itertools, json, os, signal, subprocess, sys, time
        import custlist
        from custlist.testing import Sandbox

        signal.signal(signal.SIGINT, signal.default_int_handler)   # even if inherited ignored

        KILL = ("import os, signal, sys, time; "
                "time.sleep(max(0, float(sys.argv[2]) - time.monotonic())); "
                "os.kill(int(sys.argv[1]), signal.SIGINT)")
        N = 200_000
        with Sandbox(natural_customers=40, seed=5) as sb:
            rows = sb.data.natural_customers[20:40] * (N // 20)
            huge = json.dumps({"data": rows, "meta": {"pagination": {"has_more": False,
                                                                     "next_cursor": None}}})
            client = custlist.Natural(sb.natural_token, base_url=sb.natural_url, max_body=1 << 30)

            def ready(max_items=None):
                sb.inject("natural.customers", skip=1, body=huge)
                pager = client.customers(limit=20, max_items=max_items)
                list(itertools.islice(pager, 20))   # page 1; the huge page downloads meanwhile
                time.sleep(1.0)
                return pager

            def timed(max_items):
                pager = ready(max_items)
                t = time.perf_counter()
                n = pager.to_arrow().num_rows
                assert n == (1 if max_items == 21 else N), n
                return time.perf_counter() - t

            whole = min(timed(20 + N) for _ in range(2))
            before_conversion = min(timed(21) for _ in range(2))
            conversion = whole - before_conversion

            pager = ready(20 + N)
            before = pager.checkpoint()
            # the conversion holds the GIL: the signal comes from another process
            start = time.monotonic() + 0.5
            killer = subprocess.Popen([sys.executable, "-c", KILL, str(os.getpid()),
                                       str(start + before_conversion + conversion / 4)])
            raised = None
            time.sleep(start - time.monotonic())
            t = time.perf_counter()
            try:
                pager.to_arrow()
                time.sleep(0.2)                   # (where an unchecked signal lands)
                time.sleep(0.2)
            except KeyboardInterrupt:
                raised = time.perf_counter() - t
            killer.wait()
            after = pager.checkpoint()
            sb.inject("natural.customers", body=huge)
            rest = client.resume(after).to_arrow()
            print(json.dumps({"whole": whole, "before_conversion": before_conversion,
                              "raised": raised, "before": before, "after": after,
                              "rest": rest.num_rows}))
    """, timeout=300)
    res = json.loads(out)
    conversion = res["whole"] - res["before_conversion"]
    assert conversion > 0.1, res                   # long enough to interrupt
    assert res["raised"] is not None, res
    assert res["raised"] < res["before_conversion"] + 0.75 * conversion, res
    assert res["after"] == res["before"], res
    assert res["before"]["skip"] == 0 and res["before"]["page"] is not None, res
    assert res["rest"] == 200_000, res


def test_keys_in_changing_orders_match_as_in_the_record_path(sb2):
    """The key maps remember the last object's key order and try it first:
    objects whose keys come in another order, with keys the map does not
    hold, an escaped spelling, a key past sixteen bytes, or whitespace
    between the tokens must still put every value in its own column."""
    import random
    rng = random.Random(5)
    items = []
    for i in range(40):
        attrs = natural_item(email=f"u{i}@b.c", wallet_available_minor=i,
                             permissions=["p%d" % j for j in range(i % 3)],
                             party={"id": f"p{i}", "name": f"n{i}", "email": None})["attributes"]
        keys = list(attrs)
        if i % 5:
            rng.shuffle(keys)                  # every fifth keeps the first order
        if i % 4 == 1:
            keys.insert(rng.randrange(len(keys) + 1), "unknown_%d" % (i % 3))
        pairs = []
        for k in keys:
            v = json.dumps(attrs.get(k, {"skipped": [i, None]}))
            name = json.dumps(k)
            if i % 7 == 3 and k == "status":
                name = '"st\\u0061tus"'        # the same key, escaped
            pairs.append(name + (" : " if i % 6 == 2 else ":") + v)
        inner = "{" + ",".join(pairs) + "}"
        items.append('{"type":"party","id":"pty_%d","attributes":%s}' % (i, inner))
    body = '{"data":[%s],"meta":{"pagination":{"has_more":false}}}' % ",".join(items)
    assert len(json.loads(body)["data"]) == 40
    sb2.inject("natural.customers", body=body, times=2)
    recs = list(natural(sb2).customers())
    table = natural(sb2).customers().to_arrow()
    assert_rows_match(table, recs)
    rows = table.to_pylist()
    assert [r["email"] for r in rows] == [f"u{i}@b.c" for i in range(40)]
    assert [r["wallet_available_minor"] for r in rows] == list(range(40))
    assert [r["status"] for r in rows] == ["ACTIVE"] * 40
    assert [r["party"]["id"] for r in rows] == [f"p{i}" for i in range(40)]


def test_a_union_read_again_after_its_discriminator_repeats_keeps_every_column_aligned(sb2):
    """A union's object is read as the variant its first discriminator
    names; when the discriminator comes again, what that reading put in the
    columns (list elements, a nested struct, the tag) is dropped and the
    object read again as its last copy says.  The rows around it keep their
    own values, as the record path gives them."""
    def item(i, *tags, **attrs):
        base = natural_item(email=f"u{i}@b.c", wallet_available_minor=i,
                            permissions=[f"p{i}-{j}" for j in range(i % 3 + 1)],
                            party={"id": f"pp{i}", "name": f"n{i}", "email": None}, **attrs)
        head = json.dumps(tags[0])
        tail = "".join(',"type":%s' % json.dumps(t) for t in tags[1:])
        return '{"type":%s,"id":"pty_%d","attributes":%s%s}' % (
            head, i, json.dumps(base["attributes"]), tail)
    items = [
        item(0, "party"),
        item(1, "party", "delegation_invitation"),   # another variant of the same fields
        item(2, "party"),
        item(3, "party", "mystery"),    # to the fallback after a list and a struct were read
        item(4, "mystery", "party"),                  # from the fallback
        item(5, "party", "party"),                    # the same variant twice
        item(6, "party"),
    ]
    body = '{"data":[%s],"meta":{"pagination":{"has_more":false}}}' % ",".join(items)
    loaded = json.loads(body)["data"]
    assert [d["type"] for d in loaded] == ["party", "delegation_invitation", "party", "mystery",
                                           "party", "party", "party"]
    sb2.inject("natural.customers", body=body, times=2)
    recs = list(natural(sb2).customers())
    table = natural(sb2).customers().to_arrow()
    assert_rows_match(table, recs)
    rows = table.to_pylist()
    assert [r["type"] for r in rows] == [d["type"] for d in loaded]
    assert [r["email"] for r in rows] == ["u0@b.c", "u1@b.c", "u2@b.c", None, "u4@b.c",
                                          "u5@b.c", "u6@b.c"]
    assert [r["permissions"] for r in rows] == [["p0-0"], ["p1-0", "p1-1"], ["p2-0", "p2-1", "p2-2"],
                                                None,
                                                ["p4-0", "p4-1"], ["p5-0", "p5-1", "p5-2"],
                                                ["p6-0"]]
    assert [r["party"] and r["party"]["id"] for r in rows] == ["pp0", "pp1", "pp2", None, "pp4",
                                                               "pp5", "pp6"]
    assert json.loads(rows[3]["attributes"]) == loaded[3]["attributes"]
