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
when undecided, FHIRPath §6.1.5) and strings. The parser, the values and the operators on dates
and quantities are the interpreter's (``alk_fhir.fhirpath.parser``/``values``): one semantics.
The few FHIR-specific functions the facts need
(``memberOf``, ``resolve``, and our ``namesMemberOf``) are supplied by the caller, so that this
module stays free of terminology and of the record index. tests/test_facts.py evaluates every fact
of the package with fhirpathpy (given the same functions) over every example record and requires the
same values; tests/test_fhirpath_cli.py does the same with our interpreter, and
tests/test_fhirpath_suite.py runs the HL7 FHIRPath suite through this generator (0 wrong answers).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any, ClassVar

from alk_fhir.fastpath import _CHOICES, Fn, NoValue, _eq, _num, _truth, collection_op, string_test
from alk_fhir.fhirpath import model
from alk_fhir.fhirpath.engine import Unsupported
from alk_fhir.fhirpath.parser import Node as Tree
from alk_fhir.fhirpath.parser import parse
from alk_fhir.fhirpath.values import (
    FDate,
    FDateTime,
    FHIRPathEvaluationError,
    Quantity,
    add_temporal,
    add_to_date_text,
    compare,
    compare_temporal,
)

__all__ = ["Fn", "HostFunction", "HostPredicate", "Quantity", "Unsupported", "compile_record_expression"]

_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2})"
                   r"(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?)?)?$")
# quantity literals the facts may use: calendar durations (date arithmetic, FHIRPath N1 §6.6.1)
_CALENDAR_DURATIONS = frozenset({"year", "month", "week", "day", "hour", "minute", "second", "millisecond"})
_CHOICE_SUFFIXES: dict[str, tuple[str, ...]] = {}
for _choice_path, _types in _CHOICES.items():
    _name = _choice_path.rsplit(".", 1)[-1]
    _CHOICE_SUFFIXES[_name] = tuple(sorted(set(_CHOICE_SUFFIXES.get(_name, ()))
                                           | {t[:1].upper() + t[1:] for t in _types}))
_EXPANDED_CHOICES = frozenset(p.rsplit(".", 1)[1] for p in model.CHOICE_NAMES)
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


_TEMPORALS: dict[str, FDate | FDateTime | None] = {}  # a record's dates repeat across facts and requests


def _temporal(value: str) -> FDate | FDateTime | None:
    """A record's date or dateTime string as a FHIRPath value (time zone and fractional seconds kept,
    N1 §6.2); None for a string that is not one. Records carry no types, so a string is read as a
    date when it has the form of one."""
    try:
        return _TEMPORALS[value]
    except KeyError:
        pass
    found: FDate | FDateTime | None = None
    if _DATE.match(value) is not None:
        try:
            found = FDateTime.parse(value) if "T" in value else FDate.parse(value)
        except FHIRPathEvaluationError:
            found = None
    if len(_TEMPORALS) >= 65_536:
        _TEMPORALS.clear()
    _TEMPORALS[value] = found
    return found


def _date_parts(value: Any) -> FDate | FDateTime | None:
    if not isinstance(value, str) or not value[:1].isdigit():
        return None
    return _temporal(value)


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
            if "_" + name in item:
                out.extend(_extension_only(None, item["_" + name]))
                continue
            if not choice:
                continue
            value = _choice_value(item, name)
            if value is None:
                continue
        if type(value) is list:
            out.extend(value if None not in value else _extension_only(value, item.get("_" + name)))
        else:
            out.append(value)
    return out


def _dyn_compare(x: Any, y: Any) -> int | None:
    """``<``/``>`` of two record values, by ``values.compare`` (the one FHIRPath order)."""
    if type(x) is str and type(y) is str:  # dates and dateTimes, most often
        dx = _temporal(x) if x[:1].isdigit() else None
        dy = _temporal(y) if y[:1].isdigit() else None
        if dx is not None and dy is not None:
            if len(x) == len(y) and type(dx) is FDate and type(dy) is FDate:
                # two dates of one precision (YYYY, YYYY-MM or YYYY-MM-DD, zero-padded): their text's
                # order is their order, as compare_temporal would find it part by part
                return 0 if x == y else -1 if x < y else 1
            return compare_temporal(dx, dy)
        if dx is None and dy is None:
            return 0 if x == y else -1 if x < y else 1
        return None
    tx, ty = type(x), type(y)
    if (tx is int or tx is float or tx is Decimal) and (ty is int or ty is float or ty is Decimal):
        a, b = _num(x), _num(y)  # counts against thresholds: the common case, without the calls
        return 0 if a == b else -1 if a < b else 1
    if tx is NoValue or ty is NoValue:
        return None
    return compare(_num(x), _num(y))


def _dyn_eq(a: Any, b: Any) -> bool | None:
    if type(a) is str and type(b) is str:
        if a == b:
            return True
        if not (a[:1].isdigit() and b[:1].isdigit()):
            return False
        da, db = _temporal(a), _temporal(b)
        if da is not None and db is not None:
            c = compare_temporal(da, db)
            return None if c is None else c == 0
        return False
    return _eq(a, b)


def _union(a: list[Any], b: list[Any]) -> list[Any]:
    """``a | b`` without duplicates (FHIRPath §6.5)."""
    if not b and len(a) <= 1:
        return a
    if not a and len(b) <= 1:
        return b
    if len(a) == 1 == len(b):  # text | display: one string (or one element) each, as _union_all keys them
        x, y = a[0], b[0]
        kind = type(x)
        if kind is type(y) and (kind is str or kind is dict):
            return a if (x == y if kind is str else x is y) else [x, y]
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


def _string_literal(node: Tree) -> str | None:
    """The value of a string literal term ('active'), else None."""
    return node[1] if node[0] == "lit" and type(node[1]) is str else None


def _constant(node: Tree) -> bool:
    """An expression of only %variables and literals: the same value for every item of one evaluation."""
    if node[0] in ("var", "lit"):
        return True
    if node[0] == "binary" and node[1] in ("+", "-"):
        return _constant(node[2]) and _constant(node[3])
    return False


def _type_specifier(node: Tree) -> str:
    """The type name in ``ofType(Name)``: the parser gives a member invocation of that identifier."""
    if node[0] == "member" and node[1] is None:
        return str(node[2])
    if node[0] == "member" and node[1] == ("member", None, "FHIR"):
        return str(node[2])
    raise Unsupported("a qualified or computed type name")


def _member_chain(node: Tree) -> tuple[Tree, list[str]]:
    """``x.a.b.c`` as (x, [a, b, c]): a path navigated by one call instead of one per step."""
    names: list[str] = []
    while node[0] == "member" and node[1] is not None:
        names.append(node[2])
        node = node[1]
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
        if "_" + name in item:
            return _extension_only(None, item["_" + name])
        if name not in _CHOICE_KEYS:
            return []
        value = _choice_value(item, name)
        if value is None:
            return []
    if type(value) is list:
        return value[:] if None not in value else _extension_only(value, item.get("_" + name))
    return [value]


def _extension_only(values: list[Any] | None, parts: Any) -> list[Any]:
    """A primitive with extensions but no value (FHIR JSON ``"_given": [{…}]`` beside a null) is an
    item too, without a value (``NoValue``): it counts, and ``hasValue()`` is false for it."""
    if values is None:
        if type(parts) is dict:
            return [NoValue(parts)]
        return [NoValue(p) for p in parts if p is not None] if type(parts) is list else []
    out: list[Any] = []
    for i, v in enumerate(values):
        if v is not None:
            out.append(v)
        elif type(parts) is list and i < len(parts) and parts[i] is not None:
            out.append(NoValue(parts[i]))
    return out


def _path(items: list[Any], names: tuple[str, ...]) -> list[Any]:
    for name in names:
        if not items:
            return items
        items = _dyn_navigate(items, name)
    return items


def _path1(item: Any, names: tuple[str, ...]) -> list[Any]:
    """A path from one item. The common cases stay in one loop: one value at each step
    (``period.start``), a choice element (``medication.coding``), a list of one on the way
    (``answer.value``) or a list at the end; anything else is navigated step by step."""
    value = item
    last = len(names) - 1
    for step, name in enumerate(names):
        if type(value) is not dict:
            break
        found = value.get(name)
        if found is None:
            if "_" + name in value:  # a primitive with only extensions: NoValue items (_nav1)
                break
            if name not in _CHOICE_KEYS:
                return []
            found = _choice_value(value, name)
            if found is None:
                return []
        if type(found) is list:
            if step == last:
                if None in found:
                    break
                return found[:]
            if len(found) != 1 or type(found[0]) is not dict:
                break
            found = found[0]
        value = found
    else:
        return [value]
    return _path(_nav1(item, names[0]), names[1:])


def _path2(item: Any, first: str, second: str) -> list[Any]:
    """``_path1`` of a two-step path (``period.start``, ``answer.value``, ``coding.display``: most paths
    the facts navigate from one item), in straight-line code; anything unusual goes to _path1."""
    if type(item) is dict:
        value = item.get(first)
        if value is None and first in _CHOICE_KEYS and "_" + first not in item:
            value = _choice_value(item, first)
        elif type(value) is list and len(value) == 1:
            value = value[0]
        if type(value) is dict:
            found = value.get(second)
            if found is None and "_" + second not in value:
                if second not in _CHOICE_KEYS:
                    return []
                found = _choice_value(value, second)
                if found is None:
                    return []
            if found is not None:
                if type(found) is not list:
                    return [found]
                if None not in found:
                    return found[:]
        elif value is None and first not in _CHOICE_KEYS and "_" + first not in item:
            return []
    return _path1(item, (first, second))


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


def _to_date(items: list[Any]) -> list[Any]:
    """``toDate()`` (FHIRPath N1 §5.5): a date or dateTime string becomes the Date of its year, month and
    day as written (a dateTime's own offset, never converted), so that "the day an MP9 period ends" can
    be compared with ``%today``; anything else is empty."""
    if len(items) != 1:
        return []
    value = items[0]
    # a valid date or dateTime (checked by _date_parts) begins with its zero-padded YYYY[-MM[-DD]]
    return [] if _date_parts(value) is None else [value[:10]]


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


def _eq_bool(a: list[Any], literal: bool, same: bool) -> bool | None:
    """``x = true`` (``same``) or ``x != false``: one boolean is compared by identity; anything else as
    ``_equal`` compares it."""
    if len(a) == 1 and type(a[0]) is bool:
        return (a[0] is literal) == same
    return _equal(a, [literal], same)


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
    """``a + b`` / ``a - b``: numbers, strings (``+`` concatenates), a record's date plus a calendar
    duration (``values.add_temporal``); other operands are an error (N1 §6.6)."""
    if not a or not b:
        return []
    if len(a) > 1 or len(b) > 1:
        raise FHIRPathEvaluationError("arithmetic on more than one item")
    x, y = a[0], b[0]
    if isinstance(y, Quantity) and type(x) is str:
        t = _date_parts(x)
        if t is None:
            raise FHIRPathEvaluationError(f"cannot add a quantity to {x!r}")
        found = add_to_date_text(t, y, sign) if type(t) is FDate else None
        return [found if found is not None else add_temporal(t, y, sign).text()]
    if type(x) is str and type(y) is str and sign == 1:
        return [x + y]
    if type(x) in (int, Decimal, float) and type(y) in (int, Decimal, float):
        x, y = _num(x), _num(y)
        return [x + y if sign == 1 else x - y]
    raise FHIRPathEvaluationError(f"cannot {'add' if sign == 1 else 'subtract'} {type(y).__name__} "
                                  f"{'to' if sign == 1 else 'from'} {type(x).__name__}")


def _one_or_none(items: list[Any], what: str) -> None:
    if len(items) > 1:
        raise FHIRPathEvaluationError(f"{what} on more than one item")


def _criterion(items: list[Any]) -> bool | None:
    """A condition that must be a boolean (iif()): other values are an error, not true (N1 §5.5.1)."""
    if not items:
        return None
    if len(items) == 1 and type(items[0]) is bool:
        return items[0]
    raise FHIRPathEvaluationError("iif() needs a boolean criterion")


def _seen_key(v: Any) -> Any:
    """repeat()'s identity of an item: a record element by identity, a value by value (N1 §5.2.3:
    an item equal to one found before is not added again)."""
    kind = type(v)
    if kind is dict:
        return id(v)
    if kind is int or kind is float or kind is Decimal:
        return (Decimal, _num(v).normalize() if kind is not int else Decimal(v))
    if kind is str or kind is bool:
        return (kind, v)
    return (kind, repr(v))


_RUNTIME: dict[str, Any] = {
    "_one_or_none": _one_or_none, "_criterion": _criterion, "_seen_key": _seen_key,
    "_UNSET": _UNSET, "_var": _var, "_choice_value": _choice_value,
    "_nav1": _nav1, "_nav": _dyn_navigate, "_path": _path, "_path1": _path1, "_path2": _path2,
    "_tl": _tl, "_truth": _truth, "_not": _not, "_has_value": _has_value, "_is_distinct": _is_distinct,
    "_distinct": _distinct, "_of_resource_type": _of_resource_type, "_of_primitive": _of_primitive,
    "_case": _case, "_to_date": _to_date, "_eq_literal": _eq_literal, "_eq_bool": _eq_bool, "_field_eq": _field_eq,
    "_equal": _equal,
    "_compare": _compare,
    "_in": _in, "_add": _add, "_union": _union, "_union_all": _union_all, "_collection": collection_op,
    "_string_test": string_test,
}


# ---- the generator -----------------------------------------------------------------------------
Code = tuple[str, str]  # (a pure Python expression, "L" a list | "T" True/False/None for [true]/[false]/[])
Focus = tuple[str, str]  # ("L", name of a list) | ("I", name of one item)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Generator:
    """Python statements for one fact definition, from our parser's syntax tree.

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
        self.lists: set[str] | frozenset[str] = frozenset()  # variables known to be lists (see compile_…)
        self.lines: list[str] = []
        self.names = itertools.count()
        self.globals: dict[str, Any] = {}
        self.constants: dict[Any, str] = {}  # key -> name of a global (see constant())
        self.cached: dict[str, str] = {}  # %name -> local caching its value for this evaluation
        self.totals: list[str] = []  # the locals holding $total of the enclosing aggregate()s
        # values already in a local at an indentation still open: (indentation, expression, local)
        self.available: list[tuple[int, str, str]] = []
        self.chains_as_written = False  # while generating member_in()'s general case
        # (expression text, item local) -> local caching its value for the current item (see loop())
        self.lazy: dict[tuple[str, str], str] = {}

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

    def constant(self, value: Any, key: Any = None) -> str:
        """A global of the generated function holding ``value``; the same ``key`` (or the same object)
        gets the same name, so that two calls of one function on one value read alike and the second is
        not computed again where the first is still in a local (``bind``)."""
        key = ("id", id(value)) if key is None else key
        name = self.constants.get(key)
        if name is None:
            name = self.constants[key] = self.tmp("k")
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

    def function(self, tree: Tree, fn_name: str) -> str:
        body_start = len(self.lines)
        result = self.as_list(self.expr(tree, ("L", "focus"), 1))
        self.emit(1, f"return {result}")
        cache = [f"    {local} = _UNSET" for local in self.cached.values()]
        self.lines[body_start:body_start] = [f"def {fn_name}(focus, env):", *cache]
        return "\n".join(self.lines)

    # dispatch
    def expr(self, node: Tree, focus: Focus, ind: int) -> Code:
        if focus[0] == "I" and self.lazy:
            key = (repr(node), focus[1])
            local = self.lazy.pop(key, None)
            if local is not None:  # written more than once for this item (see loop()): computed once
                self.emit(ind, f"if {local} is _UNSET:")
                value = self.as_list(self.expr(node, focus, ind + 1))
                self.emit(ind + 1, f"{local} = {value}")
                self.lazy[key] = local
                return local, "L"
        kind = node[0]
        if kind == "binary":
            method = self._BINARY.get(node[1])
            if method is None:
                raise Unsupported(f"operator {node[1]}")
            code: Code = method(self, node, focus, ind)
            return code
        handler = {"lit": Generator.literal, "empty": Generator.empty, "var": Generator.variable,
                   "this": Generator.this, "total": Generator.total, "member": Generator.member,
                   "call": Generator.call, "member_in": Generator.member_in}.get(kind)
        if handler is None:
            raise Unsupported({"unary": "unary + or -", "indexer": "indexer [ ]", "index": "$index",
                               "type": "is/as"}.get(kind, kind))
        return handler(self, node, focus, ind)

    def literal(self, node: Tree, focus: Focus, ind: int) -> Code:
        value = node[1]
        if type(value) is bool:
            return ("True" if value else "False"), "T"
        if type(value) is str:
            return f"[{value!r}]", "L"
        if type(value) is int:
            return f"[{value}]", "L"
        if type(value) is Decimal:
            return f"[{self.constant(value)}]", "L"
        if type(value) in (FDate, FDateTime):
            # records carry dates as JSON strings: the literal as one (compared as a date, see _temporal)
            return f"[{value.text()!r}]", "L"
        if type(value) is Quantity:
            if value.unit not in _CALENDAR_DURATIONS:
                raise Unsupported(f"quantity unit '{value.unit}'")
            return f"[{self.constant(value)}]", "L"
        raise Unsupported(f"literal {value!r}")

    def empty(self, node: Tree, focus: Focus, ind: int) -> Code:
        return "[]", "L"

    def variable(self, node: Tree, focus: Focus, ind: int) -> Code:
        name = node[1]
        if name not in self.variables:
            raise Unsupported(f"%{name} is not declared")
        local = self.cached.get(name)
        if local is None:
            local = self.cached[name] = self.tmp("c")
        # read once per evaluation, and only when reached (a fact is computed on its first read)
        self.emit(ind, f"if {local} is _UNSET:")
        self.emit(ind + 1, f"{local} = env[{name!r}]" if name in self.lists else f"{local} = _var(env, {name!r})")
        return local, "L"

    def this(self, node: Tree, focus: Focus, ind: int) -> Code:
        return self.list_of(focus), "L"

    def total(self, node: Tree, focus: Focus, ind: int) -> Code:
        if not self.totals:
            raise Unsupported("$total outside aggregate()")
        return self.totals[-1], "L"

    def member(self, node: Tree, focus: Focus, ind: int) -> Code:
        if node[1] is None:
            name = node[2]
            if name[:1].isupper():  # ``Condition.code``: a leading type name filters the focus by type
                return f"_of_resource_type({self.list_of(focus)}, {name!r})", "L"
            return self.navigate(focus, (name,), ind), "L"
        base, names = _member_chain(node)
        start = _leading_member(base)
        if start is not None:  # ``period.start``: a path from the focus
            return self.navigate(focus, (start, *names), ind), "L"
        left = self.bind(self.as_list(self.expr(base, focus, ind)), ind)
        return self.navigate(("L", left), tuple(names), ind), "L"

    def call(self, node: Tree, focus: Focus, ind: int) -> Code:
        _, base, name, args = node
        if base is None:
            return self.function_call(node, focus, focus, ind)
        operands = _union_operands(base)
        if len(operands) > 1 and (name, len(args)) == ("first", 0):
            return self.first_of_union(operands, focus, ind)
        left = self.bind(self.as_list(self.expr(base, focus, ind)), ind)
        return self.function_call(node, ("L", left), focus, ind)

    def navigate(self, focus: Focus, names: tuple[str, ...], ind: int) -> str:
        for name in names:
            if name in _EXPANDED_CHOICES:
                raise Unsupported(f"{name}: a choice element is named by its base name (FHIRPath over FHIR)")
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
            self.emit(ind, f"{out} = ({key} if type({var}) is dict and {'_' + names[0]!r} in {var} else []) "
                           f"if {raw} is None "
                           f"else [{raw}] if type({raw}) is not list else {raw}[:] if None not in {raw} else {key}")
            self.available.append((ind, key, out))
            return out
        if kind == "I" and len(names) == 1:  # a choice element of one item (``effective``): inline too
            name = names[0]
            key = f"_nav1({var}, {name!r})"
            self.close(ind)
            for _, known, local in self.available:
                if known == key:
                    return local
            few = _FEW_CHOICES.get(name)
            # _choice_value's lookup, when the item has neither the base name nor its extension-only form;
            # anything unusual (not an object, extensions only, a list with nulls) goes to _nav1
            lookup = (" else ".join(f"{var}[{k!r}] if {k!r} in {var}" for k in few) + " else None" if few
                      else f"_choice_value({var}, {name!r})")
            raw, out = self.tmp("x"), self.tmp("v")
            # the base name itself first (``start`` of a Period is no choice, ``start[x]`` of a Goal is)
            self.emit(ind, f"{raw} = {var}.get({name!r}) if type({var}) is dict else _UNSET")
            self.emit(ind, f"if {raw} is None:")
            self.emit(ind + 1, f"{raw} = ({lookup}) if {'_' + name!r} not in {var} else _UNSET")
            self.emit(ind, f"{out} = {key} if {raw} is _UNSET else [] if {raw} is None "
                           f"else [{raw}] if type({raw}) is not list else {raw}[:] if None not in {raw} else {key}")
            self.available.append((ind, key, out))
            return out
        if kind == "I":
            return f"_path2({var}, {names[0]!r}, {names[1]!r})" if len(names) == 2 else f"_path1({var}, {names!r})"
        # navigating nothing gives nothing: the common empty collection costs no call
        call = f"_nav({var}, {names[0]!r})" if len(names) == 1 else f"_path({var}, {names!r})"
        return f"({call} if {var} else [])" if _IDENT.match(var) else call

    def first_of_union(self, operands: list[Tree], focus: Focus, ind: int) -> Code:
        """``(a | b | c).first()``: the first item of the first operand that has one (a union keeps
        the order of its operands), evaluating the later operands only when the earlier are empty."""
        out = self.tmp("r")
        for depth, operand in enumerate(operands):
            if depth:
                self.emit(ind + depth - 1, f"if not {out}:")
            self.emit(ind + depth, f"{out} = {self.as_list(self.expr(operand, focus, ind + depth))}")
        return f"{out}[:1]", "L"

    # functions
    def function_call(self, inv: Tree, left: Focus, focus: Focus, ind: int) -> Code:
        """``left.name(params)``; ``focus`` is what the arguments of set functions are evaluated on."""
        name, params = inv[2], inv[3]
        n = len(params)
        items = self.list_of(left)
        if name in self.functions or name in self.predicates:
            return self.host(name, params, items, focus, ind)
        if n == 0:
            simple = {"exists": (f"bool({items})", "T"), "empty": (f"(not {items})", "T"),
                      "count": (f"[len({items})]", "L"), "not": (f"_not({items})", "T"),
                      "hasValue": (f"_has_value({items})", "T"), "isDistinct": (f"_is_distinct({items})", "T"),
                      "distinct": (f"_distinct({items})", "L"), "first": (f"{items}[:1]", "L"),
                      "last": (f"{items}[-1:]", "L"), "lower": (f"_case({items}, False)", "L"),
                      "upper": (f"_case({items}, True)", "L"), "toDate": (f"_to_date({items})", "L")}
            if name in simple:
                return simple[name]
        if n == 1 and name in ("where", "select", "exists", "all", "repeat"):
            return self.loop(name, params[0], items, ind)
        if name == "ofType" and n == 1:
            type_name = _type_specifier(params[0])
            if type_name in _PRIMITIVE_TEST:
                return f"_of_primitive({items}, {type_name!r})", "L"
            if not type_name[:1].isupper() or not model.is_resource_type(type_name):
                # a record's JSON names no element types: only resources (resourceType) can be told
                raise Unsupported(f"ofType({type_name}) over an untyped record")
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

    def host(self, name: str, params: list[Tree], items: str, focus: Focus, ind: int) -> Code:
        literals = [_string_literal(p) for p in params]
        if name in self.predicates and all(v is not None for v in literals):
            # memberOf('…'): specialised for its argument, answering true/false/empty directly
            key = ("predicate", name, tuple(str(v) for v in literals))
            predicate = self.constants.get(key) or self.constant(self.predicates[name](key[2]), key)
            return f"{predicate}({items})", "T"
        fn = self.constant(self.functions[name])
        if all(v is not None for v in literals):  # the argument is known now
            args = self.constant([[v] for v in literals], ("arguments", tuple(literals)))
        else:
            args = "[" + ", ".join(self.as_list(self.expr(p, focus, ind)) for p in params) + "]"
        return f"{fn}({items}, {args}, env)", "L"

    def loop(self, name: str, param: Tree, items: str, ind: int) -> Code:
        out, item = self.tmp("r"), self.tmp("i")
        start = {"where": "[]", "select": "[]", "exists": "False", "all": "True", "repeat": "[]"}[name]
        if name == "repeat":
            return self.repeat(param, items, ind)
        self.emit(ind, f"{out} = {start}")
        self.emit(ind, f"for {item} in {items}:")
        code = self.per_item(param, item, ind + 1)
        if name == "select":
            expr, mode = code
            if mode == "T":
                value = self.bind(expr, ind + 1)
                self.emit(ind + 1, f"if {value} is not None:")
                self.emit(ind + 2, f"{out}.append({value})")
            else:
                self.emit(ind + 1, f"{out}.extend({expr})")
            return out, "L"
        test = f"({code[0]}) is True" if code[1] == "T" else f"({code[0]}) == [True]"
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

    def per_item(self, param: Tree, item: str, ind: int) -> Code:
        """``param`` for one item of a loop. A sub-expression written twice for the item (in both branches
        of an or, say) is computed at most once per item: a local per such expression, reset for each."""
        shared = {(text, item): self.tmp("c") for text in _repeated(param)}
        for local in shared.values():
            self.emit(ind, f"{local} = _UNSET")
        self.lazy.update(shared)
        try:
            return self.expr(param, ("I", item), ind)
        finally:
            for key in shared:
                self.lazy.pop(key, None)

    def repeat(self, param: Tree, items: str, ind: int) -> Code:
        out, seen, todo, new, item, value = (self.tmp(p) for p in ("r", "s", "t", "n", "i", "x"))
        self.emit(ind, f"{out} = []")
        self.emit(ind, f"{seen} = set()")
        self.emit(ind, f"{todo} = {items}")
        self.emit(ind, f"while {todo}:")
        self.emit(ind + 1, f"{new} = []")
        self.emit(ind + 1, f"for {item} in {todo}:")
        step = self.as_list(self.expr(param, ("I", item), ind + 2))
        key = self.tmp("k")
        self.emit(ind + 2, f"for {value} in {step}:")
        self.emit(ind + 3, f"{key} = id({value}) if type({value}) is dict else _seen_key({value})")
        self.emit(ind + 3, f"if {key} not in {seen}:")
        self.emit(ind + 4, f"{seen}.add({key})")
        self.emit(ind + 4, f"{new}.append({value})")
        self.emit(ind + 1, f"{out}.extend({new})")
        self.emit(ind + 1, f"{todo} = {new}")
        return out, "L"

    def iif(self, params: list[Tree], left: Focus, ind: int) -> Code:
        out = self.tmp("r")
        if left[0] == "L":  # iif() on more than one item is an error (N1 §5.5.1)
            self.emit(ind, f"_one_or_none({left[1]}, 'iif()')")
        expr, mode = self.expr(params[0], left, ind)
        cond = f"({expr})" if mode == "T" else f"_criterion({expr})"
        self.emit(ind, f"if {cond} is True:")
        self.emit(ind + 1, f"{out} = {self.as_list(self.expr(params[1], left, ind + 1))}")
        self.emit(ind, "else:")
        other = self.as_list(self.expr(params[2], left, ind + 1)) if len(params) == 3 else "[]"
        self.emit(ind + 1, f"{out} = {other}")
        return out, "L"

    def aggregate(self, params: list[Tree], items: str, focus: Focus, ind: int) -> Code:
        total, item = self.tmp("g"), self.tmp("i")
        init = self.as_list(self.expr(params[1], focus, ind)) if len(params) == 2 else "[]"
        self.emit(ind, f"{total} = {init}")
        self.emit(ind, f"for {item} in {items}:")
        self.totals.append(total)
        try:
            step = self.as_list(self.per_item(params[0], item, ind + 1))
        finally:
            self.totals.pop()
        self.emit(ind + 1, f"{total} = {step}")
        return total, "L"

    # operators
    def logic(self, node: Tree, focus: Focus, ind: int, decided: str, answer: str, rest: str) -> Code:
        """A three-valued operator (FHIRPath §6.5): when the left side is ``decided`` the answer is
        ``answer`` and the right side is not evaluated; otherwise ``rest`` (over ``{a}``, ``{b}``)."""
        out = self.tmp("b")
        a = self.bind(self.as_truth(self.expr(node[2], focus, ind)), ind)
        self.emit(ind, f"if {a} is {decided}:")
        self.emit(ind + 1, f"{out} = {answer}")
        self.emit(ind, "else:")
        b = self.bind(self.as_truth(self.expr(node[3], focus, ind + 1)), ind + 1)
        self.emit(ind + 1, f"{out} = " + rest.format(a=a, b=b))
        return out, "T"

    def and_(self, node: Tree, focus: Focus, ind: int) -> Code:
        found = self.member_chain(node, focus, ind, "and", "!=")
        if found is not None:
            return found
        return self.logic(node, focus, ind, "False", "False",
                          "False if {b} is False else True if {a} is True and {b} is True else None")

    def xor(self, node: Tree, focus: Focus, ind: int) -> Code:
        a = self.bind(self.as_truth(self.expr(node[2], focus, ind)), ind)
        b = self.bind(self.as_truth(self.expr(node[3], focus, ind)), ind)
        return f"(None if {a} is None or {b} is None else {a} != {b})", "T"

    def or_(self, node: Tree, focus: Focus, ind: int) -> Code:
        found = self.member_chain(node, focus, ind, "or", "=")
        if found is not None:
            return found
        return self.logic(node, focus, ind, "True", "True",
                          "True if {b} is True else False if {a} is False and {b} is False else None")

    def member_chain(self, node: Tree, focus: Focus, ind: int, op: str, cmp: str) -> Code | None:
        """In ``a and status != 'x' and status != 'y' and b`` (or ``status = 'x' or status = 'y' or …``)
        on one item, each run of two or more comparisons of one element with string literals becomes one
        set lookup (``member_in``). The operators are associative and the operands keep their order, so
        the same operands are evaluated as before."""
        if focus[0] != "I" or self.chains_as_written:
            return None
        operands = _operands(node, op)
        groups: list[Tree] = []
        i = 0
        while i < len(operands):
            name, j = _compared_member(operands[i], cmp), i
            while name is not None and j + 1 < len(operands) and _compared_member(operands[j + 1], cmp) == name:
                j += 1
            if j > i:
                run = operands[i:j + 1]
                groups.append(("member_in", op, cmp, name, [str(o[3][1]) for o in run], _fold(run, op)))
            else:
                groups.append(operands[i])
            i = j + 1
        if len(groups) == len(operands):
            return None
        return self.expr(_fold(groups, op), focus, ind)

    def member_in(self, node: Tree, focus: Focus, ind: int) -> Code:
        """One such run: when the element is one string each comparison is true or false and the run is a
        set lookup; otherwise (absent, a list, extensions only) the comparisons as written decide."""
        _, _, cmp, name, literals, written = node
        item, value, out = focus[1], self.tmp("f"), self.tmp("b")
        self.emit(ind, f"{value} = {item}.get({name!r}) if type({item}) is dict else None")
        self.emit(ind, f"if type({value}) is str:")
        test = "in" if cmp == "=" else "not in"
        self.emit(ind + 1, f"{out} = {value} {test} {self.constant(frozenset(literals), ('set', frozenset(literals)))}")
        self.emit(ind, "else:")
        self.chains_as_written = True
        try:
            chain = self.as_truth(self.expr(written, focus, ind + 1))
        finally:
            self.chains_as_written = False
        self.emit(ind + 1, f"{out} = {chain}")
        return out, "T"

    def implies(self, node: Tree, focus: Focus, ind: int) -> Code:
        return self.logic(node, focus, ind, "False", "True",
                          "True if {b} is True else False if {a} is True and {b} is False else None")

    def equality(self, node: Tree, focus: Focus, ind: int) -> Code:
        same = node[1] == "="
        left_node, right_node = node[2], node[3]
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
        if right_node[0] == "lit" and type(right_node[1]) is bool:  # answer.value = true
            a = self.as_list(self.expr(left_node, focus, ind))
            return f"_eq_bool({a}, {right_node[1]!r}, {same})", "T"
        a = self.bind(self.as_list(self.expr(left_node, focus, ind)), ind)
        b = self.as_list(self.expr(right_node, focus, ind))
        return f"_equal({a}, {b}, {same})", "T"

    def inequality(self, node: Tree, focus: Focus, ind: int) -> Code:
        op = node[1]
        a = self.bind(self.as_list(self.expr(node[2], focus, ind)), ind)
        b = self.bind(self.as_list(self.expr(node[3], focus, ind)), ind)
        c = self.tmp("o")
        self.emit(ind, f"{c} = _compare({a}, {b}) if {a} and {b} else None")  # empty: no call
        return f"(None if {c} is None else {c} {op} 0)", "T"

    def additive(self, node: Tree, focus: Focus, ind: int) -> Code:
        sign = 1 if node[1] == "+" else -1
        if _constant(node):  # e.g. %today - %careContactsWindow: once per evaluation, not per item
            key = " " + repr(node)  # written twice in one definition: still computed once
            local = self.cached.get(key) or self.tmp("c")
            self.cached[key] = local
            self.emit(ind, f"if {local} is _UNSET:")
            a = self.bind(self.as_list(self.expr(node[2], focus, ind + 1)), ind + 1)
            b = self.as_list(self.expr(node[3], focus, ind + 1))
            self.emit(ind + 1, f"{local} = _add({a}, {b}, {sign})")
            return local, "L"
        a = self.bind(self.as_list(self.expr(node[2], focus, ind)), ind)
        b = self.as_list(self.expr(node[3], focus, ind))
        return f"_add({a}, {b}, {sign})", "L"

    def union(self, node: Tree, focus: Focus, ind: int) -> Code:
        # a | b | c as one union of three (the same items, without the intermediate collections)
        parts = [self.bind(self.as_list(self.expr(o, focus, ind)), ind) for o in _union_operands(node)]
        return (f"_union({parts[0]}, {parts[1]})" if len(parts) == 2 else f"_union_all(({', '.join(parts)},))"), "L"

    def membership(self, node: Tree, focus: Focus, ind: int) -> Code:
        op = node[1]
        a = self.bind(self.as_list(self.expr(node[2], focus, ind)), ind)
        b = self.as_list(self.expr(node[3], focus, ind))
        item, collection = (a, b) if op == "in" else (b, a)
        return f"_in({item}, {collection}, {op!r})", "T"

    _BINARY: ClassVar[dict[str, Callable[[Generator, Tree, Focus, int], Code]]] = {
        "and": and_, "or": or_, "xor": xor, "implies": implies, "=": equality, "!=": equality,
        "<": inequality, "<=": inequality, ">": inequality, ">=": inequality, "+": additive, "-": additive,
        "|": union, "in": membership, "contains": membership,
    }


def _union_operands(node: Tree) -> list[Tree]:
    """The operands of ``a | b | c`` (parenthesised or not); ``[node]`` for anything else."""
    if node[0] != "binary" or node[1] != "|":
        return [node]
    return [*_union_operands(node[2]), *_union_operands(node[3])]


def _repeated(tree: Tree) -> list[str]:
    """The texts (repr) of the function calls and unions written at least twice in ``tree``, outermost
    only (what a repeated call contains is computed once with it), none that reads ``$total`` (a
    different value on each step of an aggregate()). Sub-expressions of nested loops are counted too;
    they never match the outer item (the generator looks them up with their own focus)."""
    counts: dict[str, int] = {}

    def cacheable(node: Tree) -> bool:
        return bool(node[0] == "call" or (node[0] == "binary" and node[1] == "|"))

    def children(node: Tree) -> list[Tree]:
        out: list[Tree] = []
        for part in node[1:]:
            if type(part) is tuple and part and type(part[0]) is str:
                out.append(part)
            elif type(part) is list:
                out += [p for p in part if type(p) is tuple]
        return out

    def reads_total(node: Tree) -> bool:
        return node[0] == "total" or any(reads_total(c) for c in children(node))

    def count(node: Tree) -> None:
        if cacheable(node) and not reads_total(node):
            counts[repr(node)] = counts.get(repr(node), 0) + 1
        for child in children(node):
            count(child)

    found: list[str] = []

    def outermost(node: Tree) -> None:
        if counts.get(repr(node), 0) > 1:
            found.append(repr(node))
            return
        for child in children(node):
            outermost(child)

    count(tree)
    outermost(tree)
    return list(dict.fromkeys(found))


def _operands(node: Tree, op: str) -> list[Tree]:
    """The operands of ``a op b op c`` in order (however the chain is grouped)."""
    if node[0] != "binary" or node[1] != op:
        return [node]
    return [*_operands(node[2], op), *_operands(node[3], op)]


def _fold(operands: list[Tree], op: str) -> Tree:
    """``a op b op c`` grouped from the left, as the parser groups it."""
    tree = operands[0]
    for operand in operands[1:]:
        tree = ("binary", op, tree, operand)
    return tree


def _compared_member(node: Tree, cmp: str) -> str | None:
    """``name`` when ``node`` is ``name cmp 'literal'``, the literal a string that is no date (a date
    literal compares as a date)."""
    if node[0] != "binary" or node[1] != cmp:
        return None
    literal = _string_literal(node[3])
    if literal is None or _date_parts(literal) is not None:
        return None
    return _leading_member(node[2])


def _leading_member(node: Tree) -> str | None:
    """``name`` when ``node`` is a bare member name navigated from the focus (not a type name)."""
    if node[0] != "member" or node[1] is not None:
        return None
    name = str(node[2])
    return None if name[:1].isupper() else name


def compile_record_expression(expression: str, variables: set[str], functions: dict[str, HostFunction],
                              name: str = "expression", predicates: dict[str, HostPredicate] | None = None,
                              lists: set[str] | frozenset[str] = frozenset()) -> Fn:
    """A Python function for a fact definition, generated once; raises ``Unsupported`` (with the
    reason) outside the subset, so that a package using more of FHIRPath is refused at start-up
    rather than evaluated slowly, and ``FHIRPathSyntaxError`` for text that is not FHIRPath.
    ``lists`` names the variables the caller guarantees to be in the environment as lists (the
    record's resource lists, the facts of a ``_Record``): read as they are, without ``_var``."""
    tree = parse(expression)
    gen = Generator(variables, functions, predicates or {})
    gen.lists = lists
    source = gen.function(tree, "fact")
    namespace = {**_RUNTIME, **gen.globals}
    exec(compile(source, f"<fact {name}>", "exec"), namespace)  # our own generated source
    fn: Fn = namespace["fact"]
    fn.source = source  # type: ignore[attr-defined]
    return fn
