"""Edges of the paging engine where a listing used to end early, ask past its
end, or wait too little: Link headers whose rel value is long or repeated,
page numbers counted from 0 with a total, and rate-limit waits computed from
extreme rates and server headers.  Every scenario runs against a real
server on loopback (the sandbox, or a small page-number server here)."""
import json
import socket
import threading
import time
import urllib.parse

import pytest

import custlist
from custlist.testing.demo import LINKED

from .conftest import FAST
from .netkit import _Listener, read_head

PREFETCH = pytest.mark.parametrize("prefetch", [True, False], ids=["prefetch", "one-pass"])


def demo_client(sb, **kw):
    return custlist.Client(base_url=sb.demo_url, auth=custlist.BearerToken(sb.demo_token),
                           **{**FAST, **kw})


def demo_ids(sb):
    return [c["id"] for c in sb.data.demo]


# ---------------------------------------------------------------------------
# Link headers: a rel value of any length, the first rel of a link counts

def second_page_url(sb, per_page=20):
    return f"{sb.url}/demo/linked/customers?per_page={per_page}&after={sb.data.demo[per_page - 1]['id']}"


EXTENSIONS = " ".join(f"https://rels.example.com/relation-types/{i:03d}" for i in range(12))


def long_rel_links(sb):
    nxt, first = second_page_url(sb), f"{sb.url}/demo/linked/customers?per_page=20"
    assert len(EXTENSIONS) > 256
    return {
        "next-first": f'<{nxt}>; rel="next {EXTENSIONS}"',
        "next-last": f'<{nxt}>; rel="{EXTENSIONS} next"',
        "next-upper-case": f'<{nxt}>; rel="{EXTENSIONS}\tNEXT"',
        "escaped": f'<{nxt}>; rel="{EXTENSIONS} \\n\\e\\x\\t"',
        "among-others": f'<{first}>; rel="first {EXTENSIONS}", <{nxt}>; title="x"; '
                        f'rel="{EXTENSIONS} next {EXTENSIONS}"',
        "huge": f'<{nxt}>; rel="{" ".join([EXTENSIONS] * 100)} next"',      # about 60 KB
        "first-rel-counts": f'<{nxt}>; rel="next"; rel="{EXTENSIONS}"',
    }


@PREFETCH
@pytest.mark.parametrize("case", ["next-first", "next-last", "next-upper-case", "escaped",
                                  "among-others", "huge", "first-rel-counts"])
def test_a_long_rel_value_is_read_whole(sb, prefetch, case):
    link = long_rel_links(sb)[case]
    sb.inject("demo.linked", headers={"Link": link})
    pager = demo_client(sb, prefetch=prefetch).paginate(LINKED, LINKED.path, {"per_page": 20})
    got = [c.id for c in pager]
    assert got == demo_ids(sb)                      # every record, once, in order
    assert pager.done
    pages = [r for r in sb.requests if r.route == "demo.linked"]
    assert len(pages) == -(-len(got) // 20)
    assert pages[1].query.get("after") == sb.data.demo[19]["id"]


@PREFETCH
def test_a_later_rel_of_the_same_link_is_ignored(sb, prefetch):
    """RFC 8288 3.3: only the first rel parameter of a link-value counts; a
    link whose first rel is not next is not followed, even if a later one
    says next."""
    sb.inject("demo.linked", headers={"Link": f'<{second_page_url(sb)}>; rel="{EXTENSIONS}"; '
                                              'rel="next"'})
    pager = demo_client(sb, prefetch=prefetch).paginate(LINKED, LINKED.path, {"per_page": 20})
    assert [c.id for c in pager] == demo_ids(sb)[:20]
    assert pager.done and len([r for r in sb.requests if r.route == "demo.linked"]) == 1


@PREFETCH
@pytest.mark.parametrize("link", ['<{nxt}>; rel="next', '<{nxt}>; rel="next \\'],
                         ids=["unterminated", "escape-at-end"])
def test_a_long_rel_that_never_ends_is_a_paging_error(sb, prefetch, link):
    link = link.format(nxt=second_page_url(sb)).replace("next", "next " + EXTENSIONS)
    sb.inject("demo.linked", headers={"Link": link})
    pager = demo_client(sb, prefetch=prefetch).paginate(LINKED, LINKED.path, {"per_page": 20})
    got = []
    with pytest.raises(custlist.PagingError, match="malformed Link header"):
        for c in pager:
            got.append(c.id)
    assert got == demo_ids(sb)[:20] and not pager.done
