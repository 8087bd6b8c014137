"""Every way of reading a listing, held to one result under seeded faults.

A schedule (from a seed) picks a listing of the sandbox, a page size, a few
faults at given request numbers of its route (5xx, 429 with Retry-After,
resets, truncated bodies, slow pages, client errors, and the server's lies:
a repeated cursor or link, "more" without a cursor, a malformed Link header,
an empty page), and sometimes a cap (`max_items`, the client's `max_pages`)
or an interruption from outside (`close()` from another thread, cancelling
the task of an `async for`).  The same schedule is then read every way a
user can read a listing:

    iter      for record in pager
    pages     for page in pager.pages()
    async     async for record in pager
    fanout    fan_out({x: pager})
    beside    fan_out({x: pager, healthy: other listing})
    arrow     pager.to_arrow()
    fo_arrow  fan_out({x: pager, healthy: ...}).to_arrow()

and each outcome -- the records in order, the exception class and the point
it came at, the checkpoint, done -- must be the plain iterator's.  With no
interruption the outcome is fixed by the schedule, so the ways must agree
exactly; with one, the moment differs, so each way is held to the
invariants alone.  The invariants, for every way: a listing that ends
without an error gave every record (or exactly `max_items`); one that ends
with an error, or is interrupted, gave a prefix of the listing, and
`resume(checkpoint)` on a server without faults gives exactly the rest,
nothing lost or repeated; "done" is said only when the last page was read.
The healthy listing beside a failing one always arrives whole.

Run as a script it reads schedules until its time budget is spent and
prints one JSON line: {"schedules": N, "ways": N, "failures": [...]};
it exits 1 when anything disagreed.

    python tests/differential.py --seconds 120 --seed 1
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import faulthandler
import json
import os
import random
import sys
import threading
import time
import traceback
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Callable

import custlist
from custlist.testing import Sandbox
from custlist.testing import demo as demo_api

HANG = 30.0                               # seconds a way may take
FAST = dict(backoff=0.01, backoff_max=0.05, retry_after_max=0.2, max_retries=3)

# -- listings ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    name: str
    route: str
    key: str                              # attribute that identifies a record
    sizes: tuple                          # page sizes to draw from
    lies: tuple                           # the server lies this paging can tell
    client: Callable                      # (sandbox, **settings) -> client
    list: Callable                        # (client, size, **kw) -> Pager
    resume: Callable                      # (client, size, checkpoint) -> Pager


def _demo_client(sb, **kw):
    return custlist.Client(base_url=sb.demo_url, auth=custlist.BearerToken(sb.demo_token), **kw)


KINDS = [
    Kind("pyng", "pyng.customers", "customer_reference", (7, 13, 25), ("repeat", "empty"),
         lambda sb, **kw: custlist.Pyng(token=sb.pyng_token, base_url=sb.pyng_url, **kw),
         lambda c, n, **kw: c.customers("site_1", limit=n, **kw),
         lambda c, n, cp: c.resume(cp)),
    Kind("natural", "natural.customers", "id", (6, 11, 20), ("repeat", "nocursor", "empty"),
         lambda sb, **kw: custlist.Natural(sb.natural_token, base_url=sb.natural_url, **kw),
         lambda c, n, **kw: c.customers(limit=n, **kw),
         lambda c, n, cp: c.resume(cp)),
    Kind("invitations", "natural.invitations", "id", (5, 9, 17), ("repeat", "nocursor", "empty"),
         lambda sb, **kw: custlist.Natural(sb.natural_token, base_url=sb.natural_url, **kw),
         lambda c, n, **kw: c.customer_invitations(limit=n, **kw),
         lambda c, n, cp: c.resume(cp)),
    Kind("commenda", "commenda.customers", "id", (8, 15, 30), ("repeat", "empty"),
         lambda sb, **kw: custlist.Commenda(sb.commenda_token, base_url=sb.commenda_url, **kw),
         lambda c, n, **kw: c.customers("corp_123", limit=n, **kw),
         lambda c, n, cp: c.resume(cp)),
    Kind("linked", "demo.linked", "id", (9, 16, 30), ("badlink", "empty"),
         _demo_client,
         lambda c, n, **kw: c.paginate(demo_api.LINKED, demo_api.LINKED.path,
                                       {"per_page": n}, **kw),
         lambda c, n, cp: c.paginate(demo_api.LINKED, demo_api.LINKED.path,
                                     {"per_page": n}, start=cp)),
]
HEALTHY = {"natural.customers": "commenda", "commenda.customers": "natural"}


def _kind(name: str) -> Kind:
    return next(k for k in KINDS if k.name == name)


# -- the server's lies, as fault bodies built from the real page ---------------------------

def _real(sb, route: str, query: dict) -> Any:
    """The page the sandbox would serve for `query` (its own handler, with
    the headers of the request being answered)."""
    heads = [r.headers for r in list(sb.requests) if r.route == route]
    headers = heads[-1] if heads else {}
    if route == "pyng.customers":
        return sb.pyng_customers("site_1", query, headers)
    if route == "natural.customers":
        return sb.natural_customers(query, headers)
    if route == "natural.invitations":
        return sb.natural_invitations(query, headers)
    if route == "commenda.customers":
        return sb.commenda_customers(query, headers)
    return sb.demo_linked(query, headers)[0]


def _lie(sb, route: str, how: str) -> Callable:
    def body(query: dict) -> bytes:
        page = _real(sb, route, dict(query))
        if route == "pyng.customers":
            data = page["data"]
            if how == "repeat":
                data["nextHref"] = (f"{sb.pyng_url}/billing/sites/site_1/customers?"
                                    + urllib.parse.urlencode(query, quote_via=urllib.parse.quote))
            else:
                data["items"] = []
        elif route in ("natural.customers", "natural.invitations"):
            pag = page["meta"]["pagination"]
            cursor = "next_cursor" if "next_cursor" in pag else "nextCursor"
            if how == "repeat":
                pag[cursor] = query.get("cursor") or pag[cursor]
                if query.get("cursor") is None:
                    pag[cursor] = None
                    pag["has_more" if "has_more" in pag else "hasMore"] = True
            elif how == "nocursor":
                pag[cursor] = None
                pag["has_more" if "has_more" in pag else "hasMore"] = True
            else:
                page["data"] = []
        elif route == "commenda.customers":
            inner = page.get("data", page)
            if how == "repeat":
                inner["cursor"] = query.get("cursor") or inner.get("cursor")
            else:
                inner["customers"] = []
        else:
            page["customers"] = []
        return json.dumps(page).encode()
    return body


# -- schedules ---------------------------------------------------------------------------

@dataclass
class Schedule:
    seed: int
    kind: str
    size: int
    faults: list                          # (request number, fault name, parameters)
    max_items: int | None = None
    max_pages: int | None = None
    prefetch: bool = True
    interrupt: float | None = None        # seconds after the start: close() / cancel
    lies: bool = field(default=False)

    def describe(self) -> str:
        return json.dumps(self.__dict__, default=str)


HONEST = ["500", "500x2", "500x4", "429", "reset", "truncate", "slow", "400", "503ra"]


def draw(seed: int) -> Schedule:
    rnd = random.Random(seed)
    kind = rnd.choice(KINDS)
    size = rnd.choice(kind.sizes)
    faults, used = [], set()
    lies = False
    for _ in range(rnd.choice((0, 1, 1, 2, 3))):
        at = rnd.randrange(0, 8)
        if at in used:
            continue
        used.add(at)
        if rnd.random() < 0.3:
            name, lies = rnd.choice(kind.lies), True
        else:
            name = rnd.choice(HONEST)
        faults.append((at, name, rnd.randrange(1, 400)))
    s = Schedule(seed, kind.name, size, sorted(faults), lies=lies)
    r = rnd.random()
    if r < 0.15:
        s.max_items = rnd.randrange(0, 3 * size)
    elif r < 0.25:
        s.max_pages = rnd.randrange(1, 5)
    if rnd.random() < 0.15:
        s.prefetch = False
    if rnd.random() < 0.15:
        s.interrupt = rnd.uniform(0.0, 0.15)
        if not any(f[1] == "slow" for f in s.faults):
            s.faults.append((rnd.randrange(0, 4), "slow", 0))
            s.faults.sort()
    return s


def install(sb, s: Schedule) -> list:
    """Inject the schedule's faults; the Fault objects (their `hits`)."""
    kind = _kind(s.kind)
    route = kind.route
    out = []
    for at, name, p in s.faults:
        kw: dict = {"skip": at}
        if route == "pyng.customers":
            kw.update(path="/sites/site_1/")
        if name == "500":
            kw.update(status=500)
        elif name == "500x2":
            kw.update(status=500, times=2)
        elif name == "500x4":
            kw.update(status=500, times=4)
        elif name == "429":
            kw.update(status=429, retry_after="0")
        elif name == "503ra":
            kw.update(status=503, retry_after="3600")
        elif name == "reset":
            kw.update(reset=True)
        elif name == "truncate":
            kw.update(truncate=p % 60)
        elif name == "slow":
            kw.update(delay=0.05 + (p % 5) * 0.03)
        elif name == "400":
            kw.update(status=400)
        elif name == "badlink":
            kw.update(headers={"Link": "<" + sb.demo_url + "/linked/customers?after=x; rel=next"})
        else:
            kw.update(body=_lie(sb, route, name))
        out.append(sb.inject(route, **kw))
    return out


# -- reading -----------------------------------------------------------------------------

@dataclass
class Outcome:
    keys: list
    error: str | None
    checkpoint: dict | None
    done: bool
    healthy: tuple | None = None          # (records, done, error) of the listing beside

    def same(self, other: "Outcome") -> bool:
        return (self.keys, self.error, self.done) == (other.keys, other.error, other.done) \
            and (self.done or _norm(self.checkpoint) == _norm(other.checkpoint))


def _norm(checkpoint: dict | None) -> Any:
    """A checkpoint with the time a Pyng link was signed left out (the
    sandbox signs the second a link was made into it, so two reads of one
    listing a second apart hold different links to the same page)."""
    if not checkpoint or not isinstance(checkpoint.get("page"), str) \
            or "cursor=" not in checkpoint["page"]:
        return checkpoint
    base, _, cursor = checkpoint["page"].partition("cursor=")
    payload = urllib.parse.unquote(cursor).split(".")[0]
    try:
        state = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except ValueError:
        return checkpoint
    state.pop("t", None)
    return {**checkpoint, "page": (base, state)}


def _name(e: BaseException | None) -> str | None:
    return None if e is None else type(e).__name__


def _interrupter(s: Schedule, stop: Callable) -> threading.Timer | None:
    if s.interrupt is None:
        return None
    t = threading.Timer(s.interrupt, stop)
    t.daemon = True
    t.start()
    return t


def _key(kind: Kind) -> Callable:
    return lambda r: getattr(r, kind.key)


def way_iter(ctx, s, pager) -> Outcome:
    got, err = [], None
    t = _interrupter(s, pager.close)
    try:
        for r in pager:
            got.append(ctx.key(r))
    except Exception as e:
        err = e
    if t:
        t.cancel()
    return Outcome(got, _name(err), pager.checkpoint(), pager.done)


def way_pages(ctx, s, pager) -> Outcome:
    got, err = [], None
    t = _interrupter(s, pager.close)
    try:
        for page in pager.pages():
            got.extend(ctx.key(r) for r in page.items)
    except Exception as e:
        err = e
    if t:
        t.cancel()
    return Outcome(got, _name(err), pager.checkpoint(), pager.done)


def way_async(ctx, s, pager) -> Outcome:
    got: list = []
    err: list = [None]

    async def read() -> None:
        try:
            async for r in pager:
                got.append(ctx.key(r))
        except asyncio.CancelledError:
            raise
        except Exception as e:
            err[0] = e

    async def main() -> None:
        task = asyncio.ensure_future(read())
        if s.interrupt is not None:
            asyncio.get_running_loop().call_later(s.interrupt, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            err[0] = custlist.PagerClosedError("cancelled")

    asyncio.run(asyncio.wait_for(main(), 60))
    return Outcome(got, _name(err[0]), pager.checkpoint(), pager.done)


def _fanout(ctx, s, pager, beside: bool) -> Outcome:
    pagers = {"x": pager}
    healthy = None
    if beside:
        healthy = ctx.healthy_pager()
        pagers["h"] = healthy
    got, hgot = [], []
    with custlist.fan_out(pagers, concurrency=4) as out:
        t = _interrupter(s, pager.close)
        try:
            for src, r in out:
                (got if src == "x" else hgot).append(r)
        finally:
            if t:
                t.cancel()
    res = out.summary.sources["x"]
    keys = [ctx.key(r) for r in got]
    h = None
    if beside:
        hr = out.summary.sources["h"]
        h = ([ctx.hkey(r) for r in hgot], hr.done, _name(hr.error))
    if res.records != len(keys):
        raise AssertionError(f"summary counts {res.records} records, {len(keys)} were yielded")
    ended = all(r.done or r.capped for r in out.summary.sources.values())
    if out.summary.ok != ended or (res.capped and (res.done or res.error is not None)):
        raise AssertionError("summary.ok disagrees with the listings' done and capped")
    return Outcome(keys, _name(res.error), res.checkpoint, res.done, h)


def way_fanout(ctx, s, pager) -> Outcome:
    return _fanout(ctx, s, pager, False)


def way_beside(ctx, s, pager) -> Outcome:
    return _fanout(ctx, s, pager, True)


def way_arrow(ctx, s, pager) -> Outcome:
    keys, err = [], None
    t = _interrupter(s, pager.close)
    try:
        table = pager.to_arrow()
        keys = table.column(ctx.kind.key).to_pylist()
    except Exception as e:
        err = e
    if t:
        t.cancel()
    return Outcome(keys, _name(err), pager.checkpoint(), pager.done)


def way_fo_arrow(ctx, s, pager) -> Outcome:
    # one table holds one schema: a listing beside of the same endpoint, on
    # another path (a Pyng site of its own) that the faults do not reach
    pagers = {"x": pager}
    if ctx.kind.name == "pyng":
        pagers["h"] = ctx.client(None).customers("site_2", limit=25)
    out = custlist.fan_out(pagers, concurrency=4)
    t = _interrupter(s, pager.close)
    try:
        table = out.to_arrow()
    finally:
        if t:
            t.cancel()
    src = table.column("source").to_pylist() if table.num_rows else []
    rows = table.to_pylist() if table.num_rows else []
    keys = [r[ctx.kind.key] for r in rows if r["source"] == "x"]
    res = out.summary.sources["x"]
    h = None
    if "h" in pagers:
        hr = out.summary.sources["h"]
        h = ([r[ctx.kind.key] for r, sr in zip(rows, src) if sr == "h"], hr.done,
             _name(hr.error))
    return Outcome(keys, _name(res.error), res.checkpoint, res.done, h)


WAYS: dict[str, Callable] = {"iter": way_iter, "pages": way_pages, "async": way_async,
                             "fanout": way_fanout, "beside": way_beside, "arrow": way_arrow,
                             "fo_arrow": way_fo_arrow}
# ways that hand out records one page at a time, as the iterator does: after
# an error they have delivered what it delivered
INCREMENTAL = {"pages", "async", "fanout", "beside"}


class Context:
    def __init__(self, sb, full: dict):
        self.sb, self.full = sb, full
        self.kind: Kind = KINDS[0]
        self.hkind: Kind = KINDS[0]
        self.clients: list = []

    def prepare(self, s: Schedule) -> None:
        self.kind = _kind(s.kind)
        self.hkind = _kind(HEALTHY.get(self.kind.route, "natural"))
        self.key = _key(self.kind)
        self.hkey = _key(self.hkind)

    def client(self, s: Schedule | None, kind: Kind | None = None):
        kw = dict(FAST)
        if s is not None:
            kw.update(prefetch=s.prefetch)
            if s.max_pages is not None:
                kw.update(max_pages=s.max_pages)
        c = (kind or self.kind).client(self.sb, **kw)
        self.clients.append(c)
        return c

    def pager(self, s: Schedule):
        kw = {} if s.max_items is None else {"max_items": s.max_items}
        return self.kind.list(self.client(s), s.size, **kw)

    def healthy_pager(self):
        return self.hkind.list(self.client(None, self.hkind), self.hkind.sizes[-1])

    def rest(self, s: Schedule, checkpoint: dict | None) -> list:
        """What resuming from `checkpoint` on a server without faults gives."""
        self.sb.clear_faults()
        c = self.client(None)
        pager = self.kind.resume(c, s.size, checkpoint)
        return [self.key(r) for r in pager]

    def close(self) -> None:
        for c in self.clients:
            c.close()
        self.clients.clear()


def check(ctx: Context, s: Schedule, ways: list[str]) -> list[str]:
    """Read schedule `s` every way; what disagreed."""
    ctx.prepare(s)
    full = ctx.full[ctx.kind.name]
    hfull = ctx.full[ctx.hkind.name]
    problems: list[str] = []
    outcomes: dict[str, Outcome] = {}
    hits: dict[str, int] = {}
    for way in ways:
        ctx.sb.clear_faults()
        faults = install(ctx.sb, s)
        # a way that hangs is a finding: name it and stop (the caller's deadline
        # would otherwise be all that is known)
        print(f"reading {way} of {s.describe()}", file=sys.stderr, flush=True)
        faulthandler.dump_traceback_later(HANG, exit=True)
        try:
            o = WAYS[way](ctx, s, ctx.pager(s))
        except Exception as e:             # a way must not fail outside its result
            problems.append(f"{way}: raised outside the listing: {traceback.format_exception_only(e)[-1].strip()}")
            ctx.close()
            continue
        finally:
            faulthandler.cancel_dump_traceback_later()
        hits[way] = sum(f.hits for f in faults)
        outcomes[way] = o
        problems += [f"{way}: {p}" for p in invariants(ctx, s, way, o, full, hfull)]
        ctx.close()
    ref = outcomes.get("iter")
    # A connection reset on a connection that another listing kept open (the
    # healthy listing beside) is retried once by libcurl itself, as it does
    # for any request that finds a reused connection dead: that listing may
    # use one of custlist's retries fewer.  Those ways are held to the
    # invariants alone then (complete, or an exact checkpoint).
    shared = any(f[1] == "reset" for f in s.faults)
    if ref is not None and s.interrupt is None:
        for way, o in outcomes.items():
            if way == "iter" or (shared and way in ("beside", "fo_arrow")):
                continue
            if way in INCREMENTAL:
                if not o.same(ref):
                    problems.append(f"{way} disagrees with iter: {_short(o)} vs {_short(ref)}")
            elif o.error != ref.error or (ref.error is None and o.keys != ref.keys):
                problems.append(f"{way} disagrees with iter: {_short(o)} vs {_short(ref)}")
    ctx.sb.clear_faults()
    return problems


def _short(o: Outcome) -> str:
    return f"{len(o.keys)} records, error={o.error}, done={o.done}, checkpoint={o.checkpoint}"


def invariants(ctx, s: Schedule, way: str, o: Outcome, full: list, hfull: list) -> list[str]:
    bad = []
    if o.healthy is not None:
        hk, hdone, herr = o.healthy
        if way == "fo_arrow":
            hfull = ctx.full["site_2"]
        if hk != hfull or not hdone or herr is not None:
            bad.append(f"the healthy listing beside got {len(hk)}/{len(hfull)} records, "
                       f"done={hdone}, error={herr}")
    if s.lies:
        # the server lied: what it listed is not `full`; the ways must only
        # agree, and a repeated or missing position must not end quietly
        return bad
    want = full if s.max_items is None else full[:s.max_items]
    if o.done:
        if o.error is not None:
            bad.append(f"done with an error {o.error}")
        if o.keys != want:
            bad.append(f"done with {len(o.keys)} of {len(want)} records "
                       f"(lost {len(set(want) - set(o.keys))}, "
                       f"repeated {len(o.keys) - len(set(o.keys))})")
        return bad
    capped = s.max_items is not None and len(o.keys) == s.max_items and o.error is None
    if o.error is None and s.interrupt is None and not capped:
        bad.append(f"ended without an error and not done ({len(o.keys)} records)")
    if o.keys != want[:len(o.keys)]:
        bad.append(f"the {len(o.keys)} records given are not the listing's first ones")
        return bad
    if o.checkpoint is None:
        bad.append("not done and no checkpoint")
        return bad
    try:
        rest = ctx.rest(s, o.checkpoint)
    except Exception as e:
        bad.append(f"resume from its checkpoint raised {type(e).__name__}: {e}")
        return bad
    left = want[len(o.keys):]
    if s.max_items is not None:
        rest = rest[:len(left)]
    if rest != left:
        bad.append(f"resume from its checkpoint gave {len(rest)} records where "
                   f"{len(left)} were left (lost {len(set(left) - set(rest))}, "
                   f"repeated {len(set(rest) & set(o.keys))})")
    return bad


def lists(sb) -> dict:
    out = {}
    for kind in KINDS:
        with kind.client(sb, **FAST) as c:
            out[kind.name] = [getattr(r, kind.key) for r in kind.list(c, kind.sizes[-1])]
    with _kind("pyng").client(sb, **FAST) as c:
        out["site_2"] = [r.customer_reference for r in c.customers("site_2", limit=25)]
    return out


def run(seconds: float, seed: int, ways: list[str], limit: int | None = None) -> dict:
    with Sandbox(pyng_customers=61, natural_customers=53, natural_invitations=37,
                 commenda_customers=67, seed=11) as sb:
        ctx = Context(sb, lists(sb))
        deadline = time.monotonic() + seconds
        n, failures = 0, []
        while time.monotonic() < deadline and (limit is None or n < limit):
            s = draw(seed + n)
            n += 1
            problems = check(ctx, s, ways)
            if problems:
                print(json.dumps({"schedule": s.describe(), "problems": problems}),
                      file=sys.stderr, flush=True)
                failures.append({"schedule": s.describe(), "problems": problems})
        return {"schedules": n, "ways": len(ways), "failures": failures}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--seed", type=int, default=int(os.environ.get("CUSTLIST_DIFF_SEED", "1")))
    ap.add_argument("--limit", type=int, default=None, help="at most this many schedules")
    ap.add_argument("--ways", default=",".join(WAYS))
    args = ap.parse_args(argv)
    report = run(args.seconds, args.seed, args.ways.split(","), args.limit)
    print(json.dumps(report))
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
