"""custlist.fan_out multiplexes HTTP/2 streams over one connection when the
server offers HTTP/2: a real nginx on loopback (TLS with a CA made in the
test, `http2` on the listener) serves static pages, and its access log says
which connection and protocol each request came on."""
import json
import os
import shutil
import socket
import subprocess
import time

import pytest

import custlist
from custlist import BearerToken, Client, Endpoint, Field, HrefPaging, Record

from .netkit import make_pki

SOURCES, PAGES, PER_PAGE, CONCURRENCY = 12, 3, 5, 8


class Item(Record):
    id = Field(str)
    n = Field(int)


ITEMS = Endpoint("/s/p1.json", Item, HrefPaging(items="items", next_href="next"))


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if found is None:
        pytest.fail("these tests need nginx (Debian: apt-get install nginx-light; `make sysdeps` does)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_pages(root, base: str) -> dict:
    """/s{N}/p{1..PAGES}.json, each page's `next` the URL of the following one."""
    want = {}
    for s in range(SOURCES):
        os.makedirs(os.path.join(root, f"s{s}"))
        want[s] = []
        for p in range(1, PAGES + 1):
            items = [{"id": f"s{s}-p{p}-{i}", "n": i} for i in range(PER_PAGE)]
            want[s] += [it["id"] for it in items]
            nxt = f"{base}/s{s}/p{p + 1}.json" if p < PAGES else None
            with open(os.path.join(root, f"s{s}", f"p{p}.json"), "w") as f:
                json.dump({"items": items, "next": nxt}, f)
    return want


@pytest.fixture(scope="module")
def h2_nginx(tmp_path_factory):
    binary = nginx_binary()
    certs = str(tmp_path_factory.mktemp("pki"))
    pki = make_pki(certs)
    work = str(tmp_path_factory.mktemp("nginx"))
    port = free_port()
    base = f"https://127.0.0.1:{port}"
    root = os.path.join(work, "www")
    want = write_pages(root, base)
    os.mkdir(os.path.join(work, "tmp"))
    conf = os.path.join(work, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""
daemon off;
master_process off;
pid {work}/nginx.pid;
error_log {work}/error.log;
events {{ worker_connections 256; }}
http {{
    log_format h2 '$connection $server_protocol $request_uri';
    access_log {work}/access.log h2;
    client_body_temp_path {work}/tmp; proxy_temp_path {work}/tmp; fastcgi_temp_path {work}/tmp;
    uwsgi_temp_path {work}/tmp; scgi_temp_path {work}/tmp;
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {certs}/server.pem;
        ssl_certificate_key {certs}/server.key;
        root {root};
        default_type application/json;
    }}
}}
""")
    proc = subprocess.Popen([binary, "-c", conf, "-p", work, "-e", os.path.join(work, "error.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                pytest.fail(f"nginx did not start: {proc.stderr.read().decode(errors='replace')}")
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("nginx did not listen within 10 s")
                time.sleep(0.05)
        yield base, pki.ca, want, os.path.join(work, "access.log")
    finally:
        proc.kill()
        proc.wait(timeout=10)
        proc.stderr.close()


def read_log(path: str, lines: int) -> list[tuple[str, str, str]]:
    """The access log once it holds `lines` lines, or as it stands after 5 s.
    nginx writes a request's line when it closes the stream, which can be
    after the client has read the whole answer, so the last listing's last
    page may not be in the log yet when the listing ends."""
    deadline = time.monotonic() + 5
    while True:
        with open(path) as f:
            log = [tuple(line.split()) for line in f if line.strip()]
        if len(log) >= lines or time.monotonic() > deadline:
            return log
        time.sleep(0.01)


def test_fan_out_multiplexes_http2_streams_on_one_connection(h2_nginx):
    base, ca, want, access_log = h2_nginx
    open(access_log, "w").close()              # nginx appends (O_APPEND): truncating is safe
    client = Client(base_url=base, auth=BearerToken("unused"), ca_bundle=ca,
                    timeout=10, connect_timeout=5, max_retries=0)
    out = custlist.fan_out({s: client.paginate(ITEMS, f"/s{s}/p1.json") for s in want},
                           concurrency=CONCURRENCY)
    got: dict = {}
    for source, rec in out:
        got.setdefault(source, []).append(rec.id)
    assert got == want                         # every record once, in each listing's order
    assert out.summary.ok and out.summary.records == SOURCES * PAGES * PER_PAGE
    log = read_log(access_log, SOURCES * PAGES)
    assert sorted(uri for _, _, uri in log) == sorted(
        f"/s{s}/p{p}.json" for s in want for p in range(1, PAGES + 1))
    assert {proto for _, proto, _ in log} == {"HTTP/2.0"}
    connections = {conn for conn, _, _ in log}
    # 36 requests, 8 at a time: the streams share one connection (two at
    # most, should a second be opened while the first is still in its
    # handshake); one connection per transfer would show up to 8 here.
    assert len(connections) <= 2, f"{len(connections)} connections: {sorted(log)}"


class Row(Record):
    id = Field(str)


OFFSET_ROWS, OFFSET_LIMIT = 60, 5
BY_OFFSET = Endpoint("/o/rows", Row, custlist.OffsetPaging(items="items", offset="offset",
                                                           limit="limit", total="total"),
                     default_page_size=OFFSET_LIMIT)


@pytest.fixture(scope="module")
def h2_offset_nginx(tmp_path_factory):
    """nginx over TLS with HTTP/2 serving one offset-paged listing: the page
    at ?offset=N is the file o/N.json."""
    binary = nginx_binary()
    certs = str(tmp_path_factory.mktemp("pki"))
    pki = make_pki(certs)
    work = str(tmp_path_factory.mktemp("nginx"))
    port = free_port()
    root = os.path.join(work, "www")
    os.makedirs(os.path.join(root, "o"))
    rows = [f"r{i:03d}" for i in range(OFFSET_ROWS)]
    for at in range(0, OFFSET_ROWS, OFFSET_LIMIT):
        with open(os.path.join(root, "o", f"{at}.json"), "w") as f:
            json.dump({"items": [{"id": r} for r in rows[at:at + OFFSET_LIMIT]],
                       "total": OFFSET_ROWS}, f)
    os.mkdir(os.path.join(work, "tmp"))
    conf = os.path.join(work, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""
daemon off;
master_process off;
pid {work}/nginx.pid;
error_log {work}/error.log;
events {{ worker_connections 256; }}
http {{
    log_format h2 '$connection $server_protocol $request_uri';
    access_log {work}/access.log h2;
    client_body_temp_path {work}/tmp; proxy_temp_path {work}/tmp; fastcgi_temp_path {work}/tmp;
    uwsgi_temp_path {work}/tmp; scgi_temp_path {work}/tmp;
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {certs}/server.pem;
        ssl_certificate_key {certs}/server.key;
        root {root};
        default_type application/json;
        location = /o/rows {{ try_files /o/$arg_offset.json =404; }}
    }}
}}
""")
    proc = subprocess.Popen([binary, "-c", conf, "-p", work, "-e", os.path.join(work, "error.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                pytest.fail(f"nginx did not start: {proc.stderr.read().decode(errors='replace')}")
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("nginx did not listen within 10 s")
                time.sleep(0.05)
        yield f"https://127.0.0.1:{port}", pki.ca, rows, os.path.join(work, "access.log")
    finally:
        proc.kill()
        proc.wait(timeout=10)
        proc.stderr.close()


def test_parallel_pages_of_one_listing_share_http2_connections(h2_offset_nginx):
    base, ca, rows, access_log = h2_offset_nginx
    open(access_log, "w").close()
    client = Client(base_url=base, auth=BearerToken("unused"), ca_bundle=ca,
                    timeout=10, connect_timeout=5, max_retries=0)
    pager = client.paginate(BY_OFFSET, "/o/rows", {"limit": OFFSET_LIMIT}, concurrency=8)
    assert [r.id for r in pager] == rows and pager.done
    pages = OFFSET_ROWS // OFFSET_LIMIT
    log = read_log(access_log, pages)
    assert len(log) == pages and {proto for _, proto, _ in log} == {"HTTP/2.0"}
    # the first page on the first page's own connection; the other 11, 8 at
    # a time, as streams of one (two, should a second open during the
    # first's handshake) on the multi handle
    assert sorted(uri for _, _, uri in log) == sorted(
        f"/o/rows?offset={at}&limit={OFFSET_LIMIT}" for at in range(0, OFFSET_ROWS, OFFSET_LIMIT))
    later = {conn for conn, _, uri in log if uri != f"/o/rows?offset=0&limit={OFFSET_LIMIT}"}
    assert len(later) <= 2, sorted(log)
