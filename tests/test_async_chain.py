"""``async for`` on the fetch thread's chain: the thread sends each next
request as a page arrives (at most two finished pages ahead), and the event
loop only takes finished pages, woken by the notify fd.  So an async
listing's requests go out while the loop is busy elsewhere, and what it
reads, raises and leaves as a checkpoint is what ``for`` does over the same
pages.  Servers are real, on loopback: the sandbox, and the small Rows
server of test_engine_chain that logs each request as it arrives.
Scenarios that could hang (cancellation, close() from another thread) run
in a subprocess with a deadline."""
import asyncio
import json
import logging
import re
import subprocess
import sys
import textwrap
import time
import urllib.parse

import pytest

import custlist
from custlist import errors
from custlist.testing.demo import LINKED

from .conftest import FAST, quiet
from .test_async_agree import ticking
from .test_engine_chain import Rows, listing, wait_for

DEADLINE = 60
N = "natural.customers"


def run(coro):
    async def bounded():
        return await asyncio.wait_for(coro, DEADLINE)
    return asyncio.run(bounded())


def positions(server):
    return [urllib.parse.parse_qs(urllib.parse.urlsplit(t).query).get("cursor", ["0"])[0]
            for t in server.asked()]


# ---------------------------------------------------------------------------
# Requests go out ahead while the loop is busy elsewhere


@pytest.mark.parametrize("mode", ["cursor", "href", "link"])
def test_pages_after_are_asked_for_while_the_task_awaits_something_else(mode):
    server = Rows(mode=mode)
    try:
        pager = listing(server)

        async def scenario():
            first = await pager.__anext__()
            # the task awaits something else: the fetch thread goes on by
            # itself, two finished pages ahead, and no further
            deadline = time.monotonic() + 10
            while len(server.asked()) < 3 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.3)
            ahead = len(server.asked())
            return ahead, [first.id] + [r.id async for r in pager]
        ahead, got = run(scenario())
        assert ahead == 3, server.asked()
        assert got == server.ids and pager.done
        assert positions(server) == [str(i) for i in range(0, 60, 10)]   # each once, in order
    finally:
        server.close()


def test_page_after_next_is_asked_for_before_the_task_asks_for_the_next():
    # the task sleeps on every page; the request for page k + 1 reaches the
    # server before the task even asks for page k's first record
    server = Rows(n=80, per=10, mode="cursor")
    try:
        pager = listing(server)
        asked_at = []                   # when the task asked for each page's first record

        async def scenario():
            got = []
            while True:
                if len(got) % 10 == 0:
                    asked_at.append(time.monotonic())
                try:
                    r = await pager.__anext__()
                except StopAsyncIteration:
                    return got
                got.append(r.id)
                if len(got) % 10 == 0:
                    await asyncio.sleep(0.15)      # busy elsewhere between pages
        got = run(scenario())
        assert got == server.ids
        with server.lock:
            sent = [t for t, _ in server.log]
        assert len(sent) == 8
        # page k (0-based) was asked for by the task at asked_at[k]; the
        # request for page k + 1 had gone out before, for every k from 1
        early = [sent[k + 1] < asked_at[k] for k in range(1, 7)]
        assert all(early), list(zip(sent[2:], asked_at[1:]))
    finally:
        server.close()


def test_a_slow_server_never_stalls_the_loop_and_overlaps_the_task(sb):
    # each page takes 0.3 s to come; the task spends 0.3 s on each page: on
    # the chain the two overlap (about 0.3 s a page, not 0.6), and the loop
    # never waits for a page.  A loop that waited would stall the whole 0.3 s
    # on the first page; the 0.2 s line leaves room for a loaded machine
    # under ThreadSanitizer, where the loop's own work on a page, and the
    # scheduler, gave 0.08 s.
    delay = 0.3
    sb.inject(N, times=None, delay=delay)
    client = custlist.Natural(sb.natural_token, base_url=sb.natural_url, **FAST)

    async def read():
        got = []
        async for r in client.customers(limit=25):
            got.append(r.id)
            if len(got) % 25 == 0:
                await asyncio.sleep(delay)
        return got

    async def scenario():
        started = time.monotonic()
        got, stall = await ticking(read())
        return got, stall, time.monotonic() - started
    got, stall, took = run(scenario())
    assert got == [c["id"] for c in sb.data.natural_customers]
    pages = len([r for r in sb.requests if r.route == N])
    assert pages == -(-len(got) // 25) == 6                # 145 records
    assert stall < 0.2, f"the event loop stalled {stall:.2f} s"
    # one page after another: 6 x 0.6 = 3.6 s; overlapped: 0.3 + 6 x 0.3 = 2.1 s
    assert took < pages * 2 * delay - 2.5 * delay, f"{took:.2f} s: the pages were not fetched ahead"


# ---------------------------------------------------------------------------
# async and sync agree record for record, on every endpoint


def endpoints(sb):
    pyng = custlist.Pyng(client_id=sb.pyng_client_id, client_secret=sb.pyng_client_secret,
                         base_url=sb.pyng_url, **FAST)
    natural = custlist.Natural(sb.natural_token, base_url=sb.natural_url, **FAST)
    commenda = custlist.Commenda(sb.commenda_token, base_url=sb.commenda_url, **FAST)
    return {
        "pyng": ("pyng.customers", lambda: pyng.customers(site_id="site_1", limit=40)),
        "natural": (N, lambda: natural.customers(limit=30)),
        "invitations": ("natural.invitations", lambda: natural.customer_invitations(limit=25)),
        "commenda": ("commenda.customers", lambda: commenda.customers("corp_123", limit=33)),
    }


def comparable(checkpoint):
    cp = dict(checkpoint)
    cp.pop("page", None)            # Pyng's links carry the time they were made
    return cp


def sync_pages(pager, got, pause):
    for r in pager:
        got.append(r)
        if len(got) % 7 == 0:
            time.sleep(pause)


def async_pages(pager, got, pause):
    async def scenario():
        async for r in pager:
            got.append(r)
            if len(got) % 7 == 0:
                await asyncio.sleep(pause)
    run(scenario())


@pytest.mark.parametrize("name", ["pyng", "natural", "invitations", "commenda"])
def test_async_and_sync_agree_record_for_record(sb, name):
    route, make = endpoints(sb)[name]
    seen = {}
    for way, read in (("sync", sync_pages), ("async", async_pages)):
        quiet(sb)
        sb.requests.clear()
        pager = make()
        got = []
        read(pager, got, 0.01)
        quiet(sb)
        seen[way] = dict(records=got, done=pager.done, pages=pager.pages_fetched,
                         checkpoint=comparable(pager.checkpoint()),
                         requests=len([r for r in sb.requests if r.route == route]))
    assert seen["async"] == seen["sync"]
    assert len(seen["sync"]["records"]) > 40 and seen["sync"]["done"]
    assert seen["sync"]["requests"] == seen["sync"]["pages"]      # nothing asked twice


@pytest.mark.parametrize("name", ["pyng", "natural", "invitations", "commenda"])
def test_a_checkpoint_taken_mid_async_listing_resumes_exactly(sb, name):
    # taken while the fetch thread holds pages ahead of the task
    route, make = endpoints(sb)[name]
    everything = list(make())
    quiet(sb)
    sb.requests.clear()
    pager = make()

    async def scenario():
        got = []
        async for r in pager:
            got.append(r)
            if len(got) == 37:
                await asyncio.sleep(0.3)           # the thread runs ahead meanwhile
                asked = len([r for r in sb.requests if r.route == route])
                return got, pager.checkpoint(), asked
    got, cp, asked = run(scenario())
    assert asked == pager.pages_fetched + 2            # two pages held ahead
    pager.close()
    assert cp["count"] == 37
    rest = list(resume_in(sb, name, cp))
    assert got + rest == everything


def resume_in(sb, name, cp):
    if name == "pyng":
        return custlist.Pyng(client_id=sb.pyng_client_id, client_secret=sb.pyng_client_secret,
                             base_url=sb.pyng_url, **FAST).resume(cp)
    if name == "commenda":
        return custlist.Commenda(sb.commenda_token, base_url=sb.commenda_url, **FAST).resume(cp)
    return custlist.Natural(sb.natural_token, base_url=sb.natural_url, **FAST).resume(cp)


# ---------------------------------------------------------------------------
# Each error path: the same exception as for, nothing lost or repeated


def natural(sb, **settings):
    return custlist.Natural(sb.natural_token, base_url=sb.natural_url,
                            **{**FAST, "max_retries": 1, **settings})


def repeated_cursor(sb):
    def body(query):
        cursor = query.get("cursor") or sb._signer.sign({"k": "c", "o": 20})
        rows = sb.data.natural_customers[:20]
        return json.dumps({"data": rows, "meta": {"pagination": {
            "has_more": True, "next_cursor": cursor}}}).encode()
    return body


ERRORS = {
    "bad page mid-listing": (
        N, lambda sb: natural(sb).customers(limit=20),
        lambda sb: sb.inject(N, body=b'{"data":[{"id":', skip=3, times=1),
        errors.DecodeError, 60),
    "5xx, retries exhausted": (
        N, lambda sb: natural(sb, max_retries=2).customers(limit=20),
        lambda sb: sb.inject(N, status=503, skip=3, times=None), errors.ServerError, 60),
    "loop guard": (
        N, lambda sb: natural(sb).customers(limit=20),
        lambda sb: sb.inject(N, body=repeated_cursor(sb), times=None),
        errors.PagingLoopError, 40),
    "origin violation": (
        "demo.linked",
        lambda sb: custlist.Client(base_url=sb.demo_url, auth=custlist.BearerToken(sb.demo_token),
                                   **FAST).paginate(LINKED, LINKED.path, {"per_page": 20}),
        lambda sb: sb.inject("demo.linked", skip=2, times=1, headers={
            "Link": '<http://127.0.0.2:9/customers?page=4>; rel="next"'}),
        errors.UnsafeURLError, 60),
    "max_items": (
        N, lambda sb: natural(sb).customers(limit=20, max_items=65), lambda sb: None, None, 65),
}


class Warnings(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def attempt(sb, route, make, setup, read, drain):
    """What one way of reading saw: records, the error (class, message,
    attempts), the warnings logged, where it left the pager, the requests
    sent, and what reading the ended pager again gives."""
    quiet(sb)
    sb.clear_faults()
    setup(sb)
    sb.requests.clear()
    log = Warnings()
    logging.getLogger("custlist").addHandler(log)
    pager = make(sb)
    got, error = [], None
    try:
        read(pager, got, 0.02)
    except custlist.CustlistError as e:
        error = e
    finally:
        logging.getLogger("custlist").removeHandler(log)
    quiet(sb)
    sb.clear_faults()
    # a server's trace id and a backoff's jitter differ from run to run
    message = re.sub(r"\[trace [^]]*\]", "[trace]", str(error))
    return dict(records=got, error=(type(error), message, getattr(error, "attempts", None))
                if error else None, checkpoint=pager.checkpoint(), done=pager.done,
                pages=pager.pages_fetched,
                warnings=[re.sub(r"retry in [0-9.]+ s", "retry in _ s", w) for w in log.lines],
                requests=len([r for r in sb.requests if r.route == route]),
                after=drain(pager))


async def collect(pager):
    return [r async for r in pager]


@pytest.mark.parametrize("name", list(ERRORS))
def test_each_error_path_raises_as_for_with_nothing_lost_or_repeated(sb, name):
    route, make, setup, exc, handed = ERRORS[name]
    plain = attempt(sb, route, make, setup, sync_pages, list)
    awaited = attempt(sb, route, make, setup, async_pages, lambda p: run(collect(p)))
    assert awaited == plain
    assert (plain["error"] or (None,))[0] is exc
    assert len(plain["records"]) == handed and plain["after"] == []
    if name == "5xx, retries exhausted":
        assert plain["error"][2] == 3 and len(plain["warnings"]) == 2     # two retries logged
    if name == "max_items":
        assert plain["requests"] == 4                   # none past the last record wanted
        return
    if name == "loop guard":                 # the server repeats itself: no listing to finish
        return
    wire = list(make(sb))
    rest = list(resume_for(sb, name, awaited["checkpoint"]))
    assert awaited["records"] + rest == wire


def resume_for(sb, name, cp):
    if name == "origin violation":
        return custlist.Client(base_url=sb.demo_url, auth=custlist.BearerToken(sb.demo_token),
                               **FAST).paginate(LINKED, LINKED.path, {"per_page": 20}, start=cp)
    return natural(sb).resume(cp)


# ---------------------------------------------------------------------------
# Cancellation and close() while the thread is ahead (in a subprocess)

SCENARIO = textwrap.dedent(r"""
    import asyncio, json, pathlib, sys, threading, time
    import custlist
    from custlist.testing import Sandbox

    def fetch_threads():
        n = 0
        for t in pathlib.Path("/proc/self/task").iterdir():
            try:
                n += (t / "comm").read_text().strip() == "custlist-fetch"
            except FileNotFoundError:
                pass
        return n

    async def main(box, how):
        client = custlist.Natural(box.natural_token, base_url=box.natural_url,
                                  backoff=0.01, backoff_max=0.05)
        box.inject("natural.customers", skip=4, times=1, delay=5.0)   # page 5 is slow
        pager = client.customers(limit=10)
        stop_at = 40 if how == "awaiting" else 25
        got, error = [], None
        holding, closed = asyncio.Event(), asyncio.Event()

        async def consume():
            nonlocal error
            try:
                async with pager:
                    async for r in pager:
                        got.append(r.id)
                        if len(got) == stop_at and how != "awaiting":
                            holding.set()        # busy elsewhere, mid-page
                            await (closed.wait() if how == "close" else asyncio.sleep(30))
            except custlist.CustlistError as e:
                error = type(e).__name__
        task = asyncio.create_task(consume())
        deadline = time.monotonic() + 10
        while len(got) < stop_at and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        while len(box.requests) < 5 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)                # the thread is ahead: page 5 asked for
        await asyncio.sleep(0.2)
        ahead = len(box.requests)
        threads_before = fetch_threads()
        started = time.monotonic()
        if how == "close":
            closer = threading.Thread(target=pager.close)
            closer.start()
            closer.join()
            closed.set()
        else:
            task.cancel()
        try:
            await task
            cancelled = False
        except asyncio.CancelledError:
            cancelled = True
        took = time.monotonic() - started
        cp = pager.checkpoint()
        threads = fetch_threads()
        box.clear_faults()
        rest = [r.id for r in client.resume(cp)]
        return {"got": got, "rest": rest, "ahead": ahead, "took": took, "error": error,
                "threads": [threads_before, threads], "count": cp["count"], "done": cp["done"],
                "cancelled": cancelled, "expected": [c["id"] for c in box.data.natural_customers]}

    with Sandbox(natural_customers=80) as box:
        print(json.dumps(asyncio.run(main(box, sys.argv[1]))))
""")


@pytest.mark.parametrize("how", ["awaiting", "body", "close"])
def test_stopped_mid_listing_leaves_nothing_running_and_resumes_exactly(how):
    """Cancelled while it awaits the pager (page 5 on its way), cancelled in
    its own body inside ``async with pager`` (pages ahead held), or the
    pager closed from another thread while the task is busy elsewhere: the
    fetch thread ends with nothing left in flight, and the checkpoint
    resumes with nothing lost or repeated."""
    proc = subprocess.run([sys.executable, "-c", SCENARIO, how], capture_output=True,
                          text=True, timeout=DEADLINE)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    stop_at = 40 if how == "awaiting" else 25
    assert out["ahead"] == 5                  # page 5 asked for before the task reached it
    assert out["threads"] == [1, 0]           # the fetch thread ran, and is gone
    assert out["took"] < 1.0                  # not when the slow page would have come
    assert out["cancelled"] is (how != "close") and out["error"] is None
    assert out["count"] == len(out["got"]) == stop_at and not out["done"]
    assert out["got"] + out["rest"] == out["expected"]


LOOP_GONE = textwrap.dedent(r"""
    import asyncio, json, sys, time
    import custlist
    from custlist.testing import Sandbox

    with Sandbox(natural_customers=80) as box:
        client = custlist.Natural(box.natural_token, base_url=box.natural_url,
                                  backoff=0.01, backoff_max=0.05)
        box.inject("natural.customers", skip=4, times=1, delay=1.0)   # page 5 is slow
        pager = client.customers(limit=10)
        got = []

        async def first():
            async for r in pager:
                got.append(r.id)
                if len(got) == 40:
                    break
            deadline = time.monotonic() + 10
            while len(box.requests) < 5 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)        # page 5 on the wire when this loop ends

        asyncio.run(first())
        on_the_wire = len(box.requests)
        time.sleep(1.5)                          # it arrives with no loop to tell

        async def rest():
            return [r.id async for r in pager]
        more = asyncio.run(rest()) if sys.argv[1] == "async for" else [r.id for r in pager]
        print(json.dumps({"got": got, "rest": more, "on_the_wire": on_the_wire,
                          "requests": len(box.requests),
                          "expected": [c["id"] for c in box.data.natural_customers]}))
""")


@pytest.mark.parametrize("then", ["async for", "for"])
def test_a_page_that_lands_after_its_event_loop_closed_is_read_by_the_next(then):
    """The event loop that was awaiting the listing ends (asyncio.run returns)
    while the fetch thread's next request is still on the wire: the page
    lands with no loop to wake, and the next loop, or a plain ``for``,
    reads it and the rest, nothing lost or repeated, each page asked for
    once."""
    proc = subprocess.run([sys.executable, "-c", LOOP_GONE, then], capture_output=True,
                          text=True, timeout=DEADLINE)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["on_the_wire"] == 5
    assert out["got"] + out["rest"] == out["expected"]
    assert out["requests"] == 8
    assert proc.stderr == ""                 # nothing raised into the void by the old loop
