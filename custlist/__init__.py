"""custlist: list customers from paged REST APIs at C speed.

    import custlist
    pyng = custlist.Pyng(client_id=..., client_secret=..., base_url=...)
    for c in pyng.customers(site_id="site_1"):
        print(c.customer_reference, c.state, c.invited_at)
"""
from . import commenda, errors, natural, pyng
from ._client import BearerToken, Client, ClientCredentials
from ._core import RateLimiter, Schema
from ._fanout import FanOut, FanOutError, FanOutSummary, SourceResult, fan_out
from ._display import Table, jsonable, table
from ._pager import Pager
from ._parallel import ParallelPager
from ._spec import (CursorPaging, Endpoint, Field, HrefPaging, LinkHeaderPaging, OffsetPaging,
                    OneOf, Page, PagePaging, Param, Record, StrEnum, UnixMillis, UnixSeconds)
from .commenda import Commenda
from .errors import *  # noqa: F401,F403
from .natural import Natural
from .pyng import LinkState, Pyng

__version__ = "0.1.0"
__all__ = ["Pyng", "Natural", "Commenda", "LinkState", "Client", "BearerToken", "ClientCredentials", "Pager", "ParallelPager", "fan_out", "FanOut", "FanOutSummary", "SourceResult", "FanOutError", "RateLimiter", "Schema", "Record",
           "Field", "Page", "Endpoint", "CursorPaging", "HrefPaging", "OffsetPaging", "PagePaging",
           "LinkHeaderPaging", "OneOf", "Param",
           "StrEnum", "UnixSeconds", "UnixMillis", "table", "Table", "jsonable", "errors", "natural", "pyng", "commenda",
           *errors.__all__]
