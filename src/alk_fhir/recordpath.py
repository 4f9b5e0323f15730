"""Fact definitions (FHIRPath over a patient record) compiled to Python source, once per package.

Why: the facts of Library ``alk-facts`` are read on every hook call. Interpreting their parse trees,
or chaining one closure per node, spends most of a ``patient-view`` call in calls and small lists;
generated code runs each definition as one Python function of plain loops and ``if``s (``where`` is
a ``for`` loop, ``and`` an ``if``), about three times faster than the closures it replaced.

Fact definitions read EHR records whose element types vary (a union of Conditions from the list and
from EpisodeOfCare.diagnosis, ``answer.value`` of any type, ``performed`` as dateTime or Period), so
they are compiled without static types: navigation follows the JSON (a choice element ``onset`` is
found as ``onsetDateTime``/``onsetPeriod``…, using the R4 model's choice names), and comparisons
decide at run time between numbers, FHIR dates/dateTimes (compared at their common precision, empty
when undecided, FHIRPath §6.1.5) and strings. The few FHIR-specific functions the facts need
(``memberOf``, ``resolve``, and our ``namesMemberOf``) are supplied by the caller, so that this
module stays free of terminology and of the record index. tests/test_facts.py evaluates every fact
of the package with fhirpathpy (given the same functions) over every example record and requires the
same values.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache
from typing import Any

from alk_fhir.fastpath import (
    _CHOICES,
    Fn,
    NoValue,
    Unsupported,
    _eq,
    _identifier,
    _num,
    _truth,
    _unescape,
    collection_op,
    parse,
    string_test,
)

__all__ = ["Fn", "HostFunction", "HostPredicate", "Quantity", "Unsupported", "compile_record_expression"]

_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2})"
                   r"(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?)?)?$")
_CALENDAR_UNITS = {"year": "year", "years": "year", "month": "month", "months": "month", "week": "week",
                   "weeks": "week", "day": "day", "days": "day", "'a'": "year", "'mo'": "month", "'wk'": "week",
                   "'d'": "day"}
_CHOICE_SUFFIXES: dict[str, tuple[str, ...]] = {}
for _choice_path, _types in _CHOICES.items():
    _name = _choice_path.rsplit(".", 1)[-1]
    _CHOICE_SUFFIXES[_name] = tuple(sorted(set(_CHOICE_SUFFIXES.get(_name, ()))
                                           | {t[:1].upper() + t[1:] for t in _types}))
_CHOICE_KEYS: dict[str, frozenset[str]] = {n: frozenset(n + t for t in ts) for n, ts in _CHOICE_SUFFIXES.items()}
# choice elements with at most four types: looked up by key rather than by scanning the item
_FEW_CHOICES: dict[str, tuple[str, ...]] = {n: tuple(sorted(k)) for n, k in _CHOICE_KEYS.items() if len(k) <= 4}
# ofType() of a primitive, decided on the JSON value (a record's JSON carries no type names)
_PRIMITIVE_TEST: dict[str, Callable[[Any], bool]] = {
    "dateTime": lambda v: isinstance(v, str) and _DATE.match(v) is not None,
    "date": lambda v: isinstance(v, str) and _DATE.match(v) is not None and "T" not in v,
    "instant": lambda v: isinstance(v, str) and _DATE.match(v) is not None and "T" in v,
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: type(v) is bool,
    "integer": lambda v: type(v) is int,
    "decimal": lambda v: type(v) in (int, float, Decimal),
}

HostFunction = Callable[[list[Any], list[Any], dict[str, Any]], list[Any]]
# A host function whose arguments are string literals may also come specialised for them: given the
# arguments at compile time, it returns a test of the input collection answering True, False or None
# (empty), as ``memberOf('…')`` does; the generated code calls that instead.
HostPredicate = Callable[[tuple[str, ...]], Callable[[list[Any]], bool | None]]


class Quantity:
    """A FHIRPath quantity; only calendar durations are needed (``12 months``, ``1 year``)."""

    __slots__ = ("unit", "value")

    def __init__(self, value: Decimal, unit: str) -> None:
        self.value, self.unit = value, unit

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Quantity) and (self.value, self.unit) == (other.value, other.unit)

    def __hash__(self) -> int:
        return hash((self.value, self.unit))

    def __repr__(self) -> str:
        return f"{self.value} {self.unit}"


def _date_parts(value: Any) -> tuple[int, ...] | None:
    if not isinstance(value, str) or not value[:1].isdigit():
        return None
    return _parsed_date(value)


_DATES: dict[str, tuple[int, ...] | None] = {}  # a record's dates repeat across facts and requests


def _parsed_date(value: str) -> tuple[int, ...] | None:
    try:
        return _DATES[value]
    except KeyError:
        pass
    m = _DATE.match(value)
    parts = None if m is None else tuple(int(g) for g in m.groups() if g is not None)
    if len(_DATES) >= 65_536:
        _DATES.clear()
    _DATES[value] = parts
    return parts


def _compare_dates(a: tuple[int, ...], b: tuple[int, ...]) -> int | None:
    """-1/0/1, or None when the common precision cannot decide (FHIRPath §6.1.5, no timezone shift)."""
    if len(a) == len(b):
        return 0 if a == b else -1 if a < b else 1
    for x, y in zip(a, b, strict=False):
        if x != y:
            return -1 if x < y else 1
    return 0 if len(a) == len(b) else None


@lru_cache(maxsize=1024)
def _shift(value: str, quantity: Quantity, sign: int) -> str | None:
    parts = _date_parts(value)
    if parts is None or quantity.value != int(quantity.value):
        return None
    n = int(quantity.value) * sign
    year, month, day = parts[0], parts[1] if len(parts) > 1 else None, parts[2] if len(parts) > 2 else None
    unit = quantity.unit
    if unit == "year":
        year += n
    elif unit == "month":
        if month is None:
            return None
        total = year * 12 + (month - 1) + n
        year, month = divmod(total, 12)
        month += 1
    elif unit in ("week", "day"):
        if day is None or month is None:
            return None
        from datetime import date as _d
        from datetime import timedelta as _td
        shifted = _d(year, month, day) + _td(days=n * (7 if unit == "week" else 1))
        year, month, day = shifted.year, shifted.month, shifted.day
    else:
        return None
    if not 1 <= year <= 9999:
        return None
    if day is not None and month is not None:
        import calendar
        day = min(day, calendar.monthrange(year, month)[1])
    out = f"{year:04d}"
    if month is not None:
        out += f"-{month:02d}"
    if day is not None:
        out += f"-{day:02d}"
    return out + value[10:] if len(value) > 10 and day is not None else out


def _choice_value(item: dict[str, Any], name: str) -> Any:
    """``valueBoolean`` for ``value``: the item's own keys are searched (a handful), not the R4 model's
    dozens of possible types."""
    keys = _CHOICE_KEYS.get(name)
    if keys is None:
        return None
    few = _FEW_CHOICES.get(name)
    if few is not None:  # medication[x]: two types, fewer than the item's keys
        for key in few:
            if key in item:
                return item[key]
        return None
    for key in item:
        if key in keys:
            return item[key]
    return None


def _dyn_navigate(items: list[Any], name: str) -> list[Any]:
    if len(items) == 1:  # the common case inside where()/select()
        return _nav1(items[0], name)
    choice = name in _CHOICE_KEYS
    out: list[Any] = []
    for item in items:
        if type(item) is not dict:
            continue
        value = item.get(name)
        if value is None:
            if not choice:
                continue
            value = _choice_value(item, name)
            if value is None:
                continue
        if type(value) is list:
            out.extend(v for v in value if v is not None)
        else:
            out.append(value)
    return out


def _dyn_compare(x: Any, y: Any) -> int | None:
    if type(x) is str and type(y) is str:  # dates and dateTimes, most often
        dx = _parsed_date(x) if x[:1].isdigit() else None
        dy = _parsed_date(y) if y[:1].isdigit() else None
        if dx is not None and dy is not None:
            return _compare_dates(dx, dy)
        if dx is None and dy is None:
            return 0 if x == y else -1 if x < y else 1
        return None
    if type(x) is bool or type(y) is bool or isinstance(x, NoValue) or isinstance(y, NoValue):
        return None
    if isinstance(x, (int, float, Decimal)) and isinstance(y, (int, float, Decimal)):
        a, b = _num(x), _num(y)
        return 0 if a == b else -1 if a < b else 1
    return None


def _dyn_eq(a: Any, b: Any) -> bool | None:
    if type(a) is str and type(b) is str:
        if a == b:
            return True
        if not (a[:1].isdigit() and b[:1].isdigit()):
            return False
        da, db = _parsed_date(a), _parsed_date(b)
        if da is not None and db is not None:
            c = _compare_dates(da, db)
            return None if c is None else c == 0
        return False
    return _eq(a, b)


def _union(a: list[Any], b: list[Any]) -> list[Any]:
    """``a | b`` without duplicates (FHIRPath §6.5)."""
    if not b and len(a) <= 1:
        return a
    if not a and len(b) <= 1:
        return b
    return _union_all((a, b))


def _union_all(parts: tuple[list[Any], ...]) -> list[Any]:
    """The union of several collections in one pass: record elements by identity, strings, numbers
    and booleans by value (hashed), anything else by FHIRPath equality."""
    out: list[Any] = []
    seen: set[Any] = set()
    for part in parts:
        for v in part:
            kind = type(v)
            if kind is dict:
                key: Any = id(v)
            elif kind is str or kind is bool:
                key = (kind, v)
            elif kind is int:
                key = (Decimal, Decimal(v))
            elif kind is Decimal:
                key = (Decimal, v.normalize())
            else:
                if not any(_eq(v, o) for o in out):
                    out.append(v)
                continue
            if key not in seen:
                seen.add(key)
                out.append(v)
    return out


def _string_literal(node: dict[str, Any]) -> str | None:
    """The value of a string literal term ('active'), else None."""
    while node.get("type") in ("TermExpression", "LiteralTerm") and node.get("children"):
        node = node["children"][0]
    if node.get("type") != "StringLiteral":
        return None
    return _unescape(str(node["terminalNodeText"][0])[1:-1])


def _constant(node: dict[str, Any]) -> bool:
    """An expression of only %variables and literals: the same value for every item of one evaluation."""
    kind = node.get("type")
    if kind in ("ExternalConstantTerm", "LiteralTerm"):
        return True
    if kind in ("AdditiveExpression", "TermExpression", "ParenthesizedTerm"):
        return all(_constant(c) for c in node.get("children", []))
    return False


def _type_specifier(node: dict[str, Any]) -> str:
    """The type name in ``ofType(Name)``: the parser gives a member invocation of that identifier."""
    while node.get("children") and node["type"] != "Identifier":
        node = node["children"][0]
    return _identifier(node) if node["type"] == "Identifier" else ""


def _member_chain(node: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``x.a.b.c`` as (x, [a, b, c]): a path navigated by one call instead of one per step."""
    names: list[str] = []
    while node.get("type") == "InvocationExpression" and node["children"][1]["type"] == "MemberInvocation":
        names.append(_identifier(node["children"][1]["children"][0]))
        node = node["children"][0]
    return node, names[::-1]


# ---- helpers the generated code calls ----------------------------------------------------------
_UNSET = object()


def _var(env: dict[str, Any], name: str) -> list[Any]:
    try:  # env[...] so that a lazily computed fact is computed on its first read
        value = env[name]  # generated code never changes a collection it is given: no copy
    except KeyError:
        return []
    return value if type(value) is list else [] if value is None else [value]


def _nav1(item: Any, name: str) -> list[Any]:
    """``name`` from one item (the focus inside ``where``/``select``/``exists``)."""
    if type(item) is not dict:
        return []
    value = item.get(name)
    if value is None:
        if name not in _CHOICE_KEYS:
            return []
        value = _choice_value(item, name)
        if value is None:
            return []
    return [v for v in value if v is not None] if type(value) is list else [value]


def _path(items: list[Any], names: tuple[str, ...]) -> list[Any]:
    for name in names:
        if not items:
            return items
        items = _dyn_navigate(items, name)
    return items


def _path1(item: Any, names: tuple[str, ...]) -> list[Any]:
    value = item
    for name in names:  # the common case: one value at each step (``period.start``)
        if type(value) is not dict:
            break
        value = value.get(name)
        if value is None or type(value) is list:
            break
    else:
        return [value]
    return _path(_nav1(item, names[0]), names[1:])


def _tl(t: bool | None) -> list[Any]:
    return [] if t is None else [t]


def _not(items: list[Any]) -> bool | None:
    t = _truth(items)
    return None if t is None else not t


def _has_value(items: list[Any]) -> bool:
    return len(items) == 1 and type(items[0]) is not dict and not isinstance(items[0], NoValue)


def _is_distinct(items: list[Any]) -> bool:
    return all(not _eq(a, b) for i, a in enumerate(items) for b in items[i + 1:])


def _distinct(items: list[Any]) -> list[Any]:
    """``distinct()`` by FHIRPath equality; strings (codes, the common case) hashed."""
    out: list[Any] = []
    strings: set[str] = set()
    for v in items:
        if type(v) is str:
            if v not in strings:
                strings.add(v)
                out.append(v)
        elif not any(_eq(v, o) for o in out):
            out.append(v)
    return out


def _of_resource_type(items: list[Any], name: str) -> list[Any]:
    return [i for i in items if type(i) is dict and i.get("resourceType") == name]


def _of_primitive(items: list[Any], name: str) -> list[Any]:
    test = _PRIMITIVE_TEST[name]
    return [i for i in items if test(i)]


def _case(items: list[Any], upper: bool) -> list[Any]:
    if len(items) != 1 or not isinstance(items[0], str):
        return []
    return [items[0].upper() if upper else items[0].lower()]


def _eq_literal(a: list[Any], literal: str, same: bool) -> bool | None:
    """``x = 'active'`` (``same``) or ``x != 'active'``: the most common comparison in the facts."""
    if len(a) == 1 and type(a[0]) is str:
        return (a[0] == literal) == same
    if not a:
        return None
    if len(a) > 1:
        return not same
    r = _dyn_eq(a[0], literal)
    return None if r is None else r == same


def _field_eq(item: Any, name: str, literal: str, same: bool) -> bool | None:
    """``status = 'active'`` on one item, without building the navigated collection."""
    if type(item) is dict:
        value = item.get(name)
        if type(value) is str:
            return (value == literal) == same
    return _eq_literal(_nav1(item, name), literal, same)


def _equal(a: list[Any], b: list[Any], same: bool) -> bool | None:
    if not a or not b:
        return None
    if len(a) == 1 == len(b):
        r = _dyn_eq(a[0], b[0])
        return None if r is None else r == same
    if len(a) != len(b):
        return not same
    results = [_dyn_eq(x, y) for x, y in zip(a, b, strict=True)]
    if any(r is False for r in results):
        return not same
    if any(r is None for r in results):
        return None
    return same


def _compare(a: list[Any], b: list[Any]) -> int | None:
    if len(a) == 1 == len(b):
        return _dyn_compare(a[0], b[0])
    if not a or not b:
        return None
    raise ValueError("comparison of collections")


def _in(item: list[Any], collection: list[Any], op: str) -> bool | None:
    if not item:
        return None
    if len(item) > 1:
        raise ValueError(f"'{op}' with more than one item")
    value = item[0]
    if type(value) is str:  # 'feature-x' in %answeredYes: a string equals only an equal string
        return value in collection
    return any(_eq(value, c) for c in collection)


def _add(a: list[Any], b: list[Any], sign: int) -> list[Any]:
    if len(a) != 1 or len(b) != 1:
        return []
    x, y = a[0], b[0]
    if isinstance(y, Quantity) and isinstance(x, str):
        shifted = _shift(x, y, sign)
        return [] if shifted is None else [shifted]
    if type(x) in (int, Decimal) and type(y) in (int, Decimal):
        return [x + y if sign == 1 else x - y]
    return []


_RUNTIME: dict[str, Any] = {
    "_UNSET": _UNSET, "_var": _var, "_nav1": _nav1, "_nav": _dyn_navigate, "_path": _path, "_path1": _path1,
    "_tl": _tl, "_truth": _truth, "_not": _not, "_has_value": _has_value, "_is_distinct": _is_distinct,
    "_distinct": _distinct, "_of_resource_type": _of_resource_type, "_of_primitive": _of_primitive,
    "_case": _case, "_eq_literal": _eq_literal, "_field_eq": _field_eq, "_equal": _equal, "_compare": _compare,
    "_in": _in, "_add": _add, "_union": _union, "_union_all": _union_all, "_collection": collection_op,
    "_string_test": string_test,
}


# ---- the generator -----------------------------------------------------------------------------
Code = tuple[str, str]  # (a pure Python expression, "L" a list | "T" True/False/None for [true]/[false]/[])
Focus = tuple[str, str]  # ("L", name of a list) | ("I", name of one item)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Generator:
    """Python statements for one fact definition, from fhirpathpy's parse tree.

    Every sub-expression is emitted as statements that leave its value in a local; loops
    (``where``, ``select``, ``exists``, ``aggregate``…) become ``for`` loops over the items and the
    three-valued ``and``/``or``/``implies`` become ``if``s that evaluate their right side only when the
    left one does not decide (FHIRPath §6.5), so that a fact read on the right is computed only when
    needed."""

    def __init__(self, variables: set[str], functions: dict[str, HostFunction],
                 predicates: dict[str, HostPredicate]) -> None:
        self.variables = variables
        self.functions = functions
        self.predicates = predicates
        self.lines: list[str] = []
        self.names = itertools.count()
        self.globals: dict[str, Any] = {}
        self.cached: dict[str, str] = {}  # %name -> local caching its value for this evaluation
        self.totals: list[str] = []  # the locals holding $total of the enclosing aggregate()s
        # values already in a local at an indentation still open: (indentation, expression, local)
        self.available: list[tuple[int, str, str]] = []

    # plumbing
    def tmp(self, prefix: str = "v") -> str:
        return f"{prefix}{next(self.names)}"

    def emit(self, ind: int, line: str) -> None:
        self.close(ind)
        self.lines.append("    " * ind + line)

    def close(self, ind: int) -> None:
        """Forget the locals of blocks that end here (a line at ``ind`` ends every deeper block)."""
        while self.available and self.available[-1][0] > ind:
            self.available.pop()

    def constant(self, value: Any) -> str:
        name = self.tmp("k")
        self.globals[name] = value
        return name

    def bind(self, code: str, ind: int) -> str:
        """A local holding ``code``: evaluated once where it is used twice, and not again where an
        enclosing block already holds it (``period.start >= %a and period.start < %b`` navigates
        once per item). Generated expressions are pure, so the same text has the same value."""
        if _IDENT.match(code) or code in ("True", "False", "None"):
            return code
        self.close(ind)
        for _, known, local in self.available:
            if known == code:
                return local
        name = self.tmp()
        self.emit(ind, f"{name} = {code}")
        self.available.append((ind, code, name))
        return name

    def as_list(self, code: Code) -> str:
        expr, mode = code
        return f"_tl({expr})" if mode == "T" else expr

    def as_truth(self, code: Code) -> str:
        expr, mode = code
        return expr if mode == "T" else f"_truth({expr})"

    def list_of(self, focus: Focus) -> str:
        kind, name = focus
        return name if kind == "L" else f"[{name}]"

    def function(self, tree: dict[str, Any], fn_name: str) -> str:
        body_start = len(self.lines)
        result = self.as_list(self.expr(tree["children"][0], ("L", "focus"), 1))
        self.emit(1, f"return {result}")
        cache = [f"    {local} = _UNSET" for local in self.cached.values()]
        self.lines[body_start:body_start] = [f"def {fn_name}(focus, env):", *cache]
        return "\n".join(self.lines)

    # dispatch
    def expr(self, node: dict[str, Any], focus: Focus, ind: int) -> Code:
        method = getattr(self, "_" + node["type"], None)
        if method is None:
            raise Unsupported(node["type"])
        code: Code = method(node, focus, ind)
        return code

    def _TermExpression(self, node: dict[str, Any], focus: Focus, ind: int) -> Code:
        return self.expr(node["children"][0], focus, ind)

    _ParenthesizedTerm = _TermExpression

    def _LiteralTerm(self, node: dict[str, Any], focus: Focus, ind: int) -> Code:
        lit = node["children"][0]
        kind = lit["type"]
        text = lit["terminalNodeText"][0] if lit.get("terminalNodeText") else ""
        if kind == "NullLiteral":
            return "[]", "L"
        if kind == "BooleanLiteral":
            return ("True" if text == "true" else "False"), "T"
        if kind == "StringLiteral":
            return f"[{_unescape(text[1:-1])!r}]", "L"
        if kind == "NumberLiteral":
            return (f"[{self.constant(Decimal(text))}]" if "." in text else f"[{int(text)}]"), "L"
        if kind in ("DateTimeLiteral", "DateLiteral"):
            if _date_parts(text[1:]) is None:
                raise Unsupported(f"date literal {text}")
            return f"[{text[1:]!r}]", "L"
        if kind == "QuantityLiteral":
            q = lit["children"][0]
            value = Decimal(q["terminalNodeText"][0])
            unit_node = q["children"][0] if q.get("children") else None
            unit_text = ""
            if unit_node is not None:
                unit_text = (unit_node.get("terminalNodeText") or [""])[0] or (
                    unit_node["children"][0]["terminalNodeText"][0] if unit_node.get("children") else "")
            unit = _CALENDAR_UNITS.get(unit_text)
            if unit is None:
                raise Unsupported(f"quantity unit {unit_text}")
            return f"[{self.constant(Quantity(value, unit))}]", "L"
        raise Unsupported(kind)

    def _ExternalConstantTerm(self, node: dict[str, Any], focus: Focus, ind: int) -> Code:
        ident = node["children"][0]["children"][0]
        name = _identifier(ident)
        if name not in self.variables:
            raise Unsupported(f"%{name} is not declared")
        local = self.cached.get(name)
        if local is None:
            local = self.cached[name] = self.tmp("c")
        # read once per evaluation, and only when reached (a fact is computed on its first read)
        self.emit(ind, f"if {local} is _UNSET:")
        self.emit(ind + 1, f"{local} = _var(env, {name!r})")
        return local, "L"

    def _InvocationTerm(self, node: dict[str, Any], focus: Focus, ind: int) -> Code:
        inner = node["children"][0]
        kind = inner["type"]
        if kind == "ThisInvocation":
            return self.list_of(focus), "L"
        if kind == "TotalInvocation":
            return (self.totals[-1] if self.totals else "[]"), "L"
        if kind == "MemberInvocation":
            name = _identifier(inner["children"][0])
            if name[:1].isupper():  # ``Condition.code``: a leading type name filters the focus by type
                return f"_of_resource_type({self.list_of(focus)}, {name!r})", "L"
            return self.navigate(focus, (name,), ind), "L"
        if kind == "FunctionInvocation":
            return self.function_call(inner, focus, focus, ind)
        raise Unsupported(kind)

    def navigate(self, focus: Focus, names: tuple[str, ...], ind: int) -> str:
        kind, var = focus
        if kind == "I" and len(names) == 1 and names[0] not in _CHOICE_KEYS:
            # one element of one item (``status``, ``code`` inside where()): inline, no call
            key = f"_nav1({var}, {names[0]!r})"
            self.close(ind)
            for _, known, local in self.available:
                if known == key:
                    return local
            raw, out = self.tmp("x"), self.tmp("v")
            self.emit(ind, f"{raw} = {var}.get({names[0]!r}) if type({var}) is dict else None")
            self.emit(ind, f"{out} = [] if {raw} is None else [{raw}] if type({raw}) is not list "
                           f"else [e for e in {raw} if e is not None]")
            self.available.append((ind, key, out))
            return out
        if kind == "I":
            return f"_nav1({var}, {names[0]!r})" if len(names) == 1 else f"_path1({var}, {names!r})"
        return f"_nav({var}, {names[0]!r})" if len(names) == 1 else f"_path({var}, {names!r})"

    def _InvocationExpression(self, node: dict[str, Any], focus: Focus, ind: int) -> Code:
        base, names = _member_chain(node)
        if names:
            start = _leading_member(base)
            if start is not None:  # ``period.start``: a path from the focus
                return self.navigate(focus, (start, *names), ind), "L"
            left = self.bind(self.as_list(self.expr(base, focus, ind)), ind)
            return self.navigate(("L", left), tuple(names), ind), "L"
        inv = node["children"][1]
        if inv["type"] != "FunctionInvocation":
            raise Unsupported(inv["type"])
        operands = _union_operands(node["children"][0])
        if len(operands) > 1 and _function_name(inv) == ("first", 0):
            return self.first_of_union(operands, focus, ind)
        left = self.bind(self.as_list(self.expr(node["children"][0], focus, ind)), ind)
        return self.function_call(inv, ("L", left), focus, ind)

    def first_of_union(self, operands: list[dict[str, Any]], focus: Focus, ind: int) -> Code:
        """``(a | b | c).first()``: the first item of the first operand that has one (a union keeps
        the order of its operands), evaluating the later operands only when the earlier are empty."""
        out = self.tmp("r")
        for depth, operand in enumerate(operands):
            if depth:
                self.emit(ind + depth - 1, f"if not {out}:")
            self.emit(ind + depth, f"{out} = {self.as_list(self.expr(operand, focus, ind + depth))}")
        return f"{out}[:1]", "L"

    # functions
    def function_call(self, inv: dict[str, Any], left: Focus, focus: Focus, ind: int) -> Code:
        """``left.name(params)``; ``focus`` is what the arguments of set functions are evaluated on."""
        functn = inv["children"][0]
        name = _identifier(functn["children"][0])
        params = functn["children"][1]["children"] if len(functn["children"]) > 1 else []
        n = len(params)
        items = self.list_of(left)
        if name in self.functions or name in self.predicates:
            return self.host(name, params, items, focus, ind)
        if n == 0:
            simple = {"exists": (f"bool({items})", "T"), "empty": (f"not {items}", "T"),
                      "count": (f"[len({items})]", "L"), "not": (f"_not({items})", "T"),
                      "hasValue": (f"_has_value({items})", "T"), "isDistinct": (f"_is_distinct({items})", "T"),
                      "distinct": (f"_distinct({items})", "L"), "first": (f"{items}[:1]", "L"),
                      "last": (f"{items}[-1:]", "L"), "lower": (f"_case({items}, False)", "L"),
                      "upper": (f"_case({items}, True)", "L")}
            if name in simple:
                return simple[name]
        if n == 1 and name in ("where", "select", "exists", "all", "repeat"):
            return self.loop(name, params[0], items, ind)
        if name == "ofType" and n == 1:
            type_name = _type_specifier(params[0])
            if type_name in _PRIMITIVE_TEST:
                return f"_of_primitive({items}, {type_name!r})", "L"
            if not type_name[:1].isupper():
                raise Unsupported(f"ofType({type_name})")
            return f"_of_resource_type({items}, {type_name!r})", "L"
        if name == "iif" and n in (2, 3):
            return self.iif(params, left, ind)
        if name == "aggregate" and n in (1, 2):
            return self.aggregate(params, items, focus, ind)
        if name in ("startsWith", "endsWith", "contains", "matches") and n == 1:
            arg = self.as_list(self.expr(params[0], focus, ind))
            return f"_string_test({name!r}, {items}, {arg})", "T"
        if name in ("intersect", "combine", "exclude") and n == 1:
            # the argument is evaluated from the same focus as the whole invocation (FHIRPath §5.4)
            other = self.as_list(self.expr(params[0], focus, ind))
            return f"_collection({name!r}, {items}, {other})", "L"
        raise Unsupported(f"function {name}/{n}")

    def host(self, name: str, params: list[dict[str, Any]], items: str, focus: Focus, ind: int) -> Code:
        literals = [_string_literal(p) for p in params]
        if name in self.predicates and all(v is not None for v in literals):
            # memberOf('…'): specialised for its argument, answering true/false/empty directly
            predicate = self.predicates[name](tuple(str(v) for v in literals))
            return f"{self.constant(predicate)}({items})", "T"
        fn = self.constant(self.functions[name])
        if all(v is not None for v in literals):  # the argument is known now
            args = self.constant([[v] for v in literals])
        else:
            args = "[" + ", ".join(self.as_list(self.expr(p, focus, ind)) for p in params) + "]"
        return f"{fn}({items}, {args}, env)", "L"

    def loop(self, name: str, param: dict[str, Any], items: str, ind: int) -> Code:
        out, item = self.tmp("r"), self.tmp("i")
        start = {"where": "[]", "select": "[]", "exists": "False", "all": "True", "repeat": "[]"}[name]
        if name == "repeat":
            return self.repeat(param, items, ind)
        self.emit(ind, f"{out} = {start}")
        self.emit(ind, f"for {item} in {items}:")
        code = self.expr(param, ("I", item), ind + 1)
        if name == "select":
            expr, mode = code
            if mode == "T":
                value = self.bind(expr, ind + 1)
                self.emit(ind + 1, f"if {value} is not None:")
                self.emit(ind + 2, f"{out}.append({value})")
            else:
                self.emit(ind + 1, f"{out}.extend({expr})")
            return out, "L"
        test = f"{code[0]} is True" if code[1] == "T" else f"{code[0]} == [True]"
        if name == "where":
            self.emit(ind + 1, f"if {test}:")
            self.emit(ind + 2, f"{out}.append({item})")
            return out, "L"
        if name == "exists":
            self.emit(ind + 1, f"if {test}:")
            self.emit(ind + 2, f"{out} = True")
        else:
            self.emit(ind + 1, f"if not ({test}):")
            self.emit(ind + 2, f"{out} = False")
        self.emit(ind + 2, "break")
        return out, "T"

    def repeat(self, param: dict[str, Any], items: str, ind: int) -> Code:
        out, seen, todo, new, item, value = (self.tmp(p) for p in ("r", "s", "t", "n", "i", "x"))
        self.emit(ind, f"{out} = []")
        self.emit(ind, f"{seen} = set()")
        self.emit(ind, f"{todo} = {items}")
        self.emit(ind, f"while {todo}:")
        self.emit(ind + 1, f"{new} = []")
        self.emit(ind + 1, f"for {item} in {todo}:")
        step = self.as_list(self.expr(param, ("I", item), ind + 2))
        self.emit(ind + 2, f"for {value} in {step}:")
        self.emit(ind + 3, f"if id({value}) not in {seen}:")
        self.emit(ind + 4, f"{new}.append({value})")
        # items found in this round are new only against earlier rounds (as FHIRPath's repeat())
        self.emit(ind + 1, f"{seen}.update(map(id, {new}))")
        self.emit(ind + 1, f"{out}.extend({new})")
        self.emit(ind + 1, f"{todo} = {new}")
        return out, "L"

    def iif(self, params: list[dict[str, Any]], left: Focus, ind: int) -> Code:
        out = self.tmp("r")
        cond = self.as_truth(self.expr(params[0], left, ind))
        self.emit(ind, f"if {cond} is True:")
        self.emit(ind + 1, f"{out} = {self.as_list(self.expr(params[1], left, ind + 1))}")
        self.emit(ind, "else:")
        other = self.as_list(self.expr(params[2], left, ind + 1)) if len(params) == 3 else "[]"
        self.emit(ind + 1, f"{out} = {other}")
        return out, "L"

    def aggregate(self, params: list[dict[str, Any]], items: str, focus: Focus, ind: int) -> Code:
        total, item = self.tmp("g"), self.tmp("i")
        init = self.as_list(self.expr(params[1], focus, ind)) if len(params) == 2 else "[]"
        self.emit(ind, f"{total} = {init}")
        self.emit(ind, f"for {item} in {items}:")
        self.totals.append(total)
        try:
            step = self.as_list(self.expr(params[0], ("I", item), ind + 1))
        finally:
            self.totals.pop()
        self.emit(ind + 1, f"{total} = {step}")
        return total, "L"

    # operators
    def logic(self, node: dict[str, Any], focus: Focus, ind: int, decided: str, answer: str, rest: str) -> Code:
        """A three-valued operator (FHIRPath §6.5): when the left side is ``decided`` the answer is
        ``answer`` and the right side is not evaluated; otherwise ``rest`` (over ``{a}``, ``{b}``)."""
        out = self.tmp("b")
        a = self.bind(self.as_truth(self.expr(node["children"][0], focus, ind)), ind)
        self.emit(ind, f"if {a} is {decided}:")
        self.emit(ind + 1, f"{out} = {answer}")
        self.emit(ind, "else:")
        b = self.bind(self.as_truth(self.expr(node["children"][1], focus, ind + 1)), ind + 1)
        self.emit(ind + 1, f"{out} = " + rest.format(a=a, b=b))
        return out, "T"

    def _AndExpression(self, node: dict[str, Any], focus: Focus, ind: int) -> Code:
        return self.logic(node, focus, ind, "False", "False",
                          "False if {b} is False else True if {a} is True and {b} is True else None")

    def _OrExpression(self, node: dict[str, Any], focus: Focus, ind: int) -> Code:
        if node["terminalNodeText"][0] == "xor":
            a = self.bind(self.as_truth(self.expr(node["children"][0], focus, ind)), ind)
            b = self.bind(self.as_truth(self.expr(node["children"][1], focus, ind)), ind)
            return f"(None if {a} is None or {b} is None else {a} != {b})", "T"
        return self.logic(node, focus, ind, "True", "True",
                          "True if {b} is True else False if {a} is False and {b} is False else None")

    def _ImpliesExpression(self, node: dict[str, Any], focus: Focus, ind: int) -> Code:
        return self.logic(node, focus, ind, "False", "True",
                          "True if {b} is True else False if {a} is True and {b} is False else None")

    def _EqualityExpression(self, node: dict[str, Any], focus: Focus, ind: int) -> Code:
        op = node["terminalNodeText"][0]
        if op not in ("=", "!="):
            raise Unsupported(op)
        same = op == "="
        left_node, right_node = node["children"]
        literal = _string_literal(right_node)
        if literal is not None and _date_parts(literal) is None:  # status = 'active': the common case
            start = _leading_member(left_node)
            if start is not None and focus[0] == "I":  # one item's element: no collection built
                item, value, out = focus[1], self.tmp("f"), self.tmp("e")
                self.emit(ind, f"{value} = {item}.get({start!r}) if type({item}) is dict else None")
                self.emit(ind, f"{out} = ({value} {'==' if same else '!='} {literal!r}) if type({value}) is str "
                               f"else _field_eq({item}, {start!r}, {literal!r}, {same})")
                return out, "T"
            a = self.as_list(self.expr(left_node, focus, ind))
            return f"_eq_literal({a}, {literal!r}, {same})", "T"
        a = self.bind(self.as_list(self.expr(left_node, focus, ind)), ind)
        b = self.as_list(self.expr(right_node, focus, ind))
        return f"_equal({a}, {b}, {same})", "T"

    def _InequalityExpression(self, node: dict[str, Any], focus: Focus, ind: int) -> Code:
        op = node["terminalNodeText"][0]
        a = self.bind(self.as_list(self.expr(node["children"][0], focus, ind)), ind)
        b = self.as_list(self.expr(node["children"][1], focus, ind))
        c = self.tmp("o")
        self.emit(ind, f"{c} = _compare({a}, {b})")
        return f"(None if {c} is None else {c} {op} 0)", "T"

    def _AdditiveExpression(self, node: dict[str, Any], focus: Focus, ind: int) -> Code:
        op = node["terminalNodeText"][0]
        if op not in ("+", "-"):
            raise Unsupported(op)
        sign = 1 if op == "+" else -1
        if _constant(node):  # e.g. %today - %careContactsWindow: once per evaluation, not per item
            local = self.tmp("c")
            self.cached[" " + local] = local
            self.emit(ind, f"if {local} is _UNSET:")
            a = self.bind(self.as_list(self.expr(node["children"][0], focus, ind + 1)), ind + 1)
            b = self.as_list(self.expr(node["children"][1], focus, ind + 1))
            self.emit(ind + 1, f"{local} = _add({a}, {b}, {sign})")
            return local, "L"
        a = self.bind(self.as_list(self.expr(node["children"][0], focus, ind)), ind)
        b = self.as_list(self.expr(node["children"][1], focus, ind))
        return f"_add({a}, {b}, {sign})", "L"

    def _UnionExpression(self, node: dict[str, Any], focus: Focus, ind: int) -> Code:
        # a | b | c as one union of three (the same items, without the intermediate collections)
        parts = [self.bind(self.as_list(self.expr(o, focus, ind)), ind) for o in _union_operands(node)]
        return (f"_union({parts[0]}, {parts[1]})" if len(parts) == 2 else f"_union_all(({', '.join(parts)},))"), "L"

    def _MembershipExpression(self, node: dict[str, Any], focus: Focus, ind: int) -> Code:
        op = node["terminalNodeText"][0]
        a = self.bind(self.as_list(self.expr(node["children"][0], focus, ind)), ind)
        b = self.as_list(self.expr(node["children"][1], focus, ind))
        item, collection = (a, b) if op == "in" else (b, a)
        return f"_in({item}, {collection}, {op!r})", "T"


def _union_operands(node: dict[str, Any]) -> list[dict[str, Any]]:
    """The operands of ``a | b | c`` (parenthesised or not); ``[node]`` for anything else."""
    while node.get("type") in ("TermExpression", "ParenthesizedTerm") and len(node.get("children", [])) == 1:
        node = node["children"][0]
    if node.get("type") != "UnionExpression":
        return [node]
    return [*_union_operands(node["children"][0]), *_union_operands(node["children"][1])]


def _function_name(inv: dict[str, Any]) -> tuple[str, int]:
    functn = inv["children"][0]
    params = functn["children"][1]["children"] if len(functn["children"]) > 1 else []
    return _identifier(functn["children"][0]), len(params)


def _leading_member(node: dict[str, Any]) -> str | None:
    """``name`` when ``node`` is a bare member name navigated from the focus (not a type name)."""
    while node.get("type") in ("TermExpression", "InvocationTerm") and node.get("children"):
        node = node["children"][0]
    if node.get("type") != "MemberInvocation":
        return None
    name = _identifier(node["children"][0])
    return None if name[:1].isupper() else name


def compile_record_expression(expression: str, variables: set[str], functions: dict[str, HostFunction],
                              name: str = "expression", predicates: dict[str, HostPredicate] | None = None) -> Fn:
    """A Python function for a fact definition, generated once; raises ``Unsupported`` (with the
    reason) outside the subset, so that a package using more of FHIRPath is refused at start-up
    rather than evaluated slowly."""
    tree = parse(expression)
    gen = _Generator(variables, functions, predicates or {})
    source = gen.function(tree, "fact")
    namespace = {**_RUNTIME, **gen.globals}
    exec(compile(source, f"<fact {name}>", "exec"), namespace)  # our own generated source
    fn: Fn = namespace["fact"]
    fn.source = source  # type: ignore[attr-defined]
    return fn
