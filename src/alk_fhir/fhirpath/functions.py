"""The FHIRPath function library (N1 §5, FHIR R4 §2.1.9 additions), compiled per call site.

Why compiled per call site: the name and the number of arguments are checked once, when the
expression is compiled, so that an unknown or unimplemented function is refused before evaluation
(``Unsupported`` names it). Functions whose argument is an expression over each item (``where``,
``select``, ``all``, ``exists``, ``repeat``, ``aggregate``, ``iif``, ``sort``) get it unevaluated.
"""

from __future__ import annotations

import base64
import contextvars
import html
import json
import math
import re
from collections.abc import Callable
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from alk_fhir.fhirpath.engine import (
    Ctx,
    Fn,
    Node,
    Unsupported,
    _known_type,
    _truth,
    children,
    compile_tree,
    contains_value,
    equal_lists,
    is_type,
    navigate,
    single,
    value_of,
    values,
)
from alk_fhir.fhirpath.parser import Node as Tree
from alk_fhir.fhirpath.values import (
    CALENDAR_UNITS,
    FDate,
    FDateTime,
    FHIRPathEvaluationError,
    FTime,
    Quantity,
    _Temporal,
    decimal_text,
    equal,
    now_datetime,
    parse_decimal,
    quantity_text,
)

HOST_NAMES: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar("fhirpath_hosts", default=frozenset())

# functions of FHIRPath N1 / FHIR R4 this engine does not implement: refused by name
_NOT_IMPLEMENTED = frozenset({
    "conformsTo", "htmlChecks", "elementDefinition", "slice", "checkModifiers", "defineVariable",
    "hasTemplateIdOf", "subsumes", "subsumedBy", "getReferenceKey", "getResourceKey", "yearOf", "monthOf",
    "dayOf", "hourOf", "minuteOf", "secondOf", "millisecondOf", "timezoneOffsetOf", "dateOf", "timeOf",
    "duration", "difference", "weightedRandom", "coalesce",
})


def union(a: list[Any], b: list[Any]) -> list[Any]:
    """``a | b``: the items of both without duplicates (N1 §6.5.1, equality by ``=``)."""
    out: list[Any] = []
    for item in [*a, *b]:
        if not contains_value(out, item):
            out.append(item)
    return out


def distinct(items: list[Any]) -> list[Any]:
    return union(items, [])


def _str_value(items: list[Any], what: str) -> str | None:
    v = single(items, what)
    if v is None:
        return None
    if type(v) is not str:
        raise FHIRPathEvaluationError(f"{what} needs a string")
    return v


def _int_value(items: list[Any], what: str) -> int | None:
    v = single(items, what)
    if v is None:
        return None
    if type(v) is not int:
        raise FHIRPathEvaluationError(f"{what} needs an integer")
    return v


def regex(pattern: str) -> re.Pattern[str]:
    """A FHIRPath regular expression: single-line mode (``.`` matches a new line, N1 §5.6.9)."""
    try:
        return re.compile(pattern, re.DOTALL)
    except re.error as exc:
        raise FHIRPathEvaluationError(f"invalid regular expression {pattern!r}: {exc}") from exc


# ---- conversions (N1 §5.5) -----------------------------------------------------------------------
def _to_boolean(v: Any) -> bool | None:
    if type(v) is bool:
        return v
    if type(v) is int:
        return {1: True, 0: False}.get(v)
    if type(v) is Decimal:
        return True if v == 1 else False if v == 0 else None
    if type(v) is str:
        low = v.lower()
        if low in ("true", "t", "yes", "y", "1", "1.0"):
            return True
        if low in ("false", "f", "no", "n", "0", "0.0"):
            return False
    return None


def _to_integer(v: Any) -> int | None:
    if type(v) is int:
        return v
    if type(v) is bool:
        return 1 if v else 0
    if type(v) is str and re.fullmatch(r"[+-]?\d+", v):
        return int(v)
    return None


def _to_decimal(v: Any) -> Decimal | None:
    if type(v) in (int, Decimal):
        return Decimal(v)
    if type(v) is bool:
        return Decimal(1 if v else 0)
    if type(v) is str:
        return parse_decimal(v)
    return None


_QUANTITY_TEXT = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*(?:'([^']+)'|([a-zA-Z]+))?\s*$")


def _to_quantity(v: Any) -> Quantity | None:
    if type(v) is Quantity:
        return v
    if type(v) in (int, Decimal):
        return Quantity(Decimal(v), "1")
    if type(v) is bool:
        return Quantity(Decimal(1 if v else 0), "1")
    if type(v) is str:
        m = _QUANTITY_TEXT.match(v)
        if m is None:
            return None
        number, ucum, word = m.groups()
        if word is not None and word not in CALENDAR_UNITS:
            return None
        return Quantity(Decimal(number), ucum or word or "1")
    return None


def _to_string(v: Any) -> str | None:
    if type(v) is str:
        return v
    if type(v) is bool:
        return "true" if v else "false"
    if type(v) is int:
        return str(v)
    if type(v) is Decimal:
        return decimal_text(v)
    if isinstance(v, _Temporal):
        return v.text()
    if type(v) is Quantity:
        return quantity_text(v)
    return None


def _to_date(v: Any) -> FDate | None:
    if type(v) is FDate:
        return v
    if type(v) is FDateTime:
        return FDate(v.parts[:3])
    if type(v) is str:
        try:
            return FDate.parse(v.split("T", 1)[0]) if re.fullmatch(r"\d{4}(-\d{2}(-\d{2})?)?", v) else None
        except FHIRPathEvaluationError:
            return None
    return None


def _to_datetime(v: Any) -> FDateTime | None:
    if type(v) is FDateTime:
        return v
    if type(v) is FDate:
        return FDateTime.from_date(v)
    if type(v) is str:
        try:
            return FDateTime.parse(v)
        except FHIRPathEvaluationError:
            return None
    return None


def _to_time(v: Any) -> FTime | None:
    if type(v) is FTime:
        return v
    if type(v) is str:
        try:
            return FTime.parse(v)
        except FHIRPathEvaluationError:
            return None
    return None


_CONVERSIONS: dict[str, Callable[[Any], Any]] = {
    "Boolean": _to_boolean, "Integer": _to_integer, "Decimal": _to_decimal, "String": _to_string,
    "Date": _to_date, "DateTime": _to_datetime, "Time": _to_time,
}


# ---- the call compiler ---------------------------------------------------------------------------
Impl = Callable[[Ctx, list[Any], list[Any], list[Fn]], list[Any]]
_TABLE: dict[str, tuple[int, int, Impl]] = {}
_LAZY: set[str] = set()


def _fn(name: str, lo: int = 0, hi: int | None = None, lazy: bool = False) -> Callable[[Impl], Impl]:
    def register(impl: Impl) -> Impl:
        _TABLE[name] = (lo, lo if hi is None else hi, impl)
        if lazy:
            _LAZY.add(name)
        return impl
    return register


def compile_call(name: str, left: Fn | None, args: list[Tree]) -> Fn:
    hosts = HOST_NAMES.get()
    if name in hosts:
        return _host_call(name, left, [compile_tree(a) for a in args])
    if name in ("is", "as", "ofType"):
        return _type_call(name, left, args)
    entry = _TABLE.get(name)
    if entry is None:
        if name in _NOT_IMPLEMENTED:
            raise Unsupported(f"function {name}()")
        raise Unsupported(f"unknown function {name}()")
    lo, hi, impl = entry
    if not lo <= len(args) <= hi:
        raise Unsupported(f"{name}() with {len(args)} arguments")
    compiled = [compile_tree(a) for a in args]
    if name == "sort":
        for i, a in enumerate(args):
            if a[0] == "unary" and a[1] == "-":
                compiled[i].descending = compile_tree(a[2])  # type: ignore[attr-defined]
    lazy = name in _LAZY

    def run(ctx: Ctx, focus: list[Any]) -> list[Any]:
        items = left(ctx, focus) if left is not None else focus
        if lazy:
            return impl(ctx, items, focus, compiled)
        evaluated = [a(ctx, focus) for a in compiled]
        return impl(ctx, items, evaluated, compiled)
    return run


def _host_call(name: str, left: Fn | None, args: list[Fn]) -> Fn:
    def run(ctx: Ctx, focus: list[Any]) -> list[Any]:
        items = left(ctx, focus) if left is not None else focus
        fn = ctx.functions.get(name)
        if fn is None:
            raise FHIRPathEvaluationError(f"no host function {name}()")
        plain = [_plain(i) for i in items]
        env = ctx.raw if isinstance(ctx.raw, dict) else dict(ctx.raw)
        return [_rewrap(v) for v in fn(plain, [[_plain(i) for i in a(ctx, focus)] for a in args], env)]
    return run


def _plain(item: Any) -> Any:
    """An item as host functions (written for JSON records) receive it."""
    if type(item) is Node:
        return item.data
    return item


def _rewrap(v: Any) -> Any:
    from alk_fhir.fhirpath.engine import wrap
    return wrap(v)


def _type_spec(tree: Tree) -> tuple[str | None, str]:
    if tree[0] == "member" and tree[1] is None:
        return None, tree[2]
    if tree[0] == "member" and tree[1] is not None and tree[1][0] == "member" and tree[1][1] is None:
        return tree[1][2], tree[2]
    raise Unsupported("a type argument that is not a type name")


def _type_call(name: str, left: Fn | None, args: list[Tree]) -> Fn:
    if len(args) != 1:
        raise Unsupported(f"{name}() with {len(args)} arguments")
    spec = _type_spec(args[0])
    _known_type(spec)

    def run(ctx: Ctx, focus: list[Any]) -> list[Any]:
        items = left(ctx, focus) if left is not None else focus
        if name == "ofType":
            return [i for i in items if is_type(i, spec)]
        if not items:
            return []
        if len(items) > 1:
            raise FHIRPathEvaluationError(f"{name}() needs one item")
        if name == "is":
            return [is_type(items[0], spec)]
        return [items[0]] if is_type(items[0], spec) else []
    return run


def _each(ctx: Ctx, items: list[Any], fn: Fn) -> list[tuple[Any, list[Any]]]:
    return [(item, fn(ctx.at(i), [item])) for i, item in enumerate(items)]


# existence
@_fn("empty")
def _empty(ctx: Ctx, items: list[Any], args: list[Any], fns: list[Fn]) -> list[Any]:
    return [not items]


@_fn("exists", 0, 1, lazy=True)
def _exists(ctx: Ctx, items: list[Any], focus: list[Any], fns: list[Fn]) -> list[Any]:
    if not fns:
        return [bool(items)]
    return [any(_truth(r, "exists()") is True for _, r in _each(ctx, items, fns[0]))]


@_fn("all", 1, lazy=True)
def _all(ctx: Ctx, items: list[Any], focus: list[Any], fns: list[Fn]) -> list[Any]:
    return [all(_truth(r, "all()") is True for _, r in _each(ctx, items, fns[0]))]


def _bools(items: list[Any], what: str) -> list[bool]:
    vs = values(items)
    if any(type(v) is not bool for v in vs):
        raise FHIRPathEvaluationError(f"{what} needs booleans")
    return vs


@_fn("allTrue")
def _all_true(ctx: Ctx, items: list[Any], args: list[Any], fns: list[Fn]) -> list[Any]:
    return [all(_bools(items, "allTrue()"))]


@_fn("anyTrue")
def _any_true(ctx: Ctx, items: list[Any], args: list[Any], fns: list[Fn]) -> list[Any]:
    return [any(_bools(items, "anyTrue()"))]


@_fn("allFalse")
def _all_false(ctx: Ctx, items: list[Any], args: list[Any], fns: list[Fn]) -> list[Any]:
    return [not any(_bools(items, "allFalse()"))]


@_fn("anyFalse")
def _any_false(ctx: Ctx, items: list[Any], args: list[Any], fns: list[Fn]) -> list[Any]:
    return [not all(_bools(items, "anyFalse()"))]


@_fn("subsetOf", 1)
def _subset_of(ctx: Ctx, items: list[Any], args: list[Any], fns: list[Fn]) -> list[Any]:
    return [all(contains_value(args[0], i) for i in items)]


@_fn("supersetOf", 1)
def _superset_of(ctx: Ctx, items: list[Any], args: list[Any], fns: list[Fn]) -> list[Any]:
    return [all(contains_value(items, i) for i in args[0])]


@_fn("count")
def _count(ctx: Ctx, items: list[Any], args: list[Any], fns: list[Fn]) -> list[Any]:
    return [len(items)]


@_fn("distinct")
def _distinct(ctx: Ctx, items: list[Any], args: list[Any], fns: list[Fn]) -> list[Any]:
    return distinct(items)


@_fn("isDistinct")
def _is_distinct(ctx: Ctx, items: list[Any], args: list[Any], fns: list[Fn]) -> list[Any]:
    return [len(distinct(items)) == len(items)]


# filtering and projection
@_fn("where", 1, lazy=True)
def _where(ctx: Ctx, items: list[Any], focus: list[Any], fns: list[Fn]) -> list[Any]:
    return [item for item, r in _each(ctx, items, fns[0]) if _truth(r, "where()") is True]


@_fn("select", 1, lazy=True)
def _select(ctx: Ctx, items: list[Any], focus: list[Any], fns: list[Fn]) -> list[Any]:
    out: list[Any] = []
    for _, r in _each(ctx, items, fns[0]):
        out.extend(r)
    return out


@_fn("repeat", 1, lazy=True)
def _repeat(ctx: Ctx, items: list[Any], focus: list[Any], fns: list[Fn]) -> list[Any]:
    """Items reached by applying the projection again and again; an item equal to one already
    found is not repeated (N1 §5.2.3), which also ends cycles."""
    out: list[Any] = []
    todo = items
    while todo:
        new: list[Any] = []
        for _, r in _each(ctx, todo, fns[0]):
            for v in r:
                if not _contains_same(out, v) and not _contains_same(new, v):
                    new.append(v)
        out.extend(new)
        todo = new
    return out


def _contains_same(collection: list[Any], item: Any) -> bool:
    if type(item) is Node:
        return any(type(c) is Node and (c.data is item.data if isinstance(item.data, dict) else
                                         equal_lists([c], [item]) is True) for c in collection)
    return contains_value(collection, item)


@_fn("aggregate", 1, 2, lazy=True)
def _aggregate(ctx: Ctx, items: list[Any], focus: list[Any], fns: list[Fn]) -> list[Any]:
    total = fns[1](ctx, focus) if len(fns) == 2 else []
    for i, item in enumerate(items):
        total = fns[0](ctx.at(i, total), [item])
    return total


@_fn("iif", 2, 3, lazy=True)
def _iif(ctx: Ctx, items: list[Any], focus: list[Any], fns: list[Fn]) -> list[Any]:
    if len(items) > 1:
        raise FHIRPathEvaluationError("iif() on more than one item")
    cond = fns[0](ctx, items if items else focus)
    cond_items = cond
    if cond_items and (len(cond_items) > 1 or type(value_of(cond_items[0])) is not bool):
        raise FHIRPathEvaluationError("iif() needs a boolean criterion")
    if _truth(cond, "iif()") is True:
        return fns[1](ctx, items if items else focus)
    return fns[2](ctx, items if items else focus) if len(fns) == 3 else []


@_fn("sort", 0, 9, lazy=True)
def _sort(ctx: Ctx, items: list[Any], focus: list[Any], fns: list[Fn]) -> list[Any]:
    """``sort(key, -key…)`` (FHIRPath 2.1 draft, in the HL7 suite): ascending by each key in turn,
    descending for a key written with a leading minus; empty keys sort first."""
    import functools

    from alk_fhir.fhirpath.values import compare

    keys = [(getattr(f, "descending", None), f) for f in fns]

    def key_values(index: int, item: Any) -> list[Any]:
        out = []
        for descending, f in keys:
            fn = descending if descending is not None else f
            out.append(single(fn(ctx.at(index), [item]), "sort()"))
        return out

    decorated = [(key_values(i, item) if keys else [value_of(item)], item) for i, item in enumerate(items)]

    def order(x: tuple[list[Any], Any], y: tuple[list[Any], Any]) -> int:
        for n, (a, b) in enumerate(zip(x[0], y[0], strict=True)):
            if a is None or b is None:  # empty keys first, in either direction
                c = 0 if a is b else -1 if a is None else 1
            else:
                c = compare(a, b) or 0
                if keys and keys[n][0] is not None:
                    c = -c
            if c:
                return c
        return 0
    decorated.sort(key=functools.cmp_to_key(order))
    return [item for _, item in decorated]


# subsetting
@_fn("single")
def _single(ctx: Ctx, items: list[Any], args: list[Any], fns: list[Fn]) -> list[Any]:
    if len(items) > 1:
        raise FHIRPathEvaluationError("single() on more than one item")
    return items


@_fn("first")
def _first(ctx: Ctx, items: list[Any], args: list[Any], fns: list[Fn]) -> list[Any]:
    return items[:1]


@_fn("last")
def _last(ctx: Ctx, items: list[Any], args: list[Any], fns: list[Fn]) -> list[Any]:
    return items[-1:]


@_fn("tail")
def _tail(ctx: Ctx, items: list[Any], args: list[Any], fns: list[Fn]) -> list[Any]:
    return items[1:]


@_fn("skip", 1)
def _skip(ctx: Ctx, items: list[Any], args: list[Any], fns: list[Fn]) -> list[Any]:
    n = _int_value(args[0], "skip()")
    return items if n is None else items[max(n, 0):]


@_fn("take", 1)
def _take(ctx: Ctx, items: list[Any], args: list[Any], fns: list[Fn]) -> list[Any]:
    n = _int_value(args[0], "take()")
    return [] if n is None or n <= 0 else items[:n]


@_fn("intersect", 1)
def _intersect(ctx: Ctx, items: list[Any], args: list[Any], fns: list[Fn]) -> list[Any]:
    return distinct([i for i in items if contains_value(args[0], i)])


@_fn("exclude", 1)
def _exclude(ctx: Ctx, items: list[Any], args: list[Any], fns: list[Fn]) -> list[Any]:
    return [i for i in items if not contains_value(args[0], i)]


@_fn("union", 1)
def _union(ctx: Ctx, items: list[Any], args: list[Any], fns: list[Fn]) -> list[Any]:
    return union(items, args[0])


@_fn("combine", 1)
def _combine(ctx: Ctx, items: list[Any], args: list[Any], fns: list[Fn]) -> list[Any]:
    return [*items, *args[0]]


# boolean
@_fn("not")
def _not(ctx: Ctx, items: list[Any], args: list[Any], fns: list[Fn]) -> list[Any]:
    t = _truth(items, "not()")
    return [] if t is None else [not t]


# conversion
def _converter(name: str, conv: Callable[[Any], Any]) -> None:
    def to(ctx: Ctx, items: list[Any], args: list[Any], fns: list[Fn]) -> list[Any]:
        v = single(items, f"to{name}()")
        if v is None:
            return []
        r = conv(v)
        return [] if r is None else [r]

    def converts(ctx: Ctx, items: list[Any], args: list[Any], fns: list[Fn]) -> list[Any]:
        v = single(items, f"convertsTo{name}()")
        if v is None:
            return []
        return [conv(v) is not None]
    _fn("to" + name)(to)
    _fn("convertsTo" + name)(converts)


for _name, _conv in _CONVERSIONS.items():
    _converter(_name, _conv)


@_fn("toQuantity", 0, 1)
def _to_quantity_fn(ctx: Ctx, items: list[Any], args: list[Any], fns: list[Fn]) -> list[Any]:
    v = single(items, "toQuantity()")
    if v is None:
        return []
    q = _to_quantity(v)
    if q is None:
        return []
    if args:
        unit = _str_value(args[0], "toQuantity()")
        if unit is None:
            return []
        if CALENDAR_UNITS.get(unit, unit) != q.unit:
            raise Unsupported("toQuantity() with a unit conversion")
    return [q]


@_fn("convertsToQuantity", 0, 1)
def _converts_to_quantity(ctx: Ctx, items: list[Any], args: list[Any], fns: list[Fn]) -> list[Any]:
    v = single(items, "convertsToQuantity()")
    if v is None:
        return []
    if args:
        raise FHIRPathEvaluationError("convertsToQuantity(unit) is not supported")
    return [_to_quantity(v) is not None]


# strings
def _string_fn(name: str, lo: int, hi: int | None = None) -> Callable[[Callable[..., Any]], Impl]:
    def register(body: Callable[..., Any]) -> Impl:
        def impl(ctx: Ctx, items: list[Any], args: list[Any], fns: list[Fn]) -> list[Any]:
            s = _str_value(items, f"{name}()")
            if s is None:
                return []
            plain = []
            for a in args:
                v = single(a, f"{name}()")
                if v is None:
                    return []
                plain.append(v)
            r = body(s, *plain)
            if r is None:
                return []
            return r if isinstance(r, list) else [r]
        _fn(name, lo, hi)(impl)
        return impl
    return register


def _need_str(v: Any, what: str) -> str:
    if type(v) is not str:
        raise FHIRPathEvaluationError(f"{what} needs a string argument")
    return v


@_string_fn("indexOf", 1)
def _index_of(s: str, sub: Any) -> int:
    return s.find(_need_str(sub, "indexOf()"))


@_string_fn("substring", 1, 2)
def _substring(s: str, start: Any, length: Any = None) -> str | None:
    if type(start) is not int or (length is not None and type(length) is not int):
        raise FHIRPathEvaluationError("substring() needs integers")
    if start < 0 or start >= len(s):
        return None
    return s[start:] if length is None else s[start:start + max(length, 0)]


@_string_fn("startsWith", 1)
def _starts_with(s: str, prefix: Any) -> bool:
    return s.startswith(_need_str(prefix, "startsWith()"))


@_string_fn("endsWith", 1)
def _ends_with(s: str, suffix: Any) -> bool:
    return s.endswith(_need_str(suffix, "endsWith()"))


@_string_fn("contains", 1)
def _contains(s: str, sub: Any) -> bool:
    return _need_str(sub, "contains()") in s


@_string_fn("upper", 0)
def _upper(s: str) -> str:
    return s.upper()


@_string_fn("lower", 0)
def _lower(s: str) -> str:
    return s.lower()


@_string_fn("replace", 2)
def _replace(s: str, pattern: Any, substitution: Any) -> str:
    pattern, substitution = _need_str(pattern, "replace()"), _need_str(substitution, "replace()")
    if pattern == "":
        return str(substitution + substitution.join(s) + substitution)
    return s.replace(pattern, substitution)


@_string_fn("matches", 1)
def _matches(s: str, pattern: Any) -> bool:
    return regex(_need_str(pattern, "matches()")).search(s) is not None


@_string_fn("matchesFull", 1)
def _matches_full(s: str, pattern: Any) -> bool:
    return regex(_need_str(pattern, "matchesFull()")).fullmatch(s) is not None


@_string_fn("replaceMatches", 2)
def _replace_matches(s: str, pattern: Any, substitution: Any) -> str:
    pattern, substitution = _need_str(pattern, "replaceMatches()"), _need_str(substitution, "replaceMatches()")
    if pattern == "":
        return s
    template = re.sub(r"\$(\d+)", r"\\g<\1>", substitution.replace("\\", "\\\\"))
    return regex(pattern).sub(template, s)


@_string_fn("length", 0)
def _length(s: str) -> int:
    return len(s)


@_string_fn("toChars", 0)
def _to_chars(s: str) -> list[str]:
    return list(s)


@_string_fn("trim", 0)
def _trim(s: str) -> str:
    return s.strip()


@_string_fn("split", 1)
def _split(s: str, sep: Any) -> list[str]:
    sep = _need_str(sep, "split()")
    return list(s) if sep == "" else s.split(sep)


@_fn("join", 0, 1)
def _join(ctx: Ctx, items: list[Any], args: list[Any], fns: list[Fn]) -> list[Any]:
    sep = "" if not args else _str_value(args[0], "join()") or ""
    vs = values(items)
    if any(type(v) is not str for v in vs):
        raise FHIRPathEvaluationError("join() needs strings")
    return [sep.join(vs)]


@_string_fn("encode", 1)
def _encode(s: str, fmt: Any) -> str | None:
    if fmt == "hex":
        return s.encode().hex()
    if fmt == "base64":
        return base64.b64encode(s.encode()).decode()
    if fmt == "urlbase64":
        return base64.urlsafe_b64encode(s.encode()).decode()
    return None


@_string_fn("decode", 1)
def _decode(s: str, fmt: Any) -> str | None:
    try:
        if fmt == "hex":
            return bytes.fromhex(s).decode()
        if fmt == "base64":
            return base64.b64decode(s).decode()
        if fmt == "urlbase64":
            return base64.urlsafe_b64decode(s).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return None


@_string_fn("escape", 1)
def _escape(s: str, fmt: Any) -> str | None:
    if fmt == "html":
        return html.escape(s, quote=True).replace("&#x27;", "&#39;")
    if fmt == "json":
        return json.dumps(s)[1:-1]
    return None


@_string_fn("unescape", 1)
def _unescape(s: str, fmt: Any) -> str | None:
    if fmt == "html":
        return html.unescape(s)
    if fmt == "json":
        return _JSON_ESCAPE.sub(_json_char, s)
    return None


_JSON_ESCAPE = re.compile(r'\\(["\\/bfnrt]|u[0-9a-fA-F]{4})')
_JSON_CHARS = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _json_char(m: re.Match[str]) -> str:
    code = m.group(1)
    return chr(int(code[1:], 16)) if code[0] == "u" else _JSON_CHARS[code]


# math
def _math(name: str, body: Callable[..., Any], arity: int = 0) -> None:
    def impl(ctx: Ctx, items: list[Any], args: list[Any], fns: list[Fn]) -> list[Any]:
        v = single(items, f"{name}()")
        if v is None:
            return []
        extra = []
        for a in args:
            x = single(a, f"{name}()")
            if x is None:
                return []
            extra.append(x)
        if type(v) not in (int, Decimal) and not (type(v) is Quantity and name == "abs"):
            raise FHIRPathEvaluationError(f"{name}() needs a number")
        r = body(v, *extra)
        return [] if r is None else [r]
    _fn(name, 0 if name == "round" else arity, arity)(impl)


def _exp_like(fn: Callable[[float], float]) -> Callable[[Any], Any]:
    def run(v: Any) -> Any:
        try:
            return Decimal(repr(fn(float(v))))
        except (ValueError, OverflowError):
            return None
    return run


def _round(v: Any, digits: Any = 0) -> Decimal:
    if type(digits) is not int or digits < 0:
        raise FHIRPathEvaluationError("round() needs a non-negative integer")
    return Decimal(v).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)


def _power(v: Any, p: Any) -> Any:
    if type(p) not in (int, Decimal):
        raise FHIRPathEvaluationError("power() needs a number")
    if type(v) is int and type(p) is int and p >= 0:
        return v ** p
    try:
        r = Decimal(v) ** Decimal(p)
    except InvalidOperation:
        return None
    return None if r.is_nan() else r


def _log(v: Any, base: Any) -> Any:
    if v <= 0 or base <= 0 or base == 1:
        return None
    return Decimal(repr(math.log(float(v)) / math.log(float(base))))


def _sqrt(v: Any) -> Any:
    return None if v < 0 else Decimal(repr(math.sqrt(float(v))))


_math("abs", lambda v: Quantity(abs(v.value), v.unit) if type(v) is Quantity else abs(v))
_math("ceiling", lambda v: int(Decimal(v).to_integral_value(rounding=ROUND_CEILING)))
_math("floor", lambda v: int(Decimal(v).to_integral_value(rounding=ROUND_FLOOR)))
_math("truncate", lambda v: int(v))
_math("exp", _exp_like(math.exp))
_math("ln", lambda v: None if v <= 0 else Decimal(repr(math.log(float(v)))))
_math("log", _log, 1)
_math("power", _power, 1)
_math("round", _round, 1)
_math("sqrt", _sqrt)


# tree navigation
@_fn("children")
def _children(ctx: Ctx, items: list[Any], args: list[Any], fns: list[Fn]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        out.extend(children(item))
    return out


@_fn("descendants")
def _descendants(ctx: Ctx, items: list[Any], args: list[Any], fns: list[Fn]) -> list[Any]:
    out: list[Any] = []
    todo = items
    while todo:
        step: list[Any] = []
        for item in todo:
            step.extend(children(item))
        out.extend(step)
        todo = step
    return out


# utility
@_fn("trace", 1, 2)
def _trace(ctx: Ctx, items: list[Any], args: list[Any], fns: list[Fn]) -> list[Any]:
    return items


@_fn("now")
def _now(ctx: Ctx, items: list[Any], args: list[Any], fns: list[Fn]) -> list[Any]:
    return [now_datetime()]


@_fn("today")
def _today(ctx: Ctx, items: list[Any], args: list[Any], fns: list[Fn]) -> list[Any]:
    n = now_datetime()
    return [FDate(n.parts[:3])]


@_fn("timeOfDay")
def _time_of_day(ctx: Ctx, items: list[Any], args: list[Any], fns: list[Fn]) -> list[Any]:
    n = now_datetime()
    return [FTime(n.parts[3:], None, 3)]


# reflection (N1 §10) and the precision of a value (FHIRPath 2.1 draft, in the HL7 suite)
@_fn("type")
def _type(ctx: Ctx, items: list[Any], args: list[Any], fns: list[Fn]) -> list[Any]:
    """Each item's type as a ``SimpleTypeInfo``/``ClassInfo`` (``namespace``, ``name``)."""
    from alk_fhir.fhirpath.engine import type_of
    out: list[Any] = []
    for item in items:
        found = type_of(item)
        if found is None:
            raise FHIRPathEvaluationError("the type of an element of an untyped record is unknown")
        out.append(Node({"namespace": found[0], "name": found[1]}, None, None))
    return out


@_fn("precision")
def _precision(ctx: Ctx, items: list[Any], args: list[Any], fns: list[Fn]) -> list[Any]:
    """Digits of precision: decimal places of a decimal, digits written of a date, time or dateTime."""
    v = single(items, "precision()")
    if v is None:
        return []
    if type(v) is Decimal:
        exp = v.as_tuple().exponent
        return [-exp if isinstance(exp, int) and exp < 0 else 0]
    if type(v) is int:
        return [0]
    if isinstance(v, (FDate, FDateTime)):
        widths = [4, 2, 2, 2, 2, 2]
        return [sum(widths[:len(v.parts)]) + (v.frac_digits if len(v.parts) > 5 else 0)]
    if isinstance(v, FTime):
        return [2 * len(v.parts) + (v.frac_digits if len(v.parts) > 2 else 0)]
    raise FHIRPathEvaluationError("precision() needs a decimal, date, time or dateTime")


def _decimal_boundary(v: Decimal, digits: int, high: bool) -> Decimal:
    """The least (greatest) value a decimal written as ``v`` may stand for, to ``digits`` places:
    half a unit of its last written place below (above), then cut to ``digits`` places downwards
    (upwards, half-up), mirrored for negative numbers (the HL7 suite's reading of the 2.1 draft)."""
    if v < 0:
        return -_decimal_boundary(-v, digits, not high)
    exp = v.as_tuple().exponent
    half = Decimal(5).scaleb((exp if isinstance(exp, int) else 0) - 1)
    place = Decimal(1).scaleb(-digits)
    if high:
        return (v + half).quantize(place, rounding=ROUND_HALF_UP)
    return (v - half).quantize(place, rounding=ROUND_FLOOR)


_DATE_DIGITS = {4: 1, 6: 2, 8: 3, 10: 4, 12: 5, 14: 6, 17: 6}
_TIME_DIGITS = {2: 1, 4: 2, 6: 3, 9: 3}


def _temporal_boundary(v: Any, digits: int | None, high: bool) -> Any:
    """The earliest (latest) moment a date, dateTime or time stands for, to ``digits`` digits of
    precision (4 a year … 17 milliseconds); a dateTime without a zone takes the earliest (+14:00)
    or latest (-12:00) one."""
    import calendar
    if isinstance(v, FTime):
        n = _TIME_DIGITS.get(9 if digits is None else digits)
        if n is None:
            return None
        lows: list[Any] = [0, 0, Decimal(0)]
        highs: list[Any] = [23, 59, Decimal("59.999")]
        parts = list(v.parts) + (highs if high else lows)[len(v.parts):]
        return FTime(tuple(parts[:n]), None, 3 if (digits or 9) == 9 else 0)
    n = _DATE_DIGITS.get((17 if isinstance(v, FDateTime) else 8) if digits is None else digits)
    if n is None:
        return None
    parts = list(v.parts)
    while len(parts) < n:
        i = len(parts)
        if i in (1, 2):
            parts.append((12 if i == 1 else calendar.monthrange(parts[0], parts[1])[1]) if high else 1)
        else:
            parts.append(([23, 59, Decimal("59.999")] if high else [0, 0, Decimal(0)])[i - 3])
    parts = parts[:n]
    if n <= 3 and isinstance(v, FDate):
        return FDate(tuple(parts))
    tz = v.tz if isinstance(v, FDateTime) else None
    if n > 3 and tz is None:
        tz = -12 * 60 if high else 14 * 60
    frac = 3 if digits in (None, 17) and n == 6 else 0
    return FDateTime(tuple(parts), tz if n > 3 else None, frac)


def _boundary(high: bool) -> Impl:
    def impl(ctx: Ctx, items: list[Any], args: list[Any], fns: list[Fn]) -> list[Any]:
        v = single(items, "boundary")
        digits = _int_value(args[0], "boundary") if args else None
        if v is None or (args and digits is None):
            return []
        if type(v) in (int, Decimal) or type(v) is Quantity:
            number = v.value if type(v) is Quantity else Decimal(v)
            d = 8 if digits is None else digits
            if not 0 <= d <= 31:
                return []
            r = _decimal_boundary(number, d, high)
            return [Quantity(r, v.unit) if type(v) is Quantity else r]
        if isinstance(v, (FDate, FDateTime, FTime)):
            r = _temporal_boundary(v, digits, high)
            return [] if r is None else [r]
        raise FHIRPathEvaluationError("lowBoundary()/highBoundary() need a number, quantity, date or time")
    return impl


_fn("lowBoundary", 0, 1)(_boundary(False))
_fn("highBoundary", 0, 1)(_boundary(True))


@_fn("comparable", 1)
def _comparable(ctx: Ctx, items: list[Any], args: list[Any], fns: list[Fn]) -> list[Any]:
    """Whether two quantities can be compared: units of one dimension we can convert between."""
    from alk_fhir.fhirpath.values import quantities_comparable
    a, b = single(items, "comparable()"), single(args[0], "comparable()")
    if a is None or b is None:
        return []
    if type(a) is not Quantity or type(b) is not Quantity:
        raise FHIRPathEvaluationError("comparable() needs quantities")
    return [quantities_comparable(a, b)]


# FHIR additions (FHIR R4 §2.1.9.1)
@_fn("extension", 1)
def _extension(ctx: Ctx, items: list[Any], args: list[Any], fns: list[Fn]) -> list[Any]:
    url = _str_value(args[0], "extension()")
    if url is None:
        return []
    return [e for e in navigate(items, "extension")
            if type(e) is Node and isinstance(e.data, dict) and e.data.get("url") == url]


@_fn("hasValue")
def _has_value(ctx: Ctx, items: list[Any], args: list[Any], fns: list[Fn]) -> list[Any]:
    return [len(items) == 1 and type(items[0]) is Node and items[0].data is not None
            and not isinstance(items[0].data, dict)]


@_fn("getValue")
def _get_value(ctx: Ctx, items: list[Any], args: list[Any], fns: list[Fn]) -> list[Any]:
    if len(items) == 1 and type(items[0]) is Node and items[0].data is not None and not isinstance(items[0].data, dict):
        return [value_of(items[0])]
    return []


def is_equal_collections(a: list[Any], b: list[Any]) -> bool | None:
    return equal_lists(a, b)


def _unused() -> None:  # keep imports used by type checkers honest
    _ = (equal, _to_quantity)
