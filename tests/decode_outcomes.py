"""Every decode outcome of a fixed set of bodies, one line each: the values,
or the DecodeError's offset and message.  Two builds of the core whose JSON
scans agree print the same bytes, so builds are compared by their output:
the SSE2 build of x86-64, the same compiled with -DCL_SCALAR_SCAN (the
portable eight-byte steps) and the NEON build of arm64 under qemu
(.ci/wheel-check-arm64.sh).

The bodies: every file of the checked-in corpus (tests/corpus, the fuzzer's
seeds) through its own target, at the default and a small max_depth, one
pass and two-pass for the endpoint targets, and through the "any" target
(plain JSON); seeded mutations of them (bytes flipped, inserted, dropped,
cut short); and the scanner's edge cases: each special byte at every
position of a string across the 16- and 64-byte blocks, bad bytes at every
position, brackets, quotes and backslash runs in strings wherever the
structure skip's blocks fall.

    python tests/decode_outcomes.py [--scan PATH] [-o FILE]   # the outcomes
    python tests/decode_outcomes.py --compare A B    # exit 1 at the first difference
"""
from __future__ import annotations

import datetime as dt
import decimal
import enum
import hashlib
import json
import pathlib
import random
import sys

HERE = pathlib.Path(__file__).resolve().parent
MUTATIONS = 4000
SEED = 20240611


def canon(v):
    """A value as plain data whose repr is the same wherever it is equal
    (records by their fields, enums by their class and value)."""
    from custlist._core import Record
    if isinstance(v, Record):
        return (type(v).__name__, {f: canon(getattr(v, f)) for f in v.__fields__})
    if isinstance(v, enum.Enum):
        return (type(v).__name__, canon(v.value))
    if isinstance(v, dict):
        return {canon(k): canon(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return (type(v).__name__, [canon(x) for x in v])
    if isinstance(v, (str, bytes, int, float, bool, type(None), decimal.Decimal, dt.datetime,
                      dt.date, dt.timedelta)):
        return v
    if hasattr(v, "_asdict"):
        return (type(v).__name__, canon(v._asdict()))
    raise TypeError(f"no canonical form for {type(v).__name__}")


def outcome(fn, body: bytes, depth: int) -> str:
    import custlist
    try:
        return "ok " + repr(canon(fn(body, depth)))
    except custlist.DecodeError as e:
        return f"DecodeError@{e.offset} {e}"


def corpus():
    """(label, target name, body) of the checked-in corpus."""
    for f in sorted((HERE / "corpus").glob("*/*/*.bin")):
        yield f"{f.parent.parent.name}/{f.parent.name}/{f.stem}", f.parent.name, f.read_bytes()


def mutated(bases, n, seed):
    rnd = random.Random(seed)
    interesting = b'"\\{}[]:,\x00\x1f\x7f\x80\xc3\xe9\xed\xf0\xff/u0e-.'
    for i in range(n):
        label, target, body = bases[rnd.randrange(len(bases))]
        b = bytearray(body)
        for _ in range(1 + rnd.randrange(3)):
            op = rnd.randrange(4)
            at = rnd.randrange(len(b) + 1)
            if op == 0 and b and at < len(b):
                b[at] = interesting[rnd.randrange(len(interesting))]
            elif op == 1:
                b[at:at] = bytes([interesting[rnd.randrange(len(interesting))]]) * (1 + rnd.randrange(3))
            elif op == 2 and b:
                del b[at:at + 1 + rnd.randrange(4)]
            else:
                b = b[:at]
        yield f"mutation{i}/{label}", target, bytes(b)


def edges():
    """The scanner's edge cases, as pyng pages and plain JSON."""
    specials = ['"', "\\", "\u00e9", "\n", "\U0001F680", "\x1f", "/", "\x7f"]
    for s in specials:
        for width in (1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65):
            for i in range(width + 1):
                text = "a" * i + s + "b" * (width - i)
                item = {"customerReference": text, "state": "linked", "invitedAt": 0}
                yield (f"edge/special{ord(s[0]):x}/{width}/{i}", "pyng",
                       json.dumps({"data": {"items": [item]}, "traceId": text},
                                  ensure_ascii=False).encode())
    for bad in (b"\x01", b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"):
        for width in (7, 8, 16, 33, 64):
            for i in range(width):
                text = b"a" * i + bad + b"b" * (width - i)
                yield (f"edge/bad{bad.hex()}/{width}/{i}", "pyng",
                       b'{"data":{"items":[]},"traceId":"' + text + b'"}')
    tricky = ['"', "\\", "\\\\", "\\\"", "]", "}", "[{", '"]', "\\]", "\u00e9", "\\u005d"]
    for t in tricky:
        for pad in range(0, 140):
            items = [{"a": "x" * pad + t + "y", "b": [[], {}, ["]"]]}, "z" * (pad % 7)]
            yield (f"edge/skip{t.encode().hex()}/{pad}", "pyng-raw",
                   ('{"data":{"items":' + json.dumps(items, ensure_ascii=False)
                    + ',"nextHref":"/n?c=]}"},"traceId":"t[{"}').encode())
    for n in range(0, 130):
        yield f"edge/backslashes/{n}", "any", b'["' + b"\\" * n + b'"]' + b" " * (n % 5)


def cases():
    base = list(corpus())
    yield from base
    yield from mutated(base, MUTATIONS, SEED)
    yield from edges()


def main(argv) -> int:
    if argv[:1] == ["--compare"]:
        a, b = (pathlib.Path(x).read_bytes().splitlines() for x in argv[1:3])
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                print(f"line {i + 1} differs:\n  {argv[1]}: {x[:400]!r}\n  {argv[2]}: {y[:400]!r}")
                return 1
        if len(a) != len(b):
            print(f"{argv[1]} has {len(a)} lines, {argv[2]} {len(b)}")
            return 1
        print(f"decode outcomes: {len(a)} lines agree")
        return 0
    sys.path.insert(0, str(HERE))
    import decode_targets as fd
    import custlist._core as core
    if argv[:1] == ["--scan"]:
        # The build must be the one meant: its scans use these block steps.
        if core.scan_path != argv[1]:
            print(f"decode outcomes: the core at {core.__file__} scans with {core.scan_path}, "
                  f"not {argv[1]}", file=sys.stderr)
            return 2
        argv = argv[2:]
    out = open(argv[1], "w", encoding="utf-8") if argv[:1] == ["-o"] else sys.stdout
    anyt = fd.BY_NAME["any"]
    n = 0
    for label, name, body in cases():
        target = fd.BY_NAME[name]
        digest = hashlib.sha256(body).hexdigest()[:16]
        for depth in (fd.DEFAULT_DEPTH, 4):
            out.write(f"{label} {digest} {depth} {outcome(target.decode, body, depth)}\n")
            if target.endpoint is not None:
                out.write(f"{label} {digest} {depth} deferred {outcome(target.decode_deferred, body, depth)}\n")
        out.write(f"{label} {digest} any {outcome(anyt.decode, body, fd.DEFAULT_DEPTH)}\n")
        n += 1
    if out is not sys.stdout:
        out.close()
    print(f"decode outcomes: {n} bodies, scan path {core.scan_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
