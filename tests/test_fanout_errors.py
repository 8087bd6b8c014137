"""How a fan-out ends, listing by listing, when things go wrong: a paging
error from one server beside a healthy listing, max_pages, pagers closed
before or during the run (by close() or by their client, from any thread),
and a client closed while other threads make pagers.  A listing is done only
when its last page was read; every other one has its error and an exact
checkpoint, for record iteration and for to_arrow() alike."""
import os
import subprocess
import sys
import textwrap

import pytest

import custlist
from custlist import errors
from custlist.testing.demo import LINKED

from .conftest import FAST

HEALTHY = "site_1"                      # 237 Pyng customers, 5 pages of 50
BAD = "bad"
PAGING_ERRORS = ["repeated-cursor", "more-without-cursor", "malformed-link"]
PAGE = {"repeated-cursor": 20, "more-without-cursor": 20, "malformed-link": 10}


def pyng_client(sb, **kw):
    return custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, **{**FAST, **kw})


def natural_client(sb, **kw):
    return custlist.Natural(sb.natural_token, base_url=sb.natural_url, **{**FAST, **kw})


def demo_client(sb, **kw):
    return custlist.Client(base_url=sb.demo_url, auth=custlist.BearerToken(sb.demo_token),
                           **{**FAST, **kw})


def ids(records):
    return [getattr(r, "id", None) or r.customer_reference for r in records]


def by_source(pairs):
    out = {}
    for source, rec in pairs:
        out.setdefault(source, []).append(rec)
    return out


def bad_listing(sb, kind, **settings):
    """(client, pager) of a listing whose server answers its second page with
    that page's real records and a paging error: it repeats the cursor just
    followed, says "more" without a cursor, or sends a malformed Link header.
    Only that one answer is wrong: resuming afterwards reads the real rest."""
    if kind == "malformed-link":
        c = demo_client(sb, **settings)
        sb.inject("demo.linked", skip=1, times=1,
                  headers={"Link": f'<{sb.demo_url}/linked/customers?per_page=10; rel="next"'})
        return c, c.paginate(LINKED, LINKED.path, {"per_page": 10})
    auth = {"authorization": "Bearer " + sb.natural_token}

    def answer(query):
        doc = sb.natural_customers(query, auth)
        doc["meta"]["pagination"]["next_cursor"] = (
            query["cursor"] if kind == "repeated-cursor" else None)
        return doc

    sb.inject("natural.customers", skip=1, times=1, body=answer)
    c = natural_client(sb, **settings)
    return c, c.customers(limit=20)


def plain_run(sb, kind):
    """What the plain iterator gives for that listing: its records and the
    exception it raises after them."""
    _, pager = bad_listing(sb, kind)
    got = []
    with pytest.raises(errors.PagingError) as info:
        for rec in pager:
            got.append(rec)
    sb.clear_faults()
    return got, info.value


@pytest.mark.parametrize("prefetch", [True, False], ids=["prefetch", "one-pass"])
@pytest.mark.parametrize("kind", PAGING_ERRORS)
def test_a_paging_error_stops_its_listing_alone_with_an_exact_checkpoint(sb, kind, prefetch):
    plain_records, plain_error = plain_run(sb, kind)
    assert len(plain_records) == 2 * PAGE[kind]   # both real pages, then the error
    pyng = pyng_client(sb, prefetch=prefetch)
    want_healthy = list(pyng.customers(HEALTHY, limit=50))
    _, pager = bad_listing(sb, kind, prefetch=prefetch)
    sb.requests.clear()
    out = custlist.fan_out({HEALTHY: pyng.customers(HEALTHY, limit=50), BAD: pager},
                           concurrency=2)
    got = by_source(out)                      # no exception escapes the iteration
    sb.clear_faults()
    assert got[HEALTHY] == want_healthy       # every record once, in order
    assert got[BAD] == plain_records          # the records of both pages, none lost
    summary = out.summary
    healthy, bad = summary.sources[HEALTHY], summary.sources[BAD]
    assert healthy.done and healthy.error is None and healthy.records == 237
    assert not bad.done and bad.records == len(plain_records)
    assert type(bad.error) is type(plain_error) and str(bad.error) == str(plain_error)
    assert bad.error.source == BAD
    assert not summary.ok and summary.errors == {BAD: bad.error}
    assert summary.records == 237 + len(plain_records)
    # the checkpoint: the second page, all of it taken; resuming reads the rest
    cp = summary.checkpoints[BAD]
    assert list(summary.checkpoints) == [BAD]
    assert cp["count"] == len(plain_records) and cp["done"] is False
    rest = list(bad_listing_clean(sb, kind, start=cp))
    assert got[BAD] + rest == list(bad_listing_clean(sb, kind))


def bad_listing_clean(sb, kind, start=None):
    """The same listing, answered rightly throughout (from checkpoint `start`)."""
    if kind == "malformed-link":
        return demo_client(sb).paginate(LINKED, LINKED.path, {"per_page": 10}, start=start)
    return natural_client(sb).customers(limit=20, start=start)


@pytest.mark.parametrize("kind", PAGING_ERRORS)
def test_a_paging_error_with_raise_errors_comes_after_every_healthy_record(sb, kind):
    _, plain_error = plain_run(sb, kind)
    pyng = pyng_client(sb)
    _, pager = bad_listing(sb, kind)
    out = custlist.fan_out({HEALTHY: pyng.customers(HEALTHY, limit=50), BAD: pager},
                           raise_errors=True)
    seen = []
    with pytest.raises(custlist.FanOutError) as info:
        for pair in out:
            seen.append(pair)
    sb.clear_faults()
    (err,) = info.value.exceptions
    assert type(err) is type(plain_error) and str(err) == str(plain_error) and err.source == BAD
    assert by_source(seen)[HEALTHY] == list(pyng.customers(HEALTHY, limit=50))
    assert info.value.summary.sources[HEALTHY].done


@pytest.mark.parametrize("kind", PAGING_ERRORS)
def test_to_arrow_keeps_the_healthy_rows_and_reports_the_paging_error(sb, kind):
    _, plain_error = plain_run(sb, kind)
    pyng = pyng_client(sb)
    want_healthy = pyng.customers(HEALTHY, limit=50).to_arrow()
    _, pager = bad_listing(sb, kind)
    out = custlist.fan_out({HEALTHY: pyng.customers(HEALTHY, limit=50), BAD: pager})
    table = out.to_arrow()                    # does not raise: the failure is in summary
    sb.clear_faults()
    assert table.column("source").to_pylist() == [HEALTHY] * 237
    assert table.drop_columns(["source"]).to_pylist() == want_healthy.to_pylist()
    summary = out.summary
    bad = summary.sources[BAD]
    assert type(bad.error) is type(plain_error) and str(bad.error) == str(plain_error)
    assert not bad.done and bad.records == 0 and not summary.ok
    assert summary.sources[HEALTHY].done and summary.records == 237
    # none of its rows are in the table: it resumes from its first record
    cp = summary.checkpoints[BAD]
    assert cp["count"] == 0 and cp["skip"] == 0
    assert ids(bad_listing_clean(sb, kind, start=cp)) == ids(bad_listing_clean(sb, kind))
    # with raise_errors=True the same failure is raised, after the healthy rows were read
    _, pager = bad_listing(sb, kind)
    strict = custlist.fan_out({HEALTHY: pyng.customers(HEALTHY, limit=50), BAD: pager},
                              raise_errors=True)
    with pytest.raises(custlist.FanOutError) as info:
        strict.to_arrow()
    sb.clear_faults()
    (err,) = info.value.exceptions
    assert type(err) is type(plain_error) and str(err) == str(plain_error)
    assert strict.summary.sources[HEALTHY].done and strict.summary.sources[HEALTHY].records == 237


def pyng_requests(sb, site):
    return [r for r in sb.requests if r.route == "pyng.customers" and f"/{site}/" in r.path]


@pytest.mark.parametrize("read,prefetch", [("iterate", True), ("iterate", False),
                                           ("to_arrow", True)])
def test_max_pages_sends_no_request_past_the_limit(sb, read, prefetch):
    capped = pyng_client(sb, max_pages=2, prefetch=prefetch)
    plain = capped.customers(HEALTHY, limit=50)
    with pytest.raises(errors.PagingError, match="max_pages=2") as plain_error:
        list(plain)
    assert len(pyng_requests(sb, HEALTHY)) == 2
    sb.requests.clear()
    beside = natural_client(sb)
    out = custlist.fan_out({HEALTHY: capped.customers(HEALTHY, limit=50),
                            "natural": beside.customers(limit=40)})
    if read == "iterate":
        got = by_source(out)
        assert len(got[HEALTHY]) == 100 and len(got["natural"]) == 145
    else:
        table = out.to_arrow()              # the failed listing adds no rows
        assert table.column("source").to_pylist() == ["natural"] * 145
    assert len(pyng_requests(sb, HEALTHY)) == 2        # the limit, not one request more
    res = out.summary.sources[HEALTHY]
    assert type(res.error) is errors.PagingError and str(res.error) == str(plain_error.value)
    assert not res.done and out.summary.sources["natural"].done and not out.summary.ok
    everyone = list(pyng_client(sb).customers(HEALTHY, limit=50))
    rest = list(pyng_client(sb).resume(res.checkpoint))
    taken = everyone[:100] if read == "iterate" else []
    assert taken + rest == everyone


# ---------------------------------------------------------------------------
# Pagers closed before or during the run


@pytest.mark.parametrize("read", ["iterate", "to_arrow"])
def test_a_fan_out_read_after_its_client_closed_is_not_done(sb, read):
    sites = ["site_1", "site_2"]
    with pyng_client(sb) as client:
        out = client.customers_many(sites, limit=50)
        plain = client.customers("site_1", limit=50)
    sb.requests.clear()
    # a plain pager in that state: not done, and it keeps its resume point
    assert list(plain) == [] and plain.done is False and plain.checkpoint()["done"] is False
    if read == "iterate":
        assert list(out) == []
    else:
        assert out.to_arrow().num_rows == 0
    assert sb.requests == []
    summary = out.summary
    assert not summary.ok and summary.records == 0
    assert sorted(summary.checkpoints) == sites and sorted(summary.errors) == sites
    for site in sites:
        res = summary.sources[site]
        assert not res.done and res.records == 0
        assert type(res.error) is errors.PagerClosedError and res.error.source == site
        assert res.checkpoint["count"] == 0 and res.checkpoint["page"] is None
        assert list(pyng_client(sb).resume(res.checkpoint)) == \
            list(pyng_client(sb).customers(site, limit=50))


def _run(code, timeout=60):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env=env)


@pytest.mark.parametrize("closer", ["pager", "client"])
def test_close_from_another_thread_mid_run_ends_the_fan_out(closer):
    # A listing's pager (or the client that made every pager) closed from
    # another thread while the fan-out runs: the iterating thread finishes
    # promptly; what was closed is not done and resumes exactly.
    proc = _run("""
        import threading, time
        import custlist
        from custlist.testing import Sandbox

        CLOSER = %r
        with Sandbox(pyng_sites=4, pyng_site_customers=60, seed=3,
                     latency={"pyng.customers": 0.05}) as sb:
            c = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url)
            sites = sb.pyng_site_ids
            pagers = {s: c.customers(s, limit=5) for s in sites}
            out = custlist.fan_out(pagers, concurrency=2)
            got = {}
            started = threading.Event()

            def read():
                for s, r in out:
                    got.setdefault(s, []).append(r)
                    started.set()

            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            started.wait(10)
            time.sleep(0.2)
            (pagers[sites[1]] if CLOSER == "pager" else c).close()
            t0 = time.monotonic()
            reader.join(10)
            print("finished", not reader.is_alive(), time.monotonic() - t0 < 5)
            sb.latency.clear()
            fresh = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url)
            for s in sites:
                res = out.summary.sources[s]
                full = list(fresh.customers(s, limit=5))
                rest = [] if res.done else list(fresh.resume(res.checkpoint))
                print(s, "done" if res.done else type(res.error).__name__,
                      got.get(s, []) + rest == full, res.records == len(got.get(s, [])))
    """ % closer)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "finished True True", proc.stdout + proc.stderr
    states = [line.split() for line in lines[1:]]
    assert len(states) == 4 and all(s[2:] == ["True", "True"] for s in states), proc.stdout
    ends = [s[1] for s in states]
    if closer == "pager":       # the others go on to their end
        assert ends == ["done", "PagerClosedError", "done", "done"], proc.stdout
    else:
        assert ends == ["PagerClosedError"] * 4, proc.stdout


def test_client_close_racing_paginate_in_other_threads_leaves_no_live_pager():
    # Threads keep asking a client for pagers while close() runs: each pager
    # is either closed by close() or refused; none fetches afterwards.
    proc = _run("""
        import threading, time
        import custlist
        from custlist.testing import Sandbox

        with Sandbox(pyng_customers=30, seed=5) as sb:
            trials = leaked = made_total = 0
            t0 = time.monotonic()
            while trials < 40 and time.monotonic() - t0 < 6:
                c = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, prefetch=False)
                made = []
                go = threading.Barrier(5)

                def make():
                    go.wait()
                    while True:
                        try:
                            made.append(c.customers("site_1", limit=5))
                        except ValueError:
                            return

                threads = [threading.Thread(target=make) for _ in range(4)]
                for t in threads:
                    t.start()
                go.wait()
                time.sleep(0.001)
                c.close()
                for t in threads:
                    t.join()
                before = len(sb.requests)
                live = sum(next(p, None) is not None for p in made)
                leaked += live > 0 or len(sb.requests) != before
                made_total += len(made)
                trials += 1
            print(trials >= 10, made_total > trials, leaked)
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "True", "0"], proc.stdout + proc.stderr


# ---------------------------------------------------------------------------
# The rate limiter when libcurl refuses a transfer

# Put in front of libcurl with LD_PRELOAD: the first FAIL_ADDS calls of
# curl_multi_add_handle fail as on a failed allocation (libcurl's own
# checks never refuse the fan-out's handles); every other call, and every
# other function, is libcurl's own (CURL_LIB: its soname, already loaded).
_REFUSE_ADDS = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <curl/curl.h>

CURLMcode
curl_multi_add_handle(CURLM *multi, CURL *easy)
{
    static CURLMcode (*real)(CURLM *, CURL *);
    static int left = -1;
    if (real == NULL) {
        void *curl = dlopen(getenv("CURL_LIB"), RTLD_NOW | RTLD_NOLOAD);
        *(void **)&real = curl != NULL ? dlsym(curl, "curl_multi_add_handle") : NULL;
        if (real == NULL)
            abort();
    }
    if (left < 0) {
        const char *n = getenv("FAIL_ADDS");
        left = n != NULL ? atoi(n) : 0;
    }
    if (left > 0) {
        left--;
        return CURLM_OUT_OF_MEMORY;
    }
    return real(multi, easy);
}
"""


def test_a_transfer_libcurl_refuses_gives_back_its_rate_limiter_grant(tmp_path):
    # Three listings whose first transfer libcurl refuses: each fails with a
    # TransportError and resumes exactly; the limiter counts none of them as
    # still on its way, so the server's budget is read as the server says.
    import ctypes.util
    src = tmp_path / "refuse_adds.c"
    src.write_text(_REFUSE_ADDS)
    lib = tmp_path / "refuse_adds.so"
    cflags = subprocess.run(["curl-config", "--cflags"], capture_output=True, text=True,
                            check=True).stdout.split()
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(lib), str(src), *cflags, "-ldl"],
                   check=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path),
               # after what is preloaded already (a sanitizer's runtime must stay first)
               LD_PRELOAD=" ".join(filter(None, [os.environ.get("LD_PRELOAD"), str(lib)])),
               FAIL_ADDS="3", CURL_LIB=ctypes.util.find_library("curl"))
    code = textwrap.dedent("""
        import custlist
        from custlist.testing import Sandbox

        with Sandbox(pyng_sites=3, pyng_site_customers=12, seed=2, rate_limit=(1000, 60),
                     rate_limit_headers="x") as sb:
            c = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, prefetch=False)
            out = c.customers_many(sb.pyng_site_ids, limit=5, concurrency=3)
            print("read", len(list(out)), len(sb.requests))
            # one request: the server says 999 left, and nothing else is on its way
            next(c.customers(sb.pyng_site_ids[0], limit=5))
            print("budget", c.rate_limiter.stats()["budget"], 1000 - len(sb.requests))
            for s in sb.pyng_site_ids:
                res = out.summary.sources[s]
                print(type(res.error).__name__, res.done, res.checkpoint["count"],
                      list(c.resume(res.checkpoint)) == list(c.customers(s, limit=5)))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["read 0 0", "budget 999 999"] + \
        ["TransportError False 0 True"] * 3, proc.stdout


@pytest.mark.parametrize("empty", ["max_items=0", "resumed at its end"])
def test_to_arrow_with_a_listing_of_no_rows_beside_others(sb, empty):
    """A listing that gives no rows (max_items=0, or resumed at its end)
    beside others: one table, its `source` column typed as the others'."""
    with pyng_client(sb) as pyng:
        everything = ids(pyng.customers("site_2", limit=50))
        if empty == "max_items=0":
            nothing = pyng.customers("site_1", limit=50, max_items=0)
        else:
            whole = pyng.customers("site_1", limit=50)
            list(whole)
            nothing = pyng.resume(whole.checkpoint())
        out = custlist.fan_out({"site_1": nothing, "site_2": pyng.customers("site_2", limit=50)})
        table = out.to_arrow()
    assert table.column("source").type == "string"
    assert table.column("source").to_pylist() == ["site_2"] * len(everything)
    assert table.column("customer_reference").to_pylist() == everything
    assert out.summary.ok and out.summary.errors == {}
