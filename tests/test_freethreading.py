"""custlist on free-threaded CPython (3.13t, 3.14t: built --disable-gil):
importing it leaves the GIL off, and threads that share schemas, record
classes, a client and even one pager get the same records as one thread.
On a GIL build the same scenarios run (the GIL serialises them) and the
import must leave the GIL as it was.  Each scenario runs in a fresh
interpreter with a deadline, so a hang or a crash fails the test."""
import os
import subprocess
import sys
import sysconfig
import textwrap

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


# The tree the tests are in, for a child that imports a helper of theirs:
# appended to its path, so custlist still comes from where it is installed
# (a run may keep the tree's own sources off the path: PYTHONSAFEPATH).
TREE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(code: str, timeout: float = 180, env: dict | None = None) -> str:
    code = f"import sys\nsys.path.append({TREE!r})\n" + textwrap.dedent(code)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True,
                          text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_import_leaves_the_gil_as_the_build_has_it():
    # PYTHON_GIL unset: the interpreter's own default (off on a free-threaded
    # build); a module that declared it needs the GIL would turn it back on,
    # with a RuntimeWarning, which -W error makes the import fail.
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_GIL"}
    out = run("""
        import sys, sysconfig, warnings
        warnings.simplefilter("error")
        gil = getattr(sys, "_is_gil_enabled", lambda: True)
        before = gil()
        import custlist, custlist._core
        print(sysconfig.get_config_var("Py_GIL_DISABLED") or 0, before, gil())
    """, env=env)
    ft, before, after = out.split()
    assert ft == ("1" if FREE_THREADED else "0")
    if FREE_THREADED:
        assert (before, after) == ("False", "False")
    else:
        assert (before, after) == ("True", "True")


STRESS = """
import json, random, sys, threading, time
import custlist
from custlist import natural
from custlist.testing import Sandbox

FAST = dict(backoff=0.01, backoff_max=0.05, retry_after_max=0.2)
sb = Sandbox(pyng_customers=237, natural_customers=145, seed=7).start()
WIRE = [c["customerReference"] for c in sb.data.pyng["site_1"]]
NATURAL_IDS = [c["id"] for c in sb.data.natural_customers]

# Page bodies whose records hold their keys in other orders, with keys the
# schema does not know at other places: the key maps' memory of the last
# object (shared by every thread through the one schema) is rewritten all
# the time while other threads read it.
def variant(k):
    rng = random.Random(k)
    items = []
    for i, rec in enumerate(sb.data.natural_customers):
        pairs = list(rec.items())
        rng.shuffle(pairs) if k % 3 else pairs.reverse() if k % 2 else None
        pairs.insert(rng.randrange(len(pairs) + 1), (f"x_{k}_{i % 4}", [k, {"i": i}]))
        items.append(dict(pairs))
    doc = {"data": items, "meta": {"pagination": {"has_more": False, "next_cursor": None}}}
    return json.dumps(doc, separators=(",", ":") if k % 2 else (", ", ": ")).encode()

BODIES = [variant(k) for k in range(12)]
def decoded(body):
    return [r.to_dict() for r in natural.CUSTOMERS.decode(body).items]
REFERENCE = [decoded(b) for b in BODIES]        # one thread, before any other starts

pyng = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, **FAST)
errors = []
start = threading.Barrier(NTHREADS)

def decoder(t):
    start.wait()
    for n in range(ROUNDS * 4):
        k = (t * 5 + n) % len(BODIES)
        if decoded(BODIES[k]) != REFERENCE[k]:
            errors.append(f"decoder {t}: page {k} differs")

def lister(t):
    start.wait()
    for n in range(ROUNDS):
        limit = (7, 25, 100)[(t + n) % 3]
        got = [c.customer_reference for c in pyng.customers(site_id="site_1", limit=limit)]
        if got != WIRE:
            errors.append(f"lister {t}: {len(got)} records, not the listing")

# Two threads reading ONE pager: each record goes to exactly one of them,
# each in wire order; a thread that asks while the other fetches gets the
# documented RuntimeError and asks again.
shared_got = [[], []]
busy = [0]
def sharer(t, pager):
    start.wait()
    while True:
        try:
            c = next(pager)
        except StopIteration:
            return
        except RuntimeError as e:
            if "in use by another thread" not in str(e):
                errors.append(f"sharer {t}: {e!r}")
                return
            busy[0] += 1
            time.sleep(0)
            continue
        shared_got[t].append(c.id)

client = custlist.Natural(sb.natural_token, base_url=sb.natural_url, **FAST)
one = client.customers(limit=10)
threads = [threading.Thread(target=decoder, args=(t,)) for t in range(NDECODERS)]
threads += [threading.Thread(target=lister, args=(t,)) for t in range(NLISTERS)]
threads += [threading.Thread(target=sharer, args=(t, one)) for t in range(2)]
assert len(threads) == NTHREADS
for th in threads:
    th.start()
for th in threads:
    th.join(150)
    assert not th.is_alive(), "a thread hangs"
assert not errors, errors[:5]
a, b = shared_got
assert sorted(a + b) == sorted(NATURAL_IDS) and len(a + b) == len(NATURAL_IDS), (len(a), len(b))
for got in shared_got:
    assert [i for i in NATURAL_IDS if i in set(got)] == got, "a sharer's records out of order"
sb.stop()
print("ok", len(a), len(b), busy[0])
"""


def test_threads_decode_list_and_share_a_pager_as_one_thread_does():
    out = run("NDECODERS, NLISTERS, ROUNDS = 4, 3, 6\nNTHREADS = NDECODERS + NLISTERS + 2\n"
              + STRESS)
    word, a, b, _busy = out.split()
    assert word == "ok"
    assert int(a) + int(b) == 145


ARROW = """
import sys, threading
import custlist
from custlist.testing import Sandbox
from tests import arrow_c          # the Arrow C stream read with ctypes: no Arrow library

FAST = dict(backoff=0.01, backoff_max=0.05, retry_after_max=0.2)
sb = Sandbox(pyng_customers=237, natural_customers=145, seed=7).start()
natural = custlist.Natural(sb.natural_token, base_url=sb.natural_url, **FAST)
pyng = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, **FAST)
# Each thread reads listings of its own as Arrow batches (natural: records
# with nested objects flattened into them; pyng: flat ones), all at once.
LISTINGS = [lambda limit: natural.customers(limit=limit),
            lambda limit: pyng.customers(site_id="site_1", limit=limit)]
WANT = [arrow_c.drain(make(50)._arrow_stream(None, 1)) for make in LISTINGS]
assert [sum(rows) for _, rows, _ in WANT] == [145, 237], WANT
errors = []
start = threading.Barrier(NTHREADS)

def reader(t):
    start.wait()
    for n in range(ROUNDS):
        k = (t + n) % 2
        tree, rows, error = arrow_c.drain(LISTINGS[k]((10, 25, 50)[n % 3])._arrow_stream(None, 1))
        if (tree, sum(rows), error) != (WANT[k][0], sum(WANT[k][1]), None):
            errors.append(f"reader {t}: listing {k}: {sum(rows)} rows, {error}")

threads = [threading.Thread(target=reader, args=(t,)) for t in range(NTHREADS)]
for th in threads:
    th.start()
for th in threads:
    th.join(150)
    assert not th.is_alive(), "a thread hangs"
assert not errors, errors[:5]
sb.stop()
print("ok")
"""


def test_threads_each_reading_listings_as_arrow_get_what_one_thread_gets():
    # Without the GIL the threads build their Arrow columns truly at once:
    # nothing the builders share may be written without synchronisation
    # (under ThreadSanitizer, make test-tsan-ft, any such write fails this).
    out = run("NTHREADS, ROUNDS = 4, 6\n" + ARROW)
    assert out.split() == ["ok"]


FANOUT_CLOSE = """
import random, threading, time
import custlist
from custlist.testing import Sandbox

FAST = dict(backoff=0.01, backoff_max=0.05, retry_after_max=0.2)
SITES = ["site_0001", "site_0002", "site_0003"]
sb = Sandbox(pyng_sites=3, pyng_site_customers=40, seed=7).start()
pyng = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, **FAST)
WIRE = {s: [c["customerReference"] for c in sb.data.pyng[s]] for s in SITES}
rng = random.Random(11)
stopped_inside = 0
for n in range(ROUNDS):
    out = pyng.customers_many(SITES, limit=5)
    got = {s: [] for s in SITES}
    def read():
        for site, c in out:
            got[site].append(c.customer_reference)
    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(rng.random() * 0.03)
    out.close()                        # from this thread, while the reader iterates (or not)
    reader.join(60)
    assert not reader.is_alive(), "the reader hangs"
    for s in SITES:                    # each listing read in order, nothing repeated
        assert got[s] == WIRE[s][:len(got[s])], (n, s)
    stopped_inside += sum(map(len, got.values())) < 120
    assert list(out) == []             # closed: iteration has ended for good
sb.stop()
print("ok", stopped_inside)
"""


def test_a_fan_out_closed_from_another_thread_mid_iteration_ends_cleanly():
    # FanOut.close() from any thread: without the GIL it must not close the
    # iteration's generator while the reader is inside it (CPython 3.13t
    # does not guard that; under ThreadSanitizer this test reports it).
    out = run("ROUNDS = 25\n" + FANOUT_CLOSE)
    word, stopped = out.split()
    assert word == "ok" and int(stopped) > 0
