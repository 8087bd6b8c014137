"""dlt resources over custlist listings, loaded page by page as Arrow and
resumable in chunks.

    import dlt, custlist, custlist.dlt

    pyng = custlist.Pyng(client_id=..., client_secret=..., base_url=...)
    customers = custlist.dlt.listing(pyng, "customers", site_id="site_1", max_items=10_000)
    dlt.pipeline("crm", destination="duckdb").run(customers)   # each run: 10,000 more

Each page reaches dlt as an Arrow record batch built by custlist's C engine
(dlt loads Arrow without its Python normalizer); the table's columns and
types come from the record description, without a request.

**Resumable in chunks.**  dlt commits a resource's state only when a run's
extraction completes.  A resource keeps custlist's exact checkpoint
(``pager.checkpoint()``) in that state: with ``max_items`` (records per run)
or ``max_pages`` (pages per run) each run continues exactly where the last
committed run stopped, and a run killed or failed mid-way is fetched again
from the last committed checkpoint: every record loaded exactly once.  Once
a listing has been read to its end its checkpoint is dropped, and the next
run lists it again from its start (or, with ``incremental``, from the
high-water mark).

**Every account** (``accounts``): one resource, one table, for many Pyng
sites or Commenda corporations, listed concurrently over one multi handle
(``custlist.fan_out``), with the account in the first column and a
checkpoint per account, each page loaded as it arrives.  An account that
fails loads the pages it delivered before its error and keeps its checkpoint
after them (the next run continues it from there); the others load.  Run it
with ``load()`` to have those failures raised, as a ``custlist.FanOutError``,
once the others are loaded.

**Incremental** (``incremental=dlt.sources.incremental("invited_at")``,
``since="invited_from"``): dlt carries the high-water mark of the cursor
column between runs and custlist sends it as the listing's lower bound
(inclusive: dlt drops the records at the boundary it already loaded).  A
run then lists everything since the mark at once: ``max_items`` and
``max_pages`` cannot be combined with it (the mark would move past the
older records of a listing still under way).

Needs the ``[dlt]`` extra: ``pip install 'custlist[dlt]'``."""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from . import _frames
from ._fanout import FanOutError, FanOutSummary, SourceResult, _constant_column, _ending, fan_out

__all__ = ["listing", "endpoint", "accounts", "load", "PRIMARY_KEYS"]

_EXTRA = "custlist.dlt needs dlt and pyarrow: pip install 'custlist[dlt]'"

# Each bundled listing's record key.
PRIMARY_KEYS: dict[str, str] = {
    "pyng.customers": "customer_reference",
    "natural.customers": "id",
    "natural.customer_invitations": "id",
    "commenda.customers": "id",
}


def _need() -> tuple[Any, Any]:
    try:
        import dlt
        import pyarrow
    except ImportError as e:
        raise ImportError(f"{_EXTRA} ({e.name} is missing)") from e
    return dlt, pyarrow


def _columns(schema: Any) -> dict[str, Any]:
    from dlt.common.libs.pyarrow import py_arrow_to_table_schema_columns
    return py_arrow_to_table_schema_columns(schema)


def _key_of(endpoint: Any, primary_key: str | Sequence[str] | None) -> Any:
    if primary_key is not None:
        return primary_key
    return PRIMARY_KEYS.get(getattr(endpoint, "name", None) or "")


def _check_caps(max_items: int | None, max_pages: int | None) -> None:
    for name, value in (("max_items", max_items), ("max_pages", max_pages)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise ValueError(f"{name} must be a positive int or None, not {value!r}")


def _batches(pa: Any, pager: Any, max_pages: int | None,
             cut: list[bool] | None = None) -> Iterator[Any]:
    """The pager's pages as Arrow record batches (one per page, empty ones
    left out), at most max_pages of them (``cut`` gets True when that
    stopped it); custlist's own exception raised in place of pyarrow's
    rewording of it."""
    errors: list[BaseException] = []
    stream = _frames._Stream(pager._arrow_stream(errors, 1))
    pages = 0
    try:
        reader = pa.RecordBatchReader.from_stream(stream)
        for batch in reader:
            pages += 1
            if batch.num_rows:
                yield batch
            if max_pages is not None and pages >= max_pages:
                if cut is not None:
                    cut.append(True)
                break
    except Exception:
        if errors:
            raise errors[-1] from None
        raise


def _check_end(pager: Any) -> None:
    """An Arrow stream that ended before the listing's last page (and
    before its max_items) ended on the paging error its last page showed
    (the server said "more" but gave no next position, or the same one
    again): that error, raised, as iterating the pager raises it."""
    if pager.done:
        return
    if pager._next_page() is not None:
        raise RuntimeError("custlist: the Arrow stream ended with a page still to give")


def _resumed(open_pager: Callable[..., Any], checkpoint: Any, max_items: int | None) -> Any:
    """The listing's pager from the checkpoint in the resource's state,
    which must be one of this very listing (same path and filters)."""
    try:
        return open_pager(start=checkpoint, max_items=max_items)
    except ValueError as e:
        if checkpoint is None:
            raise
        raise ValueError(
            "the dlt state of this resource holds the checkpoint of another listing "
            f"({checkpoint.get('path')} {checkpoint.get('query')}): a listing with other "
            f"arguments needs a resource of another name=, or this one's state reset ({e})"
        ) from None


def _pages(open_pager: Callable[..., Any], state: dict[str, Any], max_items: int | None,
           max_pages: int | None, pa: Any, schema: Any) -> Iterator[Any]:
    """One run's share of a listing: from the state's checkpoint on, its
    new checkpoint in the state after every page (committed by dlt with the
    run's extraction, or not at all).  A run with no record yields an empty
    table, so that the destination has the table all the same."""
    pager = _resumed(open_pager, state.get("checkpoint"), max_items)
    rows, cut = 0, []
    try:
        for batch in _batches(pa, pager, max_pages, cut):
            state["checkpoint"] = pager.checkpoint()
            rows += batch.num_rows
            yield batch
        if not cut:
            _check_end(pager)
        end = pager.checkpoint()
    finally:
        pager.close()
    state["checkpoint"] = None if end["done"] else end
    if not rows:
        yield schema.empty_table()


def _resource(dlt: Any, gen: Any, name: str, primary_key: Any, columns: dict[str, Any],
              write_disposition: Any) -> Any:
    return dlt.resource(gen, name=name, primary_key=primary_key, columns=columns,
                        write_disposition=write_disposition)


def _since_filters(incremental: Any, since: str | None, max_items: int | None,
                   max_pages: int | None) -> None:
    if incremental is None:
        if since is not None:
            raise ValueError("since= names the filter that takes incremental's mark: "
                             "give incremental= too")
        return
    if since is None:
        raise ValueError("incremental= needs since=, the listing's lower-bound filter "
                         "(invited_from for Pyng customers)")
    if max_items is not None or max_pages is not None:
        raise ValueError("an incremental resource lists everything since its mark in one run: "
                         "max_items and max_pages cannot be combined with it")


def _make(client: Any, open_pager: Callable[..., Any], endpoint: Any, name: str,
          primary_key: Any, max_items: int | None, max_pages: int | None,
          incremental: Any, since: str | None, write_disposition: Any) -> Any:
    dlt, pa = _need()
    _check_caps(max_items, max_pages)
    _since_filters(incremental, since, max_items, max_pages)
    # the columns from the description: a listing capped at zero sends no request
    probe = open_pager(start=None, max_items=0)
    schema = probe.to_arrow().schema
    probe.close()
    key = _key_of(endpoint, primary_key)

    if incremental is None:
        def gen() -> Iterator[Any]:
            state = dlt.current.resource_state()
            yield from _pages(open_pager, state, max_items, max_pages, pa, schema)
    else:
        def gen(mark: Any = incremental) -> Iterator[Any]:   # type: ignore[misc]
            state = dlt.current.resource_state()
            value = mark.last_value
            bound = {} if value is None else {since: value}
            yield from _pages(lambda **kw: open_pager(**kw, **bound), state, None, None, pa,
                              schema)
    return _resource(dlt, gen, name, key, _columns(schema), write_disposition)


def _method(client: Any, method: str) -> Callable[..., Any]:
    call = getattr(client, method, None) if isinstance(method, str) else None
    if not callable(call) or method.startswith("_"):
        raise ValueError(f"{type(client).__name__} has no listing {method!r}")
    return call


def listing(client: Any, method: str = "customers", *, name: str | None = None,
            primary_key: str | Sequence[str] | None = None, max_items: int | None = None,
            max_pages: int | None = None, incremental: Any = None, since: str | None = None,
            write_disposition: Any = "append", **filters: Any) -> Any:
    """A dlt resource of ``client.<method>(**filters)``: a bundled listing
    (``Pyng.customers``, ``Natural.customers``, ``Natural.customer_invitations``,
    ``Commenda.customers``) or any listing method of a client.

    ``name``: the table (default: the endpoint's name, e.g.
    ``pyng_customers``); ``primary_key``: default the record's key
    (``PRIMARY_KEYS``); ``max_items`` / ``max_pages``: records / pages per
    run, the rest left to the next runs; ``incremental`` and ``since``: see
    the module's documentation; ``write_disposition``: dlt's."""
    call = _method(client, method)
    if "start" in filters or "raw" in filters:
        raise ValueError("start= and raw= are kept by the resource")

    def open_pager(*, start: Any, max_items: int | None, **more: Any) -> Any:
        return call(**filters, **more, start=start, max_items=max_items)

    probe = open_pager(start=None, max_items=0)
    endpoint = probe._listing.endpoint
    probe.close()
    return _make(client, open_pager, endpoint, name or endpoint.name.replace(".", "_"),
                 primary_key, max_items, max_pages, incremental, since, write_disposition)


def endpoint(client: Any, endpoint: Any, path: str, query: Any = None, *, name: str,
             primary_key: str | Sequence[str] | None = None, max_items: int | None = None,
             max_pages: int | None = None, write_disposition: Any = "append",
             headers: Mapping[str, str] | None = None) -> Any:
    """A dlt resource of ``client.paginate(endpoint, path, query)``: any
    ``custlist.Endpoint`` described by the user, resumable in chunks as
    ``listing`` is.  ``name``: the table; ``primary_key``: the record's key
    (None: no key)."""

    def open_pager(*, start: Any, max_items: int | None) -> Any:
        return client.paginate(endpoint, path, query, headers=headers, start=start,
                               max_items=max_items)

    return _make(client, open_pager, endpoint, name, primary_key, max_items, max_pages,
                 None, None, write_disposition)


class _Failures(dict):  # type: ignore[type-arg]
    """The accounts that failed in a resource's last run: {account: exception}."""


def accounts(client: Any, method: str = "customers", *, by: str, accounts: Sequence[str],
             name: str | None = None, column: str | None = None,
             primary_key: str | Sequence[str] | None = None, max_items: int | None = None,
             concurrency: int = 8, write_disposition: Any = "append", **filters: Any) -> Any:
    """One dlt resource (one table) of ``client.<method>(<by>=account,
    **filters)`` for every account (Pyng ``site_id``, Commenda
    ``corporation_id``), listed concurrently over one multi handle, with
    the account in the first column (``column``, default ``by``).

    Each account keeps its own checkpoint in the resource's state;
    ``max_items`` caps each account's records per run.  An account that
    fails loads the pages it delivered before its error and keeps the
    checkpoint after them; the others are loaded.  The last run's outcome
    is in ``resource.summary`` (a ``custlist.FanOutSummary``), its failures
    in ``resource.failures`` (``{account: exception}``); ``load()`` raises
    them after the load."""
    dlt, pa = _need()
    call = _method(client, method)
    _check_caps(max_items, None)
    if isinstance(accounts, str) or not isinstance(accounts, Sequence) or not accounts \
            or not all(isinstance(a, str) and a for a in accounts):
        raise ValueError("accounts must be a non-empty list of non-empty str")
    accounts = list(accounts)
    if len(set(accounts)) != len(accounts):
        raise ValueError("accounts listed twice would be loaded twice")
    if "start" in filters or "raw" in filters:
        raise ValueError("start= and raw= are kept by the resource")
    column = column or by
    probe = call(**{by: accounts[0]}, **filters, max_items=0)
    endpoint, schema = probe._listing.endpoint, probe.to_arrow().schema
    probe.close()
    if column in schema.names:
        raise ValueError(f"the records already have a column {column!r}: pass column=")
    schema = schema.insert(0, pa.field(column, pa.string()))
    key = primary_key
    if key is None and endpoint.name in PRIMARY_KEYS:
        key = [column, PRIMARY_KEYS[endpoint.name]]
    failures = _Failures()
    summary: FanOutSummary[str] = FanOutSummary({})

    def gen() -> Iterator[Any]:
        failures.clear()
        summary.sources.clear()
        state = dlt.current.resource_state()
        points = state.setdefault("checkpoints", {})
        finished = state.setdefault("done", [])
        if all(a in finished for a in accounts):
            finished.clear()                  # the last round is complete: start again
            points.clear()
        pagers = {}
        try:
            for a in accounts:
                if a in finished:
                    continue
                cp = points.get(a)
                pagers[a] = _resumed(lambda **kw: call(**{by: a}, **filters, **kw), cp,
                                     max_items)
        except BaseException:
            for p in pagers.values():
                p.close()
            raise
        for a in pagers:
            summary.sources[a] = SourceResult(checkpoint=points.get(a))
        rows = 0
        for a, batch, position in _fanned_pages(pa, fan_out(pagers, concurrency), concurrency):
            res = summary.sources[a]
            if batch is not None:
                points[a] = res.checkpoint = position
                res.records += batch.num_rows
                rows += batch.num_rows
                table = pa.Table.from_batches([batch])
                accounts_column = _constant_column(pa, a, table.num_rows) if type(a) is str \
                    else pa.array([a] * table.num_rows, pa.string())
                yield table.add_column(0, pa.field(column, pa.string()), accounts_column)
            elif isinstance(position, BaseException):
                failures[a] = res.error = position   # its checkpoint: after its last page loaded
                try:
                    position.source = a       # as custlist.fan_out names it
                except AttributeError:
                    pass
            elif position["done"]:
                points.pop(a, None)
                finished.append(a)
                res.done, res.checkpoint = True, position
            else:
                points[a] = res.checkpoint = position   # stopped at max_items
                res.capped = True
        state["failed"] = {a: f"{type(e).__name__}: {e}" for a, e in failures.items()}
        if not rows:
            yield schema.empty_table()

    resource = _resource(dlt, gen, name or endpoint.name.replace(".", "_"), key,
                         _columns(schema), write_disposition)
    resource.failures = failures
    resource.summary = summary
    return resource


def _fanned_pages(pa: Any, out: Any, concurrency: int) -> Iterator[tuple[Any, Any, Any]]:
    """The pages of a fan-out's listings as ``(account, batch, checkpoint
    after it)``, each listing's in order, as they arrive (read concurrently
    over the fan-out's multi handle, one page waiting per reader at most);
    then, once per listing, ``(account, None, end)``: its final checkpoint,
    or the exception that stopped it."""
    names = list(out._sources)
    pages: queue.Queue[tuple[Any, Any, Any]] = queue.Queue(maxsize=max(1, concurrency))
    stop = threading.Event()

    def put(item: tuple[Any, Any, Any]) -> None:
        while not stop.is_set():
            try:
                pages.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def read(i: int) -> None:
        pager, end = out._pagers[i], None
        try:
            for batch in _batches(pa, pager, None):
                put((names[i], batch, pager.checkpoint()))
            end = _ending(out._core, i, pager)
            if end is None:
                end = pager.checkpoint()
        except BaseException as e:
            end = e
        put((names[i], None, end))

    pool = ThreadPoolExecutor(max(1, min(concurrency, len(names))))
    try:
        for i in range(len(names)):
            pool.submit(read, i)
        ended = 0
        while ended < len(names):
            item = pages.get()
            ended += item[1] is None
            yield item
    finally:
        stop.set()
        out.close()
        pool.shutdown(wait=True)


def load(pipeline: Any, data: Any, **run: Any) -> Any:
    """``pipeline.run(data, **run)``, then the failures of any ``accounts``
    resource in ``data`` raised together as a ``custlist.FanOutError``
    (after the other accounts were loaded), with ``summary`` (records,
    error and checkpoint per account of the run) and ``load_info``; else
    dlt's LoadInfo."""
    info = pipeline.run(data, **run)
    items = data if isinstance(data, (list, tuple)) else [data]
    results: dict[str, SourceResult] = {}
    for item in items:
        summary = getattr(item, "summary", None)
        if isinstance(summary, FanOutSummary):
            results.update(summary.sources)
    summary = FanOutSummary(results)
    failed = summary.errors
    if failed:
        group = FanOutError(f"{len(failed)} of {len(results)} accounts failed (the others are "
                            "loaded; each failed account continues from its checkpoint on the "
                            "next run)", [e for e in failed.values() if isinstance(e, Exception)])
        group.summary = summary
        group.load_info = info  # type: ignore[attr-defined]
        raise group
    return info
