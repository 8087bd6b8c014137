"""Exercise every engine path once for the leak check in .ci/asan.sh:
paging (with an early stop), retries, API errors, decode errors, raw mode."""
import json

import custlist
from custlist import natural, pyng
from custlist.testing import Sandbox

with Sandbox(pyng_customers=300, natural_customers=120, natural_invitations=50,
             commenda_customers=60, commenda_shape="mixed") as sb:
    p = custlist.Pyng(client_id=sb.pyng_client_id, client_secret=sb.pyng_client_secret,
                      base_url=sb.pyng_url, backoff=0.01)
    n = custlist.Natural(sb.natural_token, base_url=sb.natural_url, backoff=0.01)
    c = custlist.Commenda(sb.commenda_token, base_url=sb.commenda_url, backoff=0.01)
    for _ in range(3):
        assert len(list(p.customers(site_id="site_1", limit=40))) == 300
        assert len(list(n.customers(limit=30))) == 120
        assert len(list(n.customer_invitations(limit=30, raw=True))) == 50
        assert len(list(c.customers("corp_123", extend=["shipping_address"]))) == 60
        pager = p.customers(site_id="site_1", limit=10)
        next(pager)
        pager.close()
        sb.inject("pyng.customers", status=503, times=1)
        list(p.customers(site_id="site_2"))
        sb.inject("pyng.customers", status=404, times=1)
        try:
            list(p.customers(site_id="site_2"))
        except custlist.NotFoundError:
            pass
        sb.inject("natural.customers", body=b'{"data":[{"type":"party","id":5}]}', times=1)
        try:
            list(n.customers())
        except custlist.DecodeError:
            pass
    body = json.dumps({"data": {"items": [{"customerReference": "x\u00e9\ud83d\ude80",
                                           "invitedAt": 1}]}}).encode()
    for cut in range(len(body)):
        try:
            pyng.CUSTOMERS.decode(body[:cut])
        except custlist.DecodeError:
            pass
    natural.CUSTOMERS.decode(b'{"data":[],"meta":{}}')
print("leak check workload done")
