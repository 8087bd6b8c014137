"""Declarative descriptions of records, endpoints and paging.

A vendor module describes its API with these classes; they compile once into
the tuples the C engine takes (custlist._core.Schema), and the engine does
the rest.  The same classes let a user describe their own API, paged by a
cursor (CursorPaging), a next URL in the body (HrefPaging) or in a ``Link``
header (LinkHeaderPaging), an offset (OffsetPaging) or page numbers
(PagePaging)::

    class Invoice(Record):
        id: str                                        # always there
        amount: Decimal | None = Field(wire="amount_due")
        created: Annotated[datetime, UnixSeconds]      # a unix-seconds number
        note: str | None = None

    INVOICES = Endpoint("/invoices", Invoice,
                        CursorPaging(items="data", cursor="next_cursor", has_more="has_more"))

Fields are annotations, as in dataclasses or msgspec: ``T | None`` may be
absent (or null) on the wire and reads None then; a plain ``T`` is required,
and a page whose record lacks it is a DecodeError naming the field.
``Field(...)`` as the default gives the wire key and options; a converter
the annotation cannot say (``UnixSeconds``, ``UnixMillis``, ``OneOf``) goes
in ``Annotated``.  The older spelling, ``amount = Field(Decimal,
"amount_due")`` (optional unless ``required=True``), still works.

Typed: a type checker reads ``Invoice(...).amount`` as ``Decimal | None``,
``.id`` as ``str``, ``Invoice(...)``'s keywords from the annotations and
``client.paginate(INVOICES, ...)`` as ``Pager[Invoice]``.
"""
from __future__ import annotations

import datetime as _dt
import enum
import inspect
import builtins
import ipaddress
import sys
import types
import typing
import urllib.parse
from decimal import Decimal
from typing import (TYPE_CHECKING, Annotated, Any, ClassVar, Generic, Iterable, Literal, Mapping,
                    TypeVar, overload)

if sys.version_info >= (3, 11):
    from typing import dataclass_transform
else:
    from typing_extensions import dataclass_transform

from . import _core
from . import errors as _errors
from ._display import RecordDisplay

__all__ = [
    "Record", "Field", "StrEnum", "UnixSeconds", "UnixMillis", "OneOf", "Page",
    "CursorPaging", "HrefPaging", "OffsetPaging", "PagePaging", "LinkHeaderPaging",
    "Endpoint", "Param",
]

# A list-valued query parameter: one str or several.
StrList = typing.Union[str, list[str], tuple[str, ...], set[str], frozenset[str]]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
E = TypeVar("E", bound=enum.Enum)


class StrEnum(str, enum.Enum):
    """A str-valued enum: members compare equal to their wire value."""

    def __str__(self) -> str:
        return self.value


class UnixSeconds:
    """Field type: a unix timestamp in seconds -> aware UTC datetime."""


class UnixMillis:
    """Field type: a unix timestamp in milliseconds -> aware UTC datetime."""


class OneOf(Generic[T]):
    """Field type: an object whose ``tag`` key picks the record class.
    Objects with an unknown tag decode as ``fallback`` (or fail the page
    when there is none).  A type checker infers the variants' common base;
    ``OneOf[A | B](...)`` states the union."""

    def __init__(self, tag: str, variants: Mapping[str, type[T]],
                 fallback: type[T] | None = None):
        self.tag, self.variants, self.fallback = tag, dict(variants), fallback


def _path(wire: str | tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(wire, tuple):
        return wire
    return tuple(wire.split("."))


class _Unset:
    def __repr__(self) -> str:
        return "<no type: from the annotation>"


_UNSET: Any = _Unset()

_TYPE_HELP = ("str, int, float, bool, Decimal, datetime, UnixSeconds, UnixMillis, an Enum, a "
              "Record class, tuple[X, ...] or list[X] of those, dict, Any or OneOf(...)")


def _check_type(tp: Any, where: str) -> None:
    """TypeError unless `tp` is a field type the engine decodes."""
    if isinstance(tp, str):
        raise TypeError(f"{where}: the field type is the string {tp!r}: give the type itself, "
                        f"Field({tp}), not Field({tp!r})")
    if tp in _SIMPLE or (isinstance(tp, type) and issubclass(tp, (enum.Enum, Record))):
        return
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (list, tuple):
        items = [a for a in args if a is not Ellipsis]
        if origin is tuple and args and (len(args) != 2 or args[1] is not Ellipsis):
            raise TypeError(f"{where}: {_name(tp)} is a fixed-length tuple: a JSON array "
                            "decodes as tuple[X, ...] (every element of one type)")
        if items:
            _check_type(items[0], where)
        return
    if origin is dict:
        return
    if isinstance(tp, OneOf):
        for v in [*tp.variants.values()] + ([tp.fallback] if tp.fallback is not None else []):
            if not (isinstance(v, type) and issubclass(v, Record)):
                raise TypeError(f"{where}: OneOf variants must be Record classes, not {v!r}")
        return
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        rest = " | ".join(_name(a) for a in args if a is not type(None))
        raise TypeError(f"{where}: give the type without None, Field({rest}): a field is None "
                        "when absent on the wire (unless required=True)")
    if tp in (list, tuple):
        return
    if origin in (set, frozenset) or tp in (set, frozenset):
        raise TypeError(f"{where}: {_name(tp)} is not a field type: a JSON array decodes as "
                        "tuple[X, ...] (write Field(list[X]) or annotate tuple[X, ...])")
    raise TypeError(f"{where}: unsupported field type {_name(tp)}: use {_TYPE_HELP}")


def _name(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) and not typing.get_args(tp) else repr(tp)


def _check_wire(what: str, key: object) -> str:
    if not isinstance(key, str):
        raise TypeError(f"{what} must be a str (a dotted key path), not {type(key).__name__}")
    if not key or any(not part for part in key.split(".")):
        raise ValueError(f"{what} must be a key, or keys joined by dots, not {key!r}")
    return key


class Field(Generic[T]):
    """A record field: its Python type and where it sits on the wire.

    ``wire`` is the key (default: the attribute name); a dotted key
    ("attributes.status") reaches into nested objects.  ``aliases`` lists
    other keys older payloads use for the same value; ``doc`` is the field's
    docstring.  ``scale`` (and ``precision``, default 38) declare a Decimal
    field's Arrow type, decimal128(precision, scale); without them Arrow
    output keeps the exact text.  ``required=True``: always present and
    never null on the wire, typed without ``None``; a record without it is
    a DecodeError naming the field.

    As an annotated attribute's default (``amount: Decimal | None =
    Field(wire="amount_due")``) the type comes from the annotation.  Every
    argument is checked when the Field (and its record class) is created.

    For a type checker a field is a read-only attribute of its type, or
    ``None`` unless required: ``Field(Decimal)`` reads as ``Decimal |
    None``, ``UnixSeconds`` / ``UnixMillis`` as ``datetime``, an enum as the
    enum or ``str`` (unknown values stay str), ``list[X]`` as ``tuple[X,
    ...]`` and ``dict`` as ``dict[str, Any]``."""

    if TYPE_CHECKING:
        @overload
        def __new__(cls, type: type[UnixSeconds] | type[UnixMillis], wire: str | None = None,
                    *, aliases: Iterable[str] = (), doc: str | None = None,
                    required: Literal[False] = False) -> Field[_dt.datetime]: ...
        @overload
        def __new__(cls, type: type[UnixSeconds] | type[UnixMillis], wire: str | None = None,
                    *, aliases: Iterable[str] = (), doc: str | None = None,
                    required: Literal[True]) -> _Required[_dt.datetime]: ...
        @overload
        def __new__(cls, type: type[E], wire: str | None = None, *,
                    aliases: Iterable[str] = (), doc: str | None = None,
                    required: Literal[False] = False) -> Field[E | str]: ...
        @overload
        def __new__(cls, type: type[E], wire: str | None = None, *,
                    aliases: Iterable[str] = (), doc: str | None = None,
                    required: Literal[True]) -> _Required[E | str]: ...
        @overload
        def __new__(cls, type: type[list[T]], wire: str | None = None, *,
                    aliases: Iterable[str] = (), doc: str | None = None,
                    scale: int | None = None, precision: int | None = None,
                    required: Literal[False] = False) -> Field[tuple[T, ...]]: ...
        @overload
        def __new__(cls, type: type[list[T]], wire: str | None = None, *,
                    aliases: Iterable[str] = (), doc: str | None = None,
                    scale: int | None = None, precision: int | None = None,
                    required: Literal[True]) -> _Required[tuple[T, ...]]: ...
        @overload
        def __new__(cls, type: type[dict[Any, Any]], wire: str | None = None, *,
                    aliases: Iterable[str] = (), doc: str | None = None,
                    required: Literal[False] = False) -> Field[dict[str, Any]]: ...
        @overload
        def __new__(cls, type: type[dict[Any, Any]], wire: str | None = None, *,
                    aliases: Iterable[str] = (), doc: str | None = None,
                    required: Literal[True]) -> _Required[dict[str, Any]]: ...
        @overload
        def __new__(cls, type: type[T] | OneOf[T], wire: str | None = None, *,
                    aliases: Iterable[str] = (), doc: str | None = None,
                    scale: int | None = None, precision: int | None = None,
                    required: Literal[False] = False) -> Field[T]: ...
        @overload
        def __new__(cls, type: type[T] | OneOf[T], wire: str | None = None, *,
                    aliases: Iterable[str] = (), doc: str | None = None,
                    scale: int | None = None, precision: int | None = None,
                    required: Literal[True]) -> _Required[T]: ...
        # The default of an annotated attribute: typed as its annotation.
        @overload
        def __new__(cls, *, wire: str | None = None, aliases: Iterable[str] = (),
                    doc: str | None = None, scale: int | None = None,
                    precision: int | None = None, required: bool = False) -> Any: ...

        def __new__(cls, *args: Any, **kwargs: Any) -> Any: ...

        # What a type checker sees; at run time a record class holds a
        # read-only _core.Slot in the Field's place.
        @overload
        def __get__(self, obj: None, owner: Any) -> Field[T]: ...
        @overload
        def __get__(self, obj: object, owner: Any) -> T | None: ...
        def __get__(self, obj: object, owner: Any) -> Any: ...
        def __set__(self, obj: object, value: T | None) -> None: ...
        type: Any
        wire: str | None
        aliases: tuple[str, ...]
        doc: str | None
        scale: int | None
        precision: int | None
        required: bool
        def paths(self, name: str) -> list[tuple[str, ...]]: ...
    else:
        def __init__(self, type: Any = _UNSET, wire: str | None = None, *,
                     aliases: Iterable[str] = (), doc: str | None = None,
                     scale: int | None = None, precision: int | None = None,
                     required: bool = False) -> None:
            where = "Field"
            if type is not _UNSET:
                _check_type(type, where)
            if wire is not None:
                _check_wire("wire", wire)
            if isinstance(aliases, str):
                raise TypeError(f"aliases must be a list of keys, not the str {aliases!r}: "
                                f"aliases=[{aliases!r}]")
            try:
                aliases = tuple(aliases)
            except TypeError:
                raise TypeError("aliases must be a list of keys") from None
            for a in aliases:
                _check_wire("each alias", a)
            if doc is not None and not isinstance(doc, str):
                raise TypeError(f"doc must be a str, not {builtins.type(doc).__name__}")
            if not isinstance(required, bool):
                raise TypeError(f"required must be True or False, not {required!r}")
            self.type, self.wire, self.aliases, self.doc = type, wire, aliases, doc
            self.required = required
            if precision is not None and scale is None:
                raise ValueError("precision needs a scale")
            if scale is not None:
                precision = 38 if precision is None else precision
                for name, v in (("scale", scale), ("precision", precision)):
                    if isinstance(v, bool) or not isinstance(v, int):
                        raise TypeError(f"{name} must be an int")
                if not 1 <= precision <= 38 or not 0 <= scale <= precision:
                    raise ValueError("need 1 <= precision <= 38 and 0 <= scale <= precision, "
                                     f"got precision={precision}, scale={scale}")
                if type is not _UNSET:
                    _scale_check(type)
            self.scale, self.precision = scale, precision

        def paths(self, name: str) -> list[tuple[str, ...]]:
            return [_path(self.wire or name)] + [_path(a) for a in self.aliases]

        def __repr__(self) -> str:
            return (f"Field({_name(self.type)}"
                    + (f", {self.wire!r}" if self.wire else "")
                    + (", required=True" if self.required else "") + ")")


if TYPE_CHECKING:
    class _Required(Field[T]):
        """A required field, for a type checker: read as its type, never None."""

        @overload  # type: ignore[override]
        def __get__(self, obj: None, owner: Any) -> _Required[T]: ...
        @overload
        def __get__(self, obj: object, owner: Any) -> T: ...
        def __get__(self, obj: object, owner: Any) -> Any: ...
        def __set__(self, obj: object, value: T) -> None: ...  # type: ignore[override]


def _scale_check(tp: Any) -> None:
    while typing.get_origin(tp) in (list, tuple):
        tp = next((a for a in typing.get_args(tp) if a is not Ellipsis), None)
    if tp is not Decimal:
        raise TypeError("scale= applies to Decimal fields (or lists of them)")


def _scaled(spec: tuple, precision: int, scale: int) -> tuple:
    """("decimal", precision, scale) in place of ("decimal",), through lists."""
    if spec == ("decimal",):
        return ("decimal", precision, scale)
    if spec[0] == "list":
        return ("list", _scaled(spec[1], precision, scale))
    raise TypeError("scale= applies to Decimal fields (or lists of them)")


_SIMPLE = {str: ("str",), int: ("int",), float: ("float",), bool: ("bool",),
           Decimal: ("decimal",), _dt.datetime: ("datetime",), UnixSeconds: ("unix_s",),
           UnixMillis: ("unix_ms",), typing.Any: ("any",), object: ("any",), dict: ("any",)}


def type_spec(tp) -> tuple:
    """The engine's schema tuple for a field type."""
    if tp in _SIMPLE:
        return _SIMPLE[tp]
    origin = typing.get_origin(tp)
    if origin is dict:
        return ("any",)
    if tp in (list, tuple):
        return ("list", ("any",))
    if origin in (list, tuple):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return ("list", type_spec(args[0] if args else typing.Any))
    if isinstance(tp, OneOf):
        variants = {k: type_spec(v) for k, v in tp.variants.items()}
        fallback = type_spec(tp.fallback) if tp.fallback is not None else None
        return ("union", tp.tag, variants, fallback)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return ("enum", {m.value: m for m in tp})
    if isinstance(tp, type) and issubclass(tp, Record):
        return tp.__schema_spec__()
    raise TypeError(f"unsupported field type {tp!r}")


def annotation(tp: Any) -> Any:
    """The Python type a field of type `tp` holds (without the None)."""
    if tp in (UnixSeconds, UnixMillis):
        return _dt.datetime
    if tp is dict:
        return dict[str, Any]
    if typing.get_origin(tp) in (list, tuple):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return tuple[annotation(args[0]) if args else Any, ...]    # type: ignore[misc]
    if isinstance(tp, OneOf):
        out = [*tp.variants.values()] + ([tp.fallback] if tp.fallback is not None else [])
        return typing.Union[tuple(dict.fromkeys(out))]
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp | str
    return tp


def _field_doc(name: str, f: Field[Any]) -> str:
    wire = ", ".join(".".join(p) for p in f.paths(name))
    end = "Always present." if f.required else "None when absent."
    return (f.doc + "\n\n" if f.doc else "") + f"Wire key: {wire}.  {end}"


_CONVERTERS = (UnixSeconds, UnixMillis)


def _raw_annotations(ns: dict[str, Any]) -> dict[str, Any]:
    """The annotations written in a class body, from its namespace: the
    ``__annotations__`` dict, or on CPython 3.14+ (annotations evaluated
    lazily) what its annotate function gives, names not yet defined kept as
    forward references."""
    raw = ns.get("__annotations__")
    if isinstance(raw, dict):
        return dict(raw)
    annotate = ns.get("__annotate_func__") or ns.get("__annotate__")
    if callable(annotate):
        import annotationlib  # type: ignore[import-not-found, unused-ignore]
        return dict(annotationlib.call_annotate_function(
            annotate, annotationlib.Format.FORWARDREF))
    return {}


def _own_annotations(cls: type, ns: dict[str, Any], frame: Any) -> dict[str, Any]:
    """The class's own annotations, evaluated (strings too, as under
    ``from __future__ import annotations``), Annotated kept."""
    raw = _raw_annotations(ns)
    if not raw:
        return {}
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
        return {k: hints[k] for k in raw}
    except Exception:
        pass
    module = sys.modules.get(cls.__module__)
    globalns = dict(vars(module)) if module is not None else {}
    localns = dict(frame.f_locals) if frame is not None else {}
    localns.setdefault(cls.__name__, cls)
    out = {}
    for k, v in raw.items():
        if isinstance(v, typing.ForwardRef):
            v = v.__forward_arg__
        if isinstance(v, str):
            try:
                v = eval(v, globalns, localns)
            except Exception as e:
                raise TypeError(f"{cls.__name__}.{k}: cannot read the annotation {v!r} ({e})") \
                    from None
        out[k] = v
    return out


def _is_field_annotation(hint: Any) -> bool:
    """``Field[T]``: the older style, where the value is the Field."""
    return hint is Field or typing.get_origin(hint) is Field or (
        isinstance(hint, type) and issubclass(hint, Field))


def _split_optional(hint: Any) -> tuple[bool, Any]:
    """(whether None is allowed, the type without None)."""
    if hint is typing.Any or hint is object:
        return True, hint
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        rest = tuple(a for a in args if a is not type(None))
        if len(rest) < len(args):
            if not rest:
                return True, typing.Any
            return True, rest[0] if len(rest) == 1 else typing.Union[rest]
    return False, hint


def _enum_of(tp: Any) -> Any:
    """E for ``E | str`` (an open enum, as fields of enum type read)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not str]
        if len(args) == 1 and isinstance(args[0], type) and issubclass(args[0], enum.Enum) \
                and len(typing.get_args(tp)) == 2:
            return args[0]
    return None


def _spelling(tp: Any) -> str:
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return repr(tp).replace("typing.", "").replace("datetime.datetime", "datetime") \
        .replace("decimal.Decimal", "Decimal")


def _from_annotation(owner: str, name: str, hint: Any, value: Any) -> Field[Any]:
    """The Field an annotated attribute describes: ``id: str`` (required),
    ``email: str | None`` (optional), with None or a Field as the default,
    and a converter or Field in ``Annotated[...]``."""
    where = f"{owner}.{name}"
    meta: list[Any] = []
    if typing.get_origin(hint) is Annotated:
        hint, *meta = typing.get_args(hint)
    optional, base = _split_optional(hint)
    if typing.get_origin(base) is Annotated:      # Annotated[T, ...] | None
        base, *more = typing.get_args(base)
        meta += more
    spec: Field[Any] | None = None
    conv: Any = _UNSET
    for m in meta:
        if isinstance(m, Field):
            spec = m
        elif m in _CONVERTERS or isinstance(m, OneOf):
            conv = m
    if value is None:
        if not optional:
            raise TypeError(f"{where}: a field whose default is None may be absent: annotate it "
                            f"'{name}: {_spelling(base)} | None = None'")
    elif isinstance(value, Field):
        if spec is not None:
            raise TypeError(f"{where}: give Field(...) once, as the default or in Annotated")
        spec = value
    elif value is not _UNSET:
        raise TypeError(
            f"{where} = {value!r}: a record field has no default value; write "
            f"'{name}: {_spelling(base)} | None = None' for a field that may be absent, or "
            f"'{name}: {_spelling(base)} = Field(wire=...)' for a wire key or an option")
    declared = spec.type if spec is not None else _UNSET
    if declared is not _UNSET and conv is not _UNSET:
        raise TypeError(f"{where}: give the converter once, in Field(...) or in Annotated")
    if conv is not _UNSET:
        declared = conv
    if declared is not _UNSET:
        reads = annotation(declared)
        ok = reads == base or (_enum_of(reads) is not None and base in (reads, _enum_of(reads)))
        if not ok:
            raise TypeError(f"{where}: annotated {_spelling(base)}, but Field({_name(declared)}) "
                            f"reads as {_spelling(reads)}: annotate "
                            f"'{name}: {_spelling(reads)}{' | None' if optional else ''}'")
        ftype = declared
    else:
        ftype = _enum_of(base) or base
        if typing.get_origin(ftype) is list or ftype is list:
            raise TypeError(f"{where}: a JSON array decodes as a tuple: annotate "
                            f"'{name}: tuple[{_spelling((typing.get_args(ftype) or (Any,))[0])}, ...]'")
        if typing.get_origin(ftype) in (typing.Union, types.UnionType):
            raise TypeError(f"{where}: {_spelling(ftype)} names several types: for objects told "
                            "apart by a key, use Annotated[A | B, OneOf(tag, {...})]")
        _check_type(ftype, where)
    required = (spec.required if spec is not None else False) or not optional
    if spec is not None and spec.required and optional:
        raise TypeError(f"{where}: required=True, but annotated as maybe None: annotate "
                        f"'{name}: {_spelling(base)}'")
    opts: dict[str, Any] = {}
    if spec is not None:
        opts = dict(wire=spec.wire, aliases=spec.aliases, doc=spec.doc, scale=spec.scale,
                    precision=spec.precision if spec.scale is not None else None)
    return Field(ftype, required=required, **opts)  # type: ignore[call-overload, no-any-return]


def _check_paths(owner: str, defs: dict[str, Field[Any]]) -> None:
    """TypeError if two fields read the same wire key, or one reads into
    the object another field holds whole."""
    seen: dict[tuple[str, ...], str] = {}
    for name, f in defs.items():
        for p in f.paths(name):
            if p in seen and seen[p] != name:
                raise TypeError(f"{owner}.{name}: wire key '{'.'.join(p)}' is already "
                                f"{owner}.{seen[p]}'s")
            seen[p] = name
    for p, name in seen.items():
        for i in range(1, len(p)):
            other = seen.get(p[:i])
            if other is not None and other != name:
                raise TypeError(f"{owner}.{name}: wire key '{'.'.join(p)}' lies inside "
                                f"'{'.'.join(p[:i])}', which {owner}.{other} holds whole")


class RecordMeta(type):
    """Turns fields into immutable slots: annotated attributes (``id: str``,
    ``email: str | None = Field(wire=...)``) in annotation order, then
    ``Field`` class attributes without an annotation."""

    __field_defs__: dict[str, Field[Any]]
    __fields__: tuple[str, ...]
    __required__: tuple[int, ...]
    _spec_cache: tuple[Any, ...] | None
    __signature__: inspect.Signature

    def __new__(mcls, name: str, bases: tuple[type, ...], ns: dict[str, Any],
                **kw: Any) -> RecordMeta:
        inherited: dict[str, Field[Any]] = {}
        for base in reversed(bases):
            inherited.update(getattr(base, "__field_defs__", {}))
        raw_ann = _raw_annotations(ns)
        own_names = [k for k in raw_ann if not k.startswith("__")]
        own_names += [k for k, v in ns.items() if isinstance(v, Field) and k not in own_names]
        body = {k: v for k, v in ns.items() if k not in own_names}
        body["__slots__"] = ()
        cls = super().__new__(mcls, name, bases, body, **kw)
        hints = _own_annotations(cls, ns, sys._getframe(1)) if raw_ann else {}
        own: dict[str, Field[Any]] = {}
        for k in own_names:
            value = ns.get(k, _UNSET)
            hint = hints.get(k, _UNSET)
            if hint is _UNSET or _is_field_annotation(hint):
                if not isinstance(value, Field):
                    raise TypeError(f"{name}.{k}: annotated as a Field but not given one")
                if value.type is _UNSET:
                    raise TypeError(f"{name}.{k}: Field() needs a type here: Field(str), or "
                                    f"annotate the attribute '{k}: str'")
                own[k] = value
            elif hint is ClassVar or typing.get_origin(hint) is ClassVar:
                if value is not _UNSET:
                    setattr(cls, k, value)
            else:
                own[k] = _from_annotation(name, k, hint, value)
        defs = {**inherited, **own}
        _check_paths(name, defs)
        cls.__field_defs__ = defs
        cls.__fields__ = tuple(defs)
        cls.__required__ = tuple(i for i, f in enumerate(defs.values()) if f.required)
        setattr(cls, "__match_args__", cls.__fields__)
        for i, (fname, f) in enumerate(defs.items()):
            setattr(cls, fname, _core.Slot(i, fname, _core.Record, _field_doc(fname, f)))
        # Shift-Tab in Jupyter / inspect.signature: the fields, all optional.
        cls.__signature__ = inspect.Signature([
            inspect.Parameter(fname, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
                              annotation=annotation(f.type) if f.required
                              else annotation(f.type) | None)
            for fname, f in defs.items()])
        cls._spec_cache = None
        return cls

    def __schema_spec__(cls) -> tuple:
        if cls._spec_cache is None:
            fields = []
            for slot, (name, f) in enumerate(cls.__field_defs__.items()):
                spec = type_spec(f.type)
                if f.scale is not None and f.precision is not None:
                    spec = _scaled(spec, f.precision, f.scale)
                fields += [(p, slot, spec) for p in f.paths(name)]
            cls._spec_cache = ("record", cls, len(cls.__fields__), tuple(fields))
        return cls._spec_cache


@dataclass_transform(frozen_default=True)
class Record(RecordDisplay, _core.Record, metaclass=RecordMeta):
    """Base of every record: immutable, slot-based, built by the decoder.

    Records compare equal field by field, pickle, and convert with
    ``to_dict()`` (or ``to_json_dict()`` for JSON).  A field absent on the
    wire is ``None``; a required one (``id: str``) is always there."""


class Page(Record, Generic[T_co]):
    """One page as the API returned it (see ``Pager.pages()``): ``items`` is
    a tuple of the endpoint's records (empty on an empty page)."""

    if TYPE_CHECKING:
        @property
        def items(self) -> tuple[T_co, ...]: ...
    else:
        items = Field(tuple)
    total = Field(int)
    cursor = Field(str, doc="cursor of the next page (cursor-paged endpoints)")
    has_more = Field(bool)
    next_href = Field(str)
    prev_href = Field(str)
    trace_id = Field(str)
    total_pages = Field(int)


# Page envelope slots: the order custlist._core.Pager expects.
_PAGE_SLOTS = ("items", "total", "cursor", "has_more", "next_href", "prev_href", "trace_id",
               "total_pages")
_PAGE_TYPES = {"items": ("defer",), "total": ("int",), "cursor": ("str",),
               "has_more": ("bool",), "next_href": ("str",), "prev_href": ("str",),
               "trace_id": ("str",), "total_pages": ("int",)}


class _Paging:
    """What every paging style shares: where the envelope's values sit.
    ``resume`` says what a resume point is: "cursor" (a str put in the
    query: a cursor, an offset, a page number) or "href" (a URL)."""

    mode = ""
    param = "cursor"
    resume = "cursor"
    size_param: str | None = None       # the query parameter of the page size
    first: str | None = None            # the position of the first page

    def __init__(self, **paths):
        self.paths = {k: ([v] if isinstance(v, (str, tuple)) else list(v))
                      for k, v in paths.items() if v is not None}

    def page_spec(self, items=("defer",)) -> tuple:
        """The envelope schema.  With items "defer" the items are only
        located (so the next request can start first) and decoded after."""
        fields = []
        for name, alternatives in self.paths.items():
            slot = _PAGE_SLOTS.index(name)
            spec = items if name == "items" else _PAGE_TYPES[name]
            fields += [(_path(p), slot, spec) for p in alternatives]
        return ("record", None, len(_PAGE_SLOTS), tuple(fields))


class CursorPaging(_Paging):
    """Cursor paging: the body holds the next cursor (and maybe a has-more
    flag); the next request repeats the first with ``param=<cursor>``.
    Each location may be a list of alternatives (e.g. snake and camel)."""

    mode = "cursor"

    def __init__(self, items, cursor, *, has_more=None, total=None, trace_id=None,
                 param: str = "cursor"):
        super().__init__(items=items, cursor=cursor, has_more=has_more, total=total,
                         trace_id=trace_id)
        self.param = param


class HrefPaging(_Paging):
    """Link paging: the body holds a pre-formed URL of the next page, followed
    as given (opaque) with the same headers."""

    mode = "href"
    param = "cursor"
    resume = "href"

    def __init__(self, items, next_href, *, prev_href=None, total=None, trace_id=None):
        super().__init__(items=items, next_href=next_href, prev_href=prev_href, total=total,
                         trace_id=trace_id)


def _param_name(what: str, value: object) -> str:
    if not isinstance(value, str) or not value or not all(
            c.isalnum() or c in "-_.~[]" for c in value):
        raise ValueError(f"{what} must be a query parameter name, not {value!r}")
    return value


class OffsetPaging(_Paging):
    """Offset/limit paging: the n-th request asks for the records from
    ``offset`` (0, then the records received so far), ``limit`` at a time.
    The listing ends on an empty page, a page shorter than the limit asked
    for, ``has_more`` false, or ``offset + records >= total``.  Give the
    Endpoint ``default_page_size`` (the server's limit when none is sent)
    so that a short page is recognised without asking again.  The resume
    point (``pager.cursor``) is the offset, as a str."""

    mode = "offset"
    first = "0"

    def __init__(self, items, *, offset: str = "offset", limit: str | None = "limit",
                 total=None, has_more=None, trace_id=None):
        super().__init__(items=items, total=total, has_more=has_more, trace_id=trace_id)
        self.param = _param_name("offset", offset)
        self.size_param = None if limit is None else _param_name("limit", limit)


class PagePaging(_Paging):
    """Page-number paging: page 1 (or ``first``), 2, 3... with the same
    page size (the ``per_page`` parameter, if the API takes one).  The
    listing ends at ``total_pages`` when the body says it, on an empty page,
    on ``has_more`` false, or on a page shorter than the page size.  The
    resume point (``pager.cursor``) is the page number, as a str."""

    mode = "page"

    def __init__(self, items, *, page: str = "page", per_page: str | None = None,
                 total_pages=None, total=None, has_more=None, trace_id=None, first: int = 1):
        super().__init__(items=items, total_pages=total_pages, total=total, has_more=has_more,
                         trace_id=trace_id)
        if isinstance(first, bool) or not isinstance(first, int) or first not in (0, 1):
            raise ValueError(f"first must be 0 or 1 (the number of the first page), not {first!r}")
        self.param = _param_name("page", page)
        self.size_param = None if per_page is None else _param_name("per_page", per_page)
        self.first = str(first)


class LinkHeaderPaging(_Paging):
    """Paging by the response's ``Link: <url>; rel="next"`` header (RFC
    8288, as GitHub and many others send it): the next page is that URL,
    followed as given (relative ones resolved against the page's URL) with
    the same headers, and only on the client's origin.  No such link: the
    end.  A malformed Link header is a PagingError.  The resume point is
    ``pager.next_href``."""

    mode = "link"
    resume = "href"

    def __init__(self, items, *, total=None, trace_id=None):
        super().__init__(items=items, total=total, trace_id=trace_id)


class Endpoint(Generic[T]):
    """A paged GET endpoint: path template, item type, paging rules.
    ``Endpoint("/invoices", Invoice, ...)`` is an ``Endpoint[Invoice]``.

    ``name`` identifies it in checkpoints (e.g. "natural.customers").
    ``page_size`` names the query parameter that sets how many records a
    page holds (None if the endpoint takes none), with the server's
    ``default_page_size`` and ``max_page_size``: with it, ``max_items``
    never asks for more records than it will hand out (cursor and offset
    paging size every request; href and Link paging size the first, which
    the links repeat; page numbers keep the size asked for, as they count
    in pages of that size).  OffsetPaging's ``limit`` and PagePaging's
    ``per_page`` are the default ``page_size``."""

    def __init__(self, path: str, item: type[T] | OneOf[T], paging: _Paging, *,
                 name: str | None = None, page_size: str | None = None,
                 default_page_size: int | None = None, max_page_size: int | None = None):
        if not isinstance(paging, _Paging):
            raise TypeError("paging must be a CursorPaging, HrefPaging, OffsetPaging, PagePaging "
                            f"or LinkHeaderPaging, not {type(paging).__name__}")
        self.path, self.item, self.paging = path, item, paging
        self.name = name or path
        page_size = page_size or paging.size_param
        self.page_size, self.default_page_size = page_size, default_page_size
        self.max_page_size = max_page_size
        self._schemas: dict[tuple[bool, bool], tuple[_core.Schema, _core.Schema]] = {}

    def schemas(self, raw: bool = False,
                deferred: bool = True) -> tuple[_core.Schema, _core.Schema]:
        """(page schema, item schema), compiled once.  Deferred: a two-pass
        envelope for prefetching; otherwise the items decode in one pass."""
        key = (raw, deferred)
        if key not in self._schemas:
            item = ("list", ("any",) if raw else type_spec(self.item))
            page = self.paging.page_spec(("defer",) if deferred else item)
            self._schemas[key] = (_core.Schema(page), _core.Schema(item))
        return self._schemas[key]

    @overload
    def decode(self, body: bytes, *, raw: Literal[False] = False,
               max_depth: int = 64) -> Page[T]: ...
    @overload
    def decode(self, body: bytes, *, raw: Literal[True],
               max_depth: int = 64) -> Page[dict[str, Any]]: ...
    @overload
    def decode(self, body: bytes, *, raw: bool, max_depth: int = 64) -> Page[Any]: ...

    def decode(self, body: bytes, *, raw: bool = False, max_depth: int = 64) -> Page[Any]:
        """Decode one page body already in memory (no HTTP) into a Page."""
        page, item = self.schemas(raw, deferred=False)
        items, slots = _core.decode_page(page, item, body, max_depth)
        return Page(items, *slots[1:])


# ---------------------------------------------------------------------------
# Query parameters


class Param:
    """A query parameter: validated and encoded before any request.

    kind: "str", "int", "bool", "csv" (list of str), "ms" (int or datetime
    -> unix milliseconds), "enum" (member or str of ``choices`` type)."""

    def __init__(self, name: str, wire: str | None = None, kind: str = "str", *,
                 required: bool = False, min: int | None = None, max: int | None = None,
                 choices=None, open_enum: bool = False, max_len: int | None = None):
        self.name, self.wire, self.kind = name, wire or name, kind
        self.required, self.min, self.max = required, min, max
        self.choices, self.open_enum, self.max_len = choices, open_enum, max_len

    def encode(self, value) -> str | None:
        if value is None:
            if self.required:
                raise ValueError(f"{self.name} is required")
            return None
        return getattr(self, "_enc_" + self.kind)(value)

    def _enc_str(self, v):
        if not isinstance(v, str):
            raise TypeError(f"{self.name} must be a str, not {type(v).__name__}")
        if not v:
            raise ValueError(f"{self.name} must not be empty")
        if self.max_len is not None and len(v) > self.max_len:
            raise ValueError(f"{self.name} must be at most {self.max_len} characters")
        return v

    def _enc_int(self, v):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{self.name} must be an int, not {type(v).__name__}")
        if (self.min is not None and v < self.min) or (self.max is not None and v > self.max):
            raise ValueError(f"{self.name} must be between {self.min} and {self.max}, got {v}")
        return str(v)

    def _enc_bool(self, v):
        if not isinstance(v, bool):
            raise TypeError(f"{self.name} must be a bool, not {type(v).__name__}")
        return "true" if v else "false"

    def _enc_csv(self, v):
        items = [v] if isinstance(v, str) else v
        if not isinstance(items, (list, tuple, set, frozenset)):
            raise TypeError(f"{self.name} must be a str or a list of str")
        out = []
        for item in items:
            if isinstance(item, enum.Enum):
                item = item.value
            if not isinstance(item, str) or not item or "," in item:
                raise ValueError(f"{self.name} items must be non-empty str without commas: {item!r}")
            if self.choices is not None and item not in self.choices:
                raise ValueError(f"{self.name} items must be among {sorted(self.choices)}: {item!r}")
            out.append(item)
        if not out:
            raise ValueError(f"{self.name} must not be empty")
        return ",".join(out)

    def _enc_ms(self, v):
        if isinstance(v, _dt.datetime):
            if v.tzinfo is None:
                raise ValueError(f"{self.name}: give a timezone-aware datetime (naive times are ambiguous)")
            return str(int(v.timestamp() * 1000))
        return self._enc_int(v)

    def _enc_enum(self, v):
        if isinstance(v, self.choices):
            return v.value
        if not isinstance(v, str):
            raise TypeError(f"{self.name} must be a {self.choices.__name__} or str, not {type(v).__name__}")
        valid = {m.value for m in self.choices}
        if v not in valid and not self.open_enum:
            raise ValueError(f"{self.name} must be one of {sorted(valid)}, got {v!r}")
        if not v:
            raise ValueError(f"{self.name} must not be empty")
        return v


def encode_params(params, values: dict) -> list:
    """[(wire, encoded)] for the values given, validating each."""
    out = []
    for p in params:
        enc = p.encode(values.get(p.name))
        if enc is not None:
            out.append((p.wire, enc))
    return out


# ---------------------------------------------------------------------------
# URLs and origins


_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_base_url(url: str, allow_insecure_http: bool) -> str:
    """Validate a client's base URL; returns it without a trailing slash."""
    if not isinstance(url, str) or not url:
        raise TypeError("base_url must be a non-empty str")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _errors.UnsafeURLError(f"base_url must be an http(s) URL with a host: {url!r}")
    if parts.username or parts.password:
        raise _errors.UnsafeURLError("base_url must not carry credentials")
    if parts.scheme == "http" and not allow_insecure_http and not _is_loopback(parts.hostname):
        raise _errors.UnsafeURLError(
            f"refusing plain http to {parts.hostname}: the token would travel unencrypted "
            "(pass allow_insecure_http=True to accept)")
    return url.rstrip("/")
