"""progress=True: a tqdm bar of the records, with the API's total when it
gives one; closed on finish, error and close(); __length_hint__ once the
total is known; a clear ImportError without tqdm."""
import io
import operator
import subprocess
import sys

import pytest
import tqdm

import custlist

from .listings import LISTINGS, full


class Bars:
    """Records every bar made through tqdm.auto.tqdm."""

    def __init__(self):
        self.made = []

    def __call__(self, *args, **kwargs):
        kwargs["file"] = kwargs.get("file") or io.StringIO()
        bar = tqdm.tqdm(*args, **kwargs)
        self.made.append(bar)
        return bar


@pytest.fixture
def bars(monkeypatch):
    import tqdm.auto
    b = Bars()
    monkeypatch.setattr(tqdm.auto, "tqdm", b)
    return b


TOTALS = {"pyng.customers": True, "natural.customers": False,
          "natural.customer_invitations": False, "commenda.customers": True}


@pytest.mark.parametrize("listing", LISTINGS, ids=str)
def test_bar_counts_records_with_the_api_total(sb, listing, bars):
    everything = full(sb, listing)
    with listing.client(sb) as client:
        pager = listing.list(client, limit=20, progress=True)
        (bar,) = bars.made
        assert bar.n == 0 and bar.total is None and not bar.disable
        first = next(pager)
        assert bar.n == 1
        assert bar.total == (len(everything) if TOTALS[listing.name] else None)
        rest = list(pager)
    assert [first] + rest == everything
    assert bar.n == len(everything)
    assert bar.disable                      # closed when the pager finished


def test_bar_total_is_capped_by_max_items_and_starts_at_a_resumed_count(sb, bars):
    pyng = LISTINGS[0]
    with pyng.client(sb) as client:
        pager = pyng.list(client, limit=20, max_items=30, progress=True)
        assert len(list(pager)) == 30
        assert (bars.made[0].n, bars.made[0].total, bars.made[0].disable) == (30, 30, True)
        again = client.resume(pager.checkpoint(), max_items=15, progress=True)
        assert bars.made[1].n == 30 and bars.made[1].total == 45
        assert len(list(again)) == 15
        assert bars.made[1].n == 45 and bars.made[1].disable


def test_bar_closes_on_error(sb, bars):
    natural = LISTINGS[1]
    with natural.client(sb, max_retries=0) as client:
        pager = natural.list(client, limit=20, progress=True)
        sb.inject(natural.route, status=503, skip=1)
        got = []
        with pytest.raises(custlist.errors.ServerError):
            for rec in pager:
                got.append(rec)
    assert bars.made[0].n == len(got) == 20 and bars.made[0].disable


def test_bar_closes_on_close_and_on_exit(sb, bars):
    natural = LISTINGS[1]
    with natural.client(sb) as client:
        pager = natural.list(client, progress=True)
        next(pager)
        pager.close()
        assert bars.made[0].disable and bars.made[0].n == 1
        with natural.list(client, progress=True) as pager:
            next(pager)
        assert bars.made[1].disable
        natural.list(client, progress=True)
    assert bars.made[2].disable             # closed with its client


@pytest.mark.parametrize("listing", LISTINGS, ids=str)
def test_bar_follows_pages_and_arrow_output(sb, listing, bars):
    n = len(full(sb, listing))
    with listing.client(sb) as client:
        assert sum(len(p.items) for p in listing.list(client, progress=True).pages()) == n
        assert listing.list(client, limit=20, progress=True).to_arrow().num_rows == n
        assert listing.list(client, limit=20, max_items=21, progress=True).to_pandas().shape[0] == 21
    assert [(b.n, b.disable) for b in bars.made] == [(n, True), (n, True), (21, True)]


def test_no_bar_by_default(sb, bars):
    with LISTINGS[1].client(sb) as client:
        list(client.customers())
    assert bars.made == []


def test_a_real_text_bar_on_stderr(sb, capsys):
    with LISTINGS[3].client(sb) as client:
        n = len(list(client.customers("corp_123", limit=50, progress=True)))
    err = capsys.readouterr().err
    assert f"{n}/{n}" in err and "commenda.customers" in err and "records" in err


@pytest.mark.parametrize("listing", LISTINGS, ids=str)
def test_length_hint_once_the_total_is_known(sb, listing):
    n = len(full(sb, listing))
    with listing.client(sb) as client:
        pager = listing.list(client, limit=20)
        assert operator.length_hint(pager, -1) == -1
        next(pager)
        expected = n - 1 if TOTALS[listing.name] else -1
        assert operator.length_hint(pager, -1) == expected
        capped = listing.list(client, limit=20, max_items=25)
        take = [next(capped) for _ in range(5)]
        assert len(take) == 5
        assert operator.length_hint(capped, -1) == (20 if TOTALS[listing.name] else -1)
        assert list(pager) and operator.length_hint(pager, -1) == (0 if TOTALS[listing.name]
                                                                   else -1)


SCRIPT = """
import sys
sys.modules["tqdm"] = None
import custlist
from custlist.testing import Sandbox
with Sandbox() as sb:
    client = custlist.Natural(sb.natural_token, base_url=sb.natural_url)
    try:
        client.customers(progress=True)
    except ImportError as e:
        print(e)
    print(len(sb.requests), len(list(client.customers())))
"""


def test_without_tqdm_a_clear_import_error_and_no_request():
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "progress=True needs tqdm: pip install custlist[progress]", "0 90"]
