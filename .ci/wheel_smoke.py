"""Smoke test of an installed custlist wheel, run by .ci/wheel-check.sh inside
a bare Debian root (no compiler, no libcurl): list customers from the
bundled sandbox over http on loopback, and checks that the engine runs on
the libraries the wheel bundles.

    python3 wheel_smoke.py [--https CA_PEM CERT_PEM KEY_PEM]

With --https it also lists them from the sandbox served over TLS with a
certificate the given CA signed: trusted through SSL_CERT_FILE, and refused
without it (the wheel's libcurl has no CA path of its own)."""
import os
import struct
import sys

import custlist
import custlist._core as core
from custlist.testing import Sandbox


def fail(msg: str) -> None:
    print(f"wheel smoke: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def needed(path: str) -> list:
    """The DT_NEEDED entries of a 64-bit little-endian ELF shared object."""
    data = open(path, "rb").read()
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    dynamic = next(s for s in sections if s[1] == 6)            # SHT_DYNAMIC
    strtab = sections[dynamic[6]]                               # its sh_link: .dynstr
    names = []
    for off in range(dynamic[4], dynamic[4] + dynamic[5], 16):
        tag, val = struct.unpack_from("<qQ", data, off)
        if tag == 1:                                            # DT_NEEDED
            start = strtab[4] + val
            names.append(data[start:data.index(b"\0", start)].decode())
    return names


def check_libraries() -> None:
    """The extension is the wheel's, libcurl is linked into it, and it uses
    the wheel's OpenSSL, linked into it or bundled beside it, and the
    wheel's nghttp2 (Python's own ssl module may load the system's OpenSSL
    beside them)."""
    if "-packages/custlist/" not in core.__file__:
        fail(f"custlist._core imported from {core.__file__}, not an installed wheel")
    mapped = {line.split()[-1] for line in open("/proc/self/maps") if ".so" in line}
    for lib in mapped:
        name = os.path.basename(lib)
        if name.startswith("libcurl"):
            fail(f"a shared libcurl is loaded: {lib}")
        if name.startswith("libnghttp2") and "/custlist.libs/" not in lib:
            fail(f"{lib} is loaded from the system, not from the wheel")
    deps = needed(core.__file__)
    for name in ("libssl", "libcrypto", "libnghttp2"):
        linked_in = name != "libnghttp2" and not any(d.startswith(name) for d in deps)
        if not linked_in and not any(f"/custlist.libs/{name}" in lib for lib in mapped):
            fail(f"the wheel's {name} is not loaded (the extension needs {deps})")
    # The wheels bundle a current libcurl (8.x), not a distribution's older one.
    if int(core.libcurl_version.split(".")[0]) < 8:
        fail(f"the wheel's libcurl is {core.libcurl_version}, not 8.x")
    # A free-threaded build's wheel (cpXYt) leaves the GIL off.
    import sysconfig
    if sysconfig.get_config_var("Py_GIL_DISABLED") and sys._is_gil_enabled():
        fail("importing custlist turned the GIL on")


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


SIZES = {"pyng": 60, "natural": 45, "natural-inv": 30, "commenda": 40}


def sandbox(ssl_context=None) -> Sandbox:
    return Sandbox(pyng_customers=SIZES["pyng"], natural_customers=SIZES["natural"],
                   natural_invitations=SIZES["natural-inv"], commenda_customers=SIZES["commenda"],
                   ssl_context=ssl_context)


def main(argv: list) -> None:
    check_libraries()
    with sandbox() as sb:
        plain = listing(sb, sb.url)
    counts = {k: sum(1 for r in plain if r[0] == k) for k in SIZES}
    if counts != SIZES:
        fail(f"http listing counts {counts}")
    if len(set(plain)) != len(plain):
        fail("http listing repeated a record")
    print(f"wheel smoke: http: {len(plain)} records, libcurl {core.libcurl_version}")
    if argv[:1] == ["--https"]:
        import ssl
        ca, cert, key = argv[1:4]
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        with sandbox(ctx) as sb:
            if not sb.url.startswith("https://127.0.0.1:"):
                fail(f"the TLS sandbox serves {sb.url}")
            os.environ.pop("SSL_CERT_FILE", None)
            try:
                listing(sb, sb.url)
            except custlist.TransportError as e:
                if "certificate" not in str(e).lower():
                    fail(f"untrusted server refused for another reason: {e}")
            else:
                fail("a server signed by an unknown CA was trusted")
            os.environ["SSL_CERT_FILE"] = ca
            secure = listing(sb, sb.url)
        if secure != plain:
            fail("https listing differs from the http one")
        print(f"wheel smoke: https: {len(secure)} records with the CA from SSL_CERT_FILE; "
              "refused without it")
    print("wheel smoke: ok")


if __name__ == "__main__":
    main(sys.argv[1:])
