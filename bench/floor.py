"""Decode against its floor: instructions per page of a decode, and of
building the very same Python objects from values already parsed, with no
JSON at all (bench/floor.c), for custlist and for msgspec.

    python bench/floor.py [--smoke]           # check, then the table
    python bench/floor.py --check             # only the equality check
    python bench/floor.py --breakdown [KIND...]  # custlist's decode - floor, by what
                                              # the instructions do (callgrind_annotate)
    python bench/floor.py --profile KIND LIB MODE LOOPS OUT
                                              # one callgrind profile kept in OUT
                                              # (LIB custlist|msgspec, MODE decode|floor)

The floor of a page is made once, outside the measured loop: the decoder's
result is walked into a tape (per value its tag and payload: UTF-8 bytes
and whether they are ASCII, int64, double, datetime fields and tzinfo,
Decimal text, tuple/list length, record or Struct class with its slot
count or field offsets, whether the decoded container was GC-tracked, and
which objects the graph holds twice); Tape.build() then makes the graph
again with the cheapest C API calls (see floor.c).  Before anything is
counted, every endpoint's floor is checked to build a graph EQUAL to the
decoder's (==, and the same types, values, tracking and sharing, walked
again).

Counts are as in bench/icount.py: callgrind, (instructions with LOOPS
calls - instructions with none) / LOOPS, PYTHONHASHSEED=0, every decoder
and every tape warmed up in every child, the same 100-item page."""
from __future__ import annotations

import datetime as dt
import decimal
import enum
import gc
import hashlib
import importlib.util
import inspect
import os
import pathlib
import re
import subprocess
import sys
import sysconfig
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

KINDS = ("pyng", "natural", "invitations", "commenda")
LIBS = {"custlist": "custlist", "msgspec": "msgspec Structs"}     # -> bench/icount.py's names
MODES = ("decode", "floor")
TARGET = 1.3


# ---- the extension -------------------------------------------------------

def load_floor():
    """bench/floor.c built with this interpreter's headers, cached by the
    source's hash and the interpreter's version."""
    src = HERE / "floor.c"
    digest = hashlib.sha256(src.read_bytes()).hexdigest()[:12]
    tag = sys.implementation.cache_tag
    folder = pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache"))
    folder = folder / "custlist" / "floor" / f"{tag}-{digest}"
    target = folder / ("_floor" + sysconfig.get_config_var("EXT_SUFFIX"))
    if not target.exists():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".build-{os.getpid()}.so"
        cc = os.environ.get("CC", "cc")
        subprocess.run([cc, "-O2", "-fPIC", "-shared", "-Wall", "-Werror",
                        "-I" + sysconfig.get_paths()["include"], str(src), "-o", str(tmp)],
                       check=True)
        os.replace(tmp, target)
    spec = importlib.util.spec_from_file_location("_floor", target)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_floor = load_floor()


# ---- the tape -------------------------------------------------------------

def _record_type():
    from custlist import _core
    return _core.Record


def _struct_type():
    import msgspec
    return msgspec.Struct


_offsets_cache: dict = {}


def struct_offsets(cls) -> tuple:
    """Per field of a msgspec Struct class, its slot's offset in the object."""
    got = _offsets_cache.get(cls)
    if got is None:
        got = tuple(_floor.member_offset(inspect.getattr_static(cls, f))
                    for f in cls.__struct_fields__)
        _offsets_cache[cls] = got
    return got


def _children(v, record, struct):
    tp = type(v)
    if tp is tuple or tp is list:
        return v
    if isinstance(v, record):
        vals = v.__reduce__()[1]
        if len(vals) != _floor.ob_size(v):
            raise TypeError(f"{tp.__name__}: {len(vals)} values for {_floor.ob_size(v)} slots")
        return vals
    if isinstance(v, struct):
        return tuple(getattr(v, f) for f in tp.__struct_fields__)
    return ()


def _is_const(v) -> bool:
    return v is None or type(v) is bool or isinstance(v, enum.Enum)


def tape_ops(root):
    """(ops, number of save slots) building `root` again: post-order, every
    object the graph holds more than once built once and referenced after."""
    record, struct = _record_type(), _struct_type()
    seen: dict = {}                       # id -> times held
    order = [root]
    while order:
        v = order.pop()
        if _is_const(v):
            continue
        seen[id(v)] = seen.get(id(v), 0) + 1
        if seen[id(v)] == 1:
            order.extend(_children(v, record, struct))
    slots: dict = {}                      # id -> save slot, once built
    ops: list = []

    def emit(v):
        if _is_const(v):
            ops.append((_floor.OP_CONST, -1, v))
            return
        if id(v) in slots:
            ops.append((_floor.OP_REF, -1, slots[id(v)]))
            return
        for c in _children(v, record, struct):
            emit(c)
        save = -1
        if seen[id(v)] > 1:
            save = slots[id(v)] = len(slots)
        tp = type(v)
        if tp is str:
            ops.append((_floor.OP_ASCII if v.isascii() else _floor.OP_UTF8, save, v.encode()))
        elif tp is int:
            if not -2 ** 63 <= v < 2 ** 63:
                raise ValueError(f"int out of int64: {v}")
            ops.append((_floor.OP_INT, save, v))
        elif tp is float:
            ops.append((_floor.OP_FLOAT, save, v))
        elif tp is dt.datetime:
            if v.fold:
                raise ValueError("fold=1 datetime")
            ops.append((_floor.OP_DATETIME, save, v.year, v.month, v.day, v.hour, v.minute,
                        v.second, v.microsecond, v.tzinfo))
        elif tp is decimal.Decimal:
            ops.append((_floor.OP_DECIMAL, save, str(v).encode()))
        elif tp is tuple:
            ops.append((_floor.OP_TUPLE, save, len(v), gc.is_tracked(v)))
        elif tp is list:
            ops.append((_floor.OP_LIST, save, len(v)))
        elif isinstance(v, record):
            ops.append((_floor.OP_RECORD, save, tp, len(v.__reduce__()[1]), gc.is_tracked(v)))
        elif isinstance(v, struct):
            ops.append((_floor.OP_STRUCT, save, tp, struct_offsets(tp), gc.is_tracked(v)))
        else:
            raise TypeError(f"no floor for a {tp.__qualname__}")

    emit(root)
    return ops, len(slots)


def make_tape(root):
    ops, nsaved = tape_ops(root)
    return _floor.Tape(ops, nsaved, decimal.Decimal)


def census(ops) -> dict:
    names = {getattr(_floor, n): n[3:].lower() for n in dir(_floor) if n.startswith("OP_")}
    out: dict = {}
    for op in ops:
        out[names[op[0]]] = out.get(names[op[0]], 0) + 1
    return out


# ---- decoders, tapes and the check ----------------------------------------

def decoded(kind: str, lib: str):
    """(decode function, body, its result made with the GC off, so the
    result's tracking is the decoder's own)."""
    import icount
    f, body = icount.decoder(kind, LIBS[lib])
    was = gc.isenabled()
    gc.disable()
    try:
        return f, body, f(body)
    finally:
        if was:
            gc.enable()


def prepare(kind: str, lib: str):
    """(decode as called by the loop, body, tape)."""
    f, body, result = decoded(kind, lib)
    tape = make_tape(result)
    tape.build()                          # warm, as the decoders are
    return f, body, tape


def check(kind: str, lib: str) -> dict:
    """The floor's graph equals the decoder's: by == and walked again (the
    same types, values, tracking and sharing).  Returns the op census."""
    f, body, result = decoded(kind, lib)
    ops, nsaved = tape_ops(result)
    tape = _floor.Tape(ops, nsaved, decimal.Decimal)
    was = gc.isenabled()
    gc.disable()
    try:
        built = tape.build()
        again, nsaved2 = tape_ops(built)
    finally:
        if was:
            gc.enable()
    if built is result:
        raise AssertionError(f"{kind}/{lib}: the floor handed back the decoded object")
    if not built == result:
        raise AssertionError(f"{kind}/{lib}: the floor's graph differs from the decoder's (==)")
    if again != ops or nsaved2 != nsaved:
        bad = next((i for i, (a, b) in enumerate(zip(ops, again)) if a != b), min(len(ops), len(again)))
        raise AssertionError(f"{kind}/{lib}: the floor's graph differs from the decoder's at op {bad}: "
                             f"{ops[bad:bad + 1]} vs {again[bad:bad + 1]}")
    return census(ops)


def check_all(kinds) -> dict:
    return {(k, lib): check(k, lib) for k in kinds for lib in LIBS}


# ---- counting ---------------------------------------------------------------

def child(kind: str, lib: str, mode: str, loops: int) -> None:
    # every decoder and every tape warms up in every child: one empty run is the baseline of all
    prepared = {(k, name): prepare(k, name) for k in KINDS for name in LIBS}
    # what exists now (modules, pages, tapes) leaves the collector's view: a
    # full collection the loop happens to trigger then costs what the loop
    # made, not what the process holds, and the counts stop depending on it
    gc.collect()
    gc.freeze()
    if loops:
        f, body, tape = prepared[(kind, lib)]
        if mode == "decode":
            for _ in range(loops):
                f(body)
        else:
            build = tape.build
            for _ in range(loops):
                build()


def count(kind: str, lib: str, mode: str, loops: int, keep: str | None = None) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = keep or os.path.join(tmp, "cg.out")
        env = dict(os.environ, PYTHONHASHSEED="0")
        # the child's arguments have the same length in every run: their
        # length moves the stack, and with it the alignment memcpy sees,
        # by hundreds of thousands of instructions over a run
        args = [kind.ljust(12), lib.ljust(8), mode.ljust(6), str(loops).rjust(6, "0")]
        r = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
                            sys.executable, __file__, "--child", *args],
                           capture_output=True, text=True, env=env)
        m = re.search(r"Collected : (\d+)", r.stderr)
        if r.returncode or m is None:
            raise RuntimeError(r.stderr[-3000:])
        return int(m.group(1))


def counts(kinds, loops: int) -> dict:
    """{kind: {(lib, mode): instructions per page}}."""
    zero = count(KINDS[0], "custlist", "decode", 0)
    return {kind: {(lib, mode): (count(kind, lib, mode, loops) - zero) / loops
                   for lib in LIBS for mode in MODES} for kind in kinds}


def table(kinds, loops: int, smoke: bool) -> list:
    head = ["endpoint", "custlist decode", "custlist floor", "custlist decode ÷ floor",
            f"target <= {TARGET}x", "msgspec decode", "msgspec floor", "msgspec decode ÷ floor"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for kind, n in counts(kinds, loops).items():
        cl = n[("custlist", "decode")] / n[("custlist", "floor")]
        ms = n[("msgspec", "decode")] / n[("msgspec", "floor")]
        verdict = "(smoke)" if smoke else ("PASS" if cl <= TARGET else "FAIL")
        k = lambda v: f"{v / 1e3:,.0f} k"   # noqa: E731
        lines.append(f"| {kind} | {k(n[('custlist', 'decode')])} | {k(n[('custlist', 'floor')])} | "
                     f"{cl:.2f}x | {verdict} | {k(n[('msgspec', 'decode')])} | "
                     f"{k(n[('msgspec', 'floor')])} | {ms:.2f}x |")
    return lines


# ---- where the difference goes ------------------------------------------------

# custlist's functions (and the CPython ones the floor calls instead) by
# what they do; the rest is building, freeing and collecting the objects
# themselves, which the floor does too.
CATEGORIES = (
    ("structure: key matching, dispatch, lists, records",
     r"decode_object_into|decode_record|decode_value|decode_list|decode_union|find_tag|cl_enter"
     r"|cl_obj_next|cl_scan_literal|cl_skip_ws|decode_page|decode_items"),
    ("strings: scan, UTF-8, repeated-value cache (floor: PyUnicode_DecodeUTF8)",
     r"cl_make_str|str_from_utf8|cl_decode_str|cl_scan_string|unicode_decode_utf8|ascii_decode"
     r"|_PyUnicodeWriter|resize_compact|_PyObject_Realloc|PyUnicode_DecodeUTF8"),
    ("datetimes: parse, epoch arithmetic",
     r"cl_decode_datetime|datetime_(from|of)_epoch_us|parse_iso|iso_time_rest"),
    ("numbers and Decimal text", r"cl_scan_number|cl_int_from_token|cl_decode_decimal|build_decimal"
     r"|cl_decode_int|cl_float"),
    ("enum matching", r"cl_decode_enum|match_word"),
    ("record finish: None fill, GC rule", r"cl_record_finish|cl_may_cycle"),
    ("the floor's own loop over the tape", r"tape_build|PyUnicode_DATA"),
)
REST = "the rest: the objects themselves, memory, GC, calls"


def exclusive(path: str) -> dict:
    """{function: exclusive instructions} of a callgrind output."""
    out = subprocess.run(["callgrind_annotate", "--auto=no", "--threshold=100", path],
                         capture_output=True, text=True, check=True).stdout
    got: dict = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) \([\s\d.]+%\)\s+(\S.*?)(?: \[.*\])?$", line)
        if m and "PROGRAM TOTALS" not in line:
            fn = re.sub(r"'\d+$", "", m.group(2).rsplit(":", 1)[-1])
            got[fn] = got.get(fn, 0) + int(m.group(1).replace(",", ""))
    return got


def category(fn: str) -> str:
    return next((name for name, rx in CATEGORIES if re.search(rx, fn)), REST)


def breakdown(kinds, loops: int = 20) -> list:
    with tempfile.TemporaryDirectory() as tmp:
        def prof(kind, mode, n):
            path = os.path.join(tmp, f"{kind}-{mode}-{n}.out")
            count(kind, "custlist", mode, n, keep=path)
            return exclusive(path)
        zero = prof(KINDS[0], "decode", 0)
        split = {}
        for kind in kinds:
            dec, flo = prof(kind, "decode", loops), prof(kind, "floor", loops)
            per: dict = {}
            for fn in set(zero) | set(dec) | set(flo):
                d = (dec.get(fn, 0) - zero.get(fn, 0)) - (flo.get(fn, 0) - zero.get(fn, 0))
                per[category(fn)] = per.get(category(fn), 0) + d / loops
            split[kind] = per
    lines = ["| custlist decode - floor, per page | " + " | ".join(split) + " |",
             "|---|" + "---|" * len(split)]
    for name in [n for n, _ in CATEGORIES] + [REST]:
        lines.append(f"| {name} | " + " | ".join(f"{split[k].get(name, 0) / 1e3:+,.0f} k" for k in split) + " |")
    lines.append("| **decode - floor** | " + " | ".join(f"**{sum(split[k].values()) / 1e3:+,.0f} k**"
                                                        for k in split) + " |")
    return lines


def main(argv) -> None:
    if argv[:1] == ["--child"]:
        child(argv[1].strip(), argv[2].strip(), argv[3].strip(), int(argv[4]))
        return
    if argv[:1] == ["--breakdown"]:
        print("\n".join(breakdown(tuple(argv[1:]) or KINDS)))
        return
    if argv[:1] == ["--profile"]:
        kind, lib, mode, loops, out = argv[1:6]
        print(count(kind, lib, mode, int(loops), keep=out))
        return
    smoke = "--smoke" in argv
    kinds = KINDS[:1] if smoke else KINDS
    cen = check_all(KINDS)                 # every endpoint, smoke or not
    print("Floor check: every endpoint's floor builds a graph equal to its decoder's "
          "(==, and walked again: types, values, GC tracking, shared objects).")
    for (kind, lib), c in cen.items():
        print(f"  {kind:12} {lib:9} " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
    if "--check" in argv:
        return
    loops = 5 if smoke else 20
    print(f"\nInstructions per 100-item page (callgrind, ({loops} calls - none) / {loops}, "
          "PYTHONHASHSEED=0)\n")
    print("\n".join(table(kinds, loops, smoke)))


if __name__ == "__main__":
    main(sys.argv[1:])
