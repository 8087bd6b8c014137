"""Smoke test of an installed custlist wheel, run by .ci/wheel-check.sh inside
a bare Debian root (no compiler, no libcurl): list customers from the
bundled sandbox over http on loopback, and checks that the engine runs on
the libraries the wheel bundles.

    python3 wheel_smoke.py [--https CA_PEM CERT_PEM KEY_PEM]

With --https it also lists them through a TLS server on loopback whose
certificate the given CA signed: trusted through SSL_CERT_FILE, and refused
without it."""
import os
import select
import socket
import sys
import threading

import custlist
import custlist._core as core
from custlist.testing import Sandbox


def fail(msg: str) -> None:
    print(f"wheel smoke: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def check_libraries() -> None:
    """The extension is the wheel's, libcurl is linked into it, and it loaded
    the wheel's copies of OpenSSL and nghttp2 (Python's own ssl module may
    load the system's OpenSSL beside them)."""
    site = os.path.dirname(os.path.dirname(core.__file__))
    if not core.__file__.startswith(site) or "site-packages" not in site and "dist-packages" not in site:
        fail(f"custlist._core imported from {core.__file__}, not an installed wheel")
    mapped = {line.split()[-1] for line in open("/proc/self/maps") if ".so" in line}
    for lib in mapped:
        name = os.path.basename(lib)
        if name.startswith("libcurl"):
            fail(f"a shared libcurl is loaded: {lib}")
        if name.startswith("libnghttp2") and "/custlist.libs/" not in lib:
            fail(f"{lib} is loaded from the system, not from the wheel")
    for name in ("libssl", "libcrypto", "libnghttp2"):
        if not any(f"/custlist.libs/{name}" in lib for lib in mapped):
            fail(f"the wheel's {name} is not loaded")


def listing(sb: Sandbox, base: str) -> list:
    """Every customer of all four endpoints, as comparable tuples."""
    insecure = base.startswith("http:")
    pyng = custlist.Pyng(token=sb.pyng_token, base_url=base + "/pyng", allow_insecure_http=insecure)
    nat = custlist.Natural(token=sb.natural_token, base_url=base + "/natural",
                           allow_insecure_http=insecure)
    cm = custlist.Commenda(token=sb.commenda_token, base_url=base + "/commenda/api/v1",
                           allow_insecure_http=insecure)
    rows = [("pyng", c.customer_reference) for c in pyng.customers(site_id="site_1", limit=25)]
    rows += [("natural", c.id) for c in nat.customers(limit=20)]
    rows += [("natural-inv", c.id) for c in nat.customer_invitations(limit=20)]
    rows += [("commenda", c.id) for c in cm.customers(corporation_id="corp_123", limit=15)]
    return rows


class TLSFront:
    """A TLS server on loopback passing each connection through to the
    sandbox (one thread per connection, one select loop each)."""

    def __init__(self, backend: tuple, cert: str, key: str):
        import ssl
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.backend = backend
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            conn, _ = self.sock.accept()
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            tls = self.ctx.wrap_socket(raw, server_side=True)
        except OSError:          # the refused handshake of the untrusting client
            raw.close()
            return
        back = socket.create_connection(self.backend)
        try:
            while True:
                ready, _, _ = select.select([tls, back], [], [], 30)
                if not ready:
                    return
                if tls in ready or tls.pending():
                    data = tls.recv(65536)
                    if not data:
                        return
                    back.sendall(data)
                if back in ready:
                    data = back.recv(65536)
                    if not data:
                        return
                    tls.sendall(data)
        except OSError:
            return
        finally:
            tls.close()
            back.close()


def main(argv: list) -> None:
    check_libraries()
    with Sandbox(pyng_customers=60, natural_customers=45, natural_invitations=30,
                 commenda_customers=40) as sb:
        plain = listing(sb, sb.url)
        counts = {k: sum(1 for r in plain if r[0] == k) for k in ("pyng", "natural", "natural-inv", "commenda")}
        if counts != {"pyng": 60, "natural": 45, "natural-inv": 30, "commenda": 40}:
            fail(f"http listing counts {counts}")
        if len(set(plain)) != len(plain):
            fail("http listing repeated a record")
        print(f"wheel smoke: http: {len(plain)} records, libcurl {core.libcurl_version}")
        if argv[:1] == ["--https"]:
            ca, cert, key = argv[1:4]
            host, port = sb.url.rsplit("/", 1)[1].split(":")
            front = TLSFront((host, int(port)), cert, key)
            base = f"https://127.0.0.1:{front.port}"
            os.environ.pop("SSL_CERT_FILE", None)
            try:
                listing(sb, base)
            except custlist.TransportError as e:
                if "certificate" not in str(e).lower():
                    fail(f"untrusted server refused for another reason: {e}")
            else:
                fail("a server signed by an unknown CA was trusted")
            os.environ["SSL_CERT_FILE"] = ca
            secure = listing(sb, base)
            if secure != plain:
                fail("https listing differs from the http one")
            print(f"wheel smoke: https: {len(secure)} records, untrusted CA refused")
    print("wheel smoke: ok")


if __name__ == "__main__":
    main(sys.argv[1:])
