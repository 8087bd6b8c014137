"""Every account's customers as one dask DataFrame, listed on the workers.

    from functools import partial
    import custlist, custlist.dask

    make = partial(custlist.Pyng, client_id=..., client_secret=..., base_url=...)
    frame = custlist.dask.read_customers(make, "customers", by="site_id",
                                         accounts=["site_1", "site_2"], limit=100)
    frame.to_parquet("customers/")          # or .compute(), .groupby(...)...

One partition per account (a Pyng site, a Commenda corporation...): each is
listed by custlist inside the dask worker that computes it, through the
pager's Arrow output, and arrives as a pandas DataFrame with the account in
its first column.  The client is made on the worker by ``make_client``, a
picklable callable (``functools.partial`` of a client class, say): no
connection, pager or token crosses processes.  The frame's columns and
types come from the endpoint's description, without a request.

Needs the ``[dask]`` extra: ``pip install 'custlist[dask]'``."""
from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["read_customers"]

_EXTRA = "custlist.dask needs dask[dataframe,distributed], pandas and pyarrow: " \
         "pip install 'custlist[dask]'"


def _dask_dataframe() -> Any:
    try:
        import dask.dataframe as dd
        import pandas  # noqa: F401
        import pyarrow  # noqa: F401
    except ImportError as e:
        raise ImportError(f"{_EXTRA} ({e.name} is missing)") from e
    return dd


def _listing(client: Any, listing: str, by: str, account: str, filters: dict[str, Any],
             **extra: Any) -> Any:
    method = getattr(client, listing, None)
    if not callable(method):
        raise ValueError(f"{type(client).__name__} has no listing {listing!r}")
    return method(**{by: account}, **filters, **extra)


def _tagged(frame: Any, column: str, account: str) -> Any:
    """The account as the first column; enum columns as strings (each
    partition's categories are only those it met, which Parquet and
    dask's metadata cannot reconcile)."""
    import pandas as pd
    for name, dtype in frame.dtypes.items():
        if isinstance(dtype, pd.CategoricalDtype):
            frame[name] = frame[name].astype("string[pyarrow]")
    frame.insert(0, column, pd.Series([account] * len(frame), index=frame.index,
                                      dtype="string[pyarrow]"))
    return frame


def _partition(make_client: Callable[[], Any], listing: str, by: str, column: str,
               filters: dict[str, Any], account: str) -> Any:
    """One account's customers, listed where this runs (a dask worker)."""
    with make_client() as client:
        frame = _listing(client, listing, by, account, filters).to_pandas()
    return _tagged(frame, column, account)


def read_customers(make_client: Callable[[], Any], listing: str = "customers", *, by: str,
                   accounts: Sequence[str], column: str | None = None,
                   **filters: Any) -> Any:
    """A dask DataFrame of ``make_client().<listing>(<by>=account,
    **filters)`` for every account, one partition each.

    ``make_client``: a picklable callable that returns a custlist client;
    ``listing``: the client's listing method; ``by``: its keyword naming the
    account (``site_id``, ``corporation_id``); ``accounts``: distinct
    accounts; ``column``: the account column's name (default ``by``);
    ``filters``: the listing's other keywords, the same for every account.
    Nothing is requested until the frame is computed."""
    dd = _dask_dataframe()
    if not callable(make_client):
        raise TypeError("make_client must be a callable that returns a client, e.g. "
                        "functools.partial(custlist.Pyng, token=..., base_url=...)")
    if isinstance(accounts, str) or not isinstance(accounts, Sequence):
        raise TypeError("accounts must be a list of account ids (str)")
    accounts = list(accounts)
    if not accounts or not all(isinstance(a, str) and a for a in accounts):
        raise ValueError("accounts must be a non-empty list of non-empty str")
    if len(set(accounts)) != len(accounts):
        twice = sorted({a for a in accounts if accounts.count(a) > 1})
        raise ValueError(f"accounts listed twice would be read twice: {twice}")
    if "max_items" in filters or "start" in filters:
        raise ValueError("max_items and start= apply to one listing, not to every account")
    column = column or by
    # The columns and types from the description: a listing capped at zero
    # records sends no request.
    with make_client() as client:
        meta = _listing(client, listing, by, accounts[0], filters, max_items=0).to_pandas()
    if column in meta.columns:
        raise ValueError(f"the records already have a column {column!r}: pass column=")
    meta = _tagged(meta, column, accounts[0])
    part = functools.partial(_partition, make_client, listing, by, column, dict(filters))
    return dd.from_map(part, accounts, meta=meta, label=f"custlist-{listing}",
                       enforce_metadata=False)
