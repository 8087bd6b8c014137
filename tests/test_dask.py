"""custlist.dask: one partition per account, listed inside dask worker
processes, written to Parquet; every record arrives exactly once."""
import json
import pathlib
import subprocess
import sys

import pytest

import custlist
import custlist.dask

SCENARIO = pathlib.Path(__file__).with_name("dask_scenario.py")


def test_every_account_listed_on_worker_processes_once(tmp_path):
    r = subprocess.run([sys.executable, str(SCENARIO), str(tmp_path)], capture_output=True,
                       text=True, timeout=240, cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr[-4000:]
    out = json.loads(r.stdout)
    assert out["requests_before_compute"] == 0          # built from the description alone
    assert out["npartitions"] == {"pyng": 8, "commenda": 2}
    for name in ("pyng", "commenda"):
        assert out[name] == out["expected"][name]       # per account: each record once
        assert out[name + "_rows"] == sum(len(v) for v in out["expected"][name].values())
    assert out["pyng_columns"][:2] == ["site_id", "customer_reference"]
    assert out["commenda_columns"][0] == "account"
    assert out["worker_pid"] != out["parent"]
    assert out["pickled_records_equal"] and out["parts"] == [30, 100]
    assert out["pickled_types"] == ["Customer"]


def test_arguments_checked_before_anything_runs(sb):
    from functools import partial
    make = partial(custlist.Pyng, token=sb.pyng_token, base_url=sb.pyng_url)
    read = custlist.dask.read_customers
    with pytest.raises(ValueError, match="twice"):
        read(make, by="site_id", accounts=["site_1", "site_1"])
    with pytest.raises(ValueError, match="non-empty"):
        read(make, by="site_id", accounts=[])
    with pytest.raises(TypeError):
        read(make, by="site_id", accounts="site_1")
    with pytest.raises(TypeError):
        read("not callable", by="site_id", accounts=["site_1"])
    with pytest.raises(ValueError, match="max_items"):
        read(make, by="site_id", accounts=["site_1"], max_items=5)
    with pytest.raises(ValueError, match="no listing"):
        read(make, "clients", by="site_id", accounts=["site_1"])
    with pytest.raises(ValueError, match="column"):
        read(make, by="site_id", accounts=["site_1"], column="state")
    assert sb.requests == []


def test_missing_dask_names_the_extra(tmp_path):
    # dask made unimportable: the error names the extra to install.
    code = ("import sys; sys.modules['dask'] = None; sys.modules['dask.dataframe'] = None\n"
            "import custlist.dask\n"
            "try:\n"
            "    custlist.dask.read_customers(lambda: None, by='site_id', accounts=['s'])\n"
            "except ImportError as e:\n"
            "    print(e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60, cwd=tmp_path)
    assert "pip install 'custlist[dask]'" in r.stdout, r.stderr
