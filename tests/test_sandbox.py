"""The sandbox's own promise to the suite: settle() returns only once a
request that reached the server's socket is in the log, so that a page an
earlier test's pager sent just before it was closed cannot land in the next
test's log or take its fault."""
import socket
import threading
import time

from .conftest import settle


def _raw_get(sb, path):
    host, port = sb.url.split("//")[1].split(":")
    s = socket.create_connection((host, int(port)))
    head = (f"GET {path} HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {sb.demo_token}\r\nConnection: close\r\n\r\n").encode()
    return s, head


def _logged(sb, path):
    return [r for r in sb.requests if r.path == path and r.query.get("limit") == "3"]


def test_busy_sees_a_request_whose_bytes_are_not_read_yet(sb):
    path = "/demo/offset/customers"
    s, head = _raw_get(sb, path + "?limit=3")
    try:
        s.sendall(head[:20])               # a request half sent: read, not yet logged
        deadline = time.monotonic() + 5
        while not sb.busy() and time.monotonic() < deadline:
            time.sleep(0.001)
        assert sb.busy() and _logged(sb, path) == []
        s.sendall(head[20:])
        s.recv(1)
    finally:
        s.close()


def test_settle_waits_for_a_request_sent_before_it_was_called(sb):
    path = "/demo/offset/customers"
    s, head = _raw_get(sb, path + "?limit=3")
    late = threading.Timer(0.3, s.sendall, (head[20:],))
    try:
        s.sendall(head[:20])
        late.start()
        time.sleep(0.05)
        settle(sb)
        assert len(_logged(sb, path)) == 1    # settled only after it was logged
    finally:
        late.join()
        s.close()
    settle(sb)
    assert not sb.busy()
