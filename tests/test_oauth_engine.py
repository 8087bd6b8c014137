"""OAuth client-credentials tokens renewed by the engine itself: a fetch
thread that finds the token missing or expiring, or gets a 401, sends the
token request in C without the GIL (never through Python's
``_core.request``), once for every listing of the client, and goes on with
the new token.  A renewal that fails there ends the listing with the very
exception a plain ``ClientCredentials()()`` call gives, from the one token
request made, with nothing lost or repeated.

Against the sandbox's Pyng API (OAuth client credentials, a request log
with arrival times, fault injection on the token endpoint).  Whether a
token request went through Python is seen by wrapping ``_core.request``
(the real transfer still runs): the engine's own request never calls it."""
import logging
import re
import threading
import time
from pathlib import Path

import pytest

import custlist
from custlist import _core, errors
from custlist.testing.sandbox import Sandbox

from .conftest import FAST
from .test_engine_chain import wait_for
from .test_oauth_chain import pages, pyng_client, refs, serial, tokens

PER = 10


@pytest.fixture
def python_fetches(monkeypatch):
    """The token requests Python sends (through _core.request), each with
    the thread that sent it."""
    calls = []
    real = _core.request

    def request(*args, **kwargs):
        calls.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(_core, "request", request)
    return calls


def held(box, n):
    """Wait until the listing's fetch thread has asked for n pages."""
    assert wait_for(lambda: len(pages(box)) >= n), len(pages(box))
    time.sleep(0.2)


# ---------------------------------------------------------------------------
# renewal on the fetch thread


def test_a_token_expiring_while_pages_wait_ahead_is_renewed_by_the_fetch_thread(
        python_fetches):
    # Pyng gives this token 2 s of life; custlist stops using it 10% early.
    with Sandbox(pyng_customers=100, seed=11, token_ttl=2) as box:
        want = serial(box)
        box.requests.clear()
        python_fetches.clear()
        it = iter(pyng_client(box).customers("site_1", limit=PER))
        got = [next(it)]
        held(box, 3)                        # pages 2 and 3 ahead, page 4 waits for room
        time.sleep(2.0)                     # the token expires meanwhile
        got += [next(it) for _ in range(PER)]        # page 2 taken: page 4 may go
        # the consumer holds a record and never calls the pager: the fetch
        # thread renews the token and asks for page 4 by itself
        assert wait_for(lambda: len(pages(box)) >= 4 and len(tokens(box)) == 2, 5.0), \
            (len(pages(box)), len(tokens(box)))
        got += list(it)
        assert refs(got) == want
        assert len(pages(box)) == 10                 # each page once, none refused
        assert len(tokens(box)) == 2
        assert len(python_fetches) == 1              # the first token only
        grants = [r.at for r in tokens(box)]
        for r in pages(box):                         # never sent with an expired token
            assert r.at - max(g for g in grants if g <= r.at) < 2.0


def test_a_token_expired_when_the_next_page_is_planned_is_renewed_on_the_fetch_thread(
        python_fetches):
    with Sandbox(pyng_customers=100, seed=12, token_ttl=2) as box:
        want = serial(box)
        box.requests.clear()
        python_fetches.clear()
        # page 2 comes after the token expired: the request after it is
        # planned by the fetch thread with no token to send
        box.inject("pyng.customers", delay=2.2, skip=1, times=1)
        got = refs(pyng_client(box).customers("site_1", limit=PER))
        assert got == want
        assert len(pages(box)) == 10
        assert len(tokens(box)) == 2
        assert len(python_fetches) == 1              # the first token only


def test_a_401_is_renewed_by_the_fetch_thread_and_the_page_asked_for_once_more(
        python_fetches):
    with Sandbox(pyng_customers=100, seed=13) as box:
        want = serial(box)
        box.requests.clear()
        python_fetches.clear()
        it = iter(pyng_client(box).customers("site_1", limit=PER))
        got = [next(it)]
        held(box, 3)
        box.revoke_pyng_tokens()            # page 4 is refused
        got += [next(it) for _ in range(PER)]
        assert wait_for(lambda: len(pages(box)) >= 5 and len(tokens(box)) == 2, 5.0)
        got += list(it)
        assert refs(got) == want
        assert len(tokens(box)) == 2
        assert len(python_fetches) == 1
        asked = pages(box)
        assert len(asked) == 11                      # page 4 twice, every other once
        assert (asked[3].path, asked[3].query) == (asked[4].path, asked[4].query)
        assert asked[3].headers["authorization"] != asked[4].headers["authorization"]


def test_a_second_401_after_the_fetch_threads_renewal_raises_as_before(python_fetches):
    with Sandbox(pyng_customers=100, seed=14) as box:
        want = serial(box)
        box.requests.clear()
        python_fetches.clear()
        client = pyng_client(box)
        pager = client.customers("site_1", limit=PER)
        box.inject("pyng.customers", status=401, skip=3, times=2)
        got = []
        with pytest.raises(errors.AuthenticationError) as info:
            for r in pager:
                got.append(r)
        assert info.value.status == 401
        assert refs(got) == want[:3 * PER]
        assert len(tokens(box)) == 2 and len(python_fetches) == 1
        assert len(pages(box)) == 5                  # page 4 twice, nothing after
        rest = refs(client.resume(pager.checkpoint()))
        assert refs(got) + rest == want


# ---------------------------------------------------------------------------
# one renewal for every listing of the client


@pytest.mark.parametrize("trigger", ["expiry", "401"])
def test_two_listings_of_one_client_renew_once(trigger, python_fetches):
    with Sandbox(pyng_customers=100, seed=15, token_ttl=2 if trigger == "expiry" else 3600,
                 pyng_sites=2, pyng_site_customers=60) as box:
        sites = box.pyng_site_ids
        want = {s: serial(box, s) for s in sites}
        box.requests.clear()
        python_fetches.clear()
        client = pyng_client(box)
        its = {s: iter(client.customers(s, limit=PER)) for s in sites}
        got = {s: [next(its[s])] for s in sites}
        for s in sites:
            assert wait_for(lambda: len(pages(box, s)) >= 3)
        time.sleep(0.2)
        if trigger == "expiry":
            time.sleep(2.0)
        else:
            box.revoke_pyng_tokens()
        errors_seen = []

        def rest(s):
            try:
                got[s] += list(its[s])
            except Exception as e:          # reported below
                errors_seen.append(e)

        threads = [threading.Thread(target=rest, args=(s,)) for s in sites]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert errors_seen == []
        assert {s: refs(got[s]) for s in sites} == want
        assert len(tokens(box)) == 2                 # one renewal between them
        assert len(python_fetches) == 1
        for s in sites:
            n = len(want[s]) // PER
            assert n <= len(pages(box, s)) <= n + 1  # a refused page once more at most


@pytest.mark.parametrize("trigger", ["expiry", "401"])
def test_a_fan_out_of_listings_of_one_client_renews_once(trigger, python_fetches):
    with Sandbox(pyng_customers=10, seed=16, token_ttl=2 if trigger == "expiry" else 3600,
                 pyng_sites=4, pyng_site_customers=60) as box:
        sites = box.pyng_site_ids
        want = {s: serial(box, s) for s in sites}
        box.requests.clear()
        python_fetches.clear()
        client = pyng_client(box)
        # the third page of each site comes late: the token has expired, or
        # has been revoked, when the pages after it are asked for
        for s in sites:
            box.inject("pyng.customers", delay=2.3, skip=2, times=1, path=f"/sites/{s}/")
        revoke = None
        if trigger == "401":
            revoke = threading.Timer(1.0, box.revoke_pyng_tokens)
            revoke.start()
        out = custlist.fan_out([client.customers(s, limit=PER) for s in sites], concurrency=4)
        got = {i: [] for i in range(len(sites))}
        for src, r in out:
            got[src].append(r.customer_reference)
        if revoke is not None:
            revoke.join()
        assert got == {i: want[s] for i, s in enumerate(sites)}
        assert out.summary.ok
        assert len(tokens(box)) == 2                 # the first token, one renewal
        assert len(python_fetches) == 1
        for s in sites:
            n = len(want[s]) // PER
            assert n <= len(pages(box, s)) <= n + 1


# ---------------------------------------------------------------------------
# a renewal that fails: the exception of a plain call, nothing lost

FAULTS = {
    "redirect": dict(status=302, headers={"Location": "https://login.elsewhere.test/token"},
                     body=b""),
    "400": dict(status=400, body={"error": "invalid_grant",
                                  "error_description": "The grant has expired."}),
    "401": dict(status=401, body={"error": "invalid_client",
                                  "error_description": "Client authentication failed."}),
    "503": dict(status=503, body={"error": "temporarily_unavailable"}),
    "no token": dict(status=200, body={"token_type": "bearer", "expires_in": 60}),
    "token type": dict(status=200, body={"access_token": "abc", "token_type": "mac"}),
    "control": dict(status=200, body={"access_token": "ab\ncd", "token_type": "bearer"}),
    "not json": dict(status=200, body=b"<html><title>Login</title></html>",
                     content_type="text/html"),
    "reset": dict(reset=True),
    "too large": dict(status=200, body=b'{"access_token": "' + b"a" * 300_000 + b'"}'),
}


def described(e):
    return (type(e), str(e), getattr(e, "status", None), getattr(e, "code", None),
            getattr(e, "curl_code", None))


def plain_failure(box, fault):
    box.inject("pyng.token", **fault)
    creds = custlist.ClientCredentials(box.pyng_url + "/billing/oauth2/token",
                                       box.pyng_client_id, box.pyng_client_secret)
    with pytest.raises(Exception) as info:
        creds()
    return info.value


def three_pages_held(box, kind, python_fetches):
    """The listing read serially and as the plain call fails with FAULTS[kind];
    then, faults cleared and logs emptied, a listing with its first record
    taken and three pages held by the fetch thread."""
    want = serial(box)
    expected = plain_failure(box, FAULTS[kind])
    box.clear_faults()
    box.requests.clear()
    python_fetches.clear()
    client = pyng_client(box)
    pager = client.customers("site_1", limit=PER)
    it = iter(pager)
    got = [next(it)]
    held(box, 3)
    return want, expected, client, pager, it, got


@pytest.mark.parametrize("kind", list(FAULTS))
def test_a_failed_renewal_on_a_401_raises_as_a_plain_call(kind, python_fetches, caplog):
    caplog.set_level(logging.DEBUG, logger="custlist")
    with Sandbox(pyng_customers=100, seed=17) as box:
        want, expected, client, pager, it, got = three_pages_held(box, kind, python_fetches)
        box.revoke_pyng_tokens()            # page 4 is refused ...
        box.inject("pyng.token", **FAULTS[kind])     # ... and the renewal fails
        with pytest.raises(Exception) as info:
            for r in it:
                got.append(r)
        assert described(info.value) == described(expected)
        assert refs(got) == want[:3 * PER]           # the pages before, each once
        assert len(tokens(box)) == 2                 # one renewal, never a second request
        assert len(python_fetches) == 1
        assert len(pages(box)) == 4                  # page 4 refused, not sent again
        # nothing lost: the listing resumes at page 4
        box.clear_faults()
        rest = refs(client.resume(pager.checkpoint()))
        assert refs(got) + rest == want
        # the secret, the Basic credential and the tokens show nowhere
        creds = client._auth
        secret = box.pyng_client_secret
        shown = " ".join([str(info.value), repr(info.value), repr(creds), repr(creds._cell),
                          repr(pager), caplog.text])
        assert secret not in shown and creds._basic.split()[-1] not in shown
        for r in pages(box):
            assert r.headers["authorization"].split()[-1] not in shown


@pytest.mark.parametrize("kind", ["400", "503", "no token", "reset"])
def test_a_failed_renewal_on_expiry_raises_as_a_plain_call(kind, python_fetches):
    with Sandbox(pyng_customers=100, seed=18, token_ttl=2) as box:
        want, expected, client, pager, it, got = three_pages_held(box, kind, python_fetches)
        box.inject("pyng.token", **FAULTS[kind])
        time.sleep(2.0)                     # the token expires while pages wait ahead
        with pytest.raises(Exception) as info:
            for r in it:
                got.append(r)
        assert described(info.value) == described(expected)
        assert refs(got) == want[:len(got)] and len(got) >= 2 * PER
        assert len(tokens(box)) == 2 and len(python_fetches) == 1
        assert len(pages(box)) == 3                  # page 4 never sent
        box.clear_faults()
        rest = refs(client.resume(pager.checkpoint()))
        assert refs(got) + rest == want


def test_python_and_the_fetch_thread_share_one_token():
    with Sandbox(pyng_customers=30, seed=19) as box:
        want = serial(box)
        box.requests.clear()
        client = pyng_client(box)
        creds = client._auth
        header = creds()                    # Python fetches ...
        assert refs(client.customers("site_1", limit=PER)) == want
        assert len(tokens(box)) == 1        # ... and the listing sends that token
        assert {r.headers["authorization"] for r in pages(box)} == {header}
        box.revoke_pyng_tokens()
        box.requests.clear()
        assert refs(client.customers("site_1", limit=PER)) == want
        assert len(tokens(box)) == 1        # the fetch thread renewed ...
        assert creds() == pages(box)[-1].headers["authorization"]   # ... Python sends it
        assert len(tokens(box)) == 1 and creds.fetches == 2



def timed(described):
    kind, message, *rest = described
    return (kind, re.sub(r"after \d+ milliseconds", "after N milliseconds", message), *rest)


@pytest.mark.parametrize("trigger", ["401", "expiry"])
def test_a_renewal_that_outlasts_the_timeout_raises_as_a_plain_call(trigger, python_fetches):
    # The token endpoint answers only after 3 s and the client's timeout is
    # 0.5 s: the fetch thread's renewal ends at the timeout, with the plain
    # call's RequestTimeoutError, the pages before it each once, and a
    # checkpoint that resumes at the page it stopped before.
    with Sandbox(pyng_customers=100, seed=24, token_ttl=2 if trigger == "expiry" else 3600) as box:
        want = serial(box)
        box.inject("pyng.token", delay=3.0)
        creds = custlist.ClientCredentials(box.pyng_url + "/billing/oauth2/token",
                                           box.pyng_client_id, box.pyng_client_secret,
                                           timeout=0.5)
        with pytest.raises(Exception) as plain:
            creds()
        expected = plain.value
        assert isinstance(expected, errors.RequestTimeoutError), expected
        box.clear_faults()
        box.requests.clear()
        python_fetches.clear()
        client = pyng_client(box, timeout=0.5)
        pager = client.customers("site_1", limit=PER)
        it = iter(pager)
        got = [next(it)]
        held(box, 3)
        box.inject("pyng.token", delay=3.0)
        if trigger == "401":
            box.revoke_pyng_tokens()             # page 4 is refused ...
        else:
            time.sleep(2.0)                      # ... or the token expires while pages wait
        start = time.monotonic()
        with pytest.raises(Exception) as info:
            for r in it:
                got.append(r)
        waited = time.monotonic() - start
        # libcurl's message names the milliseconds it waited, which vary
        assert timed(described(info.value)) == timed(described(expected))
        assert waited < 2.5, waited              # the timeout, not the server's 3 s
        assert refs(got) == want[:len(got)] and len(got) >= 2 * PER
        assert len(tokens(box)) == 2 and len(python_fetches) == 1
        assert len(pages(box)) == (4 if trigger == "401" else 3)   # nothing sent twice
        box.clear_faults()
        rest = refs(client.resume(pager.checkpoint()))
        assert refs(got) + rest == want

# ---------------------------------------------------------------------------
# close() and fork while the fetch thread renews (in a subprocess with a
# deadline: a hang fails the test, not the suite)

PRELUDE = """
import os, sys, threading, time
sys.path.append(TREE)
import custlist
from custlist.testing.sandbox import Sandbox
from tests.test_oauth_chain import pages, tokens
box = Sandbox(pyng_customers=100, seed=20).start()
client = custlist.Pyng(client_id=box.pyng_client_id, client_secret=box.pyng_client_secret,
                       base_url=box.pyng_url, max_retries=0)
pager = client.customers("site_1", limit=10)
it = iter(pager)
first = next(it)
deadline = time.monotonic() + 10
while len(pages(box)) < 3:
    assert time.monotonic() < deadline, "page 3 never asked for"
    time.sleep(0.01)
time.sleep(0.2)
box.revoke_pyng_tokens()
box.inject("pyng.token", delay=5.0, times=1)     # the renewal is slow
got, caught = [], []

def consume():
    try:
        for r in it:
            got.append(r)
    except Exception as e:
        caught.append(e)

t = threading.Thread(target=consume, daemon=True)
t.start()
while len(tokens(box)) < 2:                      # the renewal is under way
    assert time.monotonic() < deadline, "no renewal"
    time.sleep(0.01)
time.sleep(0.2)
"""


def run_renewing(code):

    from .test_lifecycle import run
    tree = repr(str(Path(__file__).resolve().parent.parent))
    return run(PRELUDE.replace("TREE", tree) + code, timeout=60, prelude=False)


def test_close_while_the_fetch_thread_renews_does_not_hang():
    out = run_renewing("""
start = time.monotonic()
pager.close()
t.join(5)
assert not t.is_alive(), "the consumer hangs"
assert time.monotonic() - start < 3, time.monotonic() - start
assert len(caught) == 1 and isinstance(caught[0], custlist.PagerClosedError), caught
assert len(got) == 29, len(got)               # pages 1 to 3
# The abandoned renewal leaves the client's token cell free: the next
# listing renews at once and reads everything (not after the slow answer).
start = time.monotonic()
again = list(client.customers("site_1", limit=10))
assert len({r.customer_reference for r in again}) == len(again) == 100, len(again)
assert time.monotonic() - start < 3, time.monotonic() - start
print("ok")
""")
    assert out.strip() == "ok"


def test_closing_the_listing_whose_fetch_thread_renews_hands_the_renewal_to_the_one_waiting():
    # Two listings of one client, each with its own fetch thread.  A's page
    # 4 is refused and A's thread sends the (slow) token request; B's page 4
    # is refused next and B waits for that renewal.  A is closed: its token
    # request is abandoned, which is no failure of the token, so B sends its
    # own and reads everything, each record once.
    from .test_lifecycle import run
    tree = repr(str(Path(__file__).resolve().parent.parent))
    out = run(f"""
import sys, threading, time
sys.path.append({tree})
import custlist
from custlist.testing.sandbox import Sandbox
from tests.test_oauth_chain import pages, refs, tokens
box = Sandbox(pyng_sites=2, pyng_site_customers=100, seed=25).start()
a, b = box.pyng_site_ids
client = custlist.Pyng(client_id=box.pyng_client_id, client_secret=box.pyng_client_secret,
                       base_url=box.pyng_url, max_retries=0)
want = refs(client.customers(b, limit=10))
box.requests.clear()
its = {{s: iter(client.customers(s, limit=10)) for s in (a, b)}}
got = {{s: [next(its[s])] for s in (a, b)}}
caught = {{a: [], b: []}}
deadline = time.monotonic() + 20

def wait(what, cond):
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)

wait("pages ahead", lambda: len(pages(box, a)) >= 3 and len(pages(box, b)) >= 3)
time.sleep(0.2)
box.revoke_pyng_tokens()
box.inject("pyng.token", delay=5.0, times=1)

def consume(s):
    try:
        for r in its[s]:
            got[s].append(r)
    except Exception as e:
        caught[s].append(e)

ta = threading.Thread(target=consume, args=(a,), daemon=True)
ta.start()
wait("A's renewal", lambda: len(tokens(box)) == 1)
tb = threading.Thread(target=consume, args=(b,), daemon=True)
tb.start()
wait("B's refused page", lambda: len(pages(box, b)) >= 4)
time.sleep(0.3)
assert len(tokens(box)) == 1, "B sent its own while A's was under way"
start = time.monotonic()
its[a].close()
ta.join(5)
tb.join(10)
assert not ta.is_alive() and not tb.is_alive(), "hangs"
assert len(caught[a]) == 1 and isinstance(caught[a][0], custlist.PagerClosedError), caught[a]
assert caught[b] == [], caught[b]
assert refs(got[b]) == want, (len(got[b]), len(want))
assert time.monotonic() - start < 3, time.monotonic() - start     # not after A's slow answer
assert len(tokens(box)) == 2, len(tokens(box))
print("ok")
""", timeout=60, prelude=False)
    assert out.strip() == "ok"


def test_a_fork_while_the_fetch_thread_renews_does_not_hang():
    out = run_renewing("""
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    try:
        header = client._auth()              # the child fetches its own token
        os.write(w, b"child " + str(header.startswith("Bearer ")).encode())
    finally:
        os._exit(0)
os.close(w)
_, status = os.waitpid(pid, 0)
assert os.read(r, 100) == b"child True" and status == 0, status
t.join(15)
assert not t.is_alive() and caught == [], caught
assert len(got) == 99, len(got)
print("ok")
""")
    assert out.strip() == "ok"


def test_a_token_response_the_engine_does_not_read_plainly_is_read_by_python(python_fetches):
    # An escaped access_token: the engine's strict reading leaves it to
    # Python's, which takes the token from the response recorded, with no
    # second token request.
    with Sandbox(pyng_customers=100, seed=21) as box:
        want = serial(box)
        box.requests.clear()
        python_fetches.clear()
        client = pyng_client(box)
        it = iter(client.customers("site_1", limit=PER))
        got = [next(it)]
        held(box, 3)
        box.revoke_pyng_tokens()
        box.inject("pyng.token", status=200,
                   body=b'{"access_token": "pyng_static_\\u0078", "token_type": "Bearer"}')
        with pytest.raises(errors.AuthenticationError) as info:
            for r in it:                # the sandbox does not know that token: a 401 again
                got.append(r)
        assert info.value.status == 401
        assert refs(got) == want[:3 * PER]
        assert len(tokens(box)) == 2 and len(python_fetches) == 1
        sent = [r.headers["authorization"] for r in pages(box)]
        assert sent[-1] == "Bearer pyng_static_x" and len(sent) == 5   # page 4 once more
        assert client._auth.fetches == 2


def test_a_slow_token_request_holds_up_only_the_listings_that_wait_for_it():
    # In a fan-out, site A's first page is refused (401) and the token
    # request that follows takes 2 s; site B's first page takes 0.8 s.  The
    # driver sends the token request on its own handle and goes on with B's
    # transfer meanwhile, so B's records come before the token is answered.
    # (A driver that waited for the token request itself would read B's page
    # only after it.)
    with Sandbox(pyng_sites=2, pyng_site_customers=20, seed=23) as box:
        a, b = box.pyng_site_ids
        client = pyng_client(box)
        client._auth()                              # the first token, before the fan-out
        want = {s: refs(client.customers(s, limit=10)) for s in (a, b)}
        box.requests.clear()
        box.inject("pyng.customers", status=401, path=f"/sites/{a}/")
        box.inject("pyng.customers", delay=0.8, path=f"/sites/{b}/")
        box.inject("pyng.token", delay=2.0)
        first, got = {}, {a: [], b: []}
        for site, rec in client.customers_many([a, b], limit=10, concurrency=2):
            first.setdefault(site, time.monotonic())
            got[site].append(rec)
        (token,) = tokens(box)
        assert first[b] < token.at + 2.0 <= first[a]
        assert {s: refs(v) for s, v in got.items()} == want     # each record once, in order
        assert len(pages(box, a)) == 3 and len(pages(box, b)) == 2   # A's first page twice

