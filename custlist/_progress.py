"""``progress=True``: a tqdm bar of the records a listing hands out.

tqdm is optional (``pip install custlist[progress]``) and imported only
here, when a bar is asked for: ``tqdm.auto`` draws a widget in Jupyter and a
text bar on stderr in a terminal.  The bar counts records (from the count a
resumed checkpoint had reached), shows the total once the API reports one
(capped by max_items), and closes when the pager finishes, fails or is
closed."""
from __future__ import annotations

import importlib
from typing import Any, Literal, TypeVar

from ._pager import Pager

T_co = TypeVar("T_co", covariant=True)


def bar_class() -> Any:
    """tqdm.auto.tqdm, or an ImportError that says how to get it."""
    try:
        return importlib.import_module("tqdm.auto").tqdm
    except ImportError:
        raise ImportError("progress=True needs tqdm: pip install custlist[progress]") from None


class ProgressPager(Pager[T_co]):
    """A Pager that shows its progress (see custlist._progress)."""

    __slots__ = ("_total_known", "_shown")

    def _start_progress(self, tqdm: Any) -> None:
        listing = self._listing
        self._total_known = False
        self._shown = None
        options = dict(total=self._bar_total(), initial=listing.before, unit=" records",
                       desc=listing.endpoint.name, dynamic_ncols=True)
        if any(c.__module__ == "tqdm.notebook" for c in getattr(tqdm, "__mro__", ())):
            # A Jupyter widget: shown here under a display id, so that its
            # text (what a notebook saved without widget state shows, and
            # nbconvert prints) can be brought up to date when it ends.
            from IPython.display import display
            self._bar = tqdm(display=False, **options)
            self._shown = display(self._bar.container, display_id=True)
        else:
            self._bar = tqdm(**options)
        self._watch(self._advance)

    def _bar_total(self) -> int | None:
        listing, total = self._listing, self.total
        cap = None if listing.max_items is None else listing.before + listing.max_items
        if total is None:
            return cap
        self._total_known = True
        return total if cap is None else min(total, cap)

    def _advance(self, n: int) -> None:
        bar = getattr(self, "_bar", None)
        if bar is None:
            return
        if not self._total_known and self.total is not None:
            bar.total = self._bar_total()
            bar.refresh()
        bar.update(n)
        max_items = self._listing.max_items
        if self.done or (max_items is not None and self.consumed >= max_items):
            self._end_progress()

    def _end_progress(self) -> None:
        bar, self._bar = getattr(self, "_bar", None), None
        if bar is not None:
            self._watch(None)
            bar.close()
            shown, self._shown = getattr(self, "_shown", None), None
            if shown is not None:
                shown.update(bar.container)     # the final count, in the widget's text too

    def __next__(self) -> T_co:
        try:
            rec = super().__next__()
        except BaseException:
            self._end_progress()
            raise
        self._advance(1)
        return rec

    def _next_page(self) -> Any:
        try:
            page = super()._next_page()
        except BaseException:
            self._end_progress()
            raise
        if page is None:
            self._end_progress()
        else:
            self._advance(len(page.items))
        return page

    def _ended(self, method: str) -> Any:
        try:
            return getattr(super(), method)()
        finally:
            self._end_progress()

    def to_arrow(self) -> Any:
        return self._ended("to_arrow")

    def to_pandas(self) -> Any:
        return self._ended("to_pandas")

    def to_polars(self) -> Any:
        return self._ended("to_polars")

    def close(self) -> None:
        super().close()
        self._end_progress()

    def __exit__(self, *exc: object) -> Literal[False]:
        self.close()
        return False
