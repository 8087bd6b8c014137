"""OAuth client-credentials listings on the fetch thread's chain: the fetch
side sends the next request itself with the client's current token (read
from the token cell ClientCredentials fills), never an expired one; a token
about to expire is renewed once (by the fetch thread: test_oauth_engine),
and the chain goes on with it; a 401 renews once for every listing of the
client and retries that page once.

Against the sandbox's Pyng API (OAuth client credentials, a request log
with arrival times and Authorization headers, fault injection) and the
small logging servers of test_engine_chain."""
import time

import pytest

import custlist
from custlist.testing.sandbox import Sandbox

from .conftest import FAST
from .test_engine_chain import Row, Rows, wait_for

PER = 10


def pyng_client(box, **kw):
    return custlist.Pyng(client_id=box.pyng_client_id, client_secret=box.pyng_client_secret,
                         base_url=box.pyng_url, **{**FAST, **kw})


def pages(box, site="site_1"):
    return [r for r in box.requests
            if r.route == "pyng.customers" and f"/sites/{site}/" in r.path]


def tokens(box):
    return [r for r in box.requests if r.route == "pyng.token"]


def bearer(request):
    return {k.lower(): v for k, v in request.headers.items()}.get("authorization")


def refs(records):
    return [r.customer_reference for r in records]


def serial(box, site="site_1"):
    """The site's records as a one-pass listing reads them (a fresh client)."""
    return refs(pyng_client(box, prefetch=False).customers(site, limit=PER))


def test_an_oauth_listing_asks_for_its_next_pages_while_the_consumer_holds_a_page():
    with Sandbox(pyng_customers=100, seed=3) as box:
        want = serial(box)
        box.requests.clear()
        it = iter(pyng_client(box).customers("site_1", limit=PER))
        first = next(it)
        # the consumer holds the first record: the fetch thread asks for the
        # next pages by itself with the token, two finished pages ahead
        assert wait_for(lambda: len(pages(box)) >= 3), [r.query for r in pages(box)]
        time.sleep(0.3)
        assert len(pages(box)) == 3
        got = [first, *it]
        assert refs(got) == want and len(set(want)) == 100
        assert len(pages(box)) == 10           # each page once
        assert len(tokens(box)) == 1
        assert len({bearer(r) for r in pages(box)}) == 1


def test_a_token_that_expires_mid_listing_is_renewed_once_and_never_sent_expired():
    # Pyng gives this token 2 s of life; custlist stops using it 10% early.
    with Sandbox(pyng_customers=100, seed=4, token_ttl=2) as box:
        want = serial(box)
        box.requests.clear()
        it = iter(pyng_client(box).customers("site_1", limit=PER))
        got = [next(it) for _ in range(PER + 1)]        # into the second page
        time.sleep(2.3)                                 # the token expires meanwhile
        got += [next(it) for _ in range(2 * PER)]       # into the fourth page
        # renewed once (by the fetch thread): the chain then goes on by itself
        # with the new token while the consumer holds a record
        assert wait_for(lambda: len(pages(box)) >= 6), len(pages(box))
        got += list(it)
        assert refs(got) == want                # every record once, in order
        assert len(tokens(box)) == 2
        # no page refused (a 401 would have asked for that page again)
        assert len(pages(box)) == 10
        sent = [bearer(r) for r in pages(box)]
        assert len(set(sent)) == 2
        grants = [r.at for r in tokens(box)]
        for r in pages(box):                    # every page with a token alive then
            assert r.at - max(g for g in grants if g <= r.at) < 2.0


def test_a_401_mid_listing_renews_once_and_asks_for_that_page_once_more():
    with Sandbox(pyng_customers=100, seed=5) as box:
        want = serial(box)
        box.requests.clear()
        box.inject("pyng.customers", status=401, skip=4)
        got = refs(pyng_client(box).customers("site_1", limit=PER))
        assert got == want
        assert len(tokens(box)) == 2
        asked = [r.query.get("offset", r.query.get("cursor")) for r in pages(box)]
        assert len(asked) == 11                 # the page refused, once more
        sent = [bearer(r) for r in pages(box)]
        assert sent[:5] == [sent[0]] * 5 and sent[5:] == [sent[5]] * 6 and sent[0] != sent[5]
        assert pages(box)[4].path == pages(box)[5].path
        assert pages(box)[4].query == pages(box)[5].query


def test_a_second_401_raises_with_nothing_lost_and_a_checkpoint_that_resumes():
    with Sandbox(pyng_customers=100, seed=6) as box:
        want = serial(box)
        box.requests.clear()
        client = pyng_client(box)
        pager = client.customers("site_1", limit=PER)
        box.inject("pyng.customers", status=401, skip=4, times=2)
        got = []
        with pytest.raises(custlist.AuthenticationError) as info:
            for r in pager:
                got.append(r)
        assert info.value.status == 401
        assert refs(got) == want[:4 * PER]      # the four pages before, each once
        assert len(tokens(box)) == 2            # one renewal, not one per attempt
        assert len(pages(box)) == 6             # nothing asked past the refused page
        secret = box.pyng_client_secret
        text = f"{info.value!s} {info.value!r} {pager!r}"
        assert secret not in text and "Bearer" not in text
        for token in {bearer(r) for r in pages(box)}:
            assert token.split()[-1] not in text
        rest = refs(client.resume(pager.checkpoint()))
        assert refs(got) + rest == want


def test_two_listings_of_one_client_in_a_fan_out_renew_once_between_them():
    with Sandbox(pyng_customers=80, seed=7) as box:
        want = {s: serial(box, s) for s in ("site_1", "site_2")}
        box.requests.clear()
        client = pyng_client(box)
        # the second page of each site refused, answered late enough that
        # both were sent with the first token before either 401 is read
        for site in ("site_1", "site_2"):
            box.inject("pyng.customers", status=401, skip=1, path=f"/sites/{site}/",
                       delay=0.4)
        out = custlist.fan_out([client.customers(s, limit=PER) for s in ("site_1", "site_2")],
                               concurrency=4)
        got = {0: [], 1: []}
        for src, r in out:
            got[src].append(r.customer_reference)
        assert got == {0: want["site_1"], 1: want["site_2"]}
        assert out.summary.ok
        assert len(tokens(box)) == 2            # the first token, one renewal
        for site in ("site_1", "site_2"):
            sent = [bearer(r) for r in pages(box, site)]
            assert sent[1] == sent[0] and sent[2] != sent[0]      # refused, then renewed
            assert len(sent) == len(want[site]) // PER + (len(want[site]) % PER > 0) + 1


def test_the_token_never_goes_to_another_origin():
    with Sandbox(pyng_customers=10, seed=8) as box:
        other = Rows(mode="href")

        def away(at, body, headers):
            if at == 20:
                body["next"] = f"{other.url}/rows?cursor=30"
            return body

        server = Rows(mode="href", edit=away)
        try:
            auth = custlist.ClientCredentials(box.pyng_url + "/billing/oauth2/token",
                                              box.pyng_client_id, box.pyng_client_secret)
            client = custlist.Client(base_url=server.url, auth=auth, **FAST)
            endpoint = custlist.Endpoint("/rows", Row, custlist.HrefPaging(items="data",
                                                                            next_href="next"),
                                         name="rows", page_size="limit", default_page_size=PER)
            pager = client.paginate(endpoint, "/rows")
            got = []
            with pytest.raises(custlist.UnsafeURLError):
                for r in pager:
                    got.append(r.id)
            assert got == server.ids[:30]
            time.sleep(0.3)
            assert other.asked() == []
            assert len(server.asked()) == 3 and len(tokens(box)) == 1
        finally:
            server.close()
            other.close()
