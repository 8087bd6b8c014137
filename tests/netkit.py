"""Real loopback servers for the transport tests: a recording HTTP server,
an HTTP proxy (CONNECT tunnels and absolute-URI forwarding) that records
what crosses it, and a certificate authority made with the openssl CLI."""
from __future__ import annotations

import os
import select
import shutil
import socket
import ssl
import subprocess
import threading
import types
import urllib.parse


def read_head(conn: socket.socket) -> tuple[bytes, bytes]:
    """(request head up to the blank line, bytes already read past it)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


class _Listener:
    """A loopback listener serving each connection on a thread of its own."""

    def __init__(self, host: str) -> None:
        self.sock = socket.create_server((host, 0))
        self.host, self.port = self.sock.getsockname()[:2]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.sock.close()


class Recorder(_Listener):
    """A loopback HTTP server that records every request (head text and
    body) and answers each with ``respond(conn)``, one request per
    connection.  The default answer is a valid OAuth token response."""

    TOKEN = "token-from-the-recorder"

    def __init__(self, host: str = "127.0.0.1", respond=None):
        self.requests: list[tuple[str, bytes]] = []
        self.respond = respond or self.token_response
        self.sent = 0                  # body bytes a streaming `respond` managed to send
        super().__init__(host)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def token_response(self, conn: socket.socket) -> None:
        body = b'{"access_token":"%s","token_type":"bearer","expires_in":3600}' % self.TOKEN.encode()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                head, rest = read_head(conn)
                need = content_length(head)
                while len(rest) < need:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    rest += chunk
                self.requests.append((head.decode("latin-1"), rest))
                self.respond(conn)
            except OSError:
                pass



class Proxy(_Listener):
    """A loopback HTTP proxy.  CONNECT opens a tunnel; an absolute-URI
    request is forwarded.  ``hosts`` maps the names it may reach to loopback
    (host, port) pairs: it reaches nothing else.  ``seen`` holds every
    request head clients sent it, ``tunneled`` every byte clients sent
    through a tunnel."""

    def __init__(self, hosts: dict | None = None):
        self.hosts = dict(hosts or {})
        self.seen: list[str] = []
        self.tunneled = bytearray()
        super().__init__("127.0.0.1")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _upstream(self, host: str, port: int) -> socket.socket:
        return socket.create_connection(self.hosts.get((host, port)) or self.hosts[host], timeout=10)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                while self._one(conn):
                    pass
            except (OSError, KeyError, ValueError):
                pass

    def _one(self, conn: socket.socket) -> bool:
        head, rest = read_head(conn)
        if not head:
            return False
        text = head.decode("latin-1")
        self.seen.append(text)
        method, target, _ = text.split("\r\n")[0].split(" ")
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            with self._upstream(host, int(port)) as up:
                conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                if rest:
                    self.tunneled += rest
                    up.sendall(rest)
                self._pump(conn, up)
            return False
        url = urllib.parse.urlsplit(target)
        need = content_length(head)
        while len(rest) < need:
            rest += conn.recv(65536)
        lines = [f"{method} {url.path or '/'}{'?' + url.query if url.query else ''} HTTP/1.1"]
        lines += [h for h in text.split("\r\n")[1:]
                  if h.split(":")[0].lower() not in ("connection", "proxy-connection")]
        lines.append("Connection: close")
        with self._upstream(url.hostname, url.port or 80) as up:
            up.sendall("\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + rest)
            while True:
                chunk = up.recv(65536)
                if not chunk:
                    break
                conn.sendall(chunk)
        return False

    def _pump(self, client: socket.socket, up: socket.socket) -> None:
        up.settimeout(None)
        while True:
            ready, _, _ = select.select([client, up], [], [], 10)
            if not ready:
                return
            for s in ready:
                data = s.recv(65536)
                if not data:
                    return
                if s is client:
                    self.tunneled += data
                    up.sendall(data)
                else:
                    client.sendall(data)



def _openssl(*args: str, cwd: str) -> str:
    return subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout


def make_ca(directory: str, name: str) -> str:
    """A self-signed CA certificate and key (name.pem, name.key)."""
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
             "-subj", f"/CN=custlist {name}", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)
    return os.path.join(directory, f"{name}.pem")


def make_pki(directory: str, server_name: str = "api.custlist.test"):
    """A test CA, a server certificate it signed for ``server_name``,
    localhost and 127.0.0.1, the CA as a hashed directory, and an unrelated
    second CA.  Needs the openssl command (Debian: the openssl package)."""
    if shutil.which("openssl") is None:
        raise RuntimeError("these tests need the openssl command (apt-get install openssl)")
    ca = make_ca(directory, "ca")
    other = make_ca(directory, "other-ca")
    with open(os.path.join(directory, "server.ext"), "w") as f:
        f.write(f"subjectAltName=DNS:{server_name},DNS:localhost,IP:127.0.0.1\n"
                "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "server.key", "-out", "server.csr", "-subj", f"/CN={server_name}",
             cwd=directory)
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext",
             cwd=directory)
    ca_dir = os.path.join(directory, "ca-dir")
    os.mkdir(ca_dir)
    digest = _openssl("x509", "-hash", "-noout", "-in", "ca.pem", cwd=directory).strip()
    shutil.copy(ca, os.path.join(ca_dir, f"{digest}.0"))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(directory, "server.pem"), os.path.join(directory, "server.key"))
    return types.SimpleNamespace(ca=ca, other_ca=other, ca_dir=ca_dir, server_context=ctx,
                                 server_name=server_name)
