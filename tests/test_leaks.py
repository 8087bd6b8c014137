"""Memory stays flat: repeated paging, decoding and failing leak nothing.

The sandbox runs in this process and logs every request it serves: the
steps that list clear that log first, or it is what grows."""
import gc
import json
import os
import statistics
import sysconfig

import custlist
from custlist import natural, pyng
from custlist.testing import Sandbox

PAGE = os.sysconf("SC_PAGE_SIZE")
MB = 1024 * 1024
# A free-threaded CPython allocates objects with mimalloc, per thread; its
# resident size swings by a few MB over tens of rounds with nothing leaked
# (flat over 300 rounds of failing listings, 2-5.5 MB above the start).
# There the rounds are three times as many and the bound 4 MB wider: a leak
# of a few KiB per listing still crosses it.
FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def bound(mb: float) -> int:
    return int((mb + 4 * FREE_THREADED) * MB)


def rss() -> int:
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def growth(step, warmup=3, rounds=12) -> int:
    """What the resident size gained between the first and the last third of
    the rounds, each third's median: a leak gains about two thirds of the
    rounds' worth; an allocator that keeps or returns a few pages at a time
    (a free-threaded CPython's mimalloc, per thread) moves one sample, not a
    third's median."""
    if FREE_THREADED:
        rounds *= 3
    for _ in range(warmup):
        step()
    samples = []
    for _ in range(rounds):
        step()
        samples.append(rss())
    third = max(1, rounds // 3)
    return int(statistics.median(samples[-third:]) - statistics.median(samples[:third]))


def test_paging_a_large_data_set_repeatedly_keeps_memory_flat():
    with Sandbox(pyng_customers=3000, natural_customers=1000) as box:
        client = custlist.Pyng(token=box.pyng_token, base_url=box.pyng_url)
        nat = custlist.Natural(box.natural_token, base_url=box.natural_url)

        def step():
            box.requests.clear()
            assert sum(1 for _ in client.customers(site_id="site_1", limit=100)) == 3000
            assert sum(1 for _ in nat.customers(limit=100)) == 1000
            pager = client.customers(site_id="site_1", limit=100)
            next(pager)
            pager.close()                              # early stop with a prefetch in flight

        assert growth(step, warmup=2, rounds=9) < bound(3)


def test_decoding_and_decode_errors_keep_memory_flat():
    items = [{"type": "party", "id": f"pty_{i:032x}",
              "attributes": {"email": f"u{i}@example.com", "status": "ACTIVE",
                             "permissions": ["payments:read", "wallets.read"],
                             "created_at": "2026-01-04T15:30:00.123Z",
                             "wallet_available_minor": i, "wallet_available_dollars": "1.00",
                             "wallet_access": "granted",
                             "party": {"id": "pty_x", "name": "N\u00e4me \ud83d\ude80", "email": None}}}
             for i in range(100)]
    good = json.dumps({"data": items, "meta": {"pagination": {"has_more": False}}}).encode()
    bad = [good[:n] for n in range(50, len(good), 997)]
    bad.append(good.replace(b'"wallet_available_minor": 7', b'"wallet_available_minor": "7"'))
    bad.append(good.replace(b'"name": "N', b'"name": 5, "x": "N'))

    def step():
        for _ in range(20):
            assert len(natural.CUSTOMERS.decode(good).items) == 100
            natural.CUSTOMERS.decode(good, raw=True)
        for body in bad:
            try:
                natural.CUSTOMERS.decode(body)
            except custlist.DecodeError:
                pass
            else:
                raise AssertionError("decoded a broken body")

    assert growth(step) < bound(1)


def test_failing_requests_keep_memory_flat():
    with Sandbox(pyng_customers=200) as box:
        client = custlist.Pyng(token=box.pyng_token, base_url=box.pyng_url, max_retries=0)
        box.inject("pyng.customers", status=400, skip=1, times=None)

        def step():
            box.requests.clear()
            for _ in range(20):
                try:
                    list(client.customers(site_id="site_1", limit=50))
                except custlist.BadRequestError:
                    pass

        assert growth(step, rounds=9) < bound(1)
        assert pyng.CUSTOMERS is not None
