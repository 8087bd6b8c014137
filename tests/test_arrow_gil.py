"""Arrow output converts a page without the GIL: other Python threads run
meanwhile, fan_out(...).to_arrow() converts listings side by side, and the
errors, tables and checkpoints stay those of the record path."""
import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pytest

import custlist
from custlist import errors
from custlist._spec import CursorPaging, Endpoint, Field, Record, StrEnum
from custlist.testing import Sandbox

from .test_arrow_errors import ENDPOINTS, same_error

FAST = dict(backoff=0.01, backoff_max=0.05, retry_after_max=0.2)


def run_script(code, timeout):
    """The scenario in a child process with a deadline: a hang fails the test."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def gsb():
    with Sandbox(pyng_sites=6, pyng_site_customers=33, commenda_corporations=5,
                 commenda_corporation_customers=27, natural_customers=41,
                 natural_invitations=37, seed=29, pyng_unknown_state_every=5,
                 natural_unknown_type_every=4) as sb:
        yield sb


@pytest.fixture
def sb(gsb):
    gsb.clear_faults()
    gsb.requests.clear()
    yield gsb
    gsb.clear_faults()


# ---------------------------------------------------------------------------
# Errors: the C record raised after the scan is the record path's exception


class Leaf(Record):
    n = Field(int)
    at = Field(dt.datetime, "when")


class Color(StrEnum):
    RED = "red"
    BLUE = "blue"


class Every(Record):
    s = Field(str)
    i = Field(int)
    f = Field(float)
    b = Field(bool)
    d = Field(Decimal, scale=2, precision=12)
    ts = Field(dt.datetime)
    c = Field(Color)
    tags = Field(list[str])
    leaf = Field(Leaf)
    leaves = Field(list[Leaf])
    extra = Field(dict)
    req = Field(str, required=True)


def every_endpoint():
    return Endpoint("/customers", Every,
                    CursorPaging(items="data", cursor="meta.pagination.next_cursor",
                                 has_more="meta.pagination.has_more"))


GOOD = ('{"s":"a\\u00e9\\n","i":-5,"f":1.5,"b":true,"d":"12.30","ts":"2026-01-02T03:04:05Z",'
        '"c":"gr\\u0065en",'
        '"tags":["x","y"],"leaf":{"n":1,"when":"2026-01-01T00:00:00Z"},'
        '"leaves":[{"n":2},null],"extra":{"k":[1,{"z":null}]},"req":"r"}')


def body_of(*items, tail=']}'):
    return '{"meta":{"pagination":{"has_more":false}},"data":[' + ",".join(items) + tail


def spoiled(field, value):
    item = json.loads(GOOD)
    item[field] = "\x00MARK"
    return json.dumps(item).replace('"\\u0000MARK"', value)


BAD_PAGES = {
    "string-type": body_of(GOOD, spoiled("s", "5")),
    "bad-escape": body_of(GOOD, spoiled("s", '"a\\q"')),
    "control-char": body_of(GOOD, spoiled("s", '"a\tb"')),
    "int-float": body_of(GOOD, spoiled("i", "1.5")),
    "int-grammar": body_of(GOOD, spoiled("i", "-")),
    "float-grammar": body_of(GOOD, spoiled("f", "1.e5")),
    "float-range": body_of(GOOD, spoiled("f", "1e400")),
    "bool-type": body_of(GOOD, spoiled("b", '"yes"')),
    "bool-literal": body_of(GOOD, spoiled("b", "tru")),
    "decimal-text": body_of(GOOD, spoiled("d", '"1,5"')),
    "timestamp": body_of(GOOD, spoiled("ts", '"2026-13-01T00:00:00Z"')),
    "enum-type": body_of(GOOD, spoiled("c", "5")),
    "escaped-key-bad-value": body_of(GOOD, GOOD.replace('"i":-5', '"\\u0069":"x"')),
    "list-type": body_of(GOOD, spoiled("tags", '"x"')),
    "list-element": body_of(GOOD, spoiled("tags", '["x",5]')),
    "nested-record": body_of(GOOD, spoiled("leaf", '{"n":"one"}')),
    "nested-list-record": body_of(GOOD, spoiled("leaves", '[{"n":1},{"n":[]}]')),
    "nested-timestamp": body_of(GOOD, spoiled("leaf", '{"n":1,"when":7.5}')),
    "any-trailing-comma": body_of(GOOD, spoiled("extra", '{"a":[1,]}')),
    "required-missing": body_of(GOOD, GOOD.replace(',"req":"r"', "")),
    "required-null": body_of(GOOD, spoiled("req", "null")),
    "item-type": body_of(GOOD, "5"),
    "truncated-in-item": body_of(GOOD, GOOD)[:-40],
    "truncated-in-array": body_of(GOOD, GOOD, tail=""),
    "too-deep": body_of(GOOD, spoiled("extra", "[" * 80 + "]" * 80)),
    "invalid-utf8": body_of(GOOD, spoiled("s", '"\udcff"')),
}


def read_both(sb, body, **client_kw):
    """The record path's exception and to_arrow's, on the same page."""
    client = custlist.Natural(sb.natural_token, base_url=sb.natural_url, **FAST, **client_kw)
    got = []
    for read in (list, lambda p: p.to_arrow()):
        sb.inject("natural.customers", body=body.encode("utf-8", "surrogateescape"))
        pager = client.paginate(every_endpoint(), "/customers", {})
        with pytest.raises(custlist.CustlistError) as e:
            read(pager)
        got.append((e.value, pager.checkpoint()))
    return got


@pytest.mark.parametrize("bad", sorted(BAD_PAGES))
def test_to_arrow_fails_on_a_bad_page_as_the_records_fail(sb, bad):
    (rec, rec_cp), (arrow, arrow_cp) = read_both(sb, BAD_PAGES[bad], max_depth=64)
    same_error(arrow, rec)
    assert isinstance(arrow, errors.DecodeError)
    assert (arrow.message, arrow.offset, arrow.index, arrow.field, arrow.path) == \
        (rec.message, rec.offset, rec.index, rec.field, rec.path)
    assert arrow_cp == rec_cp                  # the page comes again on resume


def test_item_budget_fails_at_the_same_value(sb):
    body = body_of(*[GOOD] * 6)
    for budget in (1, 7, 12, 20, 35, 50):
        (rec, rec_cp), (arrow, arrow_cp) = read_both(sb, body, max_items_per_page=budget)
        same_error(arrow, rec)
        assert "max_items_per_page" in arrow.message and arrow_cp == rec_cp


@pytest.mark.parametrize("wire", [
    "0.1", "-0.0", "1e-400", "4.9e-324", "2.2250738585072011e-308", "9007199254740993",
    "1.7976931348623157e308", "123456789012345678901234567890e-10", "0." + "3" * 400,
    "1" * 300 + "e-250", "5e-324", "2.4703282292062328e-324",
])
def test_floats_are_the_doubles_float_reads(sb, wire):
    item = json.loads(GOOD)
    item["f"] = "\x00MARK"
    body = body_of(json.dumps(item).replace('"\\u0000MARK"', wire))
    client = custlist.Natural(sb.natural_token, base_url=sb.natural_url, **FAST)
    sb.inject("natural.customers", body=body, times=2)
    [rec] = list(client.paginate(every_endpoint(), "/customers", {}))
    table = client.paginate(every_endpoint(), "/customers", {}).to_arrow()
    [got] = table.column("f").to_pylist()
    assert got.hex() == rec.f.hex() == float(wire).hex()


def test_a_float_column_under_another_locale(tmp_path):
    # strtod alone would read "1.5" as 1 under a locale whose decimal point
    # is a comma; the scan reads JSON numbers the same in any locale. The
    # German locale is compiled here (a machine may have none installed);
    # a Debian root of the CI has no locale sources to compile it from, and
    # there the floats are checked in the C locale alone (the host's run,
    # which has them, checks the comma).
    made = subprocess.run(["localedef", "-i", "de_DE", "-f", "UTF-8",
                           str(tmp_path / "de_DE.UTF-8")], capture_output=True, timeout=120)
    sources = os.path.exists("/usr/share/i18n/locales/de_DE")
    code = textwrap.dedent("""
        import json, locale
        import custlist
        from custlist._spec import CursorPaging, Endpoint, Field, Record
        from custlist.testing import Sandbox

        class Row(Record):
            f = Field(float)
            g = Field(float)

        endpoint = Endpoint("/customers", Row, CursorPaging(
            items="data", cursor="meta.pagination.next_cursor", has_more="meta.pagination.has_more"))
        try:
            locale.setlocale(locale.LC_ALL, "de_DE.UTF-8")
            took = True
        except locale.Error:
            took = False
        body = ('{"meta":{"pagination":{"has_more":false}},'
                '"data":[{"f":1.5,"g":-2.25e-3},{"f":1e2,"g":0.1}]}')
        with Sandbox(natural_customers=3) as sb:
            client = custlist.Natural(sb.natural_token, base_url=sb.natural_url)
            sb.inject("natural.customers", body=body)
            t = client.paginate(endpoint, "/customers", {}).to_arrow()
            print(json.dumps({"f": t.column("f").to_pylist(), "g": t.column("g").to_pylist(),
                              "took": took, "point": locale.localeconv()["decimal_point"]}))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "LOCPATH": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["took"] or not sources, (out, made.stderr)
    assert out["point"] == ("," if out["took"] else ".")   # the locale took: the test can fail
    assert out["f"] == [1.5, 100.0] and out["g"] == [-2.25e-3, 0.1], out


def test_json_nested_past_the_recursion_guard_fails_as_before():
    # Deep in Python recursion, a deep value fails with the interpreter's
    # recursion limit as the record path fails: the guard's room is measured
    # before the GIL is let go.
    out = run_script("""
        import json, sys
        import custlist
        from custlist._spec import CursorPaging, Endpoint, Field, Record, StrEnum
        from custlist.testing import Sandbox

        class Deep(Record):
            extra = Field(dict)

        ep = Endpoint("/customers", Deep, CursorPaging(items="data",
                      cursor="meta.pagination.next_cursor", has_more="meta.pagination.has_more"))
        body = ('{"meta":{"pagination":{"has_more":false}},"data":[{"extra":{"a":'
                + "[" * 990 + "]" * 990 + '}}]}')
        sys.setrecursionlimit(1200)
        out = {}
        with Sandbox(natural_customers=3) as sb:
            client = custlist.Natural(sb.natural_token, base_url=sb.natural_url, max_depth=1000)

            def dive(n, read):
                if n:
                    return dive(n - 1, read)
                sb.inject("natural.customers", body=body)
                pager = client.paginate(ep, "/customers", {})
                try:
                    got = read(pager)
                except custlist.DecodeError as e:
                    return [e.message, e.offset]
                return ["read", len(got)]

            out["shallow"] = dive(0, lambda p: p.to_arrow())
            out["deep"] = dive(700, lambda p: p.to_arrow())
            out["deeper"] = dive(710, lambda p: p.to_arrow())
            out["records"] = dive(700, list)
        print(json.dumps(out))
    """, timeout=120)
    assert out["shallow"] == ["read", 1], out
    if sys.version_info >= (3, 12):
        # From 3.12 on the guard counts C levels only (a limit of its own):
        # every reading fits, or all fail alike.
        assert out["deep"][0] in ("read", out["records"][0]), out
        return
    limit = "JSON nested too deeply for the interpreter's recursion limit"
    assert out["deep"][0] == out["deeper"][0] == out["records"][0] == limit, out
    # ten Python frames deeper: the value fails ten levels (bytes) sooner
    assert out["deep"][1] - out["deeper"][1] == 10, out


# ---------------------------------------------------------------------------
# The GIL is let go while a page converts

HUGE_PAGE = """
    import itertools, json, sys, threading, time
    import pyarrow as pa
    import pyarrow.compute  # pa.compute
    import custlist
    from custlist.testing import Sandbox

    N = 150_000

    def huge_listing(sb, client):
        rows = sb.data.natural_customers[20:40] * (N // 20)
        huge = json.dumps({"data": rows, "meta": {"pagination": {"has_more": False,
                                                                 "next_cursor": None}}})
        sb.inject("natural.customers", skip=1, body=huge)
        pager = client.customers(limit=20)
        list(itertools.islice(pager, 20))     # page 1; the huge page downloads meanwhile
        while sb.in_flight or len(sb.requests) < 2:
            time.sleep(0.05)
        time.sleep(0.5)
        return pager
"""


def test_a_python_thread_runs_while_a_page_converts():
    # One get_next call converts a page of 150,000 records (tens of MB),
    # downloaded beforehand.  A thread counts meanwhile, giving the GIL up
    # every 1,000 steps (so that nothing waits on it for a switch interval,
    # set long here): with the GIL held for the whole conversion it could
    # count no more than a thousand or so per hand-over around the call.
    out = run_script(HUGE_PAGE + """
    sys.setswitchinterval(5.0)
    with Sandbox(natural_customers=40, seed=5) as sb:
        client = custlist.Natural(sb.natural_token, base_url=sb.natural_url, max_body=1 << 30)
        pager = huge_listing(sb, client)
        reader = pa.RecordBatchReader.from_stream(pager)
        count, stop = [0], []

        def spin():
            n = 0
            while not stop:
                n += 1
                if n % 1000 == 0:
                    count[0] = n
                    time.sleep(0)

        t = threading.Thread(target=spin)
        t.start()
        time.sleep(0.2)
        before, t0 = count[0], time.perf_counter()
        batch = reader.read_next_batch()
        after, took = count[0], time.perf_counter() - t0
        stop.append(1)
        t.join()
        print(json.dumps({"rows": batch.num_rows, "counted": after - before, "took": took}))
    """, timeout=300)
    assert out["rows"] == 150_000, out
    assert out["counted"] >= 200_000, out


def test_close_from_another_thread_while_a_page_converts():
    # close() lands before, during or after the conversion of the huge last
    # page: to_arrow() returns the whole rest of the listing, raises
    # PagerClosedError, or (closed before it began) has nothing more; the
    # checkpoint resumes with nothing lost or repeated.
    out = run_script(HUGE_PAGE + """
    outcomes = []
    with Sandbox(natural_customers=40, seed=5) as sb:
        client = custlist.Natural(sb.natural_token, base_url=sb.natural_url, max_body=1 << 30)
        for delay in (0.0, 0.01, 0.03, 0.06, 0.1, 0.2, 0.4):
            sb.requests.clear()
            pager = huge_listing(sb, client)
            timer = threading.Timer(delay, pager.close)
            timer.start()
            try:
                rows, error = pager.to_arrow().num_rows, None
            except custlist.CustlistError as e:
                rows, error = None, type(e).__name__
            timer.join()
            rest = None
            if not pager.done:
                cp = pager.checkpoint()
                sb.requests.clear()
                sb.inject("natural.customers", body=json.dumps({
                    "data": sb.data.natural_customers[20:40] * (N // 20),
                    "meta": {"pagination": {"has_more": False, "next_cursor": None}}}))
                rest = client.resume(cp).to_arrow().num_rows
            outcomes.append([delay, rows, error, rest, pager.done])
    print(json.dumps(outcomes))
    """, timeout=600)
    for delay, rows, error, rest, done in out:
        if done:
            assert rows == 150_000 and error is None, out
        elif error is None:            # closed before the read began: it yields nothing more,
            assert rows == 0 and rest == 150_000, out        # as records then do
        else:
            assert error == "PagerClosedError" and rest == 150_000, out


# ---------------------------------------------------------------------------
# fan_out(...).to_arrow(): the listings' own tables, converted side by side


def listings(sb, name, client):
    ep = ENDPOINTS[name]
    if name == "pyng":
        return {s: client.customers(s, limit=7) for s in sb.pyng_site_ids}
    if name == "commenda":
        return {c: client.customers(c, limit=6, extend=["shipping_address", "exemption_metadata"])
                for c in sb.commenda_corporation_ids}
    return {f"{name}-{k}": ep.listing(client) for k in range(4)}


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_fan_out_to_arrow_is_the_listings_own_tables(sb, name):
    ep = ENDPOINTS[name]
    want = {s: p.to_arrow() for s, p in listings(sb, name, ep.client(sb)).items()}
    # one listing fails (its page holds more values than its client allows):
    # it adds no rows, and its error is the one its own to_arrow() raises
    bad_client = ep.client(sb, max_items_per_page=3)
    with pytest.raises(errors.DecodeError) as alone:
        ep.listing(bad_client).to_arrow()
    pagers = listings(sb, name, ep.client(sb))
    pagers["failing"] = ep.listing(bad_client)
    out = custlist.fan_out(pagers, concurrency=4)
    table = out.to_arrow()
    assert table.column_names[0] == "source"
    assert table.column("source").to_pylist() == [s for s, t in want.items()
                                                  for _ in range(t.num_rows)]
    assert table.drop_columns(["source"]).to_pylist() == \
        pa.concat_tables(want.values()).to_pylist()
    assert set(out.summary.errors) == {"failing"}
    same_error(out.summary.errors["failing"], alone.value)
    assert all(out.summary.sources[s].done for s in want)


def test_fan_out_closed_from_another_thread_while_pages_convert():
    out = run_script(HUGE_PAGE + """
    with Sandbox(natural_customers=40, seed=5) as sb:
        client = custlist.Natural(sb.natural_token, base_url=sb.natural_url, max_body=1 << 30)
        rows = sb.data.natural_customers[20:40] * (N // 20)
        huge = json.dumps({"data": rows, "meta": {"pagination": {"has_more": False,
                                                                 "next_cursor": None}}})
        results = []
        for delay in (0.05, 0.2, 0.5):
            sb.inject("natural.customers", body=huge, times=3)
            out = custlist.fan_out({k: client.customers(limit=20) for k in range(3)})
            timer = threading.Timer(delay, out.close)
            timer.start()
            table = out.to_arrow()
            timer.join()
            got = {k: table.filter(pa.compute.equal(table.column("source"), k)).num_rows
                   for k in range(3)} if table.num_rows else {}
            for k, res in out.summary.sources.items():
                if res.done:
                    results.append(["done", got.get(k), res.records])
                else:
                    sb.inject("natural.customers", body=huge)
                    rest = client.resume(res.checkpoint).to_arrow().num_rows
                    results.append(["stopped", got.get(k, 0), rest, repr(res.error)])
        print(json.dumps(results))
    """, timeout=600)
    for r in out:
        if r[0] == "done":
            assert r[1] == r[2] == 150_000, out
        else:
            assert r[1] == 0 and r[2] == 150_000 and r[3] == "None", out


# ---------------------------------------------------------------------------
# The download overlaps the conversion: the next pages are on their way (or
# in) while the consumer still works on a batch


PAGED = """
    import json, threading, time
    import pyarrow as pa
    import custlist
    from custlist.testing import Sandbox

    LATENCY, WORK = 0.05, 0.2        # the server's wait per page; the consumer's per batch

    def read_slowly(reader, calls, on_batch=None):
        ids = []
        while True:
            calls.append(time.monotonic())
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return ids
            ids += batch.column("id").to_pylist()
            if on_batch is not None:
                on_batch(len(calls))
            time.sleep(WORK)         # the consumer's own work on the batch
"""


def test_the_next_page_is_requested_before_the_stream_asks_for_it():
    # One batch per page (the stream's own batching); the consumer spends
    # 0.2 s on each, the server 0.05 s on each page.  Every page after the
    # first reached the server before get_next for it began (the fetch side
    # asked for it while the page before was converted and consumed), so the
    # consumer never waits for a page's latency; the rows are the records'.
    out = run_script(PAGED + """
    with Sandbox(natural_customers=60, seed=7) as sb:
        client = custlist.Natural(sb.natural_token, base_url=sb.natural_url)
        want = [c.id for c in client.customers(limit=10)]
        sb.requests.clear()
        sb.latency["natural.customers"] = LATENCY
        calls = []
        t0 = time.monotonic()
        ids = read_slowly(pa.RecordBatchReader.from_stream(client.customers(limit=10)), calls)
        arrived = [r.at for r in sb.requests]
        print(json.dumps({"ids": ids, "want": want, "calls": [c - t0 for c in calls],
                          "arrived": [a - t0 for a in arrived]}))
    """, timeout=120)
    assert out["ids"] == out["want"] and len(out["want"]) == 60, out
    calls, arrived = out["calls"], out["arrived"]
    assert len(arrived) == 6 and len(calls) == 7, out      # six pages, then the end
    for k in range(1, 6):
        assert arrived[k] < calls[k], (k, out)


def test_close_from_another_thread_while_the_next_pages_download():
    # close() lands while the consumer works on a batch and the pages after
    # it are on their way: the stream ends there, as iterating records does
    # after close() (never a hang, never a page twice), and resuming from
    # the checkpoint gives exactly the rest of the records.
    out = run_script(PAGED + """
    outcomes = []
    with Sandbox(natural_customers=60, seed=7) as sb:
        client = custlist.Natural(sb.natural_token, base_url=sb.natural_url)
        want = [c.id for c in client.customers(limit=10)]
        sb.latency["natural.customers"] = LATENCY
        for after in (1, 2, 3, 5):
            pager = client.customers(limit=10)
            calls = []

            def maybe_close(n, after=after, pager=pager):
                if n == after:
                    threading.Timer(WORK / 4, pager.close).start()

            errors = []
            stream = pager._arrow_stream(errors, 1)

            class Src:
                def __arrow_c_stream__(self, requested_schema=None):
                    return stream

            reader = pa.RecordBatchReader.from_stream(Src())
            try:
                ids, error = read_slowly(reader, calls, maybe_close), None
            except Exception as e:
                ids, error = None, type(errors[-1] if errors else e).__name__
            cp = pager.checkpoint()
            rest = [c.id for c in client.resume(cp)] if not pager.done else []
            outcomes.append([after, error, ids, rest])
        print(json.dumps({"want": want, "outcomes": outcomes}))
    """, timeout=180)
    want = out["want"]
    assert len(want) == 60, out
    for after, error, ids, rest in out["outcomes"]:
        # the batches handed out stay handed out; the pages fetched ahead
        # are not, and the checkpoint resumes right after the last batch
        assert error is None and ids == want[:10 * after], (after, out)
        assert rest == want[10 * after:], (after, out)
