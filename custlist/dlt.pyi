from collections.abc import Mapping, Sequence
from typing import Any, Literal

from ._client import Client
from ._spec import Endpoint

__all__ = ["listing", "endpoint", "accounts", "load", "PRIMARY_KEYS"]

_WriteDisposition = Literal["append", "replace", "merge", "skip"] | Mapping[str, Any]

PRIMARY_KEYS: dict[str, str]

def listing(client: Client, method: str = ..., *, name: str | None = ...,
            primary_key: str | Sequence[str] | None = ..., max_items: int | None = ...,
            max_pages: int | None = ..., incremental: Any = ..., since: str | None = ...,
            write_disposition: _WriteDisposition = ..., **filters: Any) -> Any: ...
def endpoint(client: Client, endpoint: Endpoint[Any], path: str,
             query: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = ..., *, name: str,
             primary_key: str | Sequence[str] | None = ..., max_items: int | None = ...,
             max_pages: int | None = ..., write_disposition: _WriteDisposition = ...,
             headers: Mapping[str, str] | None = ...) -> Any: ...
def accounts(client: Client, method: str = ..., *, by: str, accounts: Sequence[str],
             name: str | None = ..., column: str | None = ...,
             primary_key: str | Sequence[str] | None = ..., max_items: int | None = ...,
             concurrency: int = ..., write_disposition: _WriteDisposition = ...,
             **filters: Any) -> Any: ...
def load(pipeline: Any, data: Any, **run: Any) -> Any: ...
