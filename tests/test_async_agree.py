"""``async for`` agrees with ``for`` on every error: the same records in the
same order, or the same exception class after the same records, the same
checkpoint, the same requests on the wire; a pager ended by an error stays
ended.  And what only the event loop has: one task at a time over a pager,
a close() while a task waits, cancellation, and OAuth tokens fetched once
and never on the loop thread.  Everything runs against the sandbox on
loopback; scenarios that could hang run under a deadline (a subprocess for
the one that used to hang for ever)."""
import asyncio
import json
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import custlist
from custlist import errors
from custlist.testing.demo import LINKED, OFFSET, PAGES

from .conftest import FAST

DEADLINE = 60


def run(coro):
    async def bounded():
        return await asyncio.wait_for(coro, DEADLINE)
    return asyncio.run(bounded())


def hits(sb, route):
    return len([r for r in sb.requests if r.route == route])


def settle(sb):
    """Let a request of an earlier pager, cancelled as it was sent, reach
    the server's log before this one counts requests."""
    time.sleep(0.05)
    deadline = time.monotonic() + 5
    while sb.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)


def sync_read(pager, got):
    for r in pager:
        got.append(r)


def async_read(pager, got):
    async def scenario():
        async for r in pager:
            got.append(r)
    run(scenario())


def drain_sync(pager):
    return list(pager)


def drain_async(pager):
    async def scenario():
        return [r async for r in pager]
    return run(scenario())


def outcome(sb, route, make, setup, read, drain, *, count_requests=True):
    """What one way of reading saw: records, the error, where it left the
    pager (checkpoint, done, pages), the requests it sent, and what a second
    read of the same pager gives (nothing, after an error or the end).
    count_requests=False where a request queued ahead is cancelled by the
    error: whether it reached the server before that is a race in both."""
    settle(sb)
    sb.clear_faults()
    setup(sb)
    sb.requests.clear()
    pager = make(sb)
    got, error = [], None
    try:
        read(pager, got)
    except Exception as e:        # compared by class and by where it came
        error = e
    try:
        checkpoint = pager.checkpoint()
    except errors.PagingError as e:
        checkpoint = type(e)
    result = dict(records=got, error=type(error) if error else None, checkpoint=checkpoint,
                  done=pager.done, pages=pager.pages_fetched,
                  requests=hits(sb, route) if count_requests else None)
    sb.clear_faults()
    result["after"] = drain(pager)
    return result


def natural(sb, **settings):
    return custlist.Natural(sb.natural_token, base_url=sb.natural_url,
                            **{**FAST, "max_retries": 1, **settings})


def demo(sb, **settings):
    return custlist.Client(base_url=sb.demo_url, auth=custlist.BearerToken(sb.demo_token),
                           **{**FAST, "max_retries": 1, **settings})


def natural_body(make_page):
    """A natural.customers body built from the request's position."""
    def body(query):
        return json.dumps(make_page(query)).encode()
    return body


def empty_pages(sb):
    """Empty pages that say "more", each with a new cursor."""
    count = iter(range(10**6))

    def page(query):
        state = sb._signer.verify(query["cursor"]) if query.get("cursor") else {"o": 0}
        cursor = sb._signer.sign({"k": "c", "o": state["o"], "e": next(count)})
        return {"data": [], "meta": {"pagination": {"has_more": True, "next_cursor": cursor}}}
    return natural_body(page)


def repeated_cursor(sb):
    def page(query):
        cursor = query.get("cursor") or sb._signer.sign({"k": "c", "o": 20})
        rows = sb.data.natural_customers[:20]
        return {"data": rows, "meta": {"pagination": {"has_more": True, "next_cursor": cursor}}}
    return natural_body(page)


N = "natural.customers"
SCENARIOS = {
    "server error": (N, lambda sb: natural(sb).customers(limit=20),
                     lambda sb: sb.inject(N, status=503, skip=2, times=None)),
    "not found": (N, lambda sb: natural(sb).customers(limit=20),
                  lambda sb: sb.inject(N, status=404, skip=3, times=None)),
    "retry-after too long": (N, lambda sb: natural(sb).customers(limit=20),
                             lambda sb: sb.inject(N, status=429, retry_after="300", skip=1,
                                                  times=None)),
    "resets": (N, lambda sb: natural(sb).customers(limit=20),
               lambda sb: sb.inject(N, reset=True, skip=2, times=None)),
    "truncated body": (N, lambda sb: natural(sb).customers(limit=20),
                       lambda sb: sb.inject(N, truncate=50, skip=2, times=None)),
    "retried and healed": (N, lambda sb: natural(sb).customers(limit=20),
                           lambda sb: sb.inject(N, status=500, skip=2, times=1)),
    "malformed JSON": (N, lambda sb: natural(sb).customers(limit=20),
                       lambda sb: sb.inject(N, body=b'{"data":[{"id":', skip=2, times=1)),
    "repeated cursor": (N, lambda sb: natural(sb).customers(limit=20),
                        lambda sb: sb.inject(N, body=repeated_cursor(sb), times=None)),
    "more without cursor": (N, lambda sb: natural(sb).customers(limit=20),
                            lambda sb: sb.inject(N, skip=1, times=1, body=natural_body(
                                lambda q: {"data": sb.data.natural_customers[20:40],
                                           "meta": {"pagination": {"has_more": True}}}))),
    "a few empty pages": (N, lambda sb: natural(sb).customers(limit=20),
                          lambda sb: sb.inject(N, body=empty_pages(sb), skip=1, times=3)),
    "empty pages for ever": (N, lambda sb: natural(sb).customers(limit=20),
                             lambda sb: sb.inject(N, body=empty_pages(sb), skip=1,
                                                  times=None), False),
    "max_items": (N, lambda sb: natural(sb).customers(limit=20, max_items=45),
                  lambda sb: None),
    "max_pages": (N, lambda sb: natural(sb, max_pages=2).customers(limit=20),
                  lambda sb: None),
    "max_pages, no prefetch": (N, lambda sb: natural(sb, max_pages=3, prefetch=False)
                               .customers(limit=20), lambda sb: None),
    "max_pages of one": (N, lambda sb: natural(sb, max_pages=1).customers(limit=20),
                         lambda sb: None),
    "server error, no prefetch": (N, lambda sb: natural(sb, prefetch=False).customers(limit=20),
                                  lambda sb: sb.inject(N, status=503, skip=2, times=None)),
    "a few empty pages, no prefetch": (N, lambda sb: natural(sb, prefetch=False)
                                       .customers(limit=20),
                                       lambda sb: sb.inject(N, body=empty_pages(sb), skip=1,
                                                            times=3)),
    "max_items, no prefetch": (N, lambda sb: natural(sb, prefetch=False)
                               .customers(limit=20, max_items=45), lambda sb: None),
    "offset ignored by the server": (
        "demo.offset", lambda sb: demo(sb).paginate(OFFSET, OFFSET.path, {"limit": 20}),
        lambda sb: sb.inject("demo.offset", skip=1, times=None, body=json.dumps(
            {"items": sb.data.demo[:20], "total": len(sb.data.demo)}).encode())),
    "page numbers: server error": (
        "demo.pages", lambda sb: demo(sb).paginate(PAGES, PAGES.path, {"per_page": 20}),
        lambda sb: sb.inject("demo.pages", status=502, skip=2, times=None)),
    "malformed Link header": ("demo.linked",
                              lambda sb: demo(sb).paginate(LINKED, LINKED.path,
                                                           {"per_page": 20}),
                              lambda sb: sb.inject("demo.linked", skip=1, times=1,
                                                   headers={"Link": "<nowhere"})),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_async_for_agrees_with_for(sb, name):
    route, make, setup, *exact = SCENARIOS[name]
    count = exact[0] if exact else True
    plain = outcome(sb, route, make, setup, sync_read, drain_sync, count_requests=count)
    awaited = outcome(sb, route, make, setup, async_read, drain_async, count_requests=count)
    assert awaited == plain
    assert plain["after"] == []                 # ended: by an error, a limit or the end


def test_max_pages_is_never_exceeded_by_a_request(sb):
    pager = natural(sb, max_pages=2).customers(limit=20)
    got = []
    with pytest.raises(errors.PagingError, match="max_pages=2"):
        async_read(pager, got)
    assert [r.id for r in got] == [c["id"] for c in sb.data.natural_customers[:40]]
    assert hits(sb, N) == 2
    sb.requests.clear()
    rest = drain_async(natural(sb).resume(pager.checkpoint()))
    assert [r.id for r in got + rest] == [c["id"] for c in sb.data.natural_customers]


def test_empty_pages_are_awaited_off_the_loop(sb):
    # next() over an empty page that says "more" goes on to the next page;
    # async for must await that one too, not wait for it on the loop thread
    sb.inject(N, body=empty_pages(sb), skip=1, times=3, delay=0.3)
    pager = natural(sb).customers(limit=20)

    async def scenario():
        return await ticking(collect(pager))

    async def collect(p):
        return [r async for r in p]
    got, stall = run(scenario())
    assert [r.id for r in got] == [c["id"] for c in sb.data.natural_customers]
    assert stall < 0.2, f"the event loop stalled {stall:.2f} s"


# ---------------------------------------------------------------------------
# One task at a time

TWO_TASKS = r"""
import asyncio, json, sys
import custlist
from custlist.testing import Sandbox

async def main(box, later):
    natural = custlist.Natural(box.natural_token, base_url=box.natural_url)
    pager = natural.customers(limit=20)
    got = {"a": [], "b": []}
    async def read(name):
        if name == "b":
            while len(got["a"]) < later:
                await asyncio.sleep(0.001)
            if later:
                # the first task's next step (its ask for page two) was queued
                # before this one looked: let it run first, on a slow loop too
                for _ in range(20):
                    await asyncio.sleep(0)
        try:
            async for r in pager:
                got[name].append(r.id)
                await asyncio.sleep(0)
        except RuntimeError as e:
            return str(e)
        return None
    a, b = await asyncio.gather(read("a"), read("b"))
    return {"got": got, "errors": [a, b], "done": pager.done,
            "expected": [c["id"] for c in box.data.natural_customers]}

with Sandbox(natural_customers=85) as box:
    # page two takes long enough that the first task, however slow (a
    # sanitizer's build), has read page one and awaits it when the second
    # asks: the fetch thread requests it as page one arrives
    box.latency["natural.customers"] = 0.4
    print(json.dumps(asyncio.run(main(box, int(sys.argv[1])))))
"""


@pytest.mark.parametrize("later", [0, 20])
def test_two_async_for_over_one_pager_refuse_the_second_and_never_hang(later):
    # the second starts at once, or once the first has read page one and
    # awaits page two
    proc = subprocess.run([sys.executable, "-c", TWO_TASKS, str(later)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    a, b = out["got"]["a"], out["got"]["b"]
    # the first task reads every record; the second, asking while the first
    # awaits a page, is told the pager is in use (as a second thread is)
    assert a == out["expected"] and b == []
    assert out["errors"][0] is None
    assert "in use by another task" in out["errors"][1]
    assert out["done"] is True


def test_the_pager_serves_another_task_once_the_first_has_stopped(sb):
    pager = natural(sb).customers(limit=20)

    async def scenario():
        first = []
        async for r in pager:
            first.append(r)
            if len(first) == 30:
                break
        second = await asyncio.create_task(collect(pager))
        return first + second

    async def collect(p):
        return [r async for r in p]
    got = run(scenario())
    assert [r.id for r in got] == [c["id"] for c in sb.data.natural_customers]


# ---------------------------------------------------------------------------
# close() while a task waits; cancellation


@pytest.mark.parametrize("closer", ["thread", "task", "client"])
def test_close_while_a_task_waits_raises_pager_closed_and_resumes_exactly(sb, closer):
    sb.inject(N, skip=1, times=1, delay=1.0)
    client = natural(sb)
    pager = client.customers(limit=20)
    got = []

    async def scenario():
        async def consume():
            async for r in pager:
                got.append(r)
        task = asyncio.create_task(consume())
        while len(got) < 20:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)               # now awaiting page two (slow)
        close = client.close if closer == "client" else pager.close
        if closer == "thread":
            threading.Thread(target=close).start()
        else:
            close()
        started = time.monotonic()
        with pytest.raises(errors.PagerClosedError):
            await task
        return time.monotonic() - started
    took = run(scenario())
    assert took < 0.8                           # at once, not when the page would have come
    assert len(got) == 20 and not pager.done
    assert drain_async(pager) == []
    sb.clear_faults()
    rest = list(natural(sb).resume(pager.checkpoint()))
    assert [r.id for r in got + rest] == [c["id"] for c in sb.data.natural_customers]


def test_closed_before_the_next_record_ends_quietly_as_for(sb):
    pager = natural(sb).customers(limit=20)

    async def scenario():
        got = []
        async for r in pager:
            got.append(r)
            if len(got) == 25:
                pager.close()
        return got
    got = run(scenario())
    assert len(got) == 25                        # the rest of page two is in hand
    rest = list(natural(sb).resume(pager.checkpoint()))
    assert [r.id for r in got + rest] == [c["id"] for c in sb.data.natural_customers]


def pyng_creds(sb, **settings):
    return custlist.Pyng(client_id=sb.pyng_client_id, client_secret=sb.pyng_client_secret,
                         base_url=sb.pyng_url, **{**FAST, **settings})


def pyng_refs(records):
    return [c.customer_reference for c in records]


def pyng_wire(sb, site="site_1"):
    return [c["customerReference"] for c in sb.data.pyng[site]]


@pytest.mark.parametrize("where", ["first token", "page", "token after a 401", "mid-page"])
def test_cancelled_mid_listing_resumes_from_the_checkpoint_exactly(sb, where):
    """Cancelled while awaiting its first token, a page, a token renewed
    after a 401, or in the loop body mid-page: the checkpoint resumes with
    nothing lost or repeated."""
    client = pyng_creds(sb)
    if where == "first token":
        sb.inject("pyng.token", delay=1.0, times=1)
    elif where == "page":
        sb.inject("pyng.customers", skip=2, times=1, delay=1.0)
    else:
        client.customers(site_id="site_1", limit=1, max_items=1).to_arrow()  # a token in hand
    if where == "token after a 401":
        sb.latency["pyng.customers"] = 0.2      # page two is on its way when...
    pager = client.customers(site_id="site_1", limit=40)
    expected = {"first token": 0, "page": 80, "token after a 401": 40, "mid-page": 50}[where]
    got = []

    async def scenario():
        hold = asyncio.Event()

        async def consume():
            async for r in pager:
                got.append(r)
                if where == "token after a 401" and len(got) == 40:
                    sb.revoke_pyng_tokens()             # ... the token is revoked
                    sb.inject("pyng.token", delay=1.0, times=1)
                if where == "mid-page" and len(got) == 50:
                    hold.set()
                    await asyncio.sleep(10)
        task = asyncio.create_task(consume())
        if where == "mid-page":
            await hold.wait()
        else:
            while len(got) < expected:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.5)           # now awaiting the slow step
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    try:
        run(scenario())
    finally:
        sb.latency.pop("pyng.customers", None)
    assert len(got) == expected
    cp = pager.checkpoint()
    assert cp["count"] == expected and not cp["done"]
    sb.clear_faults()
    rest = drain_async(pyng_creds(sb).resume(cp))
    assert pyng_refs(got + rest) == pyng_wire(sb)


# ---------------------------------------------------------------------------
# OAuth tokens: fetched off the loop, once for every listing that needs one


async def ticking(work):
    """Run `work` while a ticker measures the event loop's longest stall."""
    stall = 0.0
    stop = asyncio.Event()

    async def ticker():
        nonlocal stall
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.005)
            now = time.monotonic()
            stall = max(stall, now - last)
            last = now
    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    try:
        return await work, stall
    finally:
        stop.set()
        await task


def test_listings_started_together_share_one_token_request_off_the_loop(sb):
    sb.inject("pyng.token", delay=1.5, times=None)      # a slow token endpoint
    client = pyng_creds(sb)

    async def two():
        async def read(site):
            return [r async for r in client.customers(site_id=site, limit=50)]
        return await asyncio.gather(read("site_1"), read("site_2"))

    async def scenario():
        return await ticking(two())
    (one, other), stall = run(scenario())
    assert pyng_refs(one) == pyng_wire(sb, "site_1")
    assert pyng_refs(other) == pyng_wire(sb, "site_2")
    assert hits(sb, "pyng.token") == 1
    assert stall < 0.2, f"the event loop stalled {stall:.2f} s"


def test_event_loops_in_two_threads_share_one_token_request(sb):
    sb.inject("pyng.token", delay=1.0, times=None)
    client = pyng_creds(sb)
    got = {}

    def in_a_thread(site):
        async def read():
            return [r async for r in client.customers(site_id=site, limit=50)]
        got[site] = run(read())
    threads = [threading.Thread(target=in_a_thread, args=(site,)) for site in ("site_1", "site_2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE)
    assert {site: pyng_refs(rs) for site, rs in got.items()} == \
        {site: pyng_wire(sb, site) for site in ("site_1", "site_2")}
    assert hits(sb, "pyng.token") == 1


def test_a_listing_cancelled_while_awaiting_the_shared_token_leaves_it_to_the_others(sb):
    sb.inject("pyng.token", delay=1.0, times=None)
    client = pyng_creds(sb)

    async def scenario():
        async def read(site):
            return [r async for r in client.customers(site_id=site, limit=50)]
        cancelled = asyncio.create_task(read("site_2"))
        kept = asyncio.create_task(read("site_1"))
        await asyncio.sleep(0.3)                # both await the one token request
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        return await kept
    got = run(scenario())
    assert pyng_refs(got) == pyng_wire(sb, "site_1")
    assert hits(sb, "pyng.token") == 1


def test_a_401_renews_the_token_once_for_every_listing_off_the_loop(sb):
    client = pyng_creds(sb)
    clean = sum(len(pyng_wire(sb, site)) // 50 + 1 for site in ("site_1", "site_2"))
    client.customers(site_id="site_1", limit=1, max_items=1).to_arrow()   # a token in hand
    sb.inject("pyng.token", delay=1.5, times=None)
    sb.latency["pyng.customers"] = 0.3      # the next pages are on their way when...
    sb.requests.clear()
    firsts = []

    async def two():
        async def read(site):
            got = []
            async for r in client.customers(site_id=site, limit=50):
                got.append(r)
                if len(got) == 1:
                    firsts.append(site)
                    if len(firsts) == 2:
                        sb.revoke_pyng_tokens()      # ... the token is revoked
            return got
        return await asyncio.gather(read("site_1"), read("site_2"))

    async def scenario():
        return await ticking(two())
    try:
        (one, other), stall = run(scenario())
    finally:
        sb.latency.pop("pyng.customers", None)
    assert pyng_refs(one) == pyng_wire(sb, "site_1")
    assert pyng_refs(other) == pyng_wire(sb, "site_2")
    assert hits(sb, "pyng.customers") == clean + 2      # each listing was refused once
    assert hits(sb, "pyng.token") == 1
    assert stall < 0.2, f"the event loop stalled {stall:.2f} s"


@pytest.mark.parametrize("status, exc", [(500, errors.ServerError),
                                         (401, errors.AuthenticationError)])
def test_a_failed_token_request_ends_the_listing_as_in_for(sb, status, exc):
    client = pyng_creds(sb)

    def revoking(read):
        def reading(pager, got):
            class Watch(list):
                def append(self, r):
                    got.append(r)
                    if len(got) == 40:      # page two is on its way: refused, and
                        sb.revoke_pyng_tokens()
                        sb.inject("pyng.token", status=status, times=None)  # no new token
            return read(pager, Watch())
        return reading

    def setup(sb):
        sb.latency["pyng.customers"] = 0.2
        client.customers(site_id="site_1", limit=1, max_items=1).to_arrow()  # a token in hand

    try:
        plain = outcome(sb, "pyng.token", lambda sb: client.customers(site_id="site_1", limit=40),
                        setup, revoking(sync_read), drain_sync)
        awaited = outcome(sb, "pyng.token",
                          lambda sb: client.customers(site_id="site_1", limit=40),
                          setup, revoking(async_read), drain_async)
    finally:
        sb.latency.pop("pyng.customers", None)
    assert plain["error"] is exc and len(plain["records"]) == 40
    # Pyng's links carry the time they were made: the rest must be equal
    links = plain["checkpoint"].pop("page"), awaited["checkpoint"].pop("page")
    assert awaited == plain             # and, the endpoint healed, nothing more is read
    for link in links:
        rest = drain_async(pyng_creds(sb).resume({**plain["checkpoint"], "page": link}))
        assert pyng_refs(awaited["records"] + rest) == pyng_wire(sb)


def test_a_progress_bar_ends_with_an_async_listing_that_failed(sb, monkeypatch):
    import io

    import tqdm
    import tqdm.auto
    made = []

    def bar(*args, **kwargs):
        made.append(tqdm.tqdm(*args, **{**kwargs, "file": io.StringIO()}))
        return made[-1]
    monkeypatch.setattr(tqdm.auto, "tqdm", bar)
    pager = natural(sb, max_retries=0).customers(limit=20, progress=True)
    sb.inject(N, status=503, skip=1)
    got = []
    with pytest.raises(errors.ServerError):
        async_read(pager, got)
    assert made[0].n == len(got) == 20 and made[0].disable


@pytest.mark.parametrize("prefetch", [False, True])
def test_a_token_that_expires_on_the_way_is_fetched_where_for_fetches_it(prefetch):
    # A 1 s token expires while page one is on its way; the token request
    # after it fails once. for asks for the token only when it sends the
    # next request, and fails there; async for must ask at the same step
    # (not once more before it), and fail alike.
    from custlist.testing import Sandbox
    with Sandbox(pyng_customers=60, token_ttl=1) as box:
        def attempt(read):
            box.clear_faults()
            box.inject("pyng.customers", delay=1.2, times=1)
            box.inject("pyng.token", status=500, skip=1, times=1)
            client = custlist.Pyng(client_id=box.pyng_client_id,
                                   client_secret=box.pyng_client_secret, base_url=box.pyng_url,
                                   prefetch=prefetch, **FAST)
            pager = client.customers(site_id="site_1", limit=20)
            got, error = [], None
            try:
                read(pager, got)
            except Exception as e:
                error = e
            cp = pager.checkpoint()
            cp.pop("page")                    # Pyng's links carry the time they were made
            return len(got), type(error), cp
        plain = attempt(sync_read)
        assert plain[:2] == (20 if not prefetch else 0, errors.ServerError)
        assert attempt(async_read) == plain
