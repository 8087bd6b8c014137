"""DataFrames from a pager: thin faces over its Arrow stream, which the C
engine builds from the receive buffer (``Pager.__arrow_c_stream__``).

pyarrow, pandas and polars are optional: each is imported only here, when
asked for, with an error naming the extra that installs it."""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Callable


def _need(module: str, extra: str, method: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"{method} needs {module}: pip install custlist[{extra}]") from None


class _Stream:
    """Hands one capsule to one consumer."""

    __slots__ = ("_capsule",)

    def __init__(self, capsule: object) -> None:
        self._capsule = capsule

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        capsule, self._capsule = self._capsule, None
        if capsule is None:
            raise RuntimeError("this Arrow stream has already been consumed")
        return capsule


# Whole tables take pages coalesced into batches of this many rows at least
# (a page of 20 records makes a poor batch); streams keep one batch per page.
BATCH_ROWS = 65536


def _read(pager: Any, consume: Callable[[_Stream], Any]) -> Any:
    """consume(stream) with custlist's own exception (a DecodeError, an API
    error...) raised again in place of the consumer's rewording of it.  A
    whole table or nothing: when the read fails, the pager's checkpoint is
    the one it had before."""
    errors: list[BaseException] = []
    stream = _Stream(pager._arrow_stream(errors, BATCH_ROWS, whole=True))
    try:
        return consume(stream)
    except Exception:
        if errors:
            raise errors[-1] from None
        raise


def to_arrow(pager: Any) -> Any:
    pa = _need("pyarrow", "arrow", "to_arrow()")
    return _read(pager, lambda s: pa.RecordBatchReader.from_stream(s).read_all())


def _pandas_dtype(pd: ModuleType, pa: ModuleType) -> Callable[[Any], Any]:
    def mapper(tp: Any) -> Any:
        # dictionary-encoded enums stay pandas categoricals; the rest keep
        # their Arrow type: tz-aware timestamps, nullable ints, exact decimals
        return None if pa.types.is_dictionary(tp) else pd.ArrowDtype(tp)
    return mapper


def to_pandas(pager: Any) -> Any:
    pd = _need("pandas", "pandas", "to_pandas()")
    pa = _need("pyarrow", "pandas", "to_pandas()")
    table = to_arrow(pager)
    return table.to_pandas(types_mapper=_pandas_dtype(pd, pa))


def to_polars(pager: Any) -> Any:
    pl = _need("polars", "polars", "to_polars()")
    return _read(pager, pl.DataFrame)
