"""The ``custlist`` command.

    custlist demo                                   list all four endpoints of the bundled sandbox
    custlist pyng customers --site-id S [...]       list for real (credentials from the environment)
    custlist natural customers | invitations [...]
    custlist commenda customers --corporation-id C [...]
    custlist sandbox [--port P]                     serve the sandbox until Ctrl-C

Credentials come from the environment so they stay out of shell history:
CUSTLIST_PYNG_TOKEN or CUSTLIST_PYNG_CLIENT_ID + CUSTLIST_PYNG_CLIENT_SECRET,
CUSTLIST_NATURAL_TOKEN, CUSTLIST_COMMENDA_TOKEN.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import decimal
import enum
import json
import os
import sys

from . import errors
from ._core import Record

FORMATS = ("table", "jsonl")


def jsonable(value):
    """A record (or any decoded value) as JSON-ready data."""
    if isinstance(value, Record):
        return {k: jsonable(v) for k, v in value.to_dict().items()}
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, _dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, decimal.Decimal):
        return str(value)
    return value


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, _dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, Record):
        return getattr(value, "name", None) or getattr(value, "city", None) or type(value).__name__
    if isinstance(value, tuple):
        if value and isinstance(value[0], Record):
            return f"{len(value)} item" + ("s" if len(value) > 1 else "")
        return ",".join(_cell(v) for v in value)
    return str(value).replace("\n", "\\n").replace("\t", "\\t")


def print_table(rows, columns, out=sys.stdout, width=28) -> None:
    cells = [[_cell(r.get(c) if isinstance(r, dict) else getattr(r, c, None))[:width]
              for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)), file=out)


def emit(pager, fmt: str, columns, limit: int | None, out=sys.stdout) -> int:
    """Write records from `pager` and return how many."""
    count = 0
    rows = []
    for rec in pager:
        if fmt == "jsonl":
            out.write(json.dumps(jsonable(rec), ensure_ascii=False) + "\n")
        else:
            rows.append(rec)
        count += 1
        if limit is not None and count >= limit:
            break
    if fmt == "table":
        print_table(rows, columns, out)
    return count


COLUMNS = {
    "pyng": ("customer_reference", "state", "invited_at", "expires_at", "linked_at"),
    "natural.customers": ("type", "id", "status", "email", "created_at", "wallet_available_dollars", "party"),
    "natural.invitations": ("id", "status", "created_at", "wallet_access", "agent_invitations"),
    "commenda": ("id", "name", "email", "created_at", "shipping_address"),
}


def demo(args) -> int:
    from .testing import Sandbox
    from . import Commenda, Natural, Pyng

    show = args.rows
    with Sandbox(pyng_customers=120, natural_customers=60, natural_invitations=40,
                 commenda_customers=80, commenda_shape="mixed") as sb:
        print(f"custlist demo: sandbox at {sb.url} (loopback, no network, no real token)\n")
        pyng = Pyng(client_id=sb.pyng_client_id, client_secret=sb.pyng_client_secret,
                    base_url=sb.pyng_url)
        pager = pyng.customers(site_id="site_1", limit=25)
        print("== Pyng  GET /billing/sites/site_1/customers  (href paging, OAuth client credentials)")
        emit(pager, "table", COLUMNS["pyng"], show)
        print(f"   total={pager.total}  resume next_href={pager.next_href}\n")
        everything = sum(1 for _ in pyng.customers(site_id="site_1", limit=25))
        print(f"   paged through all {everything} customers of site_1\n")

        nat = Natural(sb.natural_token, base_url=sb.natural_url)
        print("== Natural  GET /customers  (cursor paging, mixed party / delegation_invitation)")
        emit(nat.customers(limit=20), "table", COLUMNS["natural.customers"], show)
        print()
        print("== Natural  GET /customers/invitations")
        emit(nat.customer_invitations(limit=20), "table", COLUMNS["natural.invitations"], show)
        print()

        cm = Commenda(sb.commenda_token, base_url=sb.commenda_url)
        pager = cm.customers("corp_123", limit=30, extend=["shipping_address"])
        print("== Commenda  GET /customers?corporation_id=corp_123&extend=shipping_address")
        emit(pager, "table", COLUMNS["commenda"], show)
        print(f"   total={pager.total}")
    return 0


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def _settings(args) -> dict:
    return {"base_url": args.base_url} if args.base_url else {}


def run_list(args) -> int:
    from . import Commenda, Natural, Pyng

    if args.vendor == "pyng":
        if not args.base_url:
            raise SystemExit("custlist: --base-url is required for Pyng")
        token = _env("CUSTLIST_PYNG_TOKEN")
        client = Pyng(token, base_url=args.base_url) if token else Pyng(
            client_id=_env("CUSTLIST_PYNG_CLIENT_ID"),
            client_secret=_env("CUSTLIST_PYNG_CLIENT_SECRET"), base_url=args.base_url)
        pager = client.customers(site_id=args.site_id, state=args.state, limit=args.page_size,
                                 start_href=args.start)
        columns = COLUMNS["pyng"]
    elif args.vendor == "natural":
        client = Natural(_require("CUSTLIST_NATURAL_TOKEN"), **_settings(args))
        method = client.customers if args.what == "customers" else client.customer_invitations
        pager = method(limit=args.page_size, start_cursor=args.start)
        columns = COLUMNS["natural." + args.what]
    else:
        client = Commenda(_require("CUSTLIST_COMMENDA_TOKEN"), **_settings(args))
        pager = client.customers(args.corporation_id, limit=args.page_size,
                                 search_term=args.search, start_cursor=args.start)
        columns = COLUMNS["commenda"]
    try:
        n = emit(pager, args.format, columns, args.max)
    finally:
        resume = pager.next_href if args.vendor == "pyng" else pager.cursor
        if resume:
            print(f"custlist: resume with --start '{resume}'", file=sys.stderr)
    print(f"custlist: {n} records", file=sys.stderr)
    return 0


def _require(name: str) -> str:
    value = _env(name)
    if value is None:
        raise SystemExit(f"custlist: set {name} in the environment")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="custlist", description="List customers from paged REST APIs.")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="list all four endpoints of the bundled sandbox")
    d.add_argument("--rows", type=int, default=8, help="rows shown per endpoint")
    s = sub.add_parser("sandbox", help="serve the sandbox until Ctrl-C")
    s.add_argument("--port", type=int, default=8080)
    for vendor, whats in (("pyng", ["customers"]), ("natural", ["customers", "invitations"]),
                          ("commenda", ["customers"])):
        v = sub.add_parser(vendor, help=f"list from {vendor.capitalize()}")
        v.add_argument("what", choices=whats)
        v.add_argument("--base-url")
        v.add_argument("--format", choices=FORMATS, default="jsonl")
        v.add_argument("--max", type=int, help="stop after this many records")
        v.add_argument("--page-size", type=int)
        v.add_argument("--start", help="resume from a saved cursor / next href")
        if vendor == "pyng":
            v.add_argument("--site-id", required=True)
            v.add_argument("--state")
        if vendor == "commenda":
            v.add_argument("--corporation-id", required=True)
            v.add_argument("--search")
        v.set_defaults(vendor=vendor)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "demo":
            return demo(args)
        if args.command == "sandbox":
            from .testing.__main__ import main as serve
            return serve(["--port", str(args.port)])
        return run_list(args)
    except errors.CustlistError as e:
        print(f"custlist: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("custlist: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
