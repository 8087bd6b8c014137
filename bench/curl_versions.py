"""custlist on libcurl 7.88.1 against custlist on the wheels' libcurl 8.x,
side by side in one run.

    python bench/curl_versions.py [--smoke] [--rounds N] [--pages N]

The extension is built twice from this tree, into bench/.work/curl-<version>/
(reused while the sources and the libcurl build are the same): once against
.ci/libcurl.sh's trimmed static libcurl of Debian 12's curl (7.88.1), once
against the same trimmed build of Debian unstable's curl (8.x, what the
wheels bundle).  Everything else is the same for both: compiler and flags,
this host's OpenSSL, nghttp2 and zlib, the Python code.

Each measurement runs in a child process that imports one copy, and the two
copies take turns on every endpoint, round after round; each figure is the
least of its rounds (other work on a shared machine only adds time).

- End to end: one listing of each of the four endpoints (bench.py's pages:
  --pages pages of 100 records, 200 by default) from nginx on loopback
  over plain HTTP/1.1, over TLS with HTTP/1.1, and over TLS with HTTP/2
  (libcurl's default over https: ALPN); the least wall time and the least
  client CPU time (the process's, every thread: libcurl's work included) of
  5 listings in the child.  nginx logs each request's protocol, and the run checks
  that each listener saw only its own.
- Fan-out: ACCOUNTS accounts x 5 pages of 50 records at concurrency 32
  through custlist's fan-out API, from nginx (HTTP/1.1, and TLS with HTTP/2:
  the listings share connections as streams) and from bench/fanout.py's
  server, which answers each request after 20 ms (HTTP/1.1).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import pathlib
import random
import shutil
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / ".work" / "curl-versions"
SUITES = {"bookworm": "7.88.1", "sid": "8.x"}        # Debian suite of curl's source -> label
KINDS = ("pyng", "natural", "invitations", "commenda")
FAN_RECORDS, FAN_PAGES, CONC = 50, 5, 32


# ---- the two builds -----------------------------------------------------------

def build_variant(suite: str) -> pathlib.Path:
    """This tree's custlist, its extension linked against the trimmed static
    libcurl of `suite`'s curl: the directory to put first on sys.path."""
    env = dict(os.environ, CUSTLIST_CURL_SUITE=suite)
    prefix = subprocess.run(["bash", str(REPO / ".ci" / "libcurl.sh")], env=env, check=True,
                            capture_output=True, text=True).stdout.strip()
    version = next(line.split()[1] for line in open(f"{prefix}/lib/pkgconfig/libcurl.pc")
                   if line.startswith("Version:"))
    h = hashlib.sha256(prefix.encode())
    for f in sorted(list((REPO / "csrc").iterdir()) + [REPO / "setup.py"]):
        h.update(f.name.encode() + f.read_bytes())
    out = WORK / f"curl-{version}"
    key = h.hexdigest()[:16]
    if (out / ".key").exists() and (out / ".key").read_text() == key:
        return out
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(REPO / "custlist", out / "custlist",
                    ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    env = dict(os.environ, PKG_CONFIG_PATH=f"{prefix}/lib/pkgconfig", CUSTLIST_LIBCURL_STATIC="1")
    subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--build-lib", str(out),
                    "--build-temp", str(out / "tmp")], cwd=REPO, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    shutil.rmtree(out / "tmp")
    (out / ".key").write_text(key)
    return out


# ---- the servers ----------------------------------------------------------------

def pki(d: pathlib.Path) -> None:
    """A CA and a certificate for 127.0.0.1 it signs."""
    def ossl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)
    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
         "-subj", "/CN=bench CA", "-keyout", "ca.key", "-out", "ca.pem",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=127.0.0.1",
         "-keyout", "server.key", "-out", "server.csr")
    (d / "ext").write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                           "extendedKeyUsage=serverAuth\n")
    ossl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
         "-days", "2", "-extfile", "ext", "-out", "server.pem")


def write_pages(www: pathlib.Path, base: str, pages: int, accounts: int) -> None:
    """bench.py's end-to-end pages (100 records, site_1 for Pyng) under
    e2e/, and the fan-out pages (FAN_RECORDS records, a folder per Pyng
    site, whose nextHref names it) under fan/; served at base/e2e and
    base/fan."""
    import bench
    for kind in KINDS:
        for n, body in enumerate(bench.site_bodies(kind, pages, base + "/e2e")):
            d = www / "e2e" / kind / ("site_1" if kind == "pyng" else "")
            d.mkdir(parents=True, exist_ok=True)
            (d / f"p{'' if n == 0 else n}.json").write_bytes(body)
        items = bench.page_items(kind, random.Random(3), FAN_RECORDS)
        for p in range(FAN_PAGES):
            body = bench.render(kind, items, p + 1 if p + 1 < FAN_PAGES else None, base + "/fan",
                                total=FAN_PAGES * FAN_RECORDS)
            sites = [f"site_{a}" for a in range(accounts)] if kind == "pyng" else [""]
            for site in sites:
                d = www / "fan" / kind / site
                d.mkdir(parents=True, exist_ok=True)
                b = body.replace(b"/site_1/customers?limit=100&",
                                 b"/%s/customers?limit=%d&" % (site.encode(), FAN_RECORDS))
                (d / f"p{'' if p == 0 else p}.json").write_bytes(b)


def nginx_conf(ports: dict) -> str:
    """A server per protocol, each with pages that name its own base URL.
    The first page of a listing is p.json, page n pn.json (the cursor)."""
    def locations(mode):
        top = f"{WORK}/www-{mode}"
        return "\n".join(
            f"        location ~ ^/{d}{path}$ {{ root {top}/{d}; try_files {f}/p$arg_cursor.json =404; }}"
            for d in ("e2e", "fan")
            for path, f in (("/pyng/billing/sites/([^/]+)/customers", "/pyng/$1"),
                            ("/natural/customers", "/natural"),
                            ("/natural/customers/invitations", "/invitations"),
                            ("/commenda/customers", "/commenda")))
    listen = {"h1": "", "tls-h1": " ssl", "tls-h2": " ssl http2"}
    servers = "".join(f"""
    server {{
        listen 127.0.0.1:{port}{listen[mode]};
        access_log {WORK}/access-{mode}.log proto buffer=256k;
        ssl_certificate {WORK}/tls/server.pem; ssl_certificate_key {WORK}/tls/server.key;
        default_type application/json;
{locations(mode)}
    }}""" for mode, port in ports.items())
    return f"""
worker_processes 1;
pid {WORK}/nginx.pid;
error_log {WORK}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    log_format proto $server_protocol;
    keepalive_requests 1000000;
    http2_max_concurrent_streams 128;
    sendfile on; tcp_nodelay on;
    client_body_temp_path {WORK}/tmp; proxy_temp_path {WORK}/tmp; fastcgi_temp_path {WORK}/tmp;
    uwsgi_temp_path {WORK}/tmp; scgi_temp_path {WORK}/tmp;{servers}
}}
"""


# ---- the children -----------------------------------------------------------------

def child(variant: str, what: str, kind: str, base: str, n: int) -> dict:
    """In a process of its own: `variant`'s custlist lists `kind` from
    `base`; returns the least wall and CPU times over n listings (e2e), or
    those of one fan-out over n accounts (fan)."""
    sys.path.insert(0, variant)
    import custlist
    assert custlist._core.__file__.startswith(variant), custlist._core.__file__
    sys.path.insert(1, str(HERE))
    import bench
    import fanout
    if what == "e2e":
        start = bench.custlist_pagers(kind, base + "/e2e")
        expect = sum(1 for _ in start())                    # warm: connection, caches
        best, cpu = float("inf"), float("inf")
        for _ in range(n):
            t, c = time.perf_counter(), time.process_time()
            got = sum(1 for _ in start())
            best, cpu = min(best, time.perf_counter() - t), min(cpu, time.process_time() - c)
            assert got == expect
        return {"wall": best, "cpu": cpu, "records": expect, "libcurl": custlist._core.libcurl_version}
    ids = fanout.account_ids(kind, n)
    _, many = fanout.custlist_listings(kind, base, "bench-token", ids)
    t, c = time.perf_counter(), time.process_time()
    got = sum(1 for _ in many(ids, CONC))
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    assert got == n * FAN_PAGES * FAN_RECORDS, (kind, got)
    return {"wall": wall, "cpu": cpu, "records": got, "libcurl": custlist._core.libcurl_version}


def measure(variant, what, kind, base, n) -> dict:
    env = dict(os.environ, SSL_CERT_FILE=str(WORK / "tls" / "ca.pem"))
    out = subprocess.run([sys.executable, __file__, "child", str(variant), what, kind, base, str(n)],
                         capture_output=True, text=True, timeout=600, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{variant} {what} {kind} {base}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: proves it runs, times nothing")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--pages", type=int, default=200, help="pages of 100 records in a listing end to end")
    args = ap.parse_args()
    pages, reps, accounts = (3, 1, 4) if args.smoke else (args.pages, 5, 200)
    rounds = 1 if args.smoke else args.rounds
    variants = {label: build_variant(suite) for suite, label in SUITES.items()}
    sys.path.insert(0, str(HERE))
    import bench
    start_load = bench.load()
    import fanout
    shutil.rmtree(WORK / "tls", ignore_errors=True)
    (WORK / "tls").mkdir(parents=True)
    (WORK / "tmp").mkdir(exist_ok=True)
    pki(WORK / "tls")
    ports = {"h1": free_port(), "tls-h1": free_port(), "tls-h2": free_port()}
    bases = {m: f"{'http' if m == 'h1' else 'https'}://127.0.0.1:{p}" for m, p in ports.items()}
    for mode, base in bases.items():
        (WORK / f"access-{mode}.log").unlink(missing_ok=True)
        shutil.rmtree(WORK / f"www-{mode}", ignore_errors=True)
        write_pages(WORK / f"www-{mode}", base, pages, accounts)
    conf = WORK / "nginx.conf"
    conf.write_text(nginx_conf(ports))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    subprocess.run([nginx, "-c", str(conf), "-p", str(WORK)], check=True)
    slow = fanout.Server(accounts, FAN_PAGES, fanout.LATENCY if not args.smoke else 0.005, 0)
    results: dict = {}
    try:
        time.sleep(0.3)
        jobs = [("e2e", mode, kind) for mode in bases for kind in KINDS]
        jobs += [("fan", mode, kind) for mode in ("h1", "tls-h2") for kind in KINDS]
        jobs += [("fan", "20ms", kind) for kind in KINDS]
        for r in range(rounds):
            for what, mode, kind in jobs:
                order = list(variants.items())
                if r % 2:
                    order.reverse()                 # neither copy always goes first
                for label, variant in order:
                    base = slow.base if mode == "20ms" else bases[mode] + ("" if what == "e2e" else "/fan")
                    res = measure(variant, what, kind, base, reps if what == "e2e" else accounts)
                    key = (what, mode, kind, label)
                    prev = results.setdefault(key, res)
                    prev["wall"], prev["cpu"] = min(prev["wall"], res["wall"]), min(prev["cpu"], res["cpu"])
            print(f"round {r + 1}/{rounds} done (load {bench.load()})", file=sys.stderr)
    finally:
        slow.close()
        # a graceful stop writes out the buffered access logs
        subprocess.run([nginx, "-c", str(conf), "-p", str(WORK), "-s", "quit"], capture_output=True)
        deadline = time.time() + 10
        while (WORK / "nginx.pid").exists() and time.time() < deadline:
            time.sleep(0.05)
    versions = {label: results[("e2e", "h1", "pyng", label)]["libcurl"] for label in variants}
    # (the machine line's libcurl is this process's, which measures nothing)
    print(bench.machine_line().replace(f"libcurl {bench.custlist._core.libcurl_version}; ", ""))
    print(f"\nlibcurl: {', '.join(f'{v}' for v in versions.values())}; rounds: {rounds}; "
          f"load at the start {start_load}, at the end {bench.load()}")
    # What nginx saw: every request over the protocol its listener is for.
    seen = {mode: sorted(set((WORK / f"access-{mode}.log").read_text().split())) for mode in bases}
    print("requests by protocol, as nginx logged them: "
          + "; ".join(f"{mode} listener: {', '.join(p)}" for mode, p in seen.items()))
    assert seen == {"h1": ["HTTP/1.1"], "tls-h1": ["HTTP/1.1"], "tls-h2": ["HTTP/2.0"]}, seen
    proto = {"h1": "HTTP/1.1", "tls-h1": "HTTPS, HTTP/1.1", "tls-h2": "HTTPS, HTTP/2",
             "20ms": "HTTP/1.1, 20 ms a response"}
    old, new = versions["7.88.1"], versions["8.x"]
    for what, title in (("e2e", f"End to end: one listing of {pages} pages x 100 records from nginx "
                                f"(wall and CPU each the least of {reps} listings x {rounds} rounds)"),
                        ("fan", f"Fan-out: {accounts} accounts x {FAN_PAGES} pages x {FAN_RECORDS} records, "
                                f"concurrency {CONC} (wall and CPU each the least of {rounds} rounds)")):
        rows = []
        for (w, mode, kind, label), res in results.items():
            if w != what or label != "7.88.1":
                continue
            a, b = res, results[(w, mode, kind, "8.x")]
            rows.append([kind, proto[mode], f"{a['wall'] * 1e3:.1f} ms", f"{b['wall'] * 1e3:.1f} ms",
                         f"{a['records'] / a['wall']:,.0f}", f"{b['records'] / b['wall']:,.0f}",
                         f"{a['wall'] / b['wall']:.2f}x",
                         f"{a['cpu'] / a['records'] * 1e9:,.0f} ns", f"{b['cpu'] / b['records'] * 1e9:,.0f} ns",
                         f"{a['cpu'] / b['cpu']:.2f}x"])
        bench.table(title, ["endpoint", "protocol", f"wall, {old}", f"wall, {new}",
                            f"records/s, {old}", f"records/s, {new}", f"records/s {new} / {old}",
                            f"client CPU/record, {old}", f"client CPU/record, {new}",
                            f"CPU {old} / {new}"], rows)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        print(json.dumps(child(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]))))
    else:
        main()
