"""Which proxy a request goes through, decided in one place for the API
requests and the OAuth token request alike.

libcurl is always handed an explicit proxy (or none) and never reads the
environment itself.  For a request to ``url``:

1. a loopback host (``localhost``, ``*.localhost``, 127.0.0.0/8, ``::1``)
   never goes through a proxy;
2. the client's ``proxy=`` setting, when given: a proxy URL, or ``""`` for
   no proxy whatever the environment says;
3. otherwise the environment, the lower-case name winning over the
   upper-case one: ``https_proxy``/``HTTPS_PROXY`` for https URLs,
   ``http_proxy``/``HTTP_PROXY`` for http URLs (``HTTP_PROXY`` is ignored
   when ``REQUEST_METHOD`` is set, as in a CGI script, where a client can
   set it), then ``all_proxy``/``ALL_PROXY``; a variable set to "" (or
   blanks) counts as not set, as libcurl reads it: an empty ``https_proxy``
   leaves ``HTTPS_PROXY`` and then ``all_proxy`` to decide (``proxy=""``
   is the way to say "no proxy"); ``no_proxy``/``NO_PROXY``
   lists hosts reached directly: ``*``, host names (matching subdomains
   too, with or without a leading dot), IP addresses or CIDR ranges, each
   optionally with ``:port``.

A proxy URL without a scheme is an http proxy.  Plain http through a proxy
is refused unless the client has ``allow_insecure_http=True``: the proxy
would read the credentials.
"""
from __future__ import annotations

import ipaddress
import os
import typing
import urllib.parse

from . import errors as _errors
from ._spec import _is_loopback

PROXY_SCHEMES = ("http", "https", "socks4", "socks4a", "socks5", "socks5h")


def _env(env: typing.Mapping[str, str], name: str) -> str | None:
    """The lower-case variable, else the upper-case one; empty or blank
    counts as unset (libcurl's curl_getenv reads "" as not set)."""
    value = (env.get(name.lower()) or "").strip()
    if not value and not (name.upper() == "HTTP_PROXY" and "REQUEST_METHOD" in env):
        value = (env.get(name.upper()) or "").strip()
    return value or None


def _host_matches(host: str, port: int | None, entry: str) -> bool:
    entry = entry.strip().lower()
    if not entry:
        return False
    if entry == "*":
        return True
    want_port = None
    if entry.startswith("["):                              # [::1]:8080
        addr, _, rest = entry[1:].partition("]")
        entry, want_port = addr, rest[1:] or None
    elif entry.count(":") == 1:                            # host:port
        entry, want_port = entry.split(":")
    if want_port is not None and (not want_port.isdigit() or int(want_port) != port):
        return False
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None:
        try:
            return ip in ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return False
    entry = entry.lstrip(".")
    return host == entry or host.endswith("." + entry)


def bypassed(host: str, port: int | None, no_proxy: str | None) -> bool:
    """True when ``no_proxy`` (comma- or space-separated) covers host:port."""
    if not no_proxy:
        return False
    entries = no_proxy.replace(",", " ").split()
    return any(_host_matches(host.lower().strip("[]"), port, e) for e in entries)


def check_proxy(proxy: str) -> str:
    """A proxy URL as libcurl should get it (scheme made explicit)."""
    if "://" not in proxy:
        proxy = "http://" + proxy
    parts = urllib.parse.urlsplit(proxy)
    if parts.scheme.lower() not in PROXY_SCHEMES or not parts.hostname:
        # not echoed: a proxy URL may carry a password
        raise ValueError(f"proxy must be a URL with a host and one of the schemes "
                         f"{', '.join(PROXY_SCHEMES)}")
    return proxy


def resolve_proxy(url: str, proxy: str | None = None, *, allow_insecure_http: bool = False,
                  environ: typing.Mapping[str, str] | None = None) -> str:
    """The proxy for a request to ``url``; ``""`` for a direct connection."""
    if proxy is not None and not isinstance(proxy, str):
        raise TypeError("proxy must be a str (a proxy URL, or '' for none) or None")
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if _is_loopback(host):
        return ""
    if proxy is None:
        env = os.environ if environ is None else environ
        if bypassed(host, parts.port or (443 if parts.scheme == "https" else 80),
                    _env(env, "no_proxy")):
            return ""
        proxy = _env(env, f"{parts.scheme}_proxy") or _env(env, "all_proxy") or ""
    if not proxy:
        return ""
    proxy = check_proxy(proxy)
    if parts.scheme == "http" and not allow_insecure_http:
        raise _errors.UnsafeURLError(
            f"refusing plain http to {host} through the proxy {urllib.parse.urlsplit(proxy).hostname}: "
            "the proxy would read the credentials (use https, or pass allow_insecure_http=True "
            "to accept)")
    return proxy
