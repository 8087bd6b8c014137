"""Engine hygiene (reference counts, GC, type checks, bounds), transport
failures and their messages, and the "custlist" logger.  Scenarios that
crashed the interpreter run in a subprocess."""
import gc
import logging
import socket
import subprocess
import sys
import textwrap
import threading
import weakref

import pytest

import custlist
from custlist import _core
from custlist._spec import CursorPaging, Field, Record, type_spec

from .conftest import FAST
from .test_reliability import hostile_page, page_hits


def run(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=timeout)


# ---------------------------------------------------------------------------
# Records, slots, schemas


def test_deep_record_chains_keep_their_type_reference():
    # The trashcan defers deallocs of deep chains; the type lost a reference
    # per deferred record until it was freed under its instances.
    proc = run("""
        import sys
        from custlist._spec import Field, Record
        class Node(Record):
            child = Field(object)
        before = sys.getrefcount(Node)
        for _ in range(3):
            r = None
            for _ in range(100_000):
                r = Node(child=r)
            del r
        print(sys.getrefcount(Node) - before)
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0"


def test_slot_refuses_a_base_that_is_not_a_record_type():
    proc = run("""
        from custlist import _core
        try:
            _core.Slot(0, "x", tuple)
        except TypeError as e:
            print("TypeError", e)
        else:
            print(_core.Slot(0, "x", tuple).__get__((1,)))
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("TypeError Slot base must be")


def test_slot_still_reads_record_fields():
    class P(Record):
        a = Field(int)
        b = Field(str)
    assert P(1, "x").b == "x"
    with pytest.raises(TypeError, match="does not apply"):
        P.__dict__["a"].__get__(object())


class Holder(Record):
    items = Field(tuple[dict, ...])
    name = Field(str)


class Plain(Record):
    tags = Field(tuple[str, ...])
    name = Field(str)


def test_a_record_holding_a_tuple_of_dicts_is_collected_in_a_cycle():
    schema = custlist.Schema(type_spec(Holder))
    r = schema.decode(b'{"items": [{"a": 1}, {"b": 2}], "name": "x"}')
    assert gc.is_tracked(r)

    class Marker:
        pass

    m = Marker()
    alive = weakref.ref(m)
    r.items[0]["back"] = r           # record -> tuple -> dict -> record
    r.items[0]["marker"] = m
    del r, m
    gc.collect()
    assert alive() is None


def test_records_of_atomic_values_stay_untracked():
    schema = custlist.Schema(type_spec(Plain))
    r = schema.decode(b'{"tags": ["a", "b"], "name": "x"}')
    assert not gc.is_tracked(r)      # nothing can lead back to it: no GC cost
    nested = custlist.Schema(type_spec(tuple[Plain, ...])).decode(b'[{"name": "y"}]')
    assert not gc.is_tracked(nested[0])


def test_schema_in_a_cycle_is_collected():
    # In a fresh interpreter: a free-threaded CPython 3.13 keeps a class
    # made after other threads have run past gc.collect() (custlist or not).
    proc = run("""
        import gc, weakref
        import custlist
        from custlist._spec import Field, Record, type_spec

        class Owner(Record):
            n = Field(int)

        schema = custlist.Schema(type_spec(Owner))
        Owner.schema = schema            # schema -> refs -> Owner -> schema
        alive = weakref.ref(Owner)
        assert schema.decode(b'{"n": 3}').n == 3
        del Owner, schema
        gc.collect()
        print("collected" if alive() is None else "alive")
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["collected"]


@pytest.mark.parametrize("body, items", [
    (b'{"data": -5}', ("int",)),
    (b'{"data": 99999999999}', ("int",)),
    (b'{"data": 1}', ("int",)),
    (b'{"data": "x"}', ("str",)),
    (b'{"data": 1.5}', ("float",)),
])
def test_decode_page_does_not_trust_slot_zero_as_an_offset(body, items):
    proc = run(f"""
        import custlist
        from custlist import _core
        from custlist._spec import CursorPaging
        page = custlist.Schema(CursorPaging(items="data", cursor="c").page_spec({items!r}))
        item = custlist.Schema(("list", ("int",)))
        try:
            print(_core.decode_page(page, item, {body!r}))
        except ValueError as e:
            print("ValueError", e)
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ValueError ")     # DecodeError is one too


def test_decode_page_with_deferred_items_still_works():
    page = custlist.Schema(CursorPaging(items="data", cursor="c").page_spec())
    item = custlist.Schema(("list", ("int",)))
    items, slots = _core.decode_page(page, item, b'{"c": "n", "data": [1, 2]}')
    assert items == (1, 2) and slots[2] == "n"


@pytest.mark.parametrize("tp", [_core.Record, _core.Slot, _core.Schema, _core.Pager])
def test_engine_types_are_immutable(tp):
    with pytest.raises(TypeError):
        tp.injected = 1
    assert not hasattr(tp, "injected")


def test_record_repr_uses_the_type_name():
    class Named(Record):
        a = Field(int)
    r = Named(1)
    assert repr(r) == "Named(a=1)"
    assert repr(Named((r,))) == "Named(a=(Named(a=1),))"
    loop = [1]
    looped = Named(loop)
    loop[0] = looped
    assert repr(looped) == "Named(a=[Named(...)])"


# ---------------------------------------------------------------------------
# Transport failures: one table, clear messages


def test_transport_error_names_origin_path_and_attempts_but_no_query():
    client = custlist.Pyng(token="sekrit", base_url="http://127.0.0.1:9", max_retries=2, **FAST)
    with pytest.raises(custlist.TransportError) as info:
        list(client.customers(site_id="s", limit=5))
    msg = str(info.value)
    assert "GET http://127.0.0.1:9/billing/sites/s/customers, 3 attempts)" in msg
    assert "?" not in msg and "limit" not in msg and "sekrit" not in msg
    assert info.value.attempts == 3 and info.value.curl_code == 7


def _tls_garbage_server():
    """A TCP server that answers a TLS ClientHello with garbage: a failed
    handshake (CURLE_SSL_CONNECT_ERROR), counted per connection."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    hits = []

    def serve():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            hits.append(1)
            try:
                c.recv(4096)
                c.sendall(b"\x15\x03\x03\x00\x02\x02\x28" + b"not tls at all\r\n" * 4)
            except OSError:
                pass
            c.close()

    threading.Thread(target=serve, daemon=True).start()
    return srv, hits


def test_tls_handshake_failures_are_retried_then_raise_transport_error():
    srv, hits = _tls_garbage_server()
    try:
        port = srv.getsockname()[1]
        client = custlist.Pyng(token="t", base_url=f"https://127.0.0.1:{port}", max_retries=2, **FAST)
        with pytest.raises(custlist.TransportError) as info:
            list(client.customers(site_id="s"))
    finally:
        srv.close()
    assert info.value.curl_code == 35                # CURLE_SSL_CONNECT_ERROR
    assert info.value.attempts == 3 and len(hits) == 3
    assert type(info.value) is custlist.TransportError


def test_unsafe_url_error_caps_a_huge_href(sb, pyng):
    href = "https://" + "a" * 200_000 + ".example/next?page=2"
    sb.inject("pyng.customers", body=hostile_page(sb, href), times=1)
    with pytest.raises(custlist.UnsafeURLError) as info:
        list(pyng.customers(site_id="site_1"))
    assert "not the client's origin" in str(info.value)
    assert len(str(info.value)) < 600
    assert len(page_hits(sb)) == 1


def test_client_repr_never_raises_on_a_half_built_client():
    client = custlist.Pyng.__new__(custlist.Pyng)
    assert repr(client).startswith("Pyng(")
    with pytest.raises(Exception):
        custlist.Pyng(token="t", base_url="ftp://x")


# ---------------------------------------------------------------------------
# The custlist logger


def test_each_request_is_logged_at_debug_without_credentials(sb, caplog):
    client = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, **FAST)
    with caplog.at_level(logging.DEBUG, logger="custlist"):
        got = list(client.customers(site_id="site_1", limit=100))
    assert len(got) == 237
    lines = [r for r in caplog.records if r.name == "custlist"]
    assert [r.levelno for r in lines] == [logging.DEBUG] * 3
    text = [r.getMessage() for r in lines]
    for t in text:
        assert t.startswith(f"GET {sb.pyng_url}/billing/sites/site_1/customers -> HTTP 200, ")
        assert " bytes, " in t and " ms, attempt 1" in t
        assert "?" not in t and "limit" not in t
        assert sb.pyng_token not in t


def test_each_retry_is_logged_at_warning_with_reason_and_delay(sb, caplog):
    client = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, max_retries=3, **FAST)
    sb.inject("pyng.customers", status=503, times=2)
    with caplog.at_level(logging.WARNING, logger="custlist"):
        assert len(list(client.customers(site_id="site_1", limit=100))) == 237
        sb.inject("pyng.customers", reset=True, times=1)
        assert len(list(client.customers(site_id="site_1", limit=100))) == 237
    lines = [r for r in caplog.records if r.name == "custlist"]
    assert all(r.levelno == logging.WARNING for r in lines)
    warnings = [r.getMessage() for r in lines]
    assert len(warnings) == 3, warnings
    assert "failed (HTTP 503): retry in " in warnings[0] and "(attempt 2 of 4)" in warnings[0]
    assert "failed (HTTP 503): retry in " in warnings[1] and "(attempt 3 of 4)" in warnings[1]
    assert "HTTP" not in warnings[2].split(" failed ")[1] and "(attempt 2 of 4)" in warnings[2]
    assert not any(sb.pyng_token in w for w in warnings)


def test_a_too_long_retry_after_is_logged_at_warning_as_a_give_up(sb, caplog):
    # the only warning of a job that made one attempt: the URL is formatted
    # for it although no retry follows
    client = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, retry_after_max=0.2)
    sb.inject("pyng.customers", status=429, retry_after="30", times=None)
    with caplog.at_level(logging.WARNING, logger="custlist"):
        with pytest.raises(custlist.RateLimitError):
            list(client.customers(site_id="site_1", limit=100))
    warnings = [r.getMessage() for r in caplog.records
                if r.name == "custlist" and r.levelno == logging.WARNING]
    assert warnings == [f"GET {sb.pyng_url}/billing/sites/site_1/customers failed (HTTP 429): "
                        "Retry-After 30 s is over retry_after_max, giving up"]


def test_debug_log_shows_every_attempt(sb, caplog):
    client = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, max_retries=3, **FAST)
    sb.inject("pyng.customers", status=500, times=2)
    with caplog.at_level(logging.DEBUG, logger="custlist"):
        list(client.customers(site_id="site_1", limit=100))
    debug = [r.getMessage() for r in caplog.records
             if r.name == "custlist" and r.levelno == logging.DEBUG]
    assert [d.split(" -> ")[1].split(",")[0] for d in debug] == [
        "HTTP 500", "HTTP 500", "HTTP 200", "HTTP 200", "HTTP 200"]
    assert [d.rsplit(" ", 1)[1] for d in debug] == ["1", "2", "3", "1", "1"]


def test_nothing_is_logged_when_the_logger_is_quiet(sb, caplog):
    client = custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, **FAST)
    sb.inject("pyng.customers", status=503, times=1)
    with caplog.at_level(logging.ERROR, logger="custlist"):
        list(client.customers(site_id="site_1", limit=100))
    assert [r for r in caplog.records if r.name == "custlist"] == []


def test_libcurl_message_cut_inside_a_utf8_sequence_is_replaced_not_raised(tmp_path):
    # libcurl quotes the certificate's subject name in its error buffer and
    # cuts the message at CURL_ERROR_SIZE bytes, here inside a 4-byte UTF-8
    # sequence: the message must still become a TransportError.
    import os
    import ssl

    from .netkit import _openssl, make_ca
    d = str(tmp_path)
    ca = make_ca(d, "ca")
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "leaf.key", "-out", "leaf.csr", "-utf8", "-subj", "/CN=a" + "\U0001F600" * 63,
             cwd=d)
    with open(os.path.join(d, "leaf.ext"), "w") as f:
        f.write("basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")   # no SAN: CN is used
    _openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "leaf.pem", "-days", "2", "-extfile", "leaf.ext", cwd=d)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(d, "leaf.pem"), os.path.join(d, "leaf.key"))
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)

    def serve():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            try:
                ctx.wrap_socket(c, server_side=True).recv(1)
            except (OSError, ssl.SSLError):
                pass
            c.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        client = custlist.Pyng(token="t", base_url=f"https://127.0.0.1:{srv.getsockname()[1]}",
                               ca_bundle=ca, max_retries=2, **FAST)
        with pytest.raises(custlist.TransportError) as info:
            list(client.customers(site_id="s"))
    finally:
        srv.close()
    assert "certificate subject name" in str(info.value)
    assert "\ufffd" in str(info.value)
    assert info.value.curl_code == 60 and info.value.attempts == 1    # never retried


def test_retries_are_silent_when_logging_is_not_configured(sb):
    # The logger has a NullHandler: logging's last-resort handler does not
    # print the warnings of an application that configured no logging.
    code = f"""
import custlist
c = custlist.Pyng(token={sb.pyng_token!r}, base_url={sb.pyng_url!r}, backoff=0.01)
assert len(list(c.customers(site_id="site_1", limit=100))) == 237
print("done")
"""
    sb.inject("pyng.customers", status=503, times=1)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "done" and proc.stderr == ""
    assert len(page_hits(sb)) == 4
