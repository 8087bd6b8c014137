"""The ``custlist`` command.

    custlist demo                                    list every endpoint of the bundled sandbox
    custlist sandbox [--port P]                      serve the sandbox; prints export lines
    custlist pyng customers --site-id S [...]        list for real (credentials from the environment)
    custlist natural customers | invitations [...]
    custlist commenda customers --corporation-id C [...]
    custlist ... -o FILE [--format jsonl|csv|parquet] [--resume STATE.json] [--max-items N]
                                                     export to a file, resumable exactly

A mistake is one line on stderr and an exit code: 2 for usage (bad option,
missing credentials), 1 for an API or transport failure, 130 for Ctrl-C.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import csv
import datetime as _dt
import enum
import functools
import json
import logging
import os
import re
import shlex
import signal
import sys
import time
from typing import Any, Callable, NoReturn, Sequence

from . import __version__, _core, errors
from ._display import _cell_text, jsonable, pad, text_width, visible
from .pyng import API_VERSION as PYNG_API_VERSION

FORMATS = ("jsonl", "csv", "table", "parquet")

ENV_HELP = """environment:
  CUSTLIST_PYNG_TOKEN               Pyng access token, or instead
  CUSTLIST_PYNG_CLIENT_ID           Pyng OAuth client id ...
  CUSTLIST_PYNG_CLIENT_SECRET       ... and its secret
  CUSTLIST_PYNG_BASE_URL            Pyng API root (or --base-url; required for Pyng)
  CUSTLIST_NATURAL_TOKEN            Natural API key (sk_ntl_...)
  CUSTLIST_NATURAL_BASE_URL         Natural API root (default https://api.natural.co)
  CUSTLIST_COMMENDA_TOKEN           Commenda API token
  CUSTLIST_COMMENDA_BASE_URL        Commenda API root (default https://api.prod.commenda.io/api/v1)
  https_proxy, http_proxy, all_proxy, no_proxy (or upper-case)   the proxy (or --proxy)
  SSL_CERT_FILE, SSL_CERT_DIR, CURL_CA_BUNDLE, REQUESTS_CA_BUNDLE  trusted CAs (or --ca-bundle)
`custlist sandbox` prints these for the local sandbox, ready to paste."""

EXIT_API, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


class UsageError(Exception):
    """A mistake in the command line or its environment: exit 2."""


# ---------------------------------------------------------------------------
# Resume points that are exact to the record


def resume_token(checkpoint: dict[str, Any]) -> str | None:
    """The ``--resume`` value of a pager's checkpoint (opaque: base64 of its
    JSON), or None when there is nothing to resume: the listing is done, or
    it has not moved from its start."""
    if checkpoint["done"] or (checkpoint["page"] is None and checkpoint["skip"] == 0):
        return None
    raw = json.dumps(checkpoint, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_resume_token(token: str) -> dict[str, Any]:
    """The checkpoint in a value ``resume_token`` made; UsageError otherwise.
    (The listing checks it belongs to the same endpoint and options.)"""
    try:
        checkpoint = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, TypeError, binascii.Error):
        checkpoint = None
    if not isinstance(checkpoint, dict):
        raise UsageError("--resume: not a value printed by custlist's \"resume with\" line")
    return checkpoint


# ---------------------------------------------------------------------------
# Output


def field(rec: Any, path: str) -> Any:
    """The value at a dotted path ("party.name"); None where anything on
    the way is missing."""
    value = rec
    for name in path.split("."):
        value = value.get(name) if isinstance(value, dict) else getattr(value, name, None)
        if value is None:
            return None
    return value


def flat_columns(cls: Any, prefix: str = "") -> list[str]:
    """Every field of a record class, nested records spelled out (for CSV)."""
    out = []
    for name, f in cls.__field_defs__.items():
        if isinstance(f.type, type) and issubclass(f.type, _core.Record):
            out += flat_columns(f.type, prefix + name + ".")
        else:
            out.append(prefix + name)
    return out


# C1 controls (U+0080 to U+009F) that JSON may carry raw: written as \u
# escapes, the same JSON for a parser, and nothing a terminal would act on.
_C1 = re.compile("[\x80-\x9f]")


class JsonLines:
    def __init__(self, out, columns, widths) -> None:
        self.out = out

    def header(self) -> None:
        pass

    def row(self, rec: Any) -> None:
        line = json.dumps(jsonable(rec), ensure_ascii=False)
        self.out.write(_C1.sub(lambda m: f"\\u{ord(m.group()):04x}", line) + "\n")


# A cell a spreadsheet would run as a formula (or a DDE command): it starts
# with one of these.  A plain number (-12.50, +1e3) is data, not a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


class Csv:
    """CSV values are the data exactly, as a pipeline needs them; with
    ``escape_formulas`` (``--escape-formulas``, for files people open in a
    spreadsheet) a cell that would start a formula gets a leading ``'``, so
    the spreadsheet shows the text instead of running it."""

    def __init__(self, out, columns, widths, escape_formulas: bool = False) -> None:
        self.columns = columns
        self.writer = csv.writer(out, lineterminator="\n")
        self.escape_formulas = escape_formulas

    @staticmethod
    def defused(text: str) -> str:
        if text.startswith(_FORMULA_START) and not _NUMBER.fullmatch(text):
            return "'" + text
        return text

    def header(self) -> None:
        self.writer.writerow(self.columns)

    @staticmethod
    def _text(value: Any) -> str:
        value = jsonable(value)
        if value is None:
            return ""
        if isinstance(value, (list, dict)):
            return json.dumps(value, ensure_ascii=False)
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    def row(self, rec: Any) -> None:
        cells = [self._text(field(rec, c)) for c in self.columns]
        if self.escape_formulas:
            cells = [self.defused(c) for c in cells]
        self.writer.writerow(cells)


class Table:
    """Fixed-width columns, so that rows go out as they arrive."""

    def __init__(self, out, columns, widths) -> None:
        self.out = out
        self.columns = columns
        self.widths = [max(text_width(c), w) for c, w in zip(columns, widths)]

    def _line(self, cells) -> None:
        self.out.write("  ".join(pad(c, w) for c, w in zip(cells, self.widths)).rstrip() + "\n")

    def header(self) -> None:
        self._line(self.columns)
        self._line(["-" * w for w in self.widths])

    @staticmethod
    def _cell(value: Any, width: int) -> str:
        if value is None:
            return "-"
        if isinstance(value, _dt.datetime):
            return value.strftime("%Y-%m-%d %H:%M")
        if isinstance(value, tuple) and value and isinstance(value[0], _core.Record):
            return f"{len(value)} item" + ("s" if len(value) > 1 else "")
        return _cell_text(value, width) or "-"

    def row(self, rec: Any) -> None:
        self._line([self._cell(field(rec, c), w) for c, w in zip(self.columns, self.widths)])


WRITERS = {"jsonl": JsonLines, "csv": Csv, "table": Table}


def _writer(args) -> Callable[..., Any] | None:
    """The writer class of --format, with its options (None for parquet,
    which custlist._export writes itself)."""
    if args.escape_formulas:
        if args.format != "csv":
            raise UsageError("--escape-formulas applies to --format csv only")
        return functools.partial(Csv, escape_formulas=True)
    return WRITERS.get(args.format)


class Run:
    """A listing being written.  Ctrl-C stops it cleanly: the pager is
    closed (which wakes a transfer under way), but never in the middle of
    writing a page, so what was written and the checkpoint agree to the
    record."""

    def __init__(self, pager: Any) -> None:
        self.pager = pager
        self.written = 0
        self.writing = self.interrupted = False

    def on_sigint(self, signum: int, frame: Any) -> None:
        self.interrupted = True
        if not self.writing:
            self.pager.close()

    def __enter__(self) -> "Run":
        self.writing = True
        return self

    def __exit__(self, *exc: Any) -> None:
        self.writing = False
        if self.interrupted:
            self.pager.close()

    def emit(self, writer: Any) -> None:
        """Write the records page by page; the pager stops by itself at its
        max_items, or when Ctrl-C closes it."""
        with self:
            writer.header()
        for page in self.pager.pages():
            with self:
                for rec in page.items:
                    writer.row(rec)
                self.written += len(page.items)
                sys.stdout.flush()


# ---------------------------------------------------------------------------
# Endpoints

# (vendor, command) -> table columns and their widths
TABLE_COLUMNS = {
    ("pyng", "customers"): (("customer_reference", 24), ("state", 8), ("invited_at", 16),
                            ("expires_at", 16), ("linked_at", 16)),
    ("natural", "customers"): (("type", 21), ("id", 36), ("status", 9), ("email", 24),
                               ("created_at", 16), ("wallet_available_dollars", 12),
                               ("party.name", 24)),
    ("natural", "invitations"): (("id", 28), ("status", 8), ("created_at", 16),
                                 ("wallet_access", 8), ("party.name", 24),
                                 ("agent_invitations", 8)),
    ("commenda", "customers"): (("id", 14), ("name", 24), ("email", 24), ("created_at", 16),
                                ("shipping_address.city", 16)),
}


def _item_class(vendor: str, command: str) -> type:
    from . import commenda, natural, pyng
    return {("pyng", "customers"): pyng.Customer,
            ("natural", "customers"): natural.CustomerResource,
            ("natural", "invitations"): natural.CustomerInvitation,
            ("commenda", "customers"): commenda.Customer}[(vendor, command)]


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def _require(vendor: str, *names: str) -> list[str]:
    missing = [n for n in names if _env(n) is None]
    if missing:
        raise UsageError(f"no {vendor} credentials: set {' and '.join(missing)} in the environment")
    return [os.environ[n] for n in names]


def _settings(args, vendor: str) -> dict:
    out: dict = {"allow_insecure_http": args.allow_insecure_http}
    base = args.base_url or _env(f"CUSTLIST_{vendor.upper()}_BASE_URL")
    if base:
        out["base_url"] = base
    if args.timeout is not None:
        out["timeout"] = args.timeout
    if args.max_retries is not None:
        out["max_retries"] = args.max_retries
    if args.proxy is not None:
        out["proxy"] = args.proxy
    if args.ca_bundle is not None:
        out["ca_bundle"] = args.ca_bundle
    return out


def _position(args, href: bool) -> dict[str, Any]:
    """Where the listing starts and how far it goes: --max, --resume, --start."""
    out: dict[str, Any] = {"max_items": args.max}
    if args.resume:
        out["start"] = parse_resume_token(args.resume)
    elif args.start:
        out["start_href" if href else "start_cursor"] = args.start
    return out


def _pyng(args, **more: Any):
    from . import Pyng
    settings = _settings(args, "pyng")
    if "base_url" not in settings:
        raise UsageError("Pyng has no default address: pass --base-url or set CUSTLIST_PYNG_BASE_URL")
    if _env("CUSTLIST_PYNG_TOKEN"):
        client = Pyng(_env("CUSTLIST_PYNG_TOKEN"), api_version=args.api_version, **settings)
    elif _env("CUSTLIST_PYNG_CLIENT_ID") or _env("CUSTLIST_PYNG_CLIENT_SECRET"):
        cid, secret = _require("Pyng", "CUSTLIST_PYNG_CLIENT_ID", "CUSTLIST_PYNG_CLIENT_SECRET")
        client = Pyng(client_id=cid, client_secret=secret, api_version=args.api_version,
                      **settings)
    else:
        raise UsageError("no Pyng credentials: set CUSTLIST_PYNG_TOKEN, or "
                         "CUSTLIST_PYNG_CLIENT_ID and CUSTLIST_PYNG_CLIENT_SECRET, in the environment")
    return client, client.customers(args.site_id, state=args.state, invited_from=args.invited_from,
                                    invited_to=args.invited_to, limit=args.page_size,
                                    **(more or _position(args, href=True)))


def _natural(args, **more: Any):
    from . import Natural
    (token,) = _require("Natural", "CUSTLIST_NATURAL_TOKEN")
    client = Natural(token, agent_id=args.agent_id, instance_id=args.instance_id,
                     **_settings(args, "natural"))
    method = client.customers if args.command == "customers" else client.customer_invitations
    return client, method(limit=args.page_size, **(more or _position(args, href=False)))


def _commenda(args, **more: Any):
    from . import Commenda
    (token,) = _require("Commenda", "CUSTLIST_COMMENDA_TOKEN")
    client = Commenda(token, **_settings(args, "commenda"))
    return client, client.customers(
        args.corporation_id, limit=args.page_size, name=args.name, search_term=args.search_term,
        source_platforms=args.source_platforms, source_platform_ids=args.source_platform_ids,
        extend=args.extend, certificate_types=args.certificate_types,
        exemption_jurisdiction=args.exemption_jurisdiction,
        expiration_status=args.expiration_status, exemption_status=args.exemption_status,
        has_exemption=args.has_exemption, **(more or _position(args, href=False)))


OPENERS: dict[str, Callable] = {"pyng": _pyng, "natural": _natural, "commenda": _commenda}


# Python keywords of the client calls that a message may start with, and their flags.
_FLAG_OF = {"limit": "--page-size", "site_id": "--site-id", "state": "--state",
            "invited_from": "--invited-from", "invited_to": "--invited-to",
            "api_version": "--api-version", "agent_id": "--agent-id",
            "instance_id": "--instance-id", "corporation_id": "--corporation-id",
            "name": "--name", "search_term": "--search-term",
            "source_platforms": "--source-platforms", "source_platform_ids": "--source-platform-ids",
            "extend": "--extend", "certificate_types": "--certificate-types",
            "exemption_jurisdiction": "--exemption-jurisdiction",
            "expiration_status": "--expiration-status", "exemption_status": "--exemption-status",
            "base_url": "--base-url", "timeout": "--timeout", "max_retries": "--max-retries",
            "proxy": "--proxy", "ca_bundle": "--ca-bundle",
            "start_cursor": "--start", "start_href": "--start"}


# What a library message suggests calling from Python, which a command-line
# user cannot do: dropped (the message says what is wrong all the same).
_PYTHON_HINTS = (", or call client.resume(checkpoint)", " (pass what pager.checkpoint() returned)",
                 "; pass what pager.checkpoint() returned")


def _flags(message: str) -> str:
    """Speak of command-line flags, not of Python keywords or calls, in a
    message."""
    for hint in _PYTHON_HINTS:
        message = message.replace(hint, "")
    message = message.replace("allow_insecure_http=True", "--allow-insecure-http")
    head, sep, rest = message.partition(" ")
    head = _FLAG_OF.get(head.rstrip(":"), head) + (":" if head.endswith(":") else "")
    # further on, only the keywords no English word could be (they have a "_")
    rest = re.sub(r"\b[a-z]+(?:_[a-z]+)+\b", lambda m: _FLAG_OF.get(m.group(), m.group()), rest)
    return head + sep + rest


def _one_line(text: object) -> str:
    """`text` on one line, its control characters shown as escapes (a
    message may quote what a server sent)."""
    return visible(" ".join(str(text).split()))


def _show_log(verbosity: int) -> None:
    """custlist's log on stderr: nothing by default (a failure is the one
    line main prints), retries with -v, every request with -vv."""
    logger = logging.getLogger("custlist")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("custlist: %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.CRITICAL + 1 if verbosity <= 0
                    else logging.WARNING if verbosity == 1 else logging.DEBUG)


def _resume_problem(message: str) -> str:
    """A checkpoint the listing refused, said for the command line."""
    message = message.replace(", or call client.resume(checkpoint)", "")
    message = message.replace("(pass what pager.checkpoint() returned)", "")
    return "--resume: " + message.replace("give the same ones", "repeat that run's options").strip()


def _columns(args) -> tuple[list[str], list[int]]:
    key = (args.vendor, args.command)
    if args.format == "csv":
        columns = flat_columns(_item_class(*key))
        return columns, [0] * len(columns)
    return [c for c, _ in TABLE_COLUMNS[key]], [w for _, w in TABLE_COLUMNS[key]]


def _bar_wanted(args) -> bool:
    """The bar when asked (--progress), else only on a terminal: in a log
    file (cron) a bar would be a line per refresh."""
    from . import _progress
    if args.progress is False or (args.progress is None and not sys.stderr.isatty()):
        return False
    try:
        _progress.bar_class()
    except ImportError:
        return False                  # the bar is a nicety: no tqdm, no bar
    return True


def run_export(args) -> int:
    """-o FILE: see custlist._export."""
    from . import _export
    if args.start is not None:
        raise UsageError("--start does not combine with -o: use --resume STATE_FILE")
    if args.restart and not args.resume:
        raise UsageError("--restart goes with -o FILE --resume STATE_FILE: without a state "
                         "file every export starts from the first record")
    columns, widths = _columns(args)

    def open_listing(**more: Any):
        try:
            return OPENERS[args.vendor](args, **more)
        except (ValueError, TypeError, errors.UnsafeURLError) as e:
            message = _one_line(e)
            if more.get("start") is not None and "checkpoint" in message:
                raise UsageError(f"{_resume_problem(message)} ({args.resume}); or "
                                 f"{_export.RESTART}") from None
            raise UsageError(_flags(message)) from None

    again = "; run the same command again to continue" if args.resume else ""
    if hasattr(signal, "SIGXFSZ"):
        # past a file-size limit: an error from write() (EFBIG), not a dead process
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        result = _export.export(
            open_listing, args.format, args.output,
            lambda f: _writer(args)(f, columns, widths), args.resume, args.max,
            args.batch_rows, _bar_wanted(args), args.restart)
    except _export.ExportError as e:
        raise UsageError(str(e)) from None
    except _export.ExportBusy as e:
        print(f"custlist: error: {e}", file=sys.stderr)
        return EXIT_API
    except _export.ExportIOError as e:
        kept = ("; what was written before is kept" + again) if args.resume else \
            " (add --resume STATE_FILE to be able to continue an export)"
        print(f"custlist: error: {e}{kept}", file=sys.stderr)
        return EXIT_API
    except (errors.InvalidPaginationLinkError, errors.InvalidCursorError) as e:
        hint = (f"; the server no longer accepts the position saved in {args.resume}: "
                f"{_export.RESTART}") if args.resume else ""
        print(f"custlist: {type(e).__name__}: {_one_line(e)}{hint}", file=sys.stderr)
        return EXIT_API
    except errors.CustlistError as e:
        print(f"custlist: {type(e).__name__}: {_one_line(e)}{again}", file=sys.stderr)
        return EXIT_API
    except KeyboardInterrupt:
        print(f"custlist: interrupted{again}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if result.nothing == "complete":
        print(f"custlist: nothing to do: {args.output} already holds the whole listing "
              f"({result.count} records), exported by an earlier run; no request was sent. "
              f"To take a fresh snapshot, add --restart", file=sys.stderr)
        return 0
    if result.nothing == "max_items":
        print(f"custlist: nothing to do: {args.output} already holds {result.count} records, "
              f"as many as --max-items {args.max}; raise --max-items or leave it out to "
              "continue, or add --restart to start over", file=sys.stderr)
        return 0
    more = "" if result.done else \
        f" (stopped at --max-items{'; more remain' if args.resume else ''})"
    new = f", {result.written} of them by this run" \
        if args.resume and result.written != result.count else ""
    print(f"custlist: {result.count} records in {args.output}{new}{more}", file=sys.stderr)
    return 0


def run_list(args) -> int:
    _show_log(args.verbose)
    _writer(args)                  # a --format and its options that do not fit: before anything
    if args.output is not None:
        return run_export(args)
    if args.restart:
        raise UsageError("--restart goes with -o FILE --resume STATE_FILE")
    if args.format == "parquet":
        raise UsageError("--format parquet writes a file: give it with -o FILE")
    try:
        client, pager = OPENERS[args.vendor](args)   # checks everything, sends nothing
    except (ValueError, TypeError, errors.UnsafeURLError) as e:
        message = _one_line(e)
        raise UsageError(_resume_problem(message) if args.resume and "checkpoint" in message
                         else _flags(message)) from None
    if args.max == 0:
        client.close()
        return 0                                  # nothing asked, nothing printed
    columns, widths = _columns(args)
    writer = _writer(args)(sys.stdout, columns, widths)
    run = Run(pager)

    def outcome() -> str:
        token = resume_token(pager.checkpoint())
        return f"{run.written} records written" + (f"; resume with --resume {token}" if token else "")

    previous = signal.signal(signal.SIGINT, run.on_sigint)
    try:
        with client:
            run.emit(writer)
    except errors.CustlistError as e:
        if not run.interrupted:
            sys.stdout.flush()
            print(f"custlist: {type(e).__name__}: {_one_line(e)} ({outcome()})", file=sys.stderr)
            return EXIT_API
    finally:
        signal.signal(signal.SIGINT, previous)
    sys.stdout.flush()
    if run.interrupted:
        print(f"custlist: interrupted ({outcome()})", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"custlist: {run.written} records", file=sys.stderr)
    token = resume_token(pager.checkpoint())
    if token:
        print(f"custlist: resume with --resume {token}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------
# demo and sandbox


def demo(args) -> int:
    from . import Commenda, Natural, Pyng
    from .testing import Sandbox

    show = args.rows

    def section(title, pager, key):
        print(title)
        Run(pager).emit(Table(sys.stdout, *zip(*TABLE_COLUMNS[key])))

    with Sandbox(pyng_customers=120, natural_customers=60, natural_invitations=40,
                 commenda_customers=80, commenda_shape="mixed") as sb:
        print(f"custlist demo: sandbox at {sb.url} (loopback, no network, no real token)\n")
        with Pyng(client_id=sb.pyng_client_id, client_secret=sb.pyng_client_secret,
                  base_url=sb.pyng_url) as pyng:
            pager = pyng.customers(site_id="site_1", limit=25, max_items=show)
            section("== Pyng  GET /billing/sites/site_1/customers  (href paging, OAuth client "
                    "credentials)", pager, ("pyng", "customers"))
            print(f"   total={pager.total}  resume next_href={pager.next_href}")
            everything = sum(1 for _ in pyng.customers(site_id="site_1", limit=25))
            print(f"   paged through all {everything} customers of site_1\n")
        with Natural(sb.natural_token, base_url=sb.natural_url) as nat:
            section("== Natural  GET /customers  (cursor paging, mixed party / "
                    "delegation_invitation)", nat.customers(limit=20, max_items=show),
                    ("natural", "customers"))
            print()
            section("== Natural  GET /customers/invitations", nat.customer_invitations(limit=20, max_items=show),
                    ("natural", "invitations"))
            print()
        with Commenda(sb.commenda_token, base_url=sb.commenda_url) as cm:
            pager = cm.customers("corp_123", limit=30, extend=["shipping_address"], max_items=show)
            section("== Commenda  GET /customers?corporation_id=corp_123&extend=shipping_address",
                    pager, ("commenda", "customers"))
            print(f"   total={pager.total}")
    return 0


def sandbox_environment(sb: Any) -> dict[str, str]:
    """The environment variables that point custlist (the command and the
    README's examples) at a running sandbox."""
    return {"CUSTLIST_PYNG_BASE_URL": sb.pyng_url,
            "CUSTLIST_PYNG_CLIENT_ID": sb.pyng_client_id,
            "CUSTLIST_PYNG_CLIENT_SECRET": sb.pyng_client_secret,
            "CUSTLIST_NATURAL_BASE_URL": sb.natural_url,
            "CUSTLIST_NATURAL_TOKEN": sb.natural_token,
            "CUSTLIST_COMMENDA_BASE_URL": sb.commenda_url,
            "CUSTLIST_COMMENDA_TOKEN": sb.commenda_token,
            # the demo API, for describing an API of one's own (README)
            "CUSTLIST_DEMO_BASE_URL": sb.demo_url,
            "CUSTLIST_DEMO_TOKEN": sb.demo_token}


def sandbox_server(customers: int = 500, seed: int = 0, latency: float = 0.0,
                   host: str = "127.0.0.1", port: int = 0) -> Any:
    """The (unstarted) Sandbox that ``custlist sandbox`` serves: `customers`
    per endpoint, every request answered after `latency` seconds."""
    from .testing import Sandbox
    return Sandbox(pyng_customers=customers, natural_customers=customers,
                   natural_invitations=customers, commenda_customers=customers, seed=seed,
                   host=host, port=port, latency={"*": latency} if latency else None)


def sandbox(args) -> int:
    n = args.customers
    sb = sandbox_server(n, args.seed, args.latency, args.host, args.port)
    try:
        sb.start()
    except OSError as e:
        raise SandboxError(f"cannot serve on {args.host} port {args.port}: {e.strerror or e}"
                           " (choose another --port, or leave it out for a free one)") from None
    try:
        env = sandbox_environment(sb)
        slow = f", {args.latency:g} s per request" if args.latency else ""
        print(f"# custlist sandbox on {sb.url} ({n} customers per endpoint, seed {args.seed}"
              f"{slow}); Ctrl-C stops it.  Paste into another shell:")
        for name, value in env.items():
            print(f"export {name}={shlex.quote(value)}")
        print("# then: custlist pyng customers --site-id site_1 --format table", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    finally:
        sb.stop()
    return 0


class SandboxError(Exception):
    """The sandbox could not start: exit 1."""


# ---------------------------------------------------------------------------
# Arguments


class Parser(argparse.ArgumentParser):
    """Usage mistakes are one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")


def _int_between(low: int, high: int | None) -> Callable[[str], int]:
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            span = f"from {low} to {high}" if high is not None else f"{low} or more"
            raise argparse.ArgumentTypeError(f"must be a whole number {span}, not {text!r}")
        return value
    return convert


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value


def _seconds_or_zero(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 60:
        raise argparse.ArgumentTypeError(f"must be a number of seconds from 0 to 60, not {text!r}")
    return value


def _csv_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",")]


def _time_bound(end: bool) -> Callable[[str], Any]:
    """Unix milliseconds, an ISO date (whole day, UTC) or an ISO date-time
    with its zone."""
    def convert(text: str):
        if text.isdigit():
            return int(text)
        try:
            if len(text) == 10:
                day = _dt.date.fromisoformat(text)
                moment = _dt.datetime(day.year, day.month, day.day, tzinfo=_dt.timezone.utc)
                if end:
                    return int((moment + _dt.timedelta(days=1)).timestamp() * 1000) - 1
                return moment
            moment = _dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"give unix milliseconds, a date (2026-05-01) or a date-time with its zone "
                f"(2026-05-01T12:00:00Z), not {text!r}") from None
        if moment.tzinfo is None:
            raise argparse.ArgumentTypeError(f"give the time zone (Z or +hh:mm) in {text!r}")
        return moment
    return convert


def _add_common(p: argparse.ArgumentParser, vendor: str) -> None:
    out = p.add_argument_group("output")
    out.add_argument("--format", choices=FORMATS, default="jsonl",
                     help="jsonl: one JSON object per record (default); csv: nested fields as "
                          "dotted columns; table: aligned columns, printed as pages arrive; "
                          "parquet (with -o, needs custlist[arrow])")
    out.add_argument("--max", "--max-items", type=_int_between(0, None), metavar="N",
                     help="stop after N records (0 prints nothing); then a --resume value is "
                          "printed on stderr")
    out.add_argument("-o", "--output", metavar="FILE",
                     help="write to FILE batch by batch, a progress bar on stderr; with "
                          "--resume STATE_FILE, resumable exactly after any interruption")
    out.add_argument("--batch-rows", type=_int_between(1, None), default=10000, metavar="N",
                     help="with -o: records per batch, the unit written and checkpointed "
                          "(default 10000)")
    out.add_argument("--escape-formulas", action="store_true",
                     help="csv: put a ' before a cell that starts with = + - @ (or a tab or "
                          "CR), so a spreadsheet shows it as text instead of running it as a "
                          "formula; for files people open. Without it, values are exact")
    out.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                     help="with -o: a progress bar on stderr (default: only when stderr is a "
                          "terminal)")
    out.add_argument("--restart", action="store_true",
                     help="with -o and --resume STATE_FILE: export again from the first record, "
                          "whatever the state file says (a finished export, a saved position "
                          "the server no longer accepts, a damaged state)")
    pos = out.add_mutually_exclusive_group()
    pos.add_argument("--resume", metavar="TOKEN",
                     help="continue exactly after the last record written by a run that printed "
                          "\"resume with --resume TOKEN\" (repeat that run's other options); "
                          "with -o: a state file, STATE.json, that keeps the checkpoint of the "
                          "export after each batch (created if missing; run the same command "
                          "again to continue; once the export is finished, that does nothing "
                          "and says so: --restart exports again)")
    pos.add_argument("--start", metavar="CURSOR_OR_HREF",
                     help="start at a page: a cursor (Natural, Commenda) or a next href (Pyng) "
                          "saved from the API or from pager.cursor / pager.next_href")
    net = p.add_argument_group("connection")
    net.add_argument("--base-url", metavar="URL",
                     help=f"API root (default: $CUSTLIST_{vendor.upper()}_BASE_URL"
                          + (", required)" if vendor == "pyng" else ", else the vendor's)"))
    net.add_argument("--page-size", type=_int_between(1, 100), metavar="N",
                     help="records per request, 1 to 100 (the API's default when left out)")
    net.add_argument("--timeout", type=_seconds, metavar="SECONDS",
                     help="give up on a request after this long (default 60)")
    net.add_argument("--max-retries", type=_int_between(0, 20), metavar="N",
                     help="retries of 429, 5xx, resets and timeouts (default 3)")
    net.add_argument("--proxy", metavar="URL",
                     help="proxy for every request, '' for none (default: https_proxy, "
                          "http_proxy, all_proxy and no_proxy; loopback is never proxied)")
    net.add_argument("--ca-bundle", metavar="PATH",
                     help="trusted CAs: a PEM file or hashed directory (default: SSL_CERT_FILE, "
                          "SSL_CERT_DIR, CURL_CA_BUNDLE, REQUESTS_CA_BUNDLE, certifi, the system's)")
    net.add_argument("--allow-insecure-http", action="store_true",
                     help="allow plain http to a host other than loopback (the token travels "
                          "unencrypted)")
    net.add_argument("-v", "--verbose", action="count", default=0,
                     help="log retries on stderr; twice (-vv): every request too (never a "
                          "credential)")


def _vendor(top, vendor: str, title: str):
    """The `custlist VENDOR` command; its sub-commands are the endpoints."""
    p = top.add_parser(vendor, help=title, description=f"{title} API.")
    return p.add_subparsers(dest="command", metavar="COMMAND", required=True,
                            help="the endpoint to list")


def _list_parser(sub, vendor: str, command: str, help: str) -> argparse.ArgumentParser:
    p = sub.add_parser(command, help=help, description=help, epilog=ENV_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(vendor=vendor, command=command, run=run_list)
    return p


def parser() -> Parser:
    p = Parser(prog="custlist", description="List customers from paged REST APIs.",
               epilog=ENV_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version",
                   version=f"custlist {__version__} (libcurl {_core.libcurl_version})")
    top = p.add_subparsers(dest="vendor", metavar="COMMAND", required=True,
                           help="an API to list from, the demo, or the sandbox")

    d = top.add_parser("demo", help="list every endpoint of the bundled sandbox",
                       description="Start the bundled sandbox and list every endpoint from it.")
    d.add_argument("--rows", type=_int_between(0, None), default=8, metavar="N",
                   help="rows shown per endpoint (default 8)")
    d.set_defaults(run=demo)

    s = top.add_parser("sandbox", help="serve the bundled sandbox until Ctrl-C",
                       description="Serve the sandbox of all the APIs on loopback until Ctrl-C "
                                   "and print the export lines that point custlist at it.")
    s.add_argument("--port", type=_int_between(0, 65535), default=0,
                   help="TCP port (default: a free one)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument("--customers", type=_int_between(0, 1_000_000), default=500, metavar="N",
                   help="customers per endpoint (default 500)")
    s.add_argument("--seed", type=int, default=0, help="seed of the generated data (default 0)")
    s.add_argument("--latency", type=_seconds_or_zero, default=0.0, metavar="SECONDS",
                   help="answer every request after this long, like a server far away "
                        "(default 0)")
    s.set_defaults(run=sandbox)

    c = _list_parser(_vendor(top, "pyng", "Pyng billing"), "pyng", "customers",
                     "List a site's customers (GET /billing/sites/{siteId}/customers).")
    f = c.add_argument_group("filters")
    f.add_argument("--site-id", required=True, help="the site whose customers to list (required)")
    f.add_argument("--state", help="link state: invited or linked")
    f.add_argument("--invited-from", type=_time_bound(False), metavar="WHEN",
                   help="invited at or after: unix ms, a date (UTC) or an ISO date-time with zone")
    f.add_argument("--invited-to", type=_time_bound(True), metavar="WHEN",
                   help="invited at or before: unix ms, a date (its whole day, UTC) or an ISO "
                        "date-time with zone")
    f.add_argument("--api-version", default=PYNG_API_VERSION,
                   help="Pyng-Api-Version header (default %(default)s)")
    _add_common(c, "pyng")

    nsub = _vendor(top, "natural", "Natural")
    for command, text in (("customers", "List customers: parties and delegation invitations "
                                        "(GET /customers)."),
                          ("invitations", "List customer invitations (GET /customers/invitations).")):
        c = _list_parser(nsub, "natural", command, text)
        h = c.add_argument_group("agent headers")
        h.add_argument("--agent-id", help="X-Agent-ID: the agent making the request (agt_...)")
        h.add_argument("--instance-id",
                       help="X-Instance-ID: session or conversation id (required with --agent-id)")
        _add_common(c, "natural")

    c = _list_parser(_vendor(top, "commenda", "Commenda sales tax"), "commenda", "customers",
                     "List a corporation's customers (GET /customers).")
    f = c.add_argument_group("filters")
    f.add_argument("--corporation-id", required=True, help="the corporation (required)")
    f.add_argument("--name", help="exact customer name")
    f.add_argument("--search-term", help="part of a name or email")
    f.add_argument("--source-platforms", type=_csv_list, metavar="A,B",
                   help="comma-separated source platforms")
    f.add_argument("--source-platform-ids", type=_csv_list, metavar="A,B",
                   help="comma-separated ids on the source platforms")
    f.add_argument("--extend", type=_csv_list, metavar="A,B",
                   help="also fetch: shipping_address and/or exemption_metadata (comma-separated)")
    f.add_argument("--certificate-types", type=_csv_list, metavar="A,B",
                   help="comma-separated exemption certificate types")
    f.add_argument("--exemption-jurisdiction", metavar="CODE",
                   help="exemption jurisdiction, like US_CA")
    f.add_argument("--expiration-status", help="exemption expiration: ACTIVE or EXPIRED")
    f.add_argument("--exemption-status", help="exemption status: ACTIVE or INACTIVE")
    f.add_argument("--has-exemption", action=argparse.BooleanOptionalAction, default=None,
                   help="only customers with (or, with --no-has-exemption, without) an exemption")
    _add_common(c, "commenda")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
        return args.run(args)
    except UsageError as e:
        print(f"custlist: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except SandboxError as e:
        print(f"custlist: error: {e}", file=sys.stderr)
        return EXIT_API
    except errors.CustlistError as e:
        print(f"custlist: {type(e).__name__}: {_one_line(e)}", file=sys.stderr)
        return EXIT_API
    except KeyboardInterrupt:
        print("custlist: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader went away (custlist ... | head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except Exception as e:                      # a bug: still one line, and say where to look
        if os.environ.get("CUSTLIST_TRACEBACK"):
            raise
        print(f"custlist: internal error: {type(e).__name__}: {_one_line(e)} "
              "(set CUSTLIST_TRACEBACK=1 to see where)", file=sys.stderr)
        return EXIT_API


if __name__ == "__main__":
    sys.exit(main())
