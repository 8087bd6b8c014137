"""custlist.Pager: the engine's pager with a description for humans.

The iteration itself is the C engine's (``custlist._core.Pager``); this
subclass only knows what it lists, so that ``repr(pager)`` (and a notebook)
shows the endpoint, the filters and the progress, and so that a client can
keep weak references to the pagers it made and close them."""
from __future__ import annotations

from typing import Any, TypeVar

from . import _checkpoint, _core

__all__ = ["Pager"]

T_co = TypeVar("T_co", covariant=True)


class Pager(_core.Pager[T_co]):
    """Iterator over the records of a paged endpoint: a ``Pager[Customer]``
    yields ``Customer`` records, its ``.pages()`` ``Page[Customer]`` objects.

    Iterate it for records, or call ``.pages()`` for whole pages.  A pager
    is used once: iterating it again after the last record (or after
    ``close()``) yields nothing more.  ``cursor`` / ``next_href`` are the
    resume point; ``total``, ``pages_fetched`` and ``done`` the progress;
    ``checkpoint()`` the exact position, record by record."""

    __slots__ = ("__weakref__", "_endpoint", "_filters", "_listing", "_bar", "_auth_fn", "_again",
                 "_aio")
    _listing: _checkpoint.Listing
    _auth_fn: Any

    def _describe(self, endpoint: str, filters: dict[str, Any]) -> Pager[T_co]:
        self._endpoint, self._filters = endpoint, dict(filters)
        return self

    def __repr__(self) -> str:
        endpoint = getattr(self, "_endpoint", "?")
        filters = getattr(self, "_filters", {})
        shown = " ".join(f"{k}={v}" for k, v in filters.items())
        total = self.total
        progress = (f"pages_fetched={self.pages_fetched} total={'?' if total is None else total}"
                    f" done={self.done}")
        return f"<custlist.Pager GET {endpoint}{' ' + shown if shown else ''} {progress}>"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))

    def checkpoint(self) -> dict[str, Any]:
        """Where this listing stands, as a small JSON-ready dict: give it to
        ``client.resume()`` (or the listing's ``start=``) to continue with
        the very next record, nothing lost and nothing repeated, whether the
        pager stopped mid-page, at a page boundary, at ``max_items``, on an
        error or on ``close()``.  ``checkpoint()["count"]`` is how many
        records the listing has handed out in all, across resumes."""
        if getattr(self, "_listing", None) is None:
            raise ValueError("only a pager made by a client listing has a checkpoint")
        return _checkpoint.take(self)

    def __aiter__(self) -> Pager[T_co]:
        """``async for record in pager``: the same records, errors,
        settings and checkpoints as ``for``, and the event loop never waits
        on the network nor for a token (see custlist._aio).  One task at a
        time: another one asking meanwhile gets RuntimeError.  Cancelling
        the task while it awaits the pager closes the pager (``async with
        pager:`` closes it however the block ends); its checkpoint stays
        exact."""
        return self

    async def __anext__(self) -> T_co:
        from . import _aio
        return await _aio.anext(self)

    async def aclose(self) -> None:
        """``close()`` for a coroutine: the fetch thread's requests sent
        ahead are cancelled and the thread ends.  The checkpoint stays exact."""
        self.close()

    async def __aenter__(self) -> Pager[T_co]:
        """``async with pager:``: the pager is closed on the way out, by an
        error or a cancelled task too (a task cancelled while it awaits
        the pager closes it anyway)."""
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def __length_hint__(self) -> int:
        """Records still to come, once the API has reported its total."""
        total, listing = self.total, getattr(self, "_listing", None)
        if total is None or listing is None:
            return NotImplemented
        left = max(total - listing.before - self.consumed, 0)
        if listing.max_items is not None:
            left = min(left, listing.max_items - self.consumed)
        return left
