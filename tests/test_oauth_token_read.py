"""The token response as the fetch thread reads it, without Python, when
it renews a token: whatever it takes plainly gives the very token (and
lifetime) Python's reading gives, and whatever else it leaves to Python
ends as a plain ``ClientCredentials(...)()`` call ends, from the one token
request made.

Each body below is served once by the sandbox's token endpoint, first to a
plain call, then to a listing's renewal after a 401: the outcomes must be
the same (the token sent, or the exception raised).  A plain body must be
read by the engine itself; each oddity must be left to Python."""
import json
import random

import pytest

import custlist
from custlist.testing.sandbox import Sandbox

from .test_oauth_chain import pages, pyng_client, tokens

TOKEN = "tok_" + "A1b2-C3d4._~+/" * 3


def doc(**members):
    return json.dumps(members).encode()


# Read by the engine itself.
PLAIN = [
    doc(access_token=TOKEN),
    doc(access_token=TOKEN, token_type="Bearer", expires_in=3600),
    doc(access_token=TOKEN, token_type="bearer", expires_in=30),
    doc(access_token=TOKEN, token_type="BEARER", expires_in=0),
    doc(access_token=TOKEN, expires_in=-5),
    doc(access_token=TOKEN, expires_in=250.75),
    doc(access_token=TOKEN, expires_in=1e20),
    doc(access_token="x", expires_in=7200),
    doc(access_token=" x ", expires_in=120),
    doc(access_token=TOKEN, expires_in="3600"),
    doc(access_token=TOKEN, expires_in=True),
    doc(access_token=TOKEN, expires_in=None),
    doc(access_token=TOKEN, expires_in={"a": 1}),
    doc(access_token="x" * 16000, expires_in=60),
    b'{"access_token":"%s","expires_in":1e400}' % TOKEN.encode(),
    b'{"access_token":"%s","expires_in":-0.0e-0}' % TOKEN.encode(),
    b'{"access_token":"%s","expires_in":1234567890123456789012345678901234567890}'
    % TOKEN.encode(),
    b' \r\n\t{ "expires_in" : 600 ,\n "access_token"\t:\t"%s" } \n' % TOKEN.encode(),
    b'{"scope":"a b","refresh_token":"r\\u00e9\\n\\"","extra":[1,-2.5e3,true,false,null,'
    b'{"k\\u0041":[[],{}]}],"access_token":"%s","token_type":"bearer","expires_in":99}'
    % TOKEN.encode(),
    b'{"access_token":"%s","nested":%s1%s}' % (TOKEN.encode(), b"[" * 63, b"]" * 63),
]

# Left to Python, which accepts some and refuses the others.
ODD = [
    doc(access_token="pyng_\u00e9t\u00e9"),                         # escaped (json.dumps)
    '{"access_token":"t\u00e9t\u00e9"}'.encode(),                     # raw UTF-8
    '{"access_token":"%s","note":"caf\u00e9"}'.encode() % TOKEN.encode(),
    '{"access_token":"%s","caf\u00e9":1}'.encode() % TOKEN.encode(),
    b'{"access_token":"t\x7ft"}',
    b'{"access_token":"%s","n":"\x7f"}' % TOKEN.encode(),
    b'{"access_token":"t\\u0074"}',
    b'{"access_\\u0074oken":"%s"}' % TOKEN.encode(),
    b'{"access_token":"t\\n"}',
    b'{"access_token":"a","access_token":"%s"}' % TOKEN.encode(),
    b'{"access_token":"%s","token_type":"bearer","token_type":"mac"}' % TOKEN.encode(),
    b'{"access_token":"%s","expires_in":10,"expires_in":"x"}' % TOKEN.encode(),
    doc(access_token=12345),
    doc(access_token=None),
    doc(access_token=["x"]),
    doc(access_token=""),
    doc(access_token="   "),
    doc(access_token=TOKEN, token_type="mac"),
    doc(access_token=TOKEN, token_type=None),
    doc(access_token=TOKEN, token_type=1),
    doc(token_type="bearer"),
    doc(),
    b'[]',
    b'"%s"' % TOKEN.encode(),
    b'{"access_token":"%s","expires_in":12345678901234567890123456789012345678901}'
    % TOKEN.encode(),
    b'{"access_token":"%s","n":[%s]}' % (TOKEN.encode(), b"9" * 5000),
    b'{"access_token":"%s","expires_in":NaN}' % TOKEN.encode(),
    b'{"access_token":"%s","n":-Infinity}' % TOKEN.encode(),
    b'{"access_token":"%s","nested":%s1%s}' % (TOKEN.encode(), b"[" * 64, b"]" * 64),
    b'{"access_token":"%s","nested":%s}' % (TOKEN.encode(), b"[" * 3000 + b"]" * 3000),
    b'\xef\xbb\xbf{"access_token":"%s"}' % TOKEN.encode(),
    ('{"access_token":"%s"}' % TOKEN).encode("utf-16-le"),
    b'{"access_token":"%s",}' % TOKEN.encode(),
    b'{"access_token":"%s"' % TOKEN.encode(),
    b'{"access_token":"%s"}x' % TOKEN.encode(),
    b'{"access_token":"%s"}{}' % TOKEN.encode(),
    b'{"access_token":"%s","n":01}' % TOKEN.encode(),
    b'{"access_token":"%s","n":[1,]}' % TOKEN.encode(),
    b'{"access_token":"%s","n":tru}' % TOKEN.encode(),
    b'{"access_token":"%s","n":"\\x"}' % TOKEN.encode(),
    b'{"access_token":"%s","n":"\\ud800"}' % TOKEN.encode(),
    b'{"access_token":"t\x00"}',
    b'',
    b'   ',
]


def garbled(n, seed=20240611):
    """Bodies from a seeded generator: plain ones truncated, with bytes
    flipped, dropped or put in, and plain noise."""
    rnd = random.Random(seed)
    noise = b' \t\n{}[]:,"\\-+.0123456789eEtrufalsnu\x00\x7f\xc3\xa9\xff'
    out = []
    for i in range(n):
        b = bytearray(rnd.choice(PLAIN[:13] + PLAIN[14:]))
        how = i % 5
        if how == 0:
            b = b[:rnd.randrange(len(b))]
        elif how == 1:
            for _ in range(rnd.randint(1, 3)):
                b[rnd.randrange(len(b))] = rnd.choice(noise)
        elif how == 2:
            del b[rnd.randrange(len(b))]
        elif how == 3:
            at = rnd.randrange(len(b) + 1)
            b[at:at] = bytes(rnd.choice(noise) for _ in range(rnd.randint(1, 4)))
        else:
            b = bytearray(rnd.choice(noise) for _ in range(rnd.randint(0, 24)))
        out.append(bytes(b))
    return out


def described(e):
    return (type(e), str(e), getattr(e, "status", None), getattr(e, "code", None),
            getattr(e, "curl_code", None))


def plain_call(box, body):
    """What a plain call makes of the body: ("token", header, seconds
    left) or ("error", described exception)."""
    box.inject("pyng.token", status=200, body=body)
    creds = custlist.ClientCredentials(box.pyng_url + "/billing/oauth2/token",
                                       box.pyng_client_id, box.pyng_client_secret)
    try:
        header = creds()
    except Exception as e:
        return ("error", described(e)), None
    return ("token", header), creds._cell._peek()[1]


def renewal(box, body):
    """What a listing's renewal on the fetch thread makes of the body, and
    whether Python read it (the response recorded and handed over)."""
    client = pyng_client(box)
    creds = client._auth
    creds()                                 # the first token, fetched by Python
    read = []
    accept = creds._accept

    def reading(*args):
        read.append(args)
        return accept(*args)

    creds._accept = reading
    box.requests.clear()
    box.inject("pyng.customers", status=401)            # the first page is refused ...
    box.inject("pyng.token", status=200, body=body)     # ... and the renewal gets the body
    try:
        with pytest.raises(Exception) as info:
            list(client.customers("site_1", limit=10))
    finally:
        box.clear_faults()
    assert len(tokens(box)) == 1            # one token request, never a second
    asked = pages(box)
    if len(asked) == 2:                     # asked once more with the new token
        assert isinstance(info.value, custlist.errors.AuthenticationError)
        assert info.value.status == 401     # the sandbox does not know it
        sent = asked[1].headers["authorization"]          # as the sandbox reads bytes
        outcome = ("token", sent.encode("latin-1").decode("utf-8"))
        assert creds._cell._peek()[0] == outcome[1]
        left = creds._cell._peek()[1]
    else:
        assert len(asked) == 1
        outcome, left = ("error", described(info.value)), None
    return outcome, left, len(read) > 0


def same(box, body):
    want, want_left = plain_call(box, body)
    box.clear_faults()
    got, got_left, by_python = renewal(box, body)
    assert got == want, body
    if want_left is not None:               # the same lifetime, as the clock went on
        assert abs(got_left - want_left) < 5.0, (body, got_left, want_left)
    return by_python


@pytest.fixture(scope="module")
def box():
    with Sandbox(pyng_customers=20, seed=31) as box:
        yield box


def test_a_plain_token_response_is_read_by_the_engine_as_python_reads_it(box):
    for body in PLAIN:
        assert not same(box, body), body    # the engine's own reading, not Python's


def test_every_other_token_response_is_left_to_python_and_ends_as_a_plain_call(box):
    for body in ODD:
        assert same(box, body), body        # read by Python, from the one response


def test_garbled_token_responses_end_as_a_plain_call(box):
    read_plainly = 0
    for body in garbled(150):
        read_plainly += not same(box, body)
    assert read_plainly > 0                 # some garbling leaves a plain response
