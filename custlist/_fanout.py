"""custlist.fan_out: many independent listings at once, from one thread.

Every page request of the given pagers runs on one libcurl multi handle
driven by one C thread (``custlist._core.FanOut``): connections are reused
per origin, HTTP/2 streams share a connection where the server offers it,
and at most ``concurrency`` transfers are in flight.  Each pager keeps its
own paging, checks, retries and backoff; only who performs its transfers
changes.

Records come out as ``(source, record)`` tuples, each listing's records in
their order; listings interleave page by page as their pages arrive.  A
listing that fails (after its retries) stops alone, where the same pager
iterated alone would stop and with the same exception: the others go on,
and the summary says what failed and where to resume.  A listing is done
only when its last page was read (one stopped at its max_items is not done,
but `capped`); every listing not done has an exact checkpoint.

    with custlist.fan_out({s: pyng.customers(s) for s in sites}, concurrency=16) as out:
        for site, customer in out:
            ...
    out.summary.errors        # {source: exception}
    out.summary.checkpoints   # {source: pager checkpoint} of listings not finished
"""
from __future__ import annotations

import sys
import threading
from array import array
from dataclasses import dataclass
from typing import Any, Generator, Generic, Hashable, Iterator, Mapping, Sequence, TypeVar

from . import _core
from ._frames import _need
from ._pager import Pager
from .errors import PagerClosedError, PagingError

S = TypeVar("S", bound=Hashable)
T = TypeVar("T")

__all__ = ["fan_out", "FanOut", "FanOutSummary", "SourceResult", "FanOutError"]

if sys.version_info >= (3, 11):
    _Group = ExceptionGroup  # noqa: F821 (builtin since 3.11)
else:  # 3.10: the backport that pytest, anyio and trio use (a dependency there)
    from exceptiongroup import ExceptionGroup as _Group


class FanOutError(_Group):
    """The listings that failed in a fan-out (``raise_errors=True``): an
    ExceptionGroup of their exceptions, each with a ``source`` attribute; the
    fan-out's ``summary`` (also on ``.summary``) has every resume point."""

    summary: FanOutSummary[Any]


@dataclass
class SourceResult:
    """How one listing of a fan-out went.

    ``records``: records yielded; ``done``: the listing's last page was read,
    as ``pager.done`` says it; ``capped``: it stopped at its ``max_items``
    with more to come (not done: its checkpoint continues it); ``error``: why it stopped early (None if
    it did not fail; ``PagerClosedError`` when its pager was closed before
    its end, by ``close()`` or by its client); ``checkpoint``: the exact
    position after the last record yielded (``pager.checkpoint()``, adjusted
    when the fan-out stopped mid-page, or after a page whose paging error
    left no next position): ``client.resume(checkpoint)`` continues with the
    very next record (None for pagers not made by a client listing);
    ``resume``: the page-level resume point (cursor or next href) of the page
    holding the next record, of which ``skip`` records were already yielded
    (None once done, or when the first page is where to start)."""

    records: int = 0
    done: bool = False
    capped: bool = False
    error: BaseException | None = None
    checkpoint: dict[str, Any] | None = None
    resume: str | None = None
    skip: int = 0


class FanOutSummary(Generic[S]):
    """Per-source outcome of a fan-out (see SourceResult), complete once the
    fan-out is exhausted or closed."""

    def __init__(self, results: dict[S, SourceResult]):
        self.sources = results

    @property
    def errors(self) -> dict[S, BaseException]:
        return {s: r.error for s, r in self.sources.items() if r.error is not None}

    @property
    def resume(self) -> dict[S, str | None]:
        """Resume points of the listings that did not finish."""
        return {s: r.resume for s, r in self.sources.items() if not r.done}

    @property
    def checkpoints(self) -> dict[S, dict[str, Any] | None]:
        """Exact checkpoints (see SourceResult) of the listings that did not
        finish: ``client.resume(checkpoint)`` continues each one."""
        return {s: r.checkpoint for s, r in self.sources.items() if not r.done}

    @property
    def records(self) -> int:
        return sum(r.records for r in self.sources.values())

    @property
    def ok(self) -> bool:
        """True when no listing failed: each one is done (its last page read)
        or stopped at its ``max_items``."""
        return all(r.done or r.capped for r in self.sources.values())

    def __repr__(self) -> str:
        done = sum(r.done for r in self.sources.values())
        return (f"<FanOutSummary {done}/{len(self.sources)} listings done, "
                f"{self.records} records, {len(self.errors)} failed>")


def _resume_point(pager: Pager[Any]) -> str | None:
    href = pager.next_href
    return href if href is not None else pager.cursor


def _checkpoint(pager: Pager[Any]) -> dict[str, Any] | None:
    return pager.checkpoint() if getattr(pager, "_listing", None) is not None else None


def _mark(res: SourceResult, pager: Pager[Any]) -> None:
    """The listing's position now, at a page boundary."""
    res.checkpoint, res.resume, res.skip = _checkpoint(pager), _resume_point(pager), 0


def _moved(mark: dict[str, Any] | None, taken: int) -> dict[str, Any] | None:
    """The checkpoint `mark` (taken at a page boundary) moved past the
    `taken` records of the page after it that were yielded since."""
    if mark is None or taken == 0:
        return mark
    return {**mark, "skip": mark["skip"] + taken, "count": mark["count"] + taken}


def _settle(res: SourceResult, pager: Pager[Any], mark: dict[str, Any] | None) -> None:
    """The listing's position after a page all of whose records were
    yielded: the pager's own, or, when the server's last answer left no next
    position (a repeated cursor, "more" without a cursor, a malformed Link
    header), that page again with every record of it skipped."""
    try:
        _mark(res, pager)
    except PagingError:
        res.checkpoint = _moved(mark, res.skip)     # resume and skip stay: that page, all taken


def _finish(res: SourceResult, pager: Pager[Any]) -> None:
    """Listing `res` ended without an error: at its last page (done), or at
    its max_items with more to come (capped, and not done)."""
    if pager.done:
        res.done, res.resume = True, None
    else:
        res.capped = True


def _ending(core: Any, i: int, pager: Pager[Any]) -> BaseException | None:
    """How listing i, with no request queued, ended: None when its last page
    was read (or its max_items reached: see _finish); otherwise the exception that
    stopped it (the paging error its last page showed, max_pages, or the
    pager closed before its end, by close() or by its client)."""
    try:
        if pager._next_page() is None and not core.prime(i):
            return None
    except Exception as e:
        return e
    return RuntimeError("custlist: a listing with no request queued had a page to give")


class FanOut(Generic[S, T]):
    """Iterator of ``(source, record)`` over many listings; see fan_out."""

    def __init__(self, pagers: Mapping[S, Pager[T]] | Sequence[Pager[T]], concurrency: int = 8,
                 *, raise_errors: bool = False):
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) \
                or not 1 <= concurrency <= 1024:
            raise ValueError(f"concurrency must be an int from 1 to 1024, not {concurrency!r}")
        items: list[tuple[Any, Pager[T]]]
        if isinstance(pagers, Mapping):
            items = list(pagers.items())
        elif isinstance(pagers, Sequence) and not isinstance(pagers, (str, bytes)):  # type: ignore[unreachable]
            items = list(enumerate(pagers))
        else:
            raise TypeError("fan_out takes a mapping {source: pager} or a sequence of pagers")
        self._sources: list[Any] = [s for s, _ in items]
        self._pagers: list[Pager[T]] = [p for _, p in items]
        self._core = _core.FanOut(tuple(self._pagers), concurrency)
        self.concurrency = concurrency
        self.raise_errors = bool(raise_errors)
        self._results: dict[Any, SourceResult] = {s: SourceResult() for s in self._sources}
        if len(self._results) != len(self._sources):
            self._core.close()
            raise ValueError("fan_out sources must be distinct")
        self.summary: FanOutSummary[S] = FanOutSummary(self._results)
        self._stop: list[bool] = []
        self._started = False
        self._gen = _run(self._core, self._pagers, self._sources, self.summary,
                         self.raise_errors, self._stop)
        # Held by the thread inside the generator.  close() from another
        # thread must not close a generator that is running: with the GIL
        # CPython refuses it (ValueError), but free-threaded CPython 3.13
        # reads and writes the generator's state unguarded, so a close racing
        # a next() could throw into a running frame.  Threads iterating one
        # fan-out take turns.
        self._inside = threading.Lock()

    def __iter__(self) -> Iterator[tuple[S, T]]:
        return self

    def __next__(self) -> tuple[S, T]:
        self._started = True
        with self._inside:
            return next(self._gen)

    def to_arrow(self) -> Any:
        """Every listing as one pyarrow.Table (needs custlist[arrow]) with a
        ``source`` column first: the listings' Arrow streams, built in C,
        fetched concurrently over the fan-out's multi handle (one reading
        thread per listing, ``concurrency`` transfers at a time), each
        listing's rows in order, listings one after another in the order
        given.  Take it instead of iterating, not after.  Failures are as
        for iteration: in ``summary`` (listings that fail add no rows), or
        raised together with ``raise_errors=True``."""
        pa = _need("pyarrow", "arrow", "to_arrow()")
        if self._started or self._stop:
            raise ValueError("to_arrow() takes the whole fan-out: call it before iterating")
        self._started = True
        results = self.summary.sources

        def one(i: int) -> Any:
            pager, src, res = self._pagers[i], self._sources[i], results[self._sources[i]]
            _mark(res, pager)
            try:
                table = pager.to_arrow()
                # a table is the whole listing only if its last page was read
                failure = _ending(self._core, i, pager)
            except Exception as e:
                failure = e
            if failure is not None:
                # the rows read before the failure are not in the result:
                # the listing resumes from where it started (closed by
                # close(): stopped, not failed)
                if not self._stop:
                    _fail(res, src, pager, failure, mark=False)
                return None
            res.records = table.num_rows
            _mark(res, pager)
            _finish(res, pager)
            # done with: its transfer, buffers and pages go now, on this
            # thread beside the other listings, not all at the end (each
            # held until close() grew the fan-out's memory with every listing)
            pager.close()
            return table.add_column(0, "source", _constant_column(pa, src, table.num_rows))

        from concurrent.futures import ThreadPoolExecutor
        try:
            with ThreadPoolExecutor(max(1, min(self.concurrency, len(self._pagers)))) as pool:
                tables = [t for t in pool.map(one, range(len(self._pagers))) if t is not None]
        finally:
            self.close()
        errors = self.summary.errors
        if errors and self.raise_errors:
            _raise_group(self.summary, len(self._pagers))
        if not tables:
            return pa.table({"source": pa.nulls(0)})
        return pa.concat_tables(tables)

    def close(self) -> None:
        """Stop every listing, from any thread; resume points stay in
        ``summary`` (iteration ends: a thread inside it returns)."""
        self._stop.append(True)
        self._core.close()
        # a thread inside next() (this one, or another) ends the run itself
        if self._inside.acquire(blocking=False):
            try:
                self._gen.close()
            finally:
                self._inside.release()

    def __enter__(self) -> FanOut[S, T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<custlist.FanOut {len(self._pagers)} listings concurrency={self.concurrency} " \
               f"{self.summary!r}>"



def _constant_column(pa: Any, value: Any, n: int) -> Any:
    """`value` n times, typed as pyarrow types the value itself (a listing
    with no rows gets the same type as the others, so the tables
    concatenate).  str and int are laid out from buffers: pyarrow's
    conversion of Python objects imports pandas the first time (a third of a
    second or more, under the GIL), which to_arrow() needs no part of."""
    if type(value) is str:
        data = value.encode()
        if len(data) * n < 2**31:
            offsets = array("i", range(0, (n + 1) * len(data), len(data))) if data else \
                array("i", bytes(4 * (n + 1)))
            return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets),
                                                          pa.py_buffer(data * n)])
    elif type(value) is int and -2**63 <= value < 2**63:
        return pa.Array.from_buffers(pa.int64(), n, [None, pa.py_buffer(array("q", [value]) * n)])
    return pa.array([value] * n, type=pa.array([value]).type)


def _fail(res: SourceResult, source: Any, pager: Pager[Any], exc: BaseException,
          mark: bool = True) -> None:
    res.error = exc
    try:
        exc.source = source  # type: ignore[attr-defined]
    except AttributeError:
        pass
    if mark:
        _settle(res, pager, res.checkpoint)


def _run(core: Any, pagers: list[Pager[Any]], sources: list[Any],
         summary: FanOutSummary[Any], raise_errors: bool,
         stop: list[bool]) -> Generator[tuple[Any, Any], None, None]:
    """The fan-out's generator.  It holds no reference to its FanOut, so
    dropping a FanOut mid-run closes it at once (no cycle to collect).

    A listing is done only once its last page was read (at its max_items it
    is capped instead); any other end (an error, a paging error its last page showed,
    max_pages, its pager closed by another thread or by its client) is its
    error, after every record it delivered, with the exact checkpoint."""
    results = summary.sources
    marks: dict[int, dict[str, Any] | None] = {}   # checkpoint before the page being yielded
    live = set()
    # Closed at interpreter exit, the generator may run its exit path after
    # this module's globals were cleared: what that path calls, it holds.
    moved = _moved
    try:
        for i in range(len(pagers)):
            res = results[sources[i]]
            _mark(res, pagers[i])
            try:
                queued = core.prime(i)
            except Exception as e:           # closed, credentials that cannot be had, say
                _fail(res, sources[i], pagers[i], e)
                continue
            if queued:
                live.add(i)
                continue
            end = _ending(core, i, pagers[i])   # max_items=0, or resumed at the end
            if end is None:
                _finish(res, pagers[i])
            else:
                _fail(res, sources[i], pagers[i], end)
        while live and not stop:
            try:
                i = core.next_ready(1.0)
            except PagerClosedError:
                return                       # the fan-out closed by another thread
            if i is None or i not in live:
                continue
            pager, src, res = pagers[i], sources[i], results[sources[i]]
            marks[i] = res.checkpoint
            try:
                page = pager._next_page()    # None: the pager was closed meanwhile
            except Exception as e:
                if stop:
                    return                   # closed meanwhile: not the listing's fault
                _fail(res, src, pager, e)    # the pager's position: that page again
                live.discard(i)
                continue
            failure: BaseException | None = None
            try:
                # True while the pager has a request queued or in flight (a
                # pager without prefetch queues its next one only now)
                more = core.prime(i)
            except Exception as e:          # closed before its end
                more, failure = False, e
            if not more and failure is None:
                failure = _ending(core, i, pager)
            items = page.items if page is not None else ()
            try:
                for rec in items:
                    res.skip += 1
                    yield src, rec
            except GeneratorExit:
                # stopped mid-page: the checkpoint taken before the page, moved on
                res.records += res.skip
                res.checkpoint = moved(marks[i], res.skip)
                raise
            res.records += len(items)
            _settle(res, pager, marks[i])
            if failure is not None:
                live.discard(i)
                if not stop:                 # closed by the fan-out itself: only stopped
                    _fail(res, src, pager, failure, mark=False)
            elif not more:
                _finish(res, pager)
                live.discard(i)
                # done with: its transfer, buffers and pages go now, not when
                # the whole fan-out ends (as to_arrow() lets go of each)
                pager.close()
    finally:
        core.close()
    if summary.errors and raise_errors:
        _raise_group(summary, len(pagers))


def _raise_group(summary: FanOutSummary[Any], listings: int) -> None:
    errors = summary.errors
    group = FanOutError(f"{len(errors)} of {listings} listings failed",
                        [e for e in errors.values() if isinstance(e, Exception)])
    group.summary = summary
    raise group


def fan_out(pagers: Mapping[S, Pager[T]] | Sequence[Pager[T]], concurrency: int = 8, *,
            raise_errors: bool = False) -> FanOut[S, T]:
    """Page many independent listings concurrently over one libcurl multi
    handle driven by one C thread.

    ``pagers``: ``{source: pager}`` (any hashable sources, e.g. site ids) or
    a sequence of pagers (sources are their indices).  The pagers must be
    fresh (never iterated); a saved resume point starts one part-way.  The
    fan-out owns them from then on: closing it closes them.

    Iterating yields ``(source, record)`` tuples: each listing's records in
    order, listings interleaved page by page.  ``concurrency``: transfers in
    flight at most (1..1024).  A listing that fails after its retries stops
    alone; the others carry on.  At the end ``.summary`` has, per source,
    the records yielded, the error and the resume point; with
    ``raise_errors=True`` the errors are also raised together as a
    FanOutError (an ExceptionGroup) once the other listings are done."""
    return FanOut(pagers, concurrency, raise_errors=raise_errors)

