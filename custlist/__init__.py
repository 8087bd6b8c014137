"""custlist: list customers from paged REST APIs at C speed."""
from . import errors
from .errors import *  # noqa: F401,F403
from ._spec import (CursorPaging, Endpoint, Field, HrefPaging, OneOf, Page, Param, Record,
                    StrEnum, UnixMillis, UnixSeconds)

__version__ = "0.1.0"
