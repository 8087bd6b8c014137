"""Retries, timeouts, Ctrl-C, credential safety, bounds and hostile servers,
each reproduced with the sandbox's fault injection."""
import _thread
import email.utils
import json
import threading
import time

import pytest

import custlist

from .conftest import FAST


def refs(records):
    return [c.customer_reference for c in records]


def wire_refs(sb, site="site_1"):
    return [c["customerReference"] for c in sb.data.pyng[site]]


def page_hits(sb, route="pyng.customers"):
    return [r for r in sb.requests if r.route == route]


# ---------------------------------------------------------------------------
# Retries


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_retryable_statuses_are_retried_and_nothing_is_lost(sb, pyng, status):
    fault = sb.inject("pyng.customers", status=status, skip=1, times=2)
    got = refs(pyng.customers(site_id="site_1", limit=50))
    assert got == wire_refs(sb)                    # exact: nothing lost, nothing repeated
    assert fault.hits == 2
    hits = page_hits(sb)
    assert len(hits) == 5 + 2
    assert hits[1].query == hits[2].query == hits[3].query      # same page asked again


@pytest.mark.parametrize("route, make, listing", [
    ("natural.customers", lambda sb: custlist.Natural(sb.natural_token, base_url=sb.natural_url, **FAST),
     lambda c: c.customers(limit=20)),
    ("natural.invitations", lambda sb: custlist.Natural(sb.natural_token, base_url=sb.natural_url, **FAST),
     lambda c: c.customer_invitations(limit=20)),
    ("commenda.customers", lambda sb: custlist.Commenda(sb.commenda_token, base_url=sb.commenda_url, **FAST),
     lambda c: c.customers("corp_123", limit=20)),
])
def test_cursor_endpoints_retry_with_the_same_cursor(sb, route, make, listing):
    client = make(sb)
    clean = [r.id for r in listing(client)]
    sb.requests.clear()
    sb.inject(route, status=503, skip=2, times=3)
    assert [r.id for r in listing(client)] == clean
    hits = page_hits(sb, route)
    assert hits[2].query == hits[3].query == hits[4].query == hits[5].query
    assert hits[2].query.get("cursor")


def test_connection_reset_and_truncated_body_are_retried(sb, pyng):
    sb.inject("pyng.customers", reset=True, skip=1, times=1)
    sb.inject("pyng.customers", truncate=100, skip=3, times=1)
    assert refs(pyng.customers(site_id="site_1", limit=50)) == wire_refs(sb)


def test_retry_after_seconds_is_honoured(sb):
    client = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, backoff=0.0,
                           retry_after_max=5)
    sb.inject("pyng.customers", status=429, retry_after="1", times=1)
    start = time.monotonic()
    assert len(list(client.customers(site_id="site_1", limit=100))) == 237
    assert time.monotonic() - start >= 0.95


def test_retry_after_http_date_is_honoured(sb):
    client = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, backoff=0.0,
                           retry_after_max=5)
    when = email.utils.formatdate(time.time() + 2, usegmt=True)
    sb.inject("pyng.customers", status=503, headers={"Retry-After": when}, times=1)
    start = time.monotonic()
    assert len(list(client.customers(site_id="site_1", limit=100))) == 237
    assert time.monotonic() - start >= 0.9


@pytest.mark.parametrize("value, seconds", [
    ("30", 30), ("99999999999999999999", 1e20), ("9223372036854775807", 9.2e18)])
def test_retry_after_over_the_cap_gives_up_at_once(sb, value, seconds):
    # Over retry_after_max the server's word is kept: no early retry (and a
    # huge value does not overflow into a short one).
    client = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, retry_after_max=0.2)
    sb.inject("pyng.customers", status=429, retry_after=value, times=None)
    start = time.monotonic()
    with pytest.raises(custlist.RateLimitError) as info:
        list(client.customers(site_id="site_1", limit=100))
    assert time.monotonic() - start < 2
    assert info.value.attempts == 1 and len(page_hits(sb)) == 1
    assert info.value.retry_after == pytest.approx(seconds, rel=0.01)


def test_retry_after_date_over_the_cap_gives_up_at_once(sb):
    client = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, retry_after_max=5)
    when = email.utils.formatdate(time.time() + 3600, usegmt=True)
    sb.inject("pyng.customers", status=429, retry_after=when, times=None)
    with pytest.raises(custlist.RateLimitError) as info:
        list(client.customers(site_id="site_1", limit=100))
    assert info.value.attempts == 1 and len(page_hits(sb)) == 1
    assert 3590 < info.value.retry_after <= 3600


def test_retry_after_within_the_cap_is_waited_for(sb):
    client = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, retry_after_max=1)
    sb.inject("pyng.customers", status=503, retry_after="1", times=1)
    start = time.monotonic()
    assert len(list(client.customers(site_id="site_1", limit=100))) == 237
    assert time.monotonic() - start >= 0.95


def test_exhausted_retries_raise_with_attempts_and_keep_the_resume_point(sb):
    client = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, max_retries=2, **FAST)
    sb.inject("pyng.customers", status=429, retry_after="0", skip=2, times=None)
    pager = client.customers(site_id="site_1", limit=10)
    got = []
    with pytest.raises(custlist.RateLimitError) as info:
        for c in pager:
            got.append(c)
    e = info.value
    assert e.status == 429 and e.attempts == 3 and "after 3 attempts" in str(e)
    assert e.retry_after == 0
    assert refs(got) == wire_refs(sb)[:20]         # everything before the failing page
    with pytest.raises(StopIteration):
        next(pager)                                # the pager is closed
    sb.clear_faults()
    rest = refs(client.customers(site_id="site_1", start_href=pager.next_href))
    assert refs(got) + rest == wire_refs(sb)


def test_max_retries_zero_fails_at_once(sb):
    client = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, max_retries=0)
    sb.inject("pyng.customers", status=500, times=1)
    with pytest.raises(custlist.ServerError) as info:
        list(client.customers(site_id="site_1"))
    assert info.value.attempts == 1 and len(page_hits(sb)) == 1


@pytest.mark.parametrize("status, exc", [(400, custlist.BadRequestError),
                                         (404, custlist.NotFoundError),
                                         (409, custlist.ConflictError),
                                         (418, custlist.APIError)])
def test_non_retryable_statuses_fail_at_once(sb, pyng, status, exc):
    sb.inject("pyng.customers", status=status, times=1)
    with pytest.raises(exc) as info:
        list(pyng.customers(site_id="site_1"))
    assert info.value.status == status and info.value.attempts == 1
    assert len(page_hits(sb)) == 1


def test_resets_forever_raise_transport_error(sb, pyng):
    sb.inject("pyng.customers", reset=True, times=None)
    with pytest.raises(custlist.TransportError) as info:
        list(pyng.customers(site_id="site_1"))
    assert info.value.attempts == 4 and info.value.curl_code
    assert info.value.url.startswith(sb.pyng_url)


def test_connection_refused_is_a_transport_error():
    client = custlist.Pyng(token="t", base_url="http://127.0.0.1:9", max_retries=1, **FAST)
    with pytest.raises(custlist.TransportError) as info:
        list(client.customers(site_id="s"))
    assert info.value.attempts == 2 and info.value.curl_code == 7     # CURLE_COULDNT_CONNECT


# ---------------------------------------------------------------------------
# Timeouts and stalls


def test_total_timeout(sb):
    client = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, timeout=0.3, max_retries=0)
    sb.inject("pyng.customers", delay=2.0, times=1)
    start = time.monotonic()
    with pytest.raises(custlist.RequestTimeoutError):
        list(client.customers(site_id="site_1"))
    assert time.monotonic() - start < 1.5


def test_slow_page_within_timeout_is_fine(sb):
    client = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, timeout=5)
    sb.inject("pyng.customers", delay=0.3, times=1)
    assert len(list(client.customers(site_id="site_1", limit=100))) == 237


def test_stall_guard_aborts_a_trickling_server(sb):
    client = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, stall_timeout=1,
                           max_retries=0)
    sb.inject("pyng.customers", trickle=(1, 2.5), times=1)
    start = time.monotonic()
    with pytest.raises(custlist.RequestTimeoutError):
        list(client.customers(site_id="site_1"))
    assert time.monotonic() - start < 6


def test_timeout_then_retry_succeeds(sb):
    client = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, timeout=0.3, **FAST)
    sb.inject("pyng.customers", delay=1.0, skip=1, times=1)
    assert refs(client.customers(site_id="site_1", limit=50)) == wire_refs(sb)


# ---------------------------------------------------------------------------
# Ctrl-C


def test_keyboard_interrupt_stops_a_slow_transfer_promptly(sb):
    # The fault goes in once page 1 is read (no prefetch, so page 2 is the next
    # request), and only for this test's page size: a late request of an
    # earlier test (a pager left unclosed, whose fetch thread may still send
    # the pages it keeps ahead) cannot take it instead.
    client = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, prefetch=False)
    pager = client.customers(site_id="site_1", limit=11)
    got = [next(pager) for _ in range(11)]
    sb.inject("pyng.customers", delay=8.0, times=1, query={"limit": "11"})
    timer = threading.Timer(0.3, _thread.interrupt_main)
    start = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        for c in pager:
            got.append(c)
    elapsed = time.monotonic() - start
    timer.join()
    assert elapsed < 1.5
    with pytest.raises(StopIteration):
        next(pager)
    sb.clear_faults()
    rest = refs(client.customers(site_id="site_1", start_href=pager.next_href))
    assert refs(got) + rest == wire_refs(sb)


def test_keyboard_interrupt_during_retry_backoff(sb):
    client = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, retry_after_max=30)
    sb.inject("pyng.customers", status=503, retry_after="20", times=None)
    timer = threading.Timer(0.3, _thread.interrupt_main)
    start = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        list(client.customers(site_id="site_1"))
    timer.join()
    assert time.monotonic() - start < 1.5


# ---------------------------------------------------------------------------
# Credentials go only to the configured origin


def hostile_page(sb, next_href):
    return json.dumps({"data": {"items": [], "totalItems": 0, "nextHref": next_href},
                       "traceId": "t"})


@pytest.mark.parametrize("href", [
    "http://evil.example/billing/sites/site_1/customers?cursor=x",
    "https://127.0.0.1:{port}/pyng/billing/sites/site_1/customers",   # other scheme
    "http://127.0.0.1:{other}/pyng/billing/sites/site_1/customers",   # other port
    "http://localhost:{port}/pyng/billing/sites/site_1/customers",    # other host name
    "ftp://127.0.0.1:{port}/x",
])
def test_next_href_to_another_origin_is_refused(sb, pyng, href):
    port = sb.url.rsplit(":", 1)[1]
    href = href.format(port=port, other=int(port) + 1)
    sb.inject("pyng.customers", body=hostile_page(sb, href), times=1)
    with pytest.raises(custlist.UnsafeURLError) as info:
        list(pyng.customers(site_id="site_1"))
    assert "not the client's origin" in str(info.value)
    assert len(page_hits(sb)) == 1


def test_relative_next_href_on_the_same_origin_is_followed(sb, pyng):
    # no prefetch here: a stray request for page 2 must not take the fault below
    quiet = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, prefetch=False)
    page2 = next(quiet.customers(site_id="site_1", limit=10).pages()).next_href
    relative = page2[len(sb.url):]
    sb.requests.clear()
    sb.inject("pyng.customers", body=hostile_page(sb, relative), times=1)
    got = []
    # followed; and the listing, which skipped the first ten, falls short of its total
    with pytest.raises(custlist.errors.IncompleteListingError, match="after 227 records"):
        for c in pyng.customers(site_id="site_1", limit=10):
            got.append(c)
    assert refs(got) == wire_refs(sb)[10:]


def test_redirects_are_not_followed(sb, pyng):
    sb.inject("pyng.customers", status=302,
              headers={"Location": sb.pyng_url + "/billing/sites/site_2/customers"}, times=1)
    with pytest.raises(custlist.APIError) as info:
        list(pyng.customers(site_id="site_1"))
    assert info.value.status == 302
    assert len(page_hits(sb)) == 1


@pytest.mark.parametrize("url", ["http://api.example.com", "ftp://127.0.0.1", "file:///etc/passwd",
                                 "127.0.0.1:8080", "https://user:pw@api.example.com"])
def test_unsafe_base_urls_are_refused(url):
    with pytest.raises(custlist.UnsafeURLError):
        custlist.Natural("t", base_url=url)


def test_plain_http_beyond_loopback_needs_opt_in():
    client = custlist.Natural("t", base_url="http://api.example.com", allow_insecure_http=True)
    assert client.base_url == "http://api.example.com"
    for url in ("http://localhost:8080", "http://127.0.0.5", "http://[::1]:80"):
        assert custlist.Natural("t", base_url=url).base_url == url


def test_tokens_never_appear_in_errors_or_reprs(sb):
    token = "sk_ntl_sandbox_TOPSECRET"
    client = custlist.Natural(token, base_url=sb.natural_url, **FAST)
    with pytest.raises(custlist.AuthenticationError) as info:
        list(client.customers())
    e = info.value
    text = " ".join([str(e), repr(e), repr(client), repr(vars(client)), repr(e.headers),
                     repr(e.__dict__)])
    assert "TOPSECRET" not in text


def test_header_injection_is_refused(sb):
    with pytest.raises(ValueError):
        custlist.Natural("tok\r\nX-Evil: 1", base_url=sb.natural_url)


# ---------------------------------------------------------------------------
# Bounds


def test_body_size_limit(sb):
    client = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, max_body=2000, **FAST)
    with pytest.raises(custlist.ResponseTooLargeError):
        list(client.customers(site_id="site_1", limit=100))
    assert len(page_hits(sb)) == 1                  # not retried


def test_nesting_depth_limit(sb, pyng):
    deep = '{"data":{"items":[],"junk":' + "[" * 200 + "]" * 200 + '},"traceId":"t"}'
    sb.inject("pyng.customers", body=deep, times=1)
    with pytest.raises(custlist.DecodeError) as info:
        list(pyng.customers(site_id="site_1"))
    assert "nested deeper" in str(info.value)


def test_deep_items_hit_the_depth_limit_too(sb, pyng):
    deep = '{"data":{"items":[' + "[" * 100000 + "]" * 100000 + '],"totalItems":1},"traceId":"t"}'
    sb.inject("pyng.customers", body=deep, times=1)
    with pytest.raises(custlist.DecodeError):
        list(pyng.customers(site_id="site_1"))


def test_paging_loop_is_detected(sb, pyng):
    first = sb.pyng_url + "/billing/sites/site_1/customers?limit=10"
    sb.inject("pyng.customers", body=hostile_page(sb, first), times=None)
    with pytest.raises(custlist.PagingLoopError):
        list(pyng.customers(site_id="site_1", limit=10))
    assert len(page_hits(sb)) == 1


def test_repeated_cursor_is_detected(sb, natural):
    body = json.dumps({"data": [], "meta": {"pagination": {"has_more": True, "next_cursor": "c1"}}})
    sb.inject("natural.customers", body=body, times=None)
    with pytest.raises(custlist.PagingLoopError):
        list(natural.customers())
    assert len(page_hits(sb, "natural.customers")) == 2


def test_has_more_without_cursor_is_an_error(sb, natural):
    body = json.dumps({"data": [], "meta": {"pagination": {"has_more": True, "next_cursor": None}}})
    sb.inject("natural.customers", body=body, times=1)
    with pytest.raises(custlist.PagingError) as info:
        list(natural.customers())
    assert "no cursor" in str(info.value)


# ---------------------------------------------------------------------------
# Hostile and broken bodies


@pytest.mark.parametrize("body", [
    b'{"data":{"items":[{"customerReference":"A","state":"invited","invitedAt":"soon"}]},"traceId":"t"}',
    b'{"data":{"items":[{"customerReference":"\xff\xfe"}]},"traceId":"t"}',
    b'{"data":{"items":[{"customerReference":"A"',
    b'{"data":{"items":{}},"traceId":"t"}',
    b'<html><body>Bad gateway</body></html>',
    b'',
    b'{"data":{"items":[],"totalItems":"many"},"traceId":"t"}',
    b'{"data":{"items":[],"nextHref":5},"traceId":"t"}',
])
def test_hostile_bodies_raise_decode_or_paging_error_and_keep_earlier_records(sb, pyng, body):
    sb.inject("pyng.customers", body=body, skip=1, times=None)
    got = []
    with pytest.raises((custlist.DecodeError, custlist.PagingError)):
        for c in pyng.customers(site_id="site_1", limit=10):
            got.append(c)
    assert refs(got) == wire_refs(sb)[:10]


def test_decode_error_keeps_the_resume_point_at_the_bad_page(sb, pyng):
    sb.inject("pyng.customers", body=b'{"data":{"items":[1]}}', skip=1, times=1)
    pager = pyng.customers(site_id="site_1", limit=10)
    got = []
    with pytest.raises(custlist.DecodeError) as info:
        for c in pager:
            got.append(c)
    assert info.value.offset == len(b'{"data":{"items":[')
    rest = refs(pyng.customers(site_id="site_1", start_href=pager.next_href))
    assert refs(got) + rest == wire_refs(sb)


def test_huge_string_is_fine_within_the_size_limit(sb, pyng):
    name = "x" * 5_000_000
    body = json.dumps({"data": {"items": [{"customerReference": name, "state": "linked",
                                           "invitedAt": 1}], "totalItems": 1}, "traceId": "t"})
    sb.inject("pyng.customers", body=body, times=1)
    (c,) = list(pyng.customers(site_id="site_1"))
    assert c.customer_reference == name


def test_html_error_page_from_a_proxy(sb, pyng):
    sb.inject("pyng.customers", status=502, content_type="text/html",
              body="<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
              times=None)
    with pytest.raises(custlist.ServerError) as info:
        list(pyng.customers(site_id="site_1"))
    assert info.value.status == 502 and info.value.message == "502 Bad Gateway"
    assert info.value.attempts == 4


@pytest.mark.parametrize("body, code, message", [
    ({"errors": [{"code": "rate_limited", "detail": "Slow down", "status": "429",
                  "meta": {"supportId": "sup_1"}}]}, "rate_limited", "Slow down"),
    ({"error": {"code": "E1", "message": "nested"}}, "E1", "nested"),
    ({"message": "flat message", "statusCode": 400}, "400", "flat message"),
    (["not", "an", "object"], None, None),
    ("plain text body", None, "plain text body"),
])
def test_error_bodies_of_any_shape(sb, natural, body, code, message):
    payload = body if isinstance(body, str) else json.dumps(body)
    sb.inject("natural.customers", status=400, body=payload, times=1)
    with pytest.raises(custlist.BadRequestError) as info:
        list(natural.customers())
    assert info.value.code == code and info.value.message == message


def test_an_error_body_nested_past_the_recursion_limit_is_read_as_text(sb, natural):
    # json.loads raises RecursionError, not ValueError, on such a body: the
    # error was that, not the status error the server sent
    deep = "[" * 50000 + "]" * 50000
    sb.inject("natural.customers", status=400, body=deep, times=1)
    with pytest.raises(custlist.BadRequestError) as info:
        list(natural.customers())
    assert info.value.status == 400 and info.value.code is None
    assert len(page_hits(sb, "natural.customers")) == 1       # a 400 is not retried


# ---------------------------------------------------------------------------
# Threads


def test_one_client_many_threads(sb, pyng):
    results, errors = {}, []

    def run(site, n):
        try:
            results[n] = refs(pyng.customers(site_id=site, limit=7))
        except Exception as e:       # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=("site_1" if i % 2 else "site_2", i))
               for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for i, got in results.items():
        assert got == wire_refs(sb, "site_1" if i % 2 else "site_2")


def test_other_threads_run_while_a_page_downloads(sb, pyng):
    sb.inject("pyng.customers", delay=1.0, times=1)
    ticks = 0
    stop = threading.Event()

    def spin():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0.001)

    t = threading.Thread(target=spin)
    t.start()
    try:
        assert len(list(pyng.customers(site_id="site_1", limit=100))) == 237
    finally:
        stop.set()
        t.join()
    assert ticks > 200          # ~1 s of 1 ms sleeps while the main thread waited


def test_one_pager_from_two_threads_is_refused(sb, pyng):
    sb.inject("pyng.customers", delay=1.0, times=1)
    pager = pyng.customers(site_id="site_1")
    caught = []

    def other():
        time.sleep(0.3)
        try:
            next(pager)
        except RuntimeError as e:
            caught.append(e)

    t = threading.Thread(target=other)
    t.start()
    first = next(pager)
    t.join()
    assert first.customer_reference == wire_refs(sb)[0]
    assert len(caught) == 1 and "another thread" in str(caught[0])


# ---------------------------------------------------------------------------
# Early stop and prefetch


def test_stopping_early_closes_cleanly(sb, pyng):
    for _ in range(20):
        pager = pyng.customers(site_id="site_1", limit=10)
        next(pager)
        pager.close()
        with pytest.raises(StopIteration):
            next(pager)
    with pyng.customers(site_id="site_1", limit=10) as pager:
        assert next(pager).customer_reference == wire_refs(sb)[0]


def test_prefetch_requests_the_next_page_before_it_is_needed(sb, pyng):
    # limit=13 marks this test's requests: a late request of an earlier
    # test's pager reaching the shared sandbox must not count.
    pager = pyng.customers(site_id="site_1", limit=13)
    next(pager)

    def hits() -> int:
        return len([r for r in page_hits(sb) if r.query.get("limit") == "13"])
    deadline = time.monotonic() + 5
    while hits() < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    # pages 2 and 3 were asked for while page 1 was consumed (the fetch
    # thread keeps two finished pages ahead), and no more
    assert hits() == 3
    pager.close()


def test_prefetch_can_be_turned_off(sb):
    client = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, prefetch=False)
    # limit=9 marks this test's requests: a late request of an earlier test's
    # pager reaching the shared sandbox must not count.
    pager = client.customers(site_id="site_1", limit=9)
    next(pager)
    time.sleep(0.2)
    assert len([r for r in page_hits(sb) if r.query.get("limit") == "9"]) == 1
    assert refs([*pager]) == wire_refs(sb)[1:]


def test_prefetch_overlaps_fetch_and_consumption(sb, pyng):
    sb.inject("pyng.customers", delay=0.1, times=None)
    start = time.monotonic()
    pages = 0
    for page in pyng.customers(site_id="site_1", limit=30).pages():
        pages += 1
        time.sleep(0.1)                  # the consumer works as long as a fetch takes
    elapsed = time.monotonic() - start
    assert pages == 8
    assert elapsed < 8 * 0.2 * 0.8       # well under fetch + consume in sequence
