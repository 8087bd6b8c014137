"""Run by tests/test_dask.py in a subprocess (a deadline bounds it): every
account's customers through custlist.dask on a local cluster of worker
processes, written to Parquet; prints what arrived as JSON."""
import json
import os
import pickle
import sys
from functools import partial

import pyarrow.parquet as pq
from distributed import Client, LocalCluster

import custlist
import custlist.dask
from custlist.testing import Sandbox


def first_part(make, site):
    """On a worker: 30 records and the checkpoint after them (both pickled back)."""
    with make() as client:
        pager = client.customers(site_id=site, limit=20, max_items=30)
        return list(pager), pager.checkpoint(), os.getpid()


def main(out):
    result = {"parent": os.getpid()}
    with Sandbox(pyng_customers=130, commenda_customers=90, seed=5, pyng_sites=6,
                 pyng_site_customers=35) as sb, \
            LocalCluster(processes=True, n_workers=2, threads_per_worker=1,
                         dashboard_address=None) as cluster, Client(cluster) as dc:
        pyng = partial(custlist.Pyng, client_id=sb.pyng_client_id,
                       client_secret=sb.pyng_client_secret, base_url=sb.pyng_url)
        commenda = partial(custlist.Commenda, sb.commenda_token, base_url=sb.commenda_url)
        sites, corps = ["site_1", "site_2", *sb.pyng_site_ids], ["corp_123", "corp_456"]
        frames = {
            "pyng": custlist.dask.read_customers(pyng, "customers", by="site_id",
                                                 accounts=sites, limit=25),
            "commenda": custlist.dask.read_customers(commenda, "customers", by="corporation_id",
                                                     accounts=corps, limit=20,
                                                     column="account"),
        }
        result["requests_before_compute"] = sum(1 for r in sb.requests
                                                if r.route.endswith("customers"))
        result["npartitions"] = {k: f.npartitions for k, f in frames.items()}
        for name, frame in frames.items():
            frame.to_parquet(os.path.join(out, name))
            key = "customer_reference" if name == "pyng" else "id"
            acct = "site_id" if name == "pyng" else "account"
            table = pq.read_table(os.path.join(out, name))
            back = table.select([acct, key]).to_pydict()
            result[name] = {}
            for a, k in zip(back[acct], back[key]):
                result[name].setdefault(a, []).append(k)
            result[name] = {a: sorted(ks) for a, ks in result[name].items()}
            result[name + "_rows"] = table.num_rows
            result[name + "_columns"] = [c for c in table.column_names
                                         if not c.startswith("__")]
        result["expected"] = {
            "pyng": {s: sorted(c["customerReference"] for c in sb.data.pyng[s]) for s in sites},
            "commenda": {c: sorted(x["id"] for x in sb.data.commenda[c]) for c in corps},
        }
        # Records and checkpoints cross processes: a worker lists part of a
        # site, this process resumes from its checkpoint.
        records, cp, pid = dc.submit(first_part, pyng, "site_1", pure=False).result()
        with pyng() as client:
            rest = list(client.resume(pickle.loads(pickle.dumps(cp))))
            local = list(client.customers(site_id="site_1", limit=20))
        result["worker_pid"] = pid
        result["pickled_records_equal"] = records + rest == local
        result["pickled_types"] = sorted({type(r).__qualname__ for r in records})
        result["parts"] = [len(records), len(rest)]
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
