"""A pager's life across threads, processes and interpreter exit: close()
from another thread, many pagers in many threads closed at random, fork,
daemon threads at exit.  Each scenario runs in a subprocess with a deadline,
so a hang fails the test instead of the suite."""
import subprocess
import sys
import textwrap

import pytest

PRELUDE = """
import gc, os, random, sys, threading, time
import custlist
from custlist.testing import Sandbox

sb = Sandbox(pyng_customers=237, seed=7).start()
FAST = dict(backoff=0.01, backoff_max=0.05, retry_after_max=0.2)
client = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, **FAST)
WIRE = [c["customerReference"] for c in sb.data.pyng["site_1"]]

def refs(records):
    return [c.customer_reference for c in records]

def fetch_threads():
    n = 0
    for t in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{t}/comm") as f:
                n += f.read().strip() == "custlist-fetch"
        except OSError:             # gone meanwhile: no file, or ESRCH on the read
            pass
    return n
"""


def run(code: str, timeout: float = 60, prelude: bool = True) -> str:
    """Run PRELUDE + code in a fresh interpreter; its stdout.  A hang or a
    crash (a signal, a non-zero exit) fails the calling test."""
    code = (PRELUDE if prelude else "") + textwrap.dedent(code)
    proc = subprocess.run([sys.executable, "-c", code],
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


# Page 2 is slow: it comes after 3 s, or 64 bytes at a time (the fetch thread
# is then inside the body callback, scanning the bytes, when close() comes).
@pytest.mark.parametrize("slow", ["delay=3.0", "trickle=(64, 0.02)"])
def test_close_from_another_thread_while_iterating(slow):
    out = run("""
        sb.inject("pyng.customers", SLOW, skip=1, times=1)
        pager = client.customers(site_id="site_1", limit=20)
        got, caught = [], []

        def consume():
            try:
                for c in pager:
                    got.append(c)
            except custlist.PagerClosedError as e:
                caught.append(e)

        t = threading.Thread(target=consume)
        t.start()
        while len(got) < 20:
            time.sleep(0.01)
        time.sleep(0.2)                     # the consumer now waits for page 2
        start = time.monotonic()
        pager.close()
        t.join(5)
        assert not t.is_alive(), "the iterating thread hangs"
        assert time.monotonic() - start < 2
        assert len(caught) == 1 and "closed" in str(caught[0]), caught
        assert "Callback aborted" not in str(caught[0])
        assert refs(got) == WIRE[:20]
        # nothing lost: the resume point is the page that was on its way
        assert pager.next_href is not None
        rest = refs(client.customers(site_id="site_1", start_href=pager.next_href))
        assert refs(got) + rest == WIRE
        pager.close()                       # again: harmless
        try:
            next(pager)
            raise AssertionError("a closed pager yielded")
        except StopIteration:
            pass
        print("ok")
    """.replace("SLOW", slow))
    assert out.strip() == "ok"


def test_many_pagers_in_many_threads_closed_at_random():
    # Every pager is closed at a random moment (before its first page, during
    # a transfer, mid-page, after the end) by another thread, or by its own.
    # Nothing hangs or crashes; every record received is in order and a
    # resume from the pager's position completes the listing exactly.
    out = run("""
        sb.inject("pyng.customers", delay=0.02, times=None)
        rng = random.Random(1234)
        live, lock, errors, checked = [], threading.Lock(), [], [0]

        def consume(seed):
            r = random.Random(seed)
            for _ in range(6):
                limit = r.choice([7, 25, 100])
                pager = client.customers(site_id="site_1", limit=limit)
                with lock:
                    live.append(pager)
                got = []
                try:
                    for c in pager:
                        got.append(c)
                        if r.random() < 0.01:
                            pager.close()
                except custlist.PagerClosedError:
                    pass
                except Exception as e:
                    errors.append(repr(e))
                if refs(got) != WIRE[:len(got)]:
                    errors.append(f"out of order after {len(got)}")
                if r.random() < 0.3 and pager.next_href is not None:
                    rest = refs(client.customers(site_id="site_1", start_href=pager.next_href))
                    have = refs(got)
                    # the resume point is the page being read: it repeats the
                    # records of that page already received, never skips one
                    i = WIRE.index(rest[0]) if rest else len(WIRE)
                    if WIRE[i:] != rest or i > len(have):
                        errors.append(f"resume lost records after {len(have)}")
                    checked[0] += 1

        def closer():
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and any(t.is_alive() for t in workers):
                time.sleep(rng.random() * 0.02)
                with lock:
                    victim = rng.choice(live) if live else None
                if victim is not None:
                    victim.close()

        workers = [threading.Thread(target=consume, args=(i,)) for i in range(8)]
        for t in workers:
            t.start()
        c = threading.Thread(target=closer)
        c.start()
        for t in workers:
            t.join(60)
            assert not t.is_alive(), "a consumer hangs"
        c.join(60)
        assert errors == [], errors
        live.clear()
        gc.collect()
        print("ok", checked[0])
    """, timeout=120)
    assert out.startswith("ok")


def test_close_before_and_after_and_twice_from_other_threads():
    out = run("""
        for _ in range(30):
            pager = client.customers(site_id="site_1", limit=10)
            ts = [threading.Thread(target=pager.close) for _ in range(4)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            assert list(pager) == []
        print("ok")
    """)
    assert out.strip() == "ok"


def test_fork_child_gets_a_clear_error_and_frees_without_blocking():
    # The child inherits a pager whose worker thread (and connection) is the
    # parent's: the records already received are delivered, the next fetch
    # raises PagerClosedError, freeing it returns at once; the parent goes on
    # undisturbed on its own connection.
    out = run("""
        sb.inject("pyng.customers", delay=0.5, skip=1, times=1)   # page 2 in flight at fork
        pager = client.customers(site_id="site_1", limit=20)
        fresh = client.customers(site_id="site_1", limit=20)      # never started
        first = next(pager)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                got = [first]
                try:
                    for c in pager:
                        got.append(c)
                    msg = "no error"
                except custlist.PagerClosedError as e:
                    msg = "closed:" + ("fork" in str(e)) * "fork"
                try:
                    next(fresh)
                    msg2 = "no error"
                except custlist.PagerClosedError as e:
                    msg2 = "closed"
                start = time.monotonic()
                del pager, fresh
                gc.collect()
                took = time.monotonic() - start
                os.write(w, f"{msg} {msg2} {len(got)} {took < 1}".encode())
            finally:
                os._exit(0)
        os.close(w)
        _, status = os.waitpid(pid, 0)
        child = os.read(r, 200).decode()
        assert status == 0, status
        assert child == "closed:fork closed 20 True", child
        assert refs([first, *pager]) == WIRE               # the parent loses nothing
        print("ok")
    """)
    assert out.strip() == "ok"


def test_multiprocessing_fork_children_do_not_hang():
    out = run("""
        import multiprocessing as mp
        pagers = [client.customers(site_id="site_1", limit=10) for _ in range(4)]
        for p in pagers[:3]:
            next(p)                                  # workers started, prefetch in flight

        def job(i):
            p = pagers[i]
            try:
                list(p)
                return "no error"
            except custlist.PagerClosedError:
                return "closed"

        ctx = mp.get_context("fork")
        with ctx.Pool(2) as pool:
            got = pool.map(job, range(4), chunksize=1)
        assert got == ["closed"] * 4, got
        assert [len(list(p)) for p in pagers] == [236, 236, 236, 237]
        print("ok")
    """, timeout=90)
    assert out.strip() == "ok"


def test_daemon_thread_pager_at_interpreter_exit():
    # At exit the fetch threads are stopped and joined before the process
    # tears libcurl and OpenSSL down; a daemon thread still iterating gets
    # PagerClosedError.  Counted from an exit handler that runs after
    # custlist's own (atexit runs handlers in reverse order of registration).
    out = run("""
        sb.inject("pyng.customers", delay=10.0, skip=1, times=None)
        seen = []

        def consume():
            pager = client.customers(site_id="site_1", limit=20)
            try:
                for c in pager:
                    pass
            except custlist.PagerClosedError:
                seen.append("closed")
            time.sleep(100)               # stay alive: only the worker may go

        t = threading.Thread(target=consume, daemon=True)
        t.start()
        time.sleep(0.5)                    # page 2 is on its way
        assert fetch_threads() == 1

        custlist._core._stop_workers()     # what the exit hook does
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
        print(seen, fetch_threads())
    """)
    assert out.strip() == "['closed'] 0"


def test_pagers_freed_while_the_exit_hook_stops_their_workers():
    # The exit hook stops the fetch threads one by one; each thread waiting on
    # a pager wakes at once with PagerClosedError and frees that pager while
    # the hook may still be joining its worker's thread.  Without the GIL
    # nothing else orders the two: the worker must not be freed (its curl
    # handle cleaned up under a transfer, its mutex destroyed) until the hook
    # is done with it.  Many pagers, several rounds, so the window is hit.
    out = run("""
        sb.inject("pyng.customers", delay=10.0, skip=1, times=None)
        for _ in range(6):
            outcomes = []

            def consume():
                got = 0
                try:
                    for c in client.customers(site_id="site_1", limit=20):
                        got += 1
                    outcomes.append(("no error", got))
                except custlist.PagerClosedError:
                    outcomes.append(("closed", got))

            ts = [threading.Thread(target=consume) for _ in range(12)]
            for t in ts:
                t.start()
            deadline = time.monotonic() + 20
            while fetch_threads() < 12 and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.3)                     # every request in flight
            custlist._core._stop_workers()      # what the exit hook does
            for t in ts:
                t.join(20)
                assert not t.is_alive(), "a consumer hangs"
            # only the very first request of the run is not held back
            assert sorted(outcomes) == [("closed", 0)] * 12 or (
                sorted(outcomes) == [("closed", 0)] * 11 + [("closed", 20)]), outcomes
            assert fetch_threads() == 0, fetch_threads()
        print("ok")
    """, timeout=120)
    assert out.strip() == "ok"


def test_exit_with_a_daemon_thread_mid_transfer_is_clean():
    # The real exit hook: a handler registered before custlist is imported
    # runs after custlist's, and sees the worker thread gone.
    out = run(textwrap.dedent("""
        import atexit, os
        def after_custlist():
            print("fetch threads at exit:", fetch_threads(), flush=True)
        atexit.register(after_custlist)
    """) + PRELUDE + textwrap.dedent("""
        sb.inject("pyng.customers", delay=10.0, skip=1, times=None)

        def consume():
            try:
                for c in client.customers(site_id="site_1", limit=20):
                    pass
            except custlist.PagerClosedError:
                pass
            time.sleep(100)

        threading.Thread(target=consume, daemon=True).start()
        time.sleep(0.5)
        assert fetch_threads() == 1
        print("exiting", flush=True)
    """), prelude=False)
    assert out.split("\n")[:2] == ["exiting", "fetch threads at exit: 0"]


def test_submit_after_stop_is_refused():
    out = run("""
        pager = client.customers(site_id="site_1", limit=10)
        first = [next(pager) for _ in range(10)]
        custlist._core._stop_workers()
        try:
            next(pager)
            print("no error")
        except custlist.PagerClosedError:
            print("closed")
        # a pager made afterwards works normally
        assert refs(client.customers(site_id="site_1")) == WIRE
    """)
    assert out.strip() == "closed"


def test_stop_after_the_prefetch_arrived_closes_the_pager():
    # Page 2 is already in when the workers stop: the pager delivers page 1,
    # and the stopped worker refuses the request for page 3 that loading
    # page 2 would queue: PagerClosedError (as while waiting), page 2 not
    # delivered, and the resume point is page 2, so nothing is lost.
    out = run("""
        pager = client.customers(site_id="site_1", limit=10)
        first = [next(pager) for _ in range(10)]
        time.sleep(0.5)                          # page 2 received meanwhile
        custlist._core._stop_workers()
        try:
            next(pager)
            print("no error")
        except custlist.PagerClosedError:
            print("closed")
        rest = refs(client.customers(site_id="site_1", start_href=pager.next_href))
        assert refs(first) + rest == WIRE, (len(first), len(rest))
    """)
    assert out.strip() == "closed"


def test_close_while_the_next_request_is_queued_keeps_the_page():
    # close() lands while the pager queues the request after page 1 (here
    # from the credentials callback): page 1 was not delivered, so the
    # resume point must still be page 1.
    out = run("""
        calls = []
        def auth(force=False):
            calls.append(force)
            if len(calls) == 2:
                pager.close()
            return "Bearer " + sb.pyng_token
        client._auth = auth
        pager = client.customers(site_id="site_1", limit=20)
        try:
            next(pager)
            print("no error")
        except custlist.PagerClosedError:
            pass
        n = len(calls)
        rest = refs(client.customers(site_id="site_1", start_href=pager.next_href))
        print(n, rest == WIRE)
    """)
    assert out.strip() == "2 True"


def test_a_sub_interpreter_ending_mid_listing_stops_its_fetch_threads():
    # Module state per interpreter: the sub-interpreter's pagers, registry
    # and exit hook are its own; ending it stops its fetch threads.
    out = run("""
        try:                                  # CPython 3.13
            import _interpreters as si
            # "legacy": the GIL shared with the main interpreter, as the
            # module supports several interpreters but not one GIL each
            iid = si.create("legacy")
        except ImportError:                   # CPython 3.11, 3.12
            import _xxsubinterpreters as si
            # not isolated: 3.12 would give it a GIL of its own by default
            iid = si.create(isolated=False)
        # 3.13 returns a failure in the sub-interpreter; 3.11 raises it
        failure = si.run_string(iid, "\\n".join([
            "import custlist",
            f"c = custlist.Pyng(token={sb.pyng_token!r}, base_url={sb.pyng_url!r})",
            "assert len(list(c.customers(site_id='site_1', limit=50))) == 237",
            "left = c.customers(site_id='site_1', limit=7)",
            "next(left)                  # its next page is on its way",
        ]))
        assert failure is None, failure
        assert fetch_threads() == 1
        si.destroy(iid)
        assert refs(client.customers(site_id="site_1")) == WIRE
        print(fetch_threads())
    """)
    assert out.strip() == "0"
