"""The fetch thread's plain path to a next URL, held equal to libcurl's.

A next page's URL (an href, or the base URL with a cursor) is resolved by
libcurl's URL parser and held to the client's origin.  For the common case
(an absolute URL that starts with the client's own "scheme://authority/" as
libcurl spells it, or a path on it, with a plain rest) the fetch thread
takes the URL as it stands instead (position.c, cl_pos_resolve_plain).
Here every answer of the plain path is checked against libcurl's, on the
libcurl this build links, over many generated URLs with the characters and
shapes a parser treats specially, and the plain path is shown to be taken
for the URLs the four APIs send."""
import random

from custlist import _core

ORIGINS = [
    "http://127.0.0.1:8080/pyng",
    "https://api.example.com",
    "https://api.example.com/v1/",
    "http://user:pw@host.example:8000/base/",
    "http://[::1]:9000/x",
    "HTTP://API.Example.COM/Path",
    "https://api.example.com:443/",
    "http://127.1:8080/",
]

# Pieces a URL is made of here, the awkward ones many times over.
PIECES = (["a", "Z", "0", "customers", "site_1", "-", "_", "~", "."] * 3
          + ["..", "/", "/", "/", "//", "/.", "/..", "./", "?", "?", "&", "=", "#", "%2e", "%2E",
             "%2f", "%41", "%7E", "%zz", "%", "%4", " ", "\t", "\n", "\x7f", "\x00"[:0],
             "é", "☃", "[", "]", "|", "\\", "{", "}", "^", "`", '"', "<", ">", "!", "$", "'",
             "(", ")", "*", "+", ",", ";", ":", "@", "cursor=", "limit=100"])


# Half the URLs are made of the pieces the plain path may take, so that it
# is taken, and compared, often.
PLAIN = [p for p in PIECES if p and all(c.isascii() and (c.isalnum() or c in "-._~!$&'()*+,;=:@/?%")
                                         for c in p)]


def canonical(origin):
    """The origin's URL as libcurl gives it back, and its prefix."""
    plain, full, same = _core._resolve_url(origin, None, origin)
    assert full is not None and same
    head, _, rest = full.partition("://")
    return full, head + "://" + rest.split("/", 1)[0] + "/"


def spellings(origin):
    """Starts of a URL: the origin's own prefix and other spellings of it,
    other origins, a path, a network path, relative references."""
    _, prefix = canonical(origin)
    scheme, _, authority = prefix[:-1].partition("://")
    host = authority.rsplit("@", 1)[-1]
    return [prefix, prefix, prefix, prefix, "/", "/", "/", "//", "", "?", "../",
            prefix.upper(), scheme + "://" + authority + ":80/", scheme + "://" + host + "/",
            "https://other.example/", prefix[:-1], prefix + "/", prefix.replace("://", ":///"),
            "ftp://" + authority + "/", "http:/" + authority + "/"]


def bases(origin, rnd):
    full, prefix = canonical(origin)
    return [None, full, prefix + "a/b?c=d", prefix + "x/", "https://other.example/p",
            prefix + "".join(rnd.choice(PIECES) for _ in range(4))]


def test_the_plain_path_answers_as_libcurl_or_not_at_all():
    rnd = random.Random(20261207)
    for origin in ORIGINS:
        taken = 0
        for i in range(6000):
            base = rnd.choice(bases(origin, rnd))
            pieces = PLAIN if i % 2 else PIECES
            href = rnd.choice(spellings(origin)) + "".join(
                rnd.choice(pieces) for _ in range(rnd.randrange(0, 12)))
            plain, full, same = _core._resolve_url(origin, base, href)
            if plain is not None:
                taken += 1
                assert (plain, same) == (full, True), (origin, base, href)
        # the plain path is taken often enough, on every origin, to have been tested
        assert taken >= 300, (origin, taken)


def test_the_plain_path_is_taken_for_the_urls_the_apis_send():
    origin = "http://127.0.0.1:8080/pyng"
    cases = [
        # Pyng's nextHref, absolute and as a path
        (None, "http://127.0.0.1:8080/pyng/billing/sites/site_1/customers?limit=100"
               "&cursor=eyJzIjoic2l0ZV8xIiwibyI6MTAsImwiOjEwfQ.KbXzTDXbF81zdTMI"),
        ("http://127.0.0.1:8080/pyng/billing/sites/site_1/customers?limit=100",
         "/pyng/billing/sites/site_1/customers?limit=100&cursor=abc"),
        # a cursor API's base URL with its cursor percent-encoded
        (None, "http://127.0.0.1:8080/natural/customers?limit=100&next_cursor=a%2Bb%3D%3D"),
        (None, "http://127.0.0.1:8080/commenda/customers?corporation_id=corp_1&limit=100&cursor=c_9"),
    ]
    for base, href in cases:
        plain, full, same = _core._resolve_url(origin, base, href)
        assert plain is not None and (plain, same) == (full, True), (base, href, plain, full)


def test_what_the_plain_path_leaves_to_libcurl():
    origin = "http://127.0.0.1:8080/pyng"
    p = "http://127.0.0.1:8080/"
    for href in [p + "a/../b", p + "a/./b", p + "./b", p + "a//b", p + "a/%2e%2E/b", p + "a?",
                 p + "a#f", p + "a b", p + "a%zz", p + "é", "http://127.0.0.1:8081/a",
                 "HTTP://127.0.0.1:8080/a", "//127.0.0.1:8080/a", "a/b", "?cursor=1",
                 p + "a" * 9000,
                 # lower-case escapes: libcurl 8 gives a reference resolved
                 # against a base back with them in upper case
                 p + "a%2fb", "/a%2fb", "/a?x=%2f", "/a?x=%e2%98%83"]:
        plain, full, same = _core._resolve_url(origin, p + "x/y", href)
        assert plain is None, href
    # a path on a base from another origin: libcurl's answer, never the prefix
    plain, full, same = _core._resolve_url(origin, "https://other.example/p", "/a")
    assert plain is None and full == "https://other.example/a" and not same
