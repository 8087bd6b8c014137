"""Credentials and transport trust: the OAuth token request goes through the
engine (no redirects, timeouts, body limit, token validation), every URL is
checked against the client's origin in both paging modes, proxies and CAs
are resolved one way for every request, and settings are checked up front.

The servers are real: the sandbox (also over TLS with a CA made here), a
recording server on another loopback address, and a real HTTP proxy."""
import math
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

import custlist
from custlist import _core, _proxy, _tls
from custlist.natural import CUSTOMERS as NATURAL_CUSTOMERS, NaturalErrors
from custlist.errors import (AuthenticationError, RequestTimeoutError, ResponseTooLargeError,
                             TransportError, UnsafeURLError)
from custlist.testing import Sandbox

from .conftest import FAST
from .netkit import Proxy, Recorder, make_pki

ENV = ("SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "http_proxy",
       "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy",
       "NO_PROXY", "REQUEST_METHOD")
# Scenario scripts run outside any source tree, so they import the custlist
# under test (installed, or the sanitized build on PYTHONPATH), never a
# checkout's unbuilt sources.
ELSEWHERE = tempfile.gettempdir()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """Neither the machine's proxy nor its CA variables leak into a test."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(str(tmp_path_factory.mktemp("pki")))


@pytest.fixture(scope="module")
def tls_box(pki):
    with Sandbox(pyng_customers=30, natural_customers=25, seed=3,
                 ssl_context=pki.server_context) as box:
        yield box


@pytest.fixture
def elsewhere():
    """A server on another loopback address that records what reaches it."""
    rec = Recorder("127.0.0.2")
    yield rec
    rec.close()


def oauth_client(sb, **settings):
    return custlist.Pyng(client_id=sb.pyng_client_id, client_secret=sb.pyng_client_secret,
                         base_url=sb.pyng_url, **FAST, **settings)


def run_with_deadline(code: str, deadline: float, **env):
    """Run `code` in a fresh interpreter; returns (CompletedProcess, seconds)."""
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=deadline, cwd=ELSEWHERE, env={**os.environ, **env})
    return proc, time.monotonic() - start


# ---- 1. the token request goes through the engine ---------------------------

@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_token_redirect_is_not_followed(sb, elsewhere, status):
    sb.inject("pyng.token", status=status, headers={"Location": elsewhere.url + "/token"})
    client = oauth_client(sb)
    with pytest.raises(AuthenticationError, match="redirect") as e:
        list(client.customers("site_1"))
    assert e.value.status == status
    assert elsewhere.url in str(e.value)                    # says where it was sent
    assert elsewhere.requests == []                         # the secret never went there
    assert [r.route for r in sb.requests] == ["pyng.token"]  # and no API request was made


def trickled_token(sb, timeout: float, catch: str) -> str:
    """A script listing with a token response trickling 1 byte/s: prints
    "start", then the name of the exception `catch` and the seconds taken."""
    grant = b'{"access_token":"abc","token_type":"bearer","expires_in":3600}' + b" " * 200
    sb.inject("pyng.token", body=grant, trickle=(1, 1.0))
    return textwrap.dedent(f"""
        import time, custlist
        c = custlist.Pyng(client_id={sb.pyng_client_id!r}, client_secret={sb.pyng_client_secret!r},
                          base_url={sb.pyng_url!r}, timeout={timeout}, max_retries=0)
        print("start", flush=True)
        t = time.monotonic()
        try:
            list(c.customers("site_1"))
        except {catch} as e:
            print(type(e).__name__, round(time.monotonic() - t, 1), flush=True)
    """)


def test_token_trickled_one_byte_per_second_times_out(sb):
    code = trickled_token(sb, 2, "custlist.RequestTimeoutError")
    proc, took = run_with_deadline(code, 30)
    assert proc.stdout.startswith("start\nRequestTimeoutError"), proc.stderr
    assert float(proc.stdout.split()[2]) < 6


def test_token_body_over_the_limit_is_refused_unread(sb):
    def stream(conn):                      # no Content-Length: only the body limit can stop it
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Connection: close\r\n\r\n")
        conn.sendall(b'{"access_token":"abc","token_type":"bearer","pad":"')
        block = b"x" * 65536
        for _ in range(50 * 16):           # 50 MiB
            conn.sendall(block)
            server.sent += len(block)
        conn.sendall(b'"}')

    server = Recorder(respond=stream)
    try:
        auth = custlist.ClientCredentials(server.url + "/token", "id", "secret", None)
        with pytest.raises(ResponseTooLargeError):
            auth()
        time.sleep(0.2)
        assert server.sent < 20 * 1024 * 1024          # it stopped reading early
        assert auth.fetches == 0
    finally:
        server.close()


@pytest.mark.parametrize("token", ["abc\r\nX-Injected: 1", "abc\ndef", "abc\x00", "", "   ",
                                   "tab\there"])
def test_bad_access_token_is_refused(sb, token):
    sb.inject("pyng.token", body={"access_token": token, "token_type": "bearer",
                                  "expires_in": 3600})
    client = oauth_client(sb)
    with pytest.raises(AuthenticationError, match="access_token"):
        list(client.customers("site_1"))
    assert [r.route for r in sb.requests] == ["pyng.token"]     # nothing sent with it


def test_bearer_token_with_control_characters_is_refused():
    with pytest.raises(ValueError, match="control characters"):
        custlist.BearerToken("abc\x00def")
    with pytest.raises(ValueError, match="control characters"):
        custlist.BearerToken("abc\x7f")


def test_token_request_is_interrupted_by_ctrl_c(sb):
    code = trickled_token(sb, 60, "KeyboardInterrupt")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ELSEWHERE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "start\n"
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert out.startswith("KeyboardInterrupt"), err
    assert float(out.split()[1]) < 5


def test_token_request_keeps_the_rules_of_the_raw_engine_call(sb):
    with pytest.raises(ValueError, match="GET.*POST"):
        _core.request("PUT", sb.pyng_url)
    with pytest.raises(ValueError, match="line breaks"):
        _core.request("GET", sb.pyng_url, ("X-A: 1\r\nX-B: 2",))
    with pytest.raises(ValueError, match="timeout"):
        _core.request("GET", sb.pyng_url, timeout=0.0001)
    status, headers, body = _core.request(
        "POST", sb.pyng_url + "/billing/oauth2/token", (), b"grant_type=client_credentials")
    assert status == 401 and headers.startswith(b"HTTP/1.1 401") and b"invalid_client" in body


# ---- 2. the origin of every URL, in both paging modes ------------------------

def test_cursor_mode_refuses_another_origin(natural, elsewhere):
    """Both paging modes check the origin of the first URL: in cursor mode
    with a start cursor (the URL is built from start_href and the cursor)
    and without one."""
    with pytest.raises(UnsafeURLError, match="origin"):
        natural.paginate(NATURAL_CUSTOMERS, "/customers", None,
                         start_href=elsewhere.url + "/natural/customers", start_cursor="abc")
    with pytest.raises(UnsafeURLError, match="origin"):
        natural.paginate(NATURAL_CUSTOMERS, "/customers", None,
                         start_href=elsewhere.url + "/natural/customers")
    assert elsewhere.requests == []


# ---- 3. proxies --------------------------------------------------------------

def test_loopback_never_goes_through_a_proxy(monkeypatch):
    proxy = Proxy()
    try:
        for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
            monkeypatch.setenv(var, proxy.url)
        with Sandbox(pyng_customers=12, host="127.0.0.2") as box:
            client = custlist.Pyng(client_id=box.pyng_client_id,
                                   client_secret=box.pyng_client_secret, base_url=box.pyng_url)
            assert len(list(client.customers("site_1", limit=5))) == 12
            assert [r.route for r in box.requests][:2] == ["pyng.token", "pyng.customers"]
        assert proxy.seen == []
    finally:
        proxy.close()


def test_explicit_proxy_is_not_used_for_loopback_either(sb):
    proxy = Proxy()
    try:
        client = custlist.Natural(sb.natural_token, base_url=sb.natural_url, proxy=proxy.url)
        assert len(list(client.customers(limit=50))) == 145
        assert proxy.seen == []
    finally:
        proxy.close()


@pytest.mark.parametrize("how", ["setting", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"])
def test_https_through_a_proxy_tunnel_keeps_secrets_encrypted(monkeypatch, pki, tls_box, how):
    port = int(tls_box.url.rsplit(":", 1)[1])
    proxy = Proxy({pki.server_name: ("127.0.0.1", port)})
    try:
        settings = {"proxy": proxy.url} if how == "setting" else {}
        if how != "setting":
            monkeypatch.setenv(how, proxy.url)
        base = f"https://{pki.server_name}:{port}/pyng"
        client = custlist.Pyng(client_id=tls_box.pyng_client_id,
                               client_secret=tls_box.pyng_client_secret, base_url=base,
                               ca_bundle=pki.ca, **settings)
        # one page: the sandbox's next links name it by address, not by this host name
        assert len(list(client.customers("site_1", limit=100))) == 30
        heads = [h.split("\r\n")[0] for h in proxy.seen]
        assert heads and all(h == f"CONNECT {pki.server_name}:{port} HTTP/1.1" for h in heads)
        # the token request and the API requests both crossed the proxy, encrypted
        assert [r.route for r in tls_box.requests][:2] == ["pyng.token", "pyng.customers"]
        wire = bytes(proxy.tunneled)
        assert len(wire) > 1000
        assert tls_box.pyng_client_secret.encode() not in wire
        assert b"Authorization" not in wire and b"Bearer" not in wire
    finally:
        proxy.close()
        tls_box.requests.clear()


def test_plain_http_through_a_proxy_needs_allow_insecure_http(sb):
    port = int(sb.url.rsplit(":", 1)[1])
    proxy = Proxy({"api.custlist.test": ("127.0.0.1", port)})
    try:
        base = f"http://api.custlist.test:{port}/natural"
        with pytest.raises(UnsafeURLError, match="unencrypted|proxy"):
            custlist.Natural(sb.natural_token, base_url=base, proxy=proxy.url)
        with pytest.raises(UnsafeURLError, match="proxy would read"):
            _proxy.resolve_proxy(base, proxy.url)
        assert proxy.seen == []
        # accepted when asked for: the proxy forwards absolute-URI requests
        client = custlist.Natural(sb.natural_token, base_url=base, proxy=proxy.url,
                                  allow_insecure_http=True)
        assert len(list(client.customers(limit=100))) == 145
        assert proxy.seen[0].startswith(f"GET http://api.custlist.test:{port}/natural/customers")
    finally:
        proxy.close()


def test_proxy_environment_rules():
    env = {"http_proxy": "http://lower:1", "HTTP_PROXY": "http://upper:2",
           "HTTPS_PROXY": "upper-s:3", "ALL_PROXY": "socks5h://all:4"}
    r = lambda url, e=env, **kw: _proxy.resolve_proxy(url, environ=e, allow_insecure_http=True, **kw)
    assert r("http://api.example.com/") == "http://lower:1"           # lower-case wins
    assert r("http://api.example.com/", {"HTTP_PROXY": "http://upper:2"}) == "http://upper:2"
    assert r("http://api.example.com/",                                # httpoxy: ignored in CGI
             {"HTTP_PROXY": "http://upper:2", "REQUEST_METHOD": "GET"}) == ""
    assert r("https://api.example.com/") == "http://upper-s:3"       # scheme made explicit
    assert r("https://api.example.com/", {"ALL_PROXY": "socks5h://all:4"}) == "socks5h://all:4"
    assert r("https://127.0.0.9/") == "" and r("https://[::1]:8/") == ""
    assert r("https://localhost/") == "" and r("https://a.localhost/") == ""
    assert r("https://api.example.com/", proxy="") == ""               # explicit: none
    assert r("https://api.example.com/", proxy="p:9") == "http://p:9"  # explicit wins
    for no_proxy, url, direct in [
            ("*", "https://api.example.com/", True),
            ("example.com", "https://api.example.com/", True),
            (".example.com", "https://api.example.com/", True),
            ("example.com", "https://notexample.com/", False),
            ("10.0.0.0/8, other", "https://10.2.3.4/", True),
            ("api.example.com:8443", "https://api.example.com:8443/", True),
            ("api.example.com:8443", "https://api.example.com/", False)]:
        got = r(url, {**env, "NO_PROXY": no_proxy})
        assert (got == "") == direct, (no_proxy, url)
    with pytest.raises(ValueError, match="proxy must be"):
        _proxy.resolve_proxy("https://api.example.com/", "ftp://user:pw@p/")


def test_an_empty_proxy_variable_counts_as_unset():
    """As libcurl reads the environment (curl_getenv): a variable set to ""
    or to blanks is not set, so the next name decides; proxy="" is the way
    to say no proxy."""
    r = lambda url, e, **kw: _proxy.resolve_proxy(url, environ=e, **kw)
    for blank in ("", "  ", "\t"):
        assert r("https://api.example.com/", {"https_proxy": blank,
                                              "HTTPS_PROXY": "http://upper:3"}) == "http://upper:3"
        assert r("https://api.example.com/", {"https_proxy": blank, "HTTPS_PROXY": blank,
                                              "all_proxy": "http://all:4"}) == "http://all:4"
        assert r("https://api.example.com/", {"https_proxy": blank, "ALL_PROXY": blank}) == ""
        assert r("https://api.example.com/", {"no_proxy": blank, "NO_PROXY": "example.com",
                                              "HTTPS_PROXY": "http://upper:3"}) == ""
        assert r("https://api.example.com/", {"no_proxy": blank,
                                              "HTTPS_PROXY": "http://upper:3"}) == "http://upper:3"
        assert r("https://api.example.com/", {"https_proxy": blank, "HTTPS_PROXY": "http://u:3"},
                 proxy="") == ""
        assert r("http://api.example.com/", {"http_proxy": blank, "HTTP_PROXY": "http://u:2",
                                             "REQUEST_METHOD": "GET"},
                 allow_insecure_http=True) == ""                   # still ignored in CGI


@pytest.mark.parametrize("blank", ["", "  "])
def test_an_empty_https_proxy_beside_https_proxy_uses_the_upper_case_proxy(monkeypatch, pki,
                                                                           tls_box, blank):
    port = int(tls_box.url.rsplit(":", 1)[1])
    proxy = Proxy({pki.server_name: ("127.0.0.1", port)})
    try:
        monkeypatch.setenv("https_proxy", blank)
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        base = f"https://{pki.server_name}:{port}/natural"
        client = custlist.Natural(tls_box.natural_token, base_url=base, ca_bundle=pki.ca, **FAST)
        got = [c.id for c in client.customers(limit=100, max_items=25)]
        assert got == [c["id"] for c in tls_box.data.natural_customers][:25]
        heads = [h.split("\r\n")[0] for h in proxy.seen]
        assert heads and all(h == f"CONNECT {pki.server_name}:{port} HTTP/1.1" for h in heads)
        # proxy="" wins over the environment: a direct connection, which the
        # made-up host name cannot have
        direct = custlist.Natural(tls_box.natural_token, base_url=base, ca_bundle=pki.ca,
                                  proxy="", **FAST)
        proxy.seen.clear()
        with pytest.raises(TransportError) as info:
            list(direct.customers(limit=100))
        assert info.value.curl_code == 6 and proxy.seen == []   # could not resolve host
    finally:
        proxy.close()
        tls_box.requests.clear()


# ---- 4. CA resolution and TLS ------------------------------------------------

def test_tls_listing_needs_the_ca(pki, tls_box):
    client = custlist.Natural(tls_box.natural_token, base_url=tls_box.natural_url,
                              ca_bundle=pki.ca, **FAST)
    assert len(list(client.customers(limit=10))) == 25
    by_dir = custlist.Natural(tls_box.natural_token, base_url=tls_box.natural_url,
                              ca_bundle=pki.ca_dir, **FAST)
    assert len(list(by_dir.customers(limit=10))) == 25
    for bundle in (pki.other_ca, None):
        untrusting = custlist.Natural(tls_box.natural_token, base_url=tls_box.natural_url,
                                      ca_bundle=bundle, **FAST)
        with pytest.raises(TransportError, match="certificate") as e:
            list(untrusting.customers())
        assert e.value.curl_code == 60                   # CURLE_PEER_FAILED_VERIFICATION
        assert e.value.attempts == 1                     # a bad certificate is not retried
        assert "trusted CAs: " + (bundle or _tls.resolve_ca().file or "") in str(e.value)


def test_oauth_token_request_uses_the_ca_setting(pki, tls_box):
    client = custlist.Pyng(client_id=tls_box.pyng_client_id,
                           client_secret=tls_box.pyng_client_secret, base_url=tls_box.pyng_url,
                           ca_bundle=pki.ca, **FAST)
    assert len(list(client.customers("site_1"))) == 30
    untrusting = custlist.Pyng(client_id=tls_box.pyng_client_id,
                               client_secret=tls_box.pyng_client_secret,
                               base_url=tls_box.pyng_url, ca_bundle=pki.other_ca, **FAST)
    with pytest.raises(TransportError, match="certificate") as e:
        list(untrusting.customers("site_1"))
    assert str(e.value).endswith(f"(POST {tls_box.pyng_url}/billing/oauth2/token, 1 attempt); "
                                 f"trusted CAs: {pki.other_ca}")


def test_ca_environment_variables_in_order(monkeypatch, pki, tls_box):
    cases = [({"SSL_CERT_FILE": "ca"}, True),
             ({"SSL_CERT_DIR": "ca_dir"}, True),
             ({"CURL_CA_BUNDLE": "ca"}, True),
             ({"REQUESTS_CA_BUNDLE": "ca"}, True),
             ({"SSL_CERT_FILE": "other_ca", "CURL_CA_BUNDLE": "ca"}, False),
             ({"CURL_CA_BUNDLE": "other_ca", "REQUESTS_CA_BUNDLE": "ca"}, False),
             ({"CURL_CA_BUNDLE": "ca", "REQUESTS_CA_BUNDLE": "other_ca"}, True)]
    for env, trusted in cases:
        for name in ENV:
            monkeypatch.delenv(name, raising=False)
        for name, which in env.items():
            monkeypatch.setenv(name, getattr(pki, which))
        client = custlist.Natural(tls_box.natural_token, base_url=tls_box.natural_url, **FAST)
        if trusted:
            assert len(list(client.customers(limit=100))) == 25, env
        else:
            with pytest.raises(TransportError, match="certificate"):
                list(client.customers(limit=100))


def test_ca_setting_wins_over_the_environment(monkeypatch, pki, tls_box):
    monkeypatch.setenv("SSL_CERT_FILE", pki.other_ca)
    client = custlist.Natural(tls_box.natural_token, base_url=tls_box.natural_url,
                              ca_bundle=pki.ca, **FAST)
    assert len(list(client.customers(limit=100))) == 25


def test_ca_resolution_order(monkeypatch, pki, tmp_path):
    sys_file = next((p for p in _tls.SYSTEM_FILES if os.path.isfile(p)), None)
    monkeypatch.delitem(sys.modules, "certifi", raising=False)
    monkeypatch.setattr(_tls, "_certifi", lambda: None)
    got = _tls.resolve_ca(environ={})
    assert got.source in ("system", "libcurl default")
    assert got.file == sys_file or sys_file is None
    monkeypatch.setattr(_tls, "_certifi", lambda: pki.other_ca)
    assert _tls.resolve_ca(environ={}) == (pki.other_ca, None, "certifi")
    assert _tls.resolve_ca(environ={"REQUESTS_CA_BUNDLE": pki.ca_dir}) == \
        (None, pki.ca_dir, "REQUESTS_CA_BUNDLE")
    assert _tls.resolve_ca(environ={"SSL_CERT_FILE": pki.ca, "SSL_CERT_DIR": pki.ca_dir}) == \
        (pki.ca, pki.ca_dir, "SSL_CERT_FILE")
    assert _tls.resolve_ca(pki.ca_dir, environ={"SSL_CERT_FILE": pki.ca}) == \
        (None, pki.ca_dir, "ca_bundle")
    missing = str(tmp_path / "nope.pem")
    for env in ({"SSL_CERT_FILE": missing}, {"SSL_CERT_DIR": missing},
                {"CURL_CA_BUNDLE": missing}, {"REQUESTS_CA_BUNDLE": missing}):
        with pytest.raises(ValueError, match=next(iter(env))):
            _tls.resolve_ca(environ=env)
    with pytest.raises(ValueError, match="ca_bundle"):
        custlist.Natural("t", base_url="http://127.0.0.1:1", ca_bundle=missing)


def test_a_client_always_names_its_cas(monkeypatch, sb):
    """A wheel's libcurl carries its build host's CA path: custlist never
    leaves the choice to it when the system has a store."""
    monkeypatch.setattr(_tls, "_certifi", lambda: None)
    client = custlist.Natural(sb.natural_token, base_url=sb.natural_url)
    sys_file = next((p for p in _tls.SYSTEM_FILES if os.path.isfile(p)), None)
    if sys_file is not None:
        assert client._settings["ca_file"] == sys_file
    assert "verify" not in custlist.Client.__init__.__code__.co_varnames


# ---- 15. settings checked when the client is made -----------------------------

def test_bad_timing_settings_are_refused_at_construction(sb):
    """Every timing setting: timeouts under 1 ms (libcurl would truncate
    them to 0, which it reads as "no limit"), zero, negative, infinite, NaN
    and non-numbers fail when the client is made, naming the setting."""
    bad_timeouts = [0, 0.0, 0.0009, -1, math.inf, -math.inf, math.nan, 1e7, True, "5", None]
    bad_delays = [-1, -0.5, math.inf, math.nan, 1e7, True, "1"]
    cases = [(name, v) for name in ("timeout", "connect_timeout") for v in bad_timeouts]
    cases += [(name, v) for name in ("backoff", "backoff_max", "retry_after_max") for v in bad_delays]
    cases += [("stall_timeout", v) for v in (0, -1, 1.5, math.nan, True)]
    for name, value in cases:
        with pytest.raises(ValueError, match=name):
            custlist.Natural(sb.natural_token, base_url=sb.natural_url, **{name: value})
    assert sb.requests == []
    # the smallest values accepted still work
    client = custlist.Natural(sb.natural_token, base_url=sb.natural_url, timeout=5,
                              connect_timeout=0.001, backoff=0, stall_timeout=1)
    assert len(list(client.customers(limit=100))) == 145


def test_engine_refuses_timeouts_libcurl_would_misread(sb):
    page_schema, item_schema = NATURAL_CUSTOMERS.schemas(False, deferred=True)
    for bad in (0.0, 0.0005, math.inf, math.nan, -2.0):
        with pytest.raises(ValueError, match="timeout"):
            _core.Pager(sb.natural_url + "/customers", page_schema, item_schema, "cursor",
                        sb.natural_url, NaturalErrors(), custlist.Page, timeout=bad)
    with pytest.raises(ValueError, match="finite"):
        _core.Pager(sb.natural_url + "/customers", page_schema, item_schema, "cursor",
                    sb.natural_url, NaturalErrors(), custlist.Page, backoff=math.nan)


def test_client_credentials_checks_its_settings(sb):
    with pytest.raises(ValueError, match="timeout"):
        custlist.ClientCredentials(sb.pyng_url + "/token", "id", "secret", timeout=0)
    # plain http to a non-loopback token URL: refused before anything is sent,
    # unless the client it is given to allows it
    auth = custlist.ClientCredentials("http://api.custlist.test/token", "id", "secret")
    with pytest.raises(UnsafeURLError, match="unencrypted"):
        auth()
    with pytest.raises(UnsafeURLError, match="unencrypted"):
        custlist.Client(base_url="https://api.custlist.test", auth=auth)
    custlist.Client(base_url="https://api.custlist.test", auth=auth, allow_insecure_http=True)
    assert auth._request is not None and auth._request["proxy"] == ""
    # the token request takes the proxy and timeouts of the client it is given to
    auth = custlist.ClientCredentials("https://api.custlist.test/token", "id", "secret")
    custlist.Client(base_url="https://api.custlist.test", auth=auth, proxy="http://127.0.0.1:9",
                    timeout=7)
    assert auth._request["proxy"] == "http://127.0.0.1:9" and auth._request["timeout"] == 7.0


# ---- the command line ----------------------------------------------------------

def test_command_line_takes_the_ca_bundle_and_proxy(pki, tls_box):
    def cli(*extra):
        env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTLIST_") and k not in ENV}
        env.update(CUSTLIST_NATURAL_TOKEN=tls_box.natural_token)
        return subprocess.run([sys.executable, "-m", "custlist", "natural", "customers",
                               "--base-url", tls_box.natural_url, "--max-retries", "0", *extra],
                              capture_output=True, text=True, timeout=60, cwd=ELSEWHERE, env=env)
    ok = cli("--ca-bundle", pki.ca, "--proxy", "http://127.0.0.1:9")   # loopback: not proxied
    assert ok.returncode == 0, ok.stderr
    assert len(ok.stdout.splitlines()) == 25
    untrusted = cli("--ca-bundle", pki.other_ca)
    assert untrusted.returncode == 1
    assert "TransportError" in untrusted.stderr and pki.other_ca in untrusted.stderr
    missing = cli("--ca-bundle", pki.ca + ".missing")
    assert missing.returncode == 2 and missing.stderr.startswith("custlist: error: --ca-bundle names")
    bad_proxy = cli("--proxy", "ftp://proxy.example")
    assert bad_proxy.returncode == 2 and "proxy must be a URL" in bad_proxy.stderr
