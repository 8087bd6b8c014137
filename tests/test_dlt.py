"""custlist.dlt: real dlt pipelines into DuckDB against the sandbox, with
the append write disposition (no merge hides a duplicate): full loads of
every bundled listing and of a user's endpoint, listings loaded over several
capped runs, a run killed mid-listing, an account failing while the others
load, and incremental loads that fetch only what is new."""
import os
import signal
import subprocess
import sys
import time

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

import dlt  # noqa: E402
import duckdb  # noqa: E402
import pytest  # noqa: E402

import custlist  # noqa: E402
import custlist.dlt as cdlt  # noqa: E402
from custlist import errors  # noqa: E402
from custlist.testing import Sandbox  # noqa: E402
from custlist.testing.demo import OFFSET  # noqa: E402

from .conftest import FAST  # noqa: E402


@pytest.fixture(scope="module")
def box():
    with Sandbox(pyng_customers=150, natural_customers=70, natural_invitations=45,
                 commenda_customers=60, demo_customers=75, pyng_sites=3,
                 pyng_site_customers=50, commenda_corporations=3,
                 commenda_corporation_customers=25, seed=11) as sb:
        yield sb


@pytest.fixture
def sb(box):
    box.clear_faults()
    box.requests.clear()
    yield box
    box.clear_faults()


class Dest:
    """A DuckDB file and a pipelines folder of one test's own."""

    def __init__(self, tmp_path, name="custlist_test"):
        self.db, self.dir, self.name = str(tmp_path / "out.duckdb"), str(tmp_path / "pl"), name

    def pipeline(self):
        return dlt.pipeline(self.name, destination=dlt.destinations.duckdb(self.db),
                            pipelines_dir=self.dir, dataset_name="d")

    def rows(self, table, cols):
        with duckdb.connect(self.db, read_only=True) as con:
            return con.execute(f"select {cols} from d.{table}").fetchall()

    def state(self, resource):
        return self.pipeline().state["sources"][self.name]["resources"][resource]


def once(rows, expected):
    """Every expected record exactly once, and nothing else."""
    assert len(rows) == len(expected)
    assert sorted(rows) == sorted(expected)


def pyng_client(sb, **kw):
    return custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, **FAST, **kw)


def pyng_refs(sb, site):
    return [(c["customerReference"],) for c in sb.data.pyng[site]]


def test_a_full_load_of_every_bundled_listing(sb, tmp_path):
    out = Dest(tmp_path)
    pyng = pyng_client(sb)
    natural = custlist.Natural(sb.natural_token, base_url=sb.natural_url, **FAST)
    commenda = custlist.Commenda(sb.commenda_token, base_url=sb.commenda_url, **FAST)
    resources = [cdlt.listing(pyng, "customers", site_id="site_1", limit=40),
                 cdlt.listing(natural, "customers"),
                 cdlt.listing(natural, "customer_invitations"),
                 cdlt.listing(commenda, "customers", corporation_id="corp_123")]
    info = out.pipeline().run(resources)
    assert not info.has_failed_jobs
    once(out.rows("pyng_customers", "customer_reference"), pyng_refs(sb, "site_1"))
    once(out.rows("natural_customers", "id"), [(r.id,) for r in natural.customers()])
    once(out.rows("natural_customer_invitations", "id"),
         [(r.id,) for r in natural.customer_invitations()])
    once(out.rows("commenda_customers", "id"),
         [(r.id,) for r in commenda.customers("corp_123")])
    # values as custlist decodes them, types and keys from the record description
    first = pyng.customers("site_1", max_items=1).to_arrow().to_pylist()[0]
    with duckdb.connect(out.db, read_only=True) as con:
        got = con.execute("select state, invited_at from d.pyng_customers "
                          "where customer_reference = ?", [first["customer_reference"]]).fetchall()
        kinds = dict(con.execute("select column_name, data_type from information_schema.columns "
                                 "where table_name = 'pyng_customers'").fetchall())
    assert got == [(first["state"], first["invited_at"])]
    assert kinds["invited_at"] == "TIMESTAMP WITH TIME ZONE"
    schema = out.pipeline().default_schema
    assert schema.get_table_columns("pyng_customers")["customer_reference"]["primary_key"]
    assert schema.get_table_columns("commenda_customers")["id"]["primary_key"]
    # the listing is complete: no checkpoint left in the state
    assert out.state("pyng_customers")["checkpoint"] is None


def test_the_columns_come_from_the_description_even_for_an_empty_listing(sb, tmp_path):
    out = Dest(tmp_path)
    pyng = pyng_client(sb)
    resource = cdlt.listing(pyng, "customers", site_id="site_1",
                            invited_from=4_102_444_800_000)          # in 2100
    out.pipeline().run(resource)
    assert out.rows("pyng_customers", "*") == []
    with duckdb.connect(out.db, read_only=True) as con:
        names = [r[0] for r in con.execute(
            "select column_name from information_schema.columns "
            "where table_name = 'pyng_customers' order by ordinal_position").fetchall()]
    assert names[:5] == ["customer_reference", "state", "invited_at", "expires_at", "linked_at"]


def test_a_listing_loaded_over_several_capped_runs(sb, tmp_path):
    out = Dest(tmp_path)
    pyng = pyng_client(sb)
    resource = cdlt.listing(pyng, "customers", site_id="site_1", limit=20, max_items=45)
    expected = pyng_refs(sb, "site_1")           # 150 records
    counts = []
    for _ in range(4):
        sb.requests.clear()
        out.pipeline().run(resource)
        rows = out.rows("pyng_customers", "customer_reference")
        counts.append(len(rows))
        assert len(set(rows)) == len(rows)                       # never twice
        assert sorted(rows) == sorted(expected[:len(rows)])      # a prefix, in order of listing
        # a capped run asks for no record beyond its cap
        asked = sum(int(r.query.get("limit", 0)) for r in sb.requests
                    if r.route == "pyng.customers")
        assert asked <= 45 + 20
    assert counts == [45, 90, 135, 150]
    once(out.rows("pyng_customers", "customer_reference"), expected)
    assert out.state("pyng_customers")["checkpoint"] is None
    # a listing read to its end starts again on the next run
    out.pipeline().run(resource)
    assert len(out.rows("pyng_customers", "customer_reference")) == 150 + 45


def test_a_user_endpoint_by_pages_per_run(sb, tmp_path):
    out = Dest(tmp_path)
    client = custlist.Client(base_url=sb.demo_url, auth=custlist.BearerToken(sb.demo_token),
                             **FAST)
    resource = cdlt.endpoint(client, OFFSET, OFFSET.path, {"limit": 10}, name="demo",
                             primary_key="id", max_pages=3)
    counts = []
    for _ in range(3):
        out.pipeline().run(resource)
        counts.append(len(out.rows("demo", "id")))
    assert counts == [30, 60, 75]
    once(out.rows("demo", "id"), [(c["id"],) for c in sb.data.demo])
    assert out.pipeline().default_schema.get_table_columns("demo")["id"]["primary_key"]


CHILD = r"""
import os, sys
os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
import dlt, custlist, custlist.dlt as cdlt
url, token, db, folder, name = sys.argv[1:6]
pyng = custlist.Pyng(token=token, base_url=url)
pipeline = dlt.pipeline(name, destination=dlt.destinations.duckdb(db), pipelines_dir=folder,
                        dataset_name="d")
pipeline.run(cdlt.listing(pyng, "customers", site_id="site_1", limit=10, max_items=60))
print("finished", flush=True)
"""


def test_a_run_killed_mid_listing_is_fetched_again_from_the_last_committed_checkpoint(
        sb, tmp_path):
    out = Dest(tmp_path)
    pyng = pyng_client(sb)
    expected = pyng_refs(sb, "site_1")           # 150 records
    resource = cdlt.listing(pyng, "customers", site_id="site_1", limit=10, max_items=60)
    out.pipeline().run(resource)                 # run 1: records 1-60, committed
    assert len(out.rows("pyng_customers", "customer_reference")) == 60
    committed = out.state("pyng_customers")["checkpoint"]
    assert committed["count"] == 60

    # run 2, in a process killed after 3 of its 6 pages
    sb.requests.clear()
    sb.latency = {"pyng.customers": 0.3}
    try:
        child = subprocess.Popen([sys.executable, "-c", CHILD, sb.pyng_url, sb.pyng_token,
                                  out.db, out.dir, out.name], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 90
            while sum(r.route == "pyng.customers" for r in sb.requests) < 3:
                assert child.poll() is None, child.stderr.read()[-2000:]
                assert time.monotonic() < deadline, "the child never reached its third page"
                time.sleep(0.02)
            child.send_signal(signal.SIGKILL)
            stdout, _ = child.communicate(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    finally:
        sb.latency = {}
    assert child.returncode == -signal.SIGKILL and "finished" not in stdout
    # the killed run left nothing: neither rows nor a moved checkpoint
    assert len(out.rows("pyng_customers", "customer_reference")) == 60
    assert out.state("pyng_customers")["checkpoint"] == committed

    sb.requests.clear()
    out.pipeline().run(resource)                 # run 2 again: records 61-120
    rows = out.rows("pyng_customers", "customer_reference")
    assert sorted(rows) == sorted(expected[:120]) and len(rows) == 120
    # it went on from the committed page, not from the first one
    first = next(r for r in sb.requests if r.route == "pyng.customers")
    assert "cursor" in first.query
    out.pipeline().run(resource)                 # run 3: 121-150, the end
    once(out.rows("pyng_customers", "customer_reference"), expected)


def test_one_account_failing_while_the_others_load(sb, tmp_path):
    out = Dest(tmp_path)
    pyng = pyng_client(sb, max_retries=0)
    sites = sb.pyng_site_ids                      # 3 sites of 50
    resource = cdlt.accounts(pyng, "customers", by="site_id", accounts=sites, limit=10,
                             max_items=20)
    expected = [(s, ref) for s in sites for (ref,) in pyng_refs(sb, s)]

    def loaded():
        return out.rows("pyng_customers", "site_id, customer_reference")

    def per_site():
        rows = loaded()
        return {s: sum(r[0] == s for r in rows) for s in sites}

    cdlt.load(out.pipeline(), resource)          # run 1: 20 of each
    assert per_site() == {s: 20 for s in sites}

    bad = sites[1]
    # the bad site's second page of run 2, and every request of it after that, fails
    sb.inject("pyng.customers", status=500, times=None, skip=1, path=f"/{bad}/")
    with pytest.raises(custlist.FanOutError) as caught:
        cdlt.load(out.pipeline(), resource)       # run 2: the others load, then the error
    (err,) = caught.value.exceptions
    assert isinstance(err, errors.ServerError) and err.status == 500 and err.source == bad
    assert set(resource.failures) == {bad}
    summary = caught.value.summary
    assert summary.errors == {bad: err} and summary.records == 20 + 10 + 20
    assert summary.checkpoints[bad]["count"] == 30 and summary.sources[sites[0]].capped
    # the page it delivered before its error is loaded, the others' two pages too
    assert per_site() == {sites[0]: 40, bad: 30, sites[2]: 40}
    state = out.state("pyng_customers")
    assert state["checkpoints"][bad]["count"] == 30       # kept: the next run continues it
    assert set(state["failed"]) == {bad}
    rows = loaded()
    assert len(set(rows)) == len(rows)

    sb.clear_faults()
    sb.requests.clear()
    cdlt.load(out.pipeline(), resource)          # run 3: the failed site from record 31
    assert per_site() == {sites[0]: 50, bad: 50, sites[2]: 50}
    first_bad = next(r for r in sb.requests if f"/{bad}/" in r.path)
    assert "cursor" in first_bad.query
    once(loaded(), expected)
    assert not resource.failures
    assert out.state("pyng_customers")["checkpoints"] == {}


def test_every_commenda_corporation_in_one_table(sb, tmp_path):
    out = Dest(tmp_path)
    commenda = custlist.Commenda(sb.commenda_token, base_url=sb.commenda_url, **FAST)
    corps = sb.commenda_corporation_ids
    with pytest.raises(ValueError, match="already have a column 'corporation_id'"):
        cdlt.accounts(commenda, by="corporation_id", accounts=corps)
    resource = cdlt.accounts(commenda, by="corporation_id", accounts=corps, column="account",
                             limit=10)
    cdlt.load(out.pipeline(), resource)
    expected = [(c, r.id, c) for c in corps for r in commenda.customers(c)]
    assert len(expected) == 75
    once(out.rows("commenda_customers", "account, id, corporation_id"), expected)
    columns = out.pipeline().default_schema.get_table_columns("commenda_customers")
    assert columns["account"]["primary_key"] and columns["id"]["primary_key"]
    assert sorted(out.state("commenda_customers")["done"]) == corps


def test_incremental_loads_fetch_only_what_is_new(tmp_path):
    with Sandbox(pyng_customers=80, seed=5) as sb:
        out = Dest(tmp_path)
        pyng = pyng_client(sb)
        resource = cdlt.listing(pyng, "customers", site_id="site_1", limit=20,
                                incremental=dlt.sources.incremental("invited_at"),
                                since="invited_from")
        out.pipeline().run(resource)
        first_run = [r for r in sb.requests if r.route == "pyng.customers"]
        assert len(first_run) == 4 and "invitedFrom" not in first_run[0].query
        once(out.rows("pyng_customers", "customer_reference"), pyng_refs(sb, "site_1"))

        top = max(c["invitedAt"] for c in sb.data.pyng["site_1"])
        new = [{"customerReference": f"NEW-{i}", "state": "invited", "invitedAt": top + i * 1000,
                "expiresAt": top + i * 1000 + 7 * 86_400_000} for i in (1, 2, 3)]
        sb.add_pyng_customers("site_1", new)
        sb.requests.clear()
        out.pipeline().run(resource)
        second = [r for r in sb.requests if r.route == "pyng.customers"]
        # one request, from the high-water mark on: the new records and those at the mark
        assert len(second) == 1 and second[0].query["invitedFrom"] == str(top)
        served = [c for c in sb.data.pyng["site_1"] if c["invitedAt"] >= top]
        assert len(served) == 3 + sum(c["invitedAt"] == top for c in sb.data.pyng["site_1"])
        # the records at the mark, loaded by the first run, are not loaded again
        once(out.rows("pyng_customers", "customer_reference"), pyng_refs(sb, "site_1"))

        sb.requests.clear()
        out.pipeline().run(resource)                 # nothing new: nothing added
        third = [r for r in sb.requests if r.route == "pyng.customers"]
        assert len(third) == 1 and third[0].query["invitedFrom"] == str(top + 3000)
        once(out.rows("pyng_customers", "customer_reference"), pyng_refs(sb, "site_1"))


def test_incremental_cannot_be_capped(sb):
    pyng = pyng_client(sb)
    with pytest.raises(ValueError, match="max_items and max_pages cannot be combined"):
        cdlt.listing(pyng, "customers", site_id="site_1", max_items=10,
                     incremental=dlt.sources.incremental("invited_at"), since="invited_from")
    with pytest.raises(ValueError, match="needs since="):
        cdlt.listing(pyng, "customers", site_id="site_1",
                     incremental=dlt.sources.incremental("invited_at"))
    assert sb.requests == []


def test_without_dlt_the_error_names_the_extra():
    code = ("import sys; sys.modules['dlt'] = None\n"
            "import custlist, custlist.dlt\n"
            "try:\n"
            "    custlist.dlt.listing(custlist.Natural('t'), 'customers')\n"
            "except ImportError as e:\n"
            "    print(e)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "pip install 'custlist[dlt]'" in proc.stdout and "dlt is missing" in proc.stdout


def test_the_stub_lists_what_the_module_has_with_the_same_parameters():
    import ast
    import inspect
    import pathlib
    tree = ast.parse(pathlib.Path(cdlt.__file__).with_suffix(".pyi").read_text())
    stub = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    declared = next(n for n in tree.body if isinstance(n, ast.Assign)
                    and n.targets[0].id == "__all__")
    assert ast.literal_eval(declared.value) == cdlt.__all__
    assert set(stub) == {n for n in cdlt.__all__ if callable(getattr(cdlt, n))}
    for name, node in stub.items():
        a = node.args
        pos = [(p.arg, "POSITIONAL_OR_KEYWORD") for p in a.args]
        kw = [(p.arg, "KEYWORD_ONLY") for p in a.kwonlyargs]
        var = [(a.kwarg.arg, "VAR_KEYWORD")] if a.kwarg else []
        defaults = [False] * (len(a.args) - len(a.defaults)) + [True] * len(a.defaults)
        defaults += [d is not None for d in a.kw_defaults] + [False] * len(var)
        params = inspect.signature(getattr(cdlt, name)).parameters.values()
        assert [(n, k, d) for (n, k), d in zip(pos + kw + var, defaults)] == \
            [(p.name, p.kind.name, p.default is not p.empty) for p in params], name


def test_a_run_that_fails_mid_listing_loads_nothing_and_the_next_run_continues(sb, tmp_path):
    from dlt.pipeline.exceptions import PipelineStepFailed
    out = Dest(tmp_path)
    pyng = pyng_client(sb, max_retries=0)
    expected = pyng_refs(sb, "site_1")           # 150 records
    resource = cdlt.listing(pyng, "customers", site_id="site_1", limit=10, max_items=50)
    out.pipeline().run(resource)                 # records 1-50, committed
    committed = out.state("pyng_customers")["checkpoint"]
    sb.inject("pyng.customers", status=500, skip=2)    # the third page of the next run
    with pytest.raises(PipelineStepFailed) as caught:
        out.pipeline().run(resource)
    cause = caught.value.__cause__
    while cause is not None and not isinstance(cause, errors.ServerError):
        cause = cause.__cause__
    assert isinstance(cause, errors.ServerError) and cause.status == 500
    # the two pages read before the error are not loaded, the checkpoint not moved
    assert len(out.rows("pyng_customers", "customer_reference")) == 50
    assert out.state("pyng_customers")["checkpoint"] == committed
    for _ in range(2):
        out.pipeline().run(resource)
    once(out.rows("pyng_customers", "customer_reference"), expected)


def test_a_checkpoint_of_another_listing_in_the_state_is_refused(sb, tmp_path):
    from dlt.pipeline.exceptions import PipelineStepFailed
    out = Dest(tmp_path)
    pyng = pyng_client(sb)
    out.pipeline().run(cdlt.listing(pyng, "customers", site_id="site_1", limit=10,
                                    max_items=30))
    committed = out.state("pyng_customers")["checkpoint"]
    sb.requests.clear()
    # the same table name for another site: its state is site_1's
    other = cdlt.listing(pyng, "customers", site_id="site_2", limit=10, max_items=30)
    with pytest.raises(PipelineStepFailed) as caught:
        out.pipeline().run(other)
    cause = caught.value.__cause__
    while cause is not None and not isinstance(cause, ValueError):
        cause = cause.__cause__
    assert isinstance(cause, ValueError) and "another listing" in str(cause) \
        and "/billing/sites/site_1/customers" in str(cause)
    assert [r for r in sb.requests if r.route == "pyng.customers"] == []
    assert len(out.rows("pyng_customers", "customer_reference")) == 30
    assert out.state("pyng_customers")["checkpoint"] == committed


def test_a_paging_error_fails_the_run_instead_of_ending_the_listing_quietly(sb, tmp_path):
    """A page that says there is more but gives no cursor: the run fails
    with custlist's PagingError, loads none of its pages and keeps the
    committed checkpoint (the Arrow stream alone would just end there)."""
    import json

    from dlt.pipeline.exceptions import PipelineStepFailed
    out = Dest(tmp_path)
    natural = custlist.Natural(sb.natural_token, base_url=sb.natural_url, **FAST)
    expected = [(r.id,) for r in natural.customers()]      # 70 records
    resource = cdlt.listing(natural, "customers", limit=10, max_items=30)
    out.pipeline().run(resource)
    committed = out.state("natural_customers")["checkpoint"]

    def no_cursor(query):
        page = sb.natural_customers(dict(query), {"authorization": f"Bearer {sb.natural_token}"})
        pag = page["meta"]["pagination"]
        pag["next_cursor" if "next_cursor" in pag else "nextCursor"] = None
        pag["has_more" if "has_more" in pag else "hasMore"] = True
        return json.dumps(page).encode()

    sb.inject("natural.customers", skip=1, body=no_cursor)  # the run's second page
    with pytest.raises(PipelineStepFailed) as caught:
        out.pipeline().run(resource)
    cause = caught.value.__cause__
    while cause is not None and not isinstance(cause, errors.PagingError):
        cause = cause.__cause__
    assert isinstance(cause, errors.PagingError) and "no cursor" in str(cause)
    assert len(out.rows("natural_customers", "id")) == 30
    assert out.state("natural_customers")["checkpoint"] == committed
    sb.clear_faults()
    for _ in range(2):
        out.pipeline().run(resource)
    once(out.rows("natural_customers", "id"), expected)
