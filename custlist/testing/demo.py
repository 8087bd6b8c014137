"""The sandbox's demo API described with custlist's public API alone, as a
user would describe their own: one record class and an endpoint per paging
style (see Sandbox: /demo/offset, /demo/pages, /demo/numbered, /demo/linked).

    with Sandbox() as sb:
        client = custlist.Client(base_url=sb.demo_url, auth=custlist.BearerToken(sb.demo_token))
        for c in client.paginate(OFFSET, OFFSET.path, {"limit": 50}):
            ...
"""
from __future__ import annotations

import datetime as _dt

from .._spec import (Endpoint, Field, LinkHeaderPaging, OffsetPaging, PagePaging, Record,
                     UnixSeconds)

__all__ = ["DemoCustomer", "OFFSET", "PAGES", "NUMBERED", "LINKED", "ENDPOINTS"]


class DemoCustomer(Record):
    """A customer of the demo API."""

    id: Field[str] = Field(str)
    name: Field[str] = Field(str)
    email: Field[str] = Field(str)
    plan: Field[str] = Field(str)
    created: Field[_dt.datetime] = Field(UnixSeconds)


OFFSET = Endpoint("/offset/customers", DemoCustomer,
                  OffsetPaging(items="items", offset="offset", limit="limit", total="total"),
                  name="demo.offset", default_page_size=20, max_page_size=50)
PAGES = Endpoint("/pages/customers", DemoCustomer,
                 PagePaging(items="data", page="page", per_page="per_page",
                            total_pages="total_pages"),
                 name="demo.pages", default_page_size=20, max_page_size=50)
NUMBERED = Endpoint("/numbered/customers", DemoCustomer,
                    PagePaging(items="data", page="page", per_page="per_page"),
                    name="demo.numbered", default_page_size=20, max_page_size=50)
LINKED = Endpoint("/linked/customers", DemoCustomer, LinkHeaderPaging(items="customers"),
                  name="demo.linked", page_size="per_page", default_page_size=20,
                  max_page_size=50)
ENDPOINTS = (OFFSET, PAGES, NUMBERED, LINKED)
