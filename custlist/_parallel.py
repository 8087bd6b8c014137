"""Parallel pages within one listing: ``client.paginate(..., concurrency=N)``.

Offset and page-number paging say where every page starts once the
listing's size is known: the first page's ``total`` / ``total_pages``, or a
``total`` the caller passes.  The pages after the first are then fetched N
at a time on one libcurl multi handle (``custlist._core.FanOut``: one C
thread, HTTP/2 streams where the server offers them, the client's shared
rate limiter), each by a pager of its own that starts at that page and
stops after it, with the pager's own retries and checks.  Records still come
out in the listing's order: the page being handed out is the oldest one
requested, and a new request is made only once a page has been handed out
whole, so at most N pages are ever held.

Everything a sequential listing promises holds:

- ``max_items``: the last page requested asks for what remains, and no page
  past it is requested;
- ``checkpoint()`` is the checkpoint of the first page not wholly handed out
  (the same dict ``pager.checkpoint()`` gives): ``client.resume()`` continues
  it exactly, one page at a time or in parallel again;
- a page that fails after its retries stops the listing with its error once
  the pages before it are handed out; the pages after it are dropped unread
  and the checkpoint names the failed page;
- a page shorter than the declared size, or empty, before the listing's end
  is a ``PagingError`` (after its records), not a silent end.

Without a total (a first page that states none, and none given), the listing
goes on one page at a time."""
from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any, Generic, Iterator, TypeVar

from . import _core
from ._frames import _need
from ._pager import Pager
from .errors import PagerClosedError, PagingError

if TYPE_CHECKING:
    from ._client import Client
    from ._spec import Endpoint

T = TypeVar("T")

__all__ = ["ParallelPager"]

# Pages per multi handle: a new handle takes over after this many, so that
# a listing of any length holds at most two handles' pagers at once (the
# next one is made once the last pages of the one before are requested).
# One handle for up to this many pages keeps its connections for all of
# them: making the pagers costs far less than new connections would.
CHUNK = 512


def check_concurrency(endpoint: Endpoint[Any], concurrency: object, total: object,
                      query: list[tuple[str, str]]) -> int:
    """``concurrency`` checked against the endpoint's paging (ValueError
    before any request); the page size the pages are planned with."""
    mode = endpoint.paging.mode
    if mode not in ("offset", "page"):
        style = {"cursor": "cursor", "href": "next-link"}.get(mode, mode)
        if endpoint.paging.resume == "href" and mode != "href":
            style = "Link-header"
        raise ValueError(
            f"{endpoint.name} pages by {style}: each page names the next one, so its pages "
            "can only be fetched one after another; concurrency= needs offset or page-number "
            "paging")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) \
            or not 1 <= concurrency <= 1024:
        raise ValueError(f"concurrency must be an int from 1 to 1024, not {concurrency!r}")
    if total is not None and (isinstance(total, bool) or not isinstance(total, int)
                              or total < 0):
        raise ValueError(f"total must be a non-negative int or None, not {total!r}")
    size = None
    if endpoint.page_size is not None:
        given = dict(query).get(endpoint.page_size)
        size = int(given) if given is not None else endpoint.default_page_size
    if not size:
        raise ValueError(f"concurrency= needs the page size of {endpoint.name}: give its "
                         f"{endpoint.page_size or 'page size'} parameter in the query")
    return size



class _Slot:
    """One page after the first: where it starts, the records before it,
    how many it must hand out (``exact``: no fewer), and once made, its
    pager, the checkpoint before it and its place on a multi handle."""

    __slots__ = ("position", "before", "want", "exact", "pager", "mark", "core", "index", "last")

    def __init__(self, position: int, before: int, want: int, exact: bool):
        self.position, self.before, self.want, self.exact = position, before, want, exact
        self.pager: Pager[Any] | None = None
        self.mark: dict[str, Any] | None = None
        self.core: Any = None
        self.index = -1
        self.last = False                # the last page of its multi handle


class ParallelPager(Generic[T]):
    """Iterator over a listing's records, its pages fetched ``concurrency``
    at a time (see custlist._parallel); made by ``client.paginate(...,
    concurrency=N)``.  Like a Pager: iterate it (or ``async for``),
    ``checkpoint()``, ``close()`` from any thread, ``done``, ``total``,
    ``consumed``, ``pages_fetched``, ``to_arrow()``.  Used once."""

    def __init__(self, client: Client, endpoint: Endpoint[Any], path: str,
                 pairs: list[tuple[str, str]], head: Pager[Any], size: int, concurrency: int,
                 *, total: int | None, max_items: int | None, headers: Any, raw: bool):
        self._client, self._endpoint, self._path, self._pairs = client, endpoint, path, pairs
        self._head: Pager[Any] | None = head
        self._size, self.concurrency = size, concurrency
        self._given_total, self._max_items = total, max_items
        self._headers, self._raw = headers, raw
        self._page_mode = endpoint.paging.mode == "page"
        self._first = int(endpoint.paging.first or 0)
        self._start = head.checkpoint()            # where the listing starts
        self._lock = threading.Lock()              # close() against a new multi handle
        self._closed = False
        self._cores: list[Any] = []
        self._head_want = -1                       # -1: not planned yet
        self._head_exact = False
        self._plan: list[_Slot] | None = None      # the pages after the head's
        self._to_end = False                       # the plan reaches the listing's end
        self._beyond: _Slot | None = None          # the first page past max_pages
        self._next = 0                             # first page of the plan not handed out
        self._primed = 0                           # pages of the plan requested so far
        self._tail: Pager[Any] | None = None       # the rest one page at a time (no total)
        self._items: list[Any] = []
        self._at = 0                               # records of _items handed out
        self._mark: dict[str, Any] = self._start   # before the page being handed out
        self._pending: BaseException | None = None  # raised once _items are handed out
        self._final: dict[str, Any] | None = None  # where it stands once over
        self._over = False
        self._total_seen: int | None = None
        self._pages_seen: int | None = None
        self.consumed = 0
        self.pages_fetched = 0
        if total is not None:
            self._planned()                        # the other pages go with the first

    # ---- what it is ------------------------------------------------------

    @property
    def total(self) -> int | None:
        """The listing's record count: the one given, else the first page's."""
        return self._given_total if self._given_total is not None else self._total_seen

    @property
    def total_pages(self) -> int | None:
        """The page count the first page stated (page-number paging)."""
        return self._pages_seen

    @property
    def done(self) -> bool:
        """True once the listing's last record was handed out."""
        return self._final is not None and bool(self._final["done"])

    def __repr__(self) -> str:
        total = self.total
        return (f"<custlist.ParallelPager GET {self._client.base_url}{self._path} "
                f"concurrency={self.concurrency} pages_fetched={self.pages_fetched} "
                f"total={'?' if total is None else total} done={self.done}>")

    def checkpoint(self) -> dict[str, Any]:
        """Where this listing stands, as ``pager.checkpoint()`` says it: the
        first page not wholly handed out and how many of its records were.
        ``client.resume(checkpoint)`` (with or without ``concurrency=``)
        continues with the very next record."""
        if self._final is not None:
            return dict(self._final)
        mark, items, at = self._mark, self._items, self._at
        if at and at == len(items) and self._pending is None:
            after = self._after()       # a page handed out whole: the next one
            if after is not None:
                return after
        if at == 0:
            return dict(mark)
        return {**mark, "skip": mark["skip"] + at, "count": mark["count"] + at}

    def _after(self) -> dict[str, Any] | None:
        """The checkpoint of the page after the one being handed out."""
        tail, plan = self._tail, self._plan
        if tail is not None:
            return tail.checkpoint()
        if plan and self._next < len(plan):
            slot = plan[self._next]
            return {**self._start, "page": str(slot.position), "skip": 0, "count": slot.before,
                    "done": False}
        return None

    # ---- planning ----------------------------------------------------------

    def _position(self, cp: dict[str, Any]) -> int:
        page = cp["page"]
        return int(page) if page is not None else self._first

    def _planned(self) -> bool:
        """Plan the pages from the listing's total; False when none is known."""
        size, total = self._size, self.total
        pages = self._pages_seen
        if self._page_mode and pages is None and total is not None:
            pages = -(-total // size)
        bound = pages if self._page_mode else total
        if bound is None:
            return False
        start, left = self._start, self._max_items
        pos, skip = self._position(start), start["skip"]
        before = start["count"] - skip
        head = True
        plan: list[_Slot] = []
        self._to_end = True
        while True:
            if self._page_mode:
                index = pos - self._first
                if index >= bound:
                    break
                if total is not None:
                    want, exact = min(size, total - before) - skip, True
                elif index == bound - 1:        # the last page holds 1 to size records
                    want, exact = size - skip, False
                else:
                    want, exact = size - skip, True
            else:
                if pos >= bound:
                    break
                want, exact = min(size, bound - pos) - skip, True
            if want <= 0:
                break
            if left is not None and want >= left:
                want, exact = left, True
                self._to_end = False
            if head:
                self._head_want, self._head_exact, head = want, exact, False
            else:
                plan.append(_Slot(pos, before, want, exact))
            if left is not None:
                left -= want
                if left == 0:
                    break
            pos = pos + 1 if self._page_mode else pos + size
            before, skip = before + size, 0
        if head:                     # the head's page is past the end
            self._head_want, self._head_exact = 0, True
        # max_pages holds for the listing: its pages past the limit are not
        # requested, and asking for the first of them is a PagingError
        most = self._client._settings["max_pages"]
        if most is not None and len(plan) >= most:
            self._beyond, self._to_end = plan[most - 1], False
            del plan[most - 1:]
        self._plan = plan
        return True

    # ---- the pages ---------------------------------------------------------

    def _start_chunk(self, first: int) -> list[_Slot]:
        """Pagers for the plan's pages from `first`, on a new multi handle."""
        assert self._plan is not None
        slots = self._plan[first:first + CHUNK]
        pagers: list[Pager[Any]] = []
        try:
            for k, slot in enumerate(slots):
                start = {**self._start, "page": str(slot.position), "skip": 0,
                         "count": slot.before, "done": False}
                try:
                    pager = self._client.paginate(
                        self._endpoint, self._path, self._pairs, headers=self._headers,
                        raw=self._raw, max_items=slot.want, start=start)
                except ValueError as e:        # the client was closed meanwhile
                    raise PagerClosedError(f"{e}: resume from checkpoint()") from None
                pagers.append(pager)
                slot.pager, slot.mark, slot.index = pager, pager.checkpoint(), k
            with self._lock:
                if self._closed:
                    raise PagerClosedError("the listing was closed before its end: resume "
                                           "from checkpoint()")
                core = _core.FanOut(tuple(pagers), self.concurrency)
                self._cores.append(core)
        except BaseException:
            for pager in pagers:
                pager.close()
            raise
        for slot in slots:
            slot.core = core
        slots[-1].last = True
        return slots

    def _prime(self) -> None:
        """Request pages of the plan until ``concurrency`` pages are on
        their way or held, the page being handed out (or the first page,
        not in hand yet) counted."""
        assert self._plan is not None
        room = self.concurrency - (1 if self._head is not None else 0)
        while self._primed < len(self._plan) and self._primed - self._next < room:
            slot = self._plan[self._primed]
            if slot.core is None:
                self._start_chunk(self._primed)
            slot.core.prime(slot.index)
            self._primed += 1
        if self._primed < len(self._plan) and self._plan[self._primed].core is None:
            self._start_chunk(self._primed)      # ahead of need, while pages are on their way

    def _release(self, slot: _Slot) -> None:
        """A page handed out whole: its pager and, at the end of a chunk,
        its multi handle go."""
        pager, slot.pager = slot.pager, None
        if pager is not None:
            pager.close()
        assert self._plan is not None
        if slot.last and slot.core is not None:
            slot.core.close()
            with self._lock:
                if slot.core in self._cores:
                    self._cores.remove(slot.core)

    def _hand_out(self, items: list[Any], want: int, exact: bool, position: int) -> None:
        """`items` to hand out next; a page short of the records due before
        the listing's end is a PagingError, raised once they are out."""
        self._items, self._at = items, 0
        if len(items) < want and (exact or not items):
            where = "page" if self._page_mode else "offset"
            stated = [f"{self.total} records"] if self.total is not None else []
            stated += [f"{self._pages_seen} pages"] if self._pages_seen is not None else []
            self._pending = PagingError(
                f"the page at {where} {position} held {len(items)} records where {want} were "
                f"due before the listing's end ({', '.join(stated)} stated; a server that "
                "caps the page size below the one asked for needs a smaller one): resume "
                "from checkpoint()")

    def _load(self) -> bool:
        """The next page's records into _items; False at the listing's end."""
        if self._head is not None:
            return self._load_head()
        if self._tail is not None:
            self._mark, self._items, self._at = self._tail.checkpoint(), [], 0
            page = self._tail._next_page()
            if page is None:
                self._final = self._tail.checkpoint()
                return False
            self.pages_fetched += 1
            self._items, self._at = list(page.items), 0
            return True
        assert self._plan is not None
        if self._next > 0:
            self._release(self._plan[self._next - 1])
        if self._next >= len(self._plan) and self._beyond is not None:
            slot, most = self._beyond, self._client._settings["max_pages"]
            self._final = {**self._start, "page": str(slot.position), "skip": 0,
                           "count": slot.before, "done": False}
            raise PagingError(f"max_pages={most} reached and the listing has more pages: "
                              "resume from checkpoint()")
        if self._next >= len(self._plan):
            cp = self.checkpoint()
            self._final = {**cp, "done": True} if self._to_end else cp
            return False
        self._prime()
        slot = self._plan[self._next]
        assert slot.pager is not None and slot.mark is not None
        self._mark, self._items, self._at = slot.mark, [], 0
        page = slot.pager._next_page()
        if page is None:            # its pager closed (by close(), or by the client)
            raise PagerClosedError("the listing was closed while a page was on its way: "
                                   "resume from checkpoint()")
        items = list(page.items)
        self.pages_fetched += 1
        self._next += 1
        self._hand_out(items, slot.want, slot.exact, slot.position)
        return True

    def _load_head(self) -> bool:
        head = self._head
        assert head is not None
        if self._plan is not None:
            self._prime()                      # the total was given: all at once
        page = head._next_page()
        if page is None:                       # nothing wanted, resumed at the end, or closed
            if self._closed:
                raise PagerClosedError("the listing was closed while a page was on its way: "
                                       "resume from checkpoint()")
            self._final = head.checkpoint()
            return False
        self.pages_fetched += 1
        self._total_seen, self._pages_seen = head.total, head.total_pages
        items = list(page.items)
        if self._plan is None and not self._planned():
            # no total: the rest one page at a time, from where the first stops
            after = head.checkpoint()
            self._head = None
            head.close()
            left = None if self._max_items is None else self._max_items - len(items)
            self._items, self._at = items, 0
            if after["done"] or left == 0:
                self._final = after
                self._plan = []
            else:
                self._tail = self._client.paginate(
                    self._endpoint, self._path, self._pairs, headers=self._headers,
                    raw=self._raw, max_items=left, start=after)
            return True
        self._head = None
        head.close()
        self._hand_out(items, self._head_want, self._head_exact, self._position(self._start))
        return True

    # ---- iteration -----------------------------------------------------------

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        while self._at >= len(self._items):
            if self._over:
                raise StopIteration
            if self._pending is not None:
                error = self._pending
                self._stop()            # where it stands: that page, its records out
                self._pending = None
                raise error
            if self._closed:
                self._stop()
                raise PagerClosedError("the listing was closed before its end: resume from "
                                       "checkpoint()")
            if self._final is not None and self._tail is None:
                self._stop()
                raise StopIteration
            try:
                more = self._load()
            except BaseException:
                self._stop()
                raise
            if not more:
                self._stop()
                raise StopIteration
        item = self._items[self._at]
        self._at += 1
        self.consumed += 1
        return item  # type: ignore[no-any-return]

    def _stop(self) -> None:
        """The listing is over (its end, an error, close()): where it stands
        is kept, and every pager and multi handle goes."""
        if self._final is None:
            self._final = self.checkpoint()
        self._over = True
        self._items, self._at = [], 0
        self._close_all()

    def _close_all(self) -> None:
        with self._lock:
            cores, self._cores = self._cores, []
        for core in cores:
            core.close()
        for pager in (self._head, self._tail):
            if pager is not None:
                pager.close()
        for slot in self._plan or ():
            if slot.pager is not None:
                slot.pager.close()

    def close(self) -> None:
        """Stop the listing, from any thread: pages on their way are dropped,
        the iteration ends with PagerClosedError (if it had more to give),
        and ``checkpoint()`` names the first page not wholly handed out."""
        with self._lock:
            self._closed = True
            cores = list(self._cores)
        for core in cores:
            core.close()
        for pager in (self._head, self._tail):
            if pager is not None:
                pager.close()

    def __enter__(self) -> ParallelPager[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- async -----------------------------------------------------------------

    def __aiter__(self) -> ParallelPager[T]:
        """``async for``: records of a page already held are handed out on
        the event loop; waiting for the next page runs on a thread, so the
        loop never waits on the network.  Cancelling the task closes the
        listing (its checkpoint stays exact)."""
        return self

    async def __anext__(self) -> T:
        if self._at < len(self._items):
            return next(self)
        try:
            item, end = await asyncio.to_thread(self._next_or_end)
        except asyncio.CancelledError:
            self.close()
            raise
        if end:
            raise StopAsyncIteration
        return item  # type: ignore[no-any-return]

    def _next_or_end(self) -> tuple[Any, bool]:
        try:
            return next(self), False
        except StopIteration:
            return None, True

    # ---- Arrow -------------------------------------------------------------------

    def to_arrow(self) -> Any:
        """The whole listing as one pyarrow.Table (needs custlist[arrow]):
        each page's table built in C by its own pager, the pages fetched
        ``concurrency`` at a time, concatenated in the listing's order.  Take
        it instead of iterating.  Errors are those iteration raises (a failed
        page, a short page); the rows before one are not returned, so the
        checkpoint then stays where the listing started."""
        pa = _need("pyarrow", "arrow", "to_arrow()")
        head = self._head
        if self.pages_fetched or self._over or head is None:
            raise ValueError("to_arrow() takes the whole listing: call it before iterating")
        from concurrent.futures import ThreadPoolExecutor
        start = self._position(self._start)
        try:
            with ThreadPoolExecutor(self.concurrency) as pool:
                first = pool.submit(head.to_arrow)
                if self._plan is None:       # the total comes with the first page
                    first.result()
                    self._total_seen, self._pages_seen = head.total, head.total_pages
                    if not self._planned():
                        return self._arrow_rest(pa, first.result(), head)
                assert self._plan is not None
                tables, last = [], head
                at = 0
                while True:
                    slots = self._start_chunk(at) if at < len(self._plan) else []
                    pages = pool.map(lambda s: s.pager.to_arrow(), slots)
                    if at == 0:
                        tables.append(self._arrow_check(first.result(), head, self._head_want,
                                                        self._head_exact, start))
                    for slot, table in zip(slots, pages):
                        assert slot.pager is not None
                        tables.append(self._arrow_check(table, slot.pager, slot.want,
                                                        slot.exact, slot.position))
                        last = slot.pager
                    if not slots:
                        break
                    self._release(slots[-1])
                    at += len(slots)
                if self._beyond is not None:
                    raise PagingError(f"max_pages={self._client._settings['max_pages']} "
                                      "reached and the listing has more pages")
                cp = last.checkpoint()
                self._final = {**cp, "done": True} if self._to_end else cp
        except BaseException:
            self._final = dict(self._start)
            self._over = True
            self._close_all()
            raise
        return self._arrow_end(pa, tables)

    def _arrow_check(self, table: Any, pager: Pager[Any], want: int, exact: bool,
                     position: int) -> Any:
        """A page's table, checked as _hand_out checks a page: a short page
        is a PagingError (its pager read on past it: short too)."""
        self.pages_fetched += min(pager.pages_fetched, 1)
        rows = 0 if pager.pages_fetched > 1 else table.num_rows
        self._hand_out([None] * rows, max(want, 1) if pager.pages_fetched > 1 else want,
                       exact or pager.pages_fetched > 1, position)
        self._items, self._at = [], 0
        error, self._pending = self._pending, None
        if error is not None:
            raise error
        return table

    def _arrow_rest(self, pa: Any, first: Any, head: Pager[Any]) -> Any:
        """No total: the rest one page at a time, as one pager's table."""
        self.pages_fetched += head.pages_fetched
        tables = [first]
        after = head.checkpoint()
        left = None if self._max_items is None else self._max_items - first.num_rows
        if not after["done"] and left != 0:
            tail = self._client.paginate(self._endpoint, self._path, self._pairs,
                                         headers=self._headers, raw=self._raw, max_items=left,
                                         start=after)
            self._tail = tail
            tables.append(tail.to_arrow())
            after = tail.checkpoint()
            self.pages_fetched += tail.pages_fetched
        self._final = after
        return self._arrow_end(pa, tables)

    def _arrow_end(self, pa: Any, tables: list[Any]) -> Any:
        table = pa.concat_tables(tables)
        self.consumed = table.num_rows
        self._over, self._head = True, None
        self._close_all()
        return table
