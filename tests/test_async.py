"""``async for`` over a pager: the event loop is never blocked, the records,
errors and resume points are those of ``for``, and cancelling the task
closes the pager.  Every scenario runs under asyncio.wait_for: a pager that
never signals its loop fails the test instead of hanging it."""
import asyncio
import os
import pathlib
import time

import pytest

import custlist
from custlist import errors
from custlist.testing.demo import ENDPOINTS

from .conftest import FAST

DEADLINE = 60


def run(coro):
    async def bounded():
        return await asyncio.wait_for(coro, DEADLINE)
    return asyncio.run(bounded())


async def collect(pager):
    return [r async for r in pager]


def fetch_threads():
    """Threads of this process named custlist-fetch (the pagers' workers)."""
    n = 0
    for t in pathlib.Path("/proc/self/task").iterdir():
        try:                                   # a thread may end meanwhile
            n += (t / "comm").read_text().strip() == "custlist-fetch"
        except FileNotFoundError:
            pass
    return n


def test_event_loop_keeps_ticking_while_pages_download(sb):
    # 10 pages at 100 ms of server latency each: a task ticking every 10 ms
    # keeps ticking (ideally ~100 ticks) only if no page wait blocks the loop.
    sb.inject("pyng.customers", times=None, delay=0.1)
    client = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, **FAST)

    async def scenario(listing):
        ticks = 0
        stop = asyncio.Event()

        async def ticker():
            nonlocal ticks
            while not stop.is_set():
                await asyncio.sleep(0.01)
                ticks += 1
        task = asyncio.create_task(ticker())
        got = await listing()
        stop.set()
        await task
        return got, ticks

    async def asynchronous():
        return await collect(client.customers(site_id="site_1", limit=24))

    async def blocking():               # the control: a plain for inside the loop
        return list(client.customers(site_id="site_1", limit=24))

    got, ticks = run(scenario(asynchronous))
    assert len(got) == 237 and ticks >= 40
    got_blocking, ticks_blocking = run(scenario(blocking))
    assert got_blocking == got and ticks_blocking <= 5


def test_same_records_as_sync_on_every_endpoint(sb):
    pyng = custlist.Pyng(client_id=sb.pyng_client_id, client_secret=sb.pyng_client_secret,
                         base_url=sb.pyng_url, **FAST)
    natural = custlist.Natural(sb.natural_token, base_url=sb.natural_url, **FAST)
    commenda = custlist.Commenda(sb.commenda_token, base_url=sb.commenda_url, **FAST)
    demo = custlist.Client(base_url=sb.demo_url, auth=custlist.BearerToken(sb.demo_token), **FAST)
    listings = [
        lambda: pyng.customers(site_id="site_1", limit=40),
        lambda: natural.customers(limit=30),
        lambda: natural.customer_invitations(limit=25),
        lambda: commenda.customers("corp_123", limit=33),
        lambda: commenda.customers("corp_123", limit=33, max_items=50),
        lambda: natural.customers(limit=30, raw=True),
        *[(lambda ep=ep: demo.paginate(ep, ep.path, {ep.page_size: 20})) for ep in ENDPOINTS],
    ]
    for make in listings:
        sync_pager = make()
        expected = list(sync_pager)
        async_pager = make()
        got = run(collect(async_pager))
        assert got == expected and len(got) > 0
        assert async_pager.checkpoint() == sync_pager.checkpoint()
        assert async_pager.done == sync_pager.done
        assert async_pager.pages_fetched == sync_pager.pages_fetched


@pytest.mark.parametrize("status,exc", [(404, errors.NotFoundError), (503, errors.ServerError)])
def test_same_error_and_resume_point_as_sync(sb, status, exc):
    natural = custlist.Natural(sb.natural_token, base_url=sb.natural_url, max_retries=1, **FAST)

    def attempt(iterate):
        sb.clear_faults()
        sb.inject("natural.customers", skip=2, times=None, status=status)
        pager = natural.customers(limit=20)
        got = []
        with pytest.raises(exc) as e:
            iterate(pager, got)
        return got, e.value, pager.checkpoint()

    def sync(pager, got):
        for r in pager:
            got.append(r)

    async def asynchronous(pager, got):
        async for r in pager:
            got.append(r)

    s_got, s_err, s_cp = attempt(sync)
    a_got, a_err, a_cp = attempt(lambda p, g: run(asynchronous(p, g)))
    assert a_got == s_got and len(a_got) == 40
    assert (a_err.status, a_err.code, a_err.attempts) == (s_err.status, s_err.code, s_err.attempts)
    assert a_cp == s_cp
    sb.clear_faults()
    rest = run(collect(natural.resume(a_cp)))
    assert [r.id for r in a_got + rest] == [c["id"] for c in sb.data.natural_customers]


def test_expired_token_renewed_off_the_loop(sb):
    pyng = custlist.Pyng(client_id=sb.pyng_client_id, client_secret=sb.pyng_client_secret,
                         base_url=sb.pyng_url, **FAST)

    async def scenario():
        pager = pyng.customers(site_id="site_1", limit=50)
        got = []
        async for r in pager:
            got.append(r)
            if len(got) == 50:
                sb.revoke_pyng_tokens()        # the next request gets a 401
        return got
    got = run(scenario())
    assert [c.customer_reference for c in got] == \
        [c["customerReference"] for c in sb.data.pyng["site_1"]]
    assert len([r for r in sb.requests if r.route == "pyng.token"]) == 2


def test_a_page_that_arrived_before_the_loop_watched_still_wakes_it(sb):
    # The event loop asks for the notify fd only after _poll() said "wait";
    # a page that finished in between must leave the fd readable, or the
    # loop waits for ever (a lost wake-up seen under load).
    import select
    natural = custlist.Natural(sb.natural_token, base_url=sb.natural_url, **FAST)
    pager = natural.customers(limit=20)
    assert pager._poll() == 3                  # a request to queue
    assert pager._poll(True) == 1              # the first page is on its way
    for _ in range(500):                       # ... and then in, unwatched
        if pager._poll() in (4, 5):            # the page is in (5: the next one sent)
            break
        time.sleep(0.01)
    else:
        raise AssertionError("the first page never arrived")
    fd = pager._async_fd()
    readable, _, _ = select.select([fd], [], [], 0)
    assert readable == [fd]

    async def collect_all():
        return [r async for r in pager]
    got = run(collect_all())
    assert [r.id for r in got] == [c["id"] for c in sb.data.natural_customers]


def test_cancelling_the_task_closes_the_pager(sb):
    sb.inject("natural.customers", skip=1, times=None, delay=0.3)
    natural = custlist.Natural(sb.natural_token, base_url=sb.natural_url, **FAST)
    before = fetch_threads()
    pager = natural.customers(limit=20)
    got = []

    async def consume():
        async for r in pager:
            got.append(r)

    async def scenario():
        task = asyncio.create_task(consume())
        while len(got) < 20:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)              # now awaiting page two (slow)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    run(scenario())
    assert len(got) == 20
    assert fetch_threads() == before           # its fetch thread is gone
    assert list(pager) == []                   # closed: nothing more
    cp = pager.checkpoint()
    assert cp["count"] == 20 and not cp["done"]
    sb.clear_faults()
    rest = list(natural.resume(cp))
    assert [r.id for r in got + rest] == [c["id"] for c in sb.data.natural_customers]


def test_async_for_in_a_notebook_cell():
    # IPython runs a cell with a top-level `async for` as a coroutine, as
    # Jupyter does on its kernel's running loop.
    from IPython.core.interactiveshell import InteractiveShell
    from custlist.testing import Sandbox
    shell = InteractiveShell.instance()
    try:
        with Sandbox(natural_customers=45) as box:
            shell.user_ns.update(custlist=custlist, box=box)
            cell = ("natural = custlist.Natural(box.natural_token, base_url=box.natural_url)\n"
                    "ids = [c.id async for c in natural.customers(limit=10)]\n")
            result = shell.run_cell(cell)
            assert result.success, result.error_in_exec
            assert shell.user_ns["ids"] == [c["id"] for c in box.data.natural_customers]
    finally:
        InteractiveShell.clear_instance()


def test_short_lived_tokens_fetched_no_more_often_than_needed():
    # A 1 s token outlived by the listing: renewed off the loop when it has
    # expired, never once per record.
    from custlist.testing import Sandbox
    with Sandbox(pyng_customers=60, token_ttl=1) as box:
        box.inject("pyng.customers", times=None, delay=0.3)
        pyng = custlist.Pyng(client_id=box.pyng_client_id,
                             client_secret=box.pyng_client_secret, base_url=box.pyng_url, **FAST)
        pager = pyng.customers(site_id="site_1", limit=10)
        got = run(collect(pager))
        assert [c.customer_reference for c in got] == \
            [c["customerReference"] for c in box.data.pyng["site_1"]]
        tokens = [r for r in box.requests if r.route == "pyng.token"]
        assert 2 <= len(tokens) <= pager.pages_fetched + 1
