"""The shape of a body as it arrives (csrc/shape.c): the fetch thread's
record of where a page's big arrays and objects end, which the locating
pass then steps over instead of scanning.  Its block step has a plain build
(SSE2, NEON or scalar) and, on x86-64 with AVX2, a wide one; a wrong span
would make a decode skip to the wrong byte, so both builds must record the
same spans as a byte-by-byte reading of the bracket rules, however the body
is cut into arrivals."""
import json
import platform
import random

import pytest

from custlist import _core


LEVELS, MIN, KEPT = 3, 1024, 8         # shape.h: CL_SHAPE_LEVELS, CL_SHAPE_MIN, CL_SHAPE_SPANS


def byte_rules(body: bytes):
    """The spans, read one byte at a time with the same rules: a backslash
    in a string escapes the next byte, brackets count outside strings,
    structures at most LEVELS deep and at least MIN long are kept (once
    KEPT are, a longer one takes the shortest one's place), each with the
    levels inside it, its own counted."""
    in_string = escaped = broken = 0
    depth, open_at, peak, spans = 0, [0] * LEVELS, [0] * LEVELS, []
    for at, c in enumerate(body):
        if in_string:
            if escaped:
                escaped = 0
            elif c == 0x5C:
                escaped = 1
            elif c == 0x22:
                in_string = 0
            continue
        if c == 0x22:
            in_string = 1
        elif c in b"[{":
            depth += 1
            for k in range(min(LEVELS, depth)):
                peak[k] = max(peak[k], depth)
            if depth <= LEVELS:
                open_at[depth - 1], peak[depth - 1] = at, depth
        elif c in b"]}":
            if depth <= 0:
                broken = 1
                break
            if depth <= LEVELS and at - open_at[depth - 1] >= MIN:
                span = (open_at[depth - 1], at, peak[depth - 1] - depth + 1)
                if len(spans) < KEPT:
                    spans.append(span)
                else:
                    i = min(range(KEPT), key=lambda i: spans[i][1] - spans[i][0])
                    if spans[i][1] - spans[i][0] < at - span[0]:
                        spans[i] = span
            depth -= 1
    return sorted(spans), broken


def agrees(got, want):
    """The same spans and the same break; each span's levels are an upper
    bound of the true ones (a block wholly deeper than the kept levels is
    counted at once), which only ever sends a skip back to scanning."""
    (spans, broken), (true_spans, true_broken) = got, want
    return (broken == true_broken and [s[:2] for s in spans] == [s[:2] for s in true_spans]
            and all(s[2] >= t[2] for s, t in zip(spans, true_spans)))


def random_string(rng):
    parts = []
    for _ in range(rng.randrange(0, 12)):
        parts.append(rng.choice(['a', 'bc', '"', '\\', '[', ']', '{', '}', ' ', 'é', '\\"',
                                 '\\\\', 'x' * rng.randrange(1, 80)]))
    return "".join(parts)


def random_value(rng, depth):
    r = rng.random()
    if depth < 6 and r < 0.25:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(0, 40 if depth < 2 else 6))]
    if depth < 6 and r < 0.5:
        return {random_string(rng): random_value(rng, depth + 1)
                for _ in range(rng.randrange(0, 30 if depth < 2 else 6))}
    if r < 0.8:
        return random_string(rng)
    return rng.choice([1, -2.5, True, None, 123456789])


def bodies():
    rng = random.Random(20261207)
    out = []
    for _ in range(120):               # valid JSON, escapes and brackets in strings
        out.append(json.dumps({"data": random_value(rng, 0), "next": random_string(rng)},
                              ensure_ascii=rng.random() < 0.5).encode())
    for _ in range(60):                # and the same cut, spliced and salted with noise
        b = bytearray(rng.choice(out))
        for _ in range(rng.randrange(1, 20)):
            i = rng.randrange(len(b))
            b[i:i] = rng.choice([b'"', b'\\', b']', b'}', b'[', b'{', b'\\\\', b'\\"'])
        out.append(bytes(b[: rng.randrange(1, len(b) + 1)]))
    # the items array itself, as the vendors send it: thousands of small objects
    items = [{"id": f"c_{i}", "name": f'N\\"{i}"]', "tags": ["a", "b]"] * (i % 3)} for i in range(900)]
    out.append(json.dumps({"data": {"items": items}, "traceId": "t"}).encode())
    return out


BODIES = bodies()
CHUNKS = [1, 63, 64, 65, 1000, 1 << 30]


def test_the_bodies_exercise_what_they_should():
    kept = [byte_rules(b)[0] for b in BODIES]
    assert sum(1 for s in kept if s) >= 60            # spans to compare, not empty lists
    assert any(len(s) == KEPT for s in kept)          # the table full, the smallest giving way
    assert any(byte_rules(b)[1] for b in BODIES)      # a close with nothing open
    assert any(p > 3 for s in kept for _, _, p in s)  # structures deeper than the levels kept


@pytest.mark.parametrize("build", _core._shape_variants())
def test_every_build_records_the_spans_of_the_byte_rules(build):
    for body in BODIES:
        want = byte_rules(body)
        plain = _core._shape_spans(body, 1 << 30, "plain")
        assert agrees(plain, want), body[:200]
        for chunk in CHUNKS:        # and exactly what the plain build records, as it arrives
            assert _core._shape_spans(body, chunk, build) == plain, (build, chunk, body[:200])


def test_the_wide_build_is_there_where_the_processor_has_it():
    variants = _core._shape_variants()
    assert variants[0] == "plain"
    flags = ""
    if platform.machine() in ("x86_64", "AMD64"):
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    wide = all(f" {flag}" in flags + " " for flag in ("avx2", "pclmulqdq", "popcnt"))
    assert ("avx2" in variants) == wide


def test_a_build_this_machine_lacks_is_refused():
    with pytest.raises(ValueError):
        _core._shape_spans(b"[]", 1, "avx512")
    with pytest.raises(ValueError):
        _core._shape_spans(b"[]", 0, "plain")
