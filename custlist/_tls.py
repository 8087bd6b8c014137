"""Which certificate authorities custlist trusts, resolved at run time.

A libcurl bundled into a wheel carries the CA path of the host it was built
on, which need not exist where the wheel is installed; so custlist always
tells libcurl which CAs to trust.  The first of these that is set wins:

1. the client's ``ca_bundle=`` setting (a PEM file, or a directory hashed
   with ``openssl rehash``);
2. ``SSL_CERT_FILE`` and/or ``SSL_CERT_DIR``;
3. ``CURL_CA_BUNDLE``;
4. ``REQUESTS_CA_BUNDLE``;
5. the ``certifi`` package, when it is installed;
6. the system's store, at its well-known location (Debian/Ubuntu,
   RHEL/Fedora, SUSE, Alpine, macOS/Homebrew);
7. otherwise the default libcurl was built with.

A setting or variable that names a path which does not exist is an error
(``ValueError``), not silently skipped.  Verification of the server's
certificate and host name is never switched off: there is no option for it.
"""
from __future__ import annotations

import importlib
import os
import typing

# Bundles first (one file, every CA), then hashed directories.
SYSTEM_FILES = (
    "/etc/ssl/certs/ca-certificates.crt",                 # Debian, Ubuntu, Alpine, Arch
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",  # RHEL, Fedora, CentOS
    "/etc/pki/tls/certs/ca-bundle.crt",                   # older RHEL, CentOS
    "/etc/ssl/ca-bundle.pem",                             # SUSE
    "/var/lib/ca-certificates/ca-bundle.pem",             # SUSE
    "/etc/ssl/cert.pem",                                  # Alpine, macOS, BSDs
    "/opt/homebrew/etc/ca-certificates/cert.pem",         # Homebrew (Apple silicon)
    "/usr/local/etc/ca-certificates/cert.pem",            # Homebrew (Intel)
)
SYSTEM_DIRS = ("/etc/ssl/certs", "/etc/pki/tls/certs", "/var/lib/ca-certificates/pem")

ENV_VARS = ("SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE")


class CA(typing.NamedTuple):
    """What libcurl is told to trust: ``file`` (a PEM bundle) and/or ``path``
    (a hashed directory), both None for libcurl's built-in default;
    ``source`` says where it came from."""

    file: str | None
    path: str | None
    source: str


def _file_or_dir(value: str, what: str) -> CA:
    if os.path.isdir(value):
        return CA(None, value, what)
    if os.path.isfile(value):
        return CA(value, None, what)
    raise ValueError(f"{what} names {value!r}, which is neither a file nor a directory")


def _certifi() -> str | None:
    try:
        certifi = importlib.import_module("certifi")      # optional: not a dependency
    except ImportError:
        return None
    where = certifi.where()
    return where if isinstance(where, str) and os.path.isfile(where) else None


def resolve_ca(ca_bundle: str | os.PathLike[str] | None = None,
               environ: typing.Mapping[str, str] | None = None) -> CA:
    """The CAs to trust, in the order the module docstring lists."""
    env = os.environ if environ is None else environ
    if ca_bundle is not None:
        if not isinstance(ca_bundle, (str, os.PathLike)) or not os.fspath(ca_bundle):
            raise TypeError("ca_bundle must be a path (str or os.PathLike) to a file or directory")
        return _file_or_dir(os.fsdecode(ca_bundle), "ca_bundle")
    cert_file, cert_dir = env.get("SSL_CERT_FILE"), env.get("SSL_CERT_DIR")
    if cert_file or cert_dir:
        if cert_file and not os.path.isfile(cert_file):
            raise ValueError(f"SSL_CERT_FILE names {cert_file!r}, which is not a file")
        if cert_dir and not os.path.isdir(cert_dir):
            raise ValueError(f"SSL_CERT_DIR names {cert_dir!r}, which is not a directory")
        return CA(cert_file or None, cert_dir or None,
                  "SSL_CERT_FILE" if cert_file else "SSL_CERT_DIR")
    for name in ("CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE"):
        if env.get(name):
            return _file_or_dir(env[name], name)
    where = _certifi()
    if where is not None:
        return CA(where, None, "certifi")
    for path in SYSTEM_FILES:
        if os.path.isfile(path):
            return CA(path, None, "system")
    for path in SYSTEM_DIRS:
        if os.path.isdir(path):
            return CA(None, path, "system")
    return CA(None, None, "libcurl default")
