"""A small FHIRPath compiler for the expressions invariants and rule conditions are made of, with
fhirpathpy as fallback.

Why: fhirpathpy interprets its syntax tree on every call (about 40 µs for ``a.exists() implies
b.exists()``); a questionnaire response alone evaluates ``qrs-1`` on every item. Invariants use a
narrow part of FHIRPath — navigation, ``exists/empty/not/count/where/all/first``, boolean logic,
equality and literals — so this module compiles exactly that part, from fhirpathpy's own parse
tree, into Python closures (about 1 µs), and answers ``None`` for anything else (type operators,
date/quantity comparison, unknown functions, navigation whose type it cannot tell), which then
goes to fhirpathpy unchanged. The guideline's PlanDefinition conditions (``%persistentAlk and
%hasCaseCoordinator.not()``) use the same subset over typed ``%variables`` (the facts the Library
declares), so ``$apply`` evaluates them here too.

Semantics follow FHIRPath N1 (http://hl7.org/fhirpath/N1): collections in and out, empty
propagation for operators, three-valued ``and/or/xor/implies``, singleton evaluation of
collections in boolean context. Choice elements (``value`` → ``valueQuantity``) are resolved with
the same R4 model fhirpathpy uses (``choiceTypePaths``), tracked statically from the focus type.
``tests/test_validation_fhirpath.py`` evaluates every core and package invariant this module
accepts with both engines over a corpus of instances and requires identical results.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache
from typing import Any

from fhirpathpy.models import models
from fhirpathpy.parser import parse as _untyped_parse

_MODEL = models["r4"]
_PATH2TYPE: dict[str, str] = _MODEL["path2Type"]
_CHOICES: dict[str, list[str]] = _MODEL["choiceTypePaths"]
_ELSEWHERE: dict[str, str] = _MODEL["pathsDefinedElsewhere"]
_PARENTS: dict[str, str] = _MODEL["type2Parent"]

Fn = Callable[[list[Any], dict[str, Any]], list[Any]]
_parse: Callable[[str], dict[str, Any]] = _untyped_parse


@lru_cache(maxsize=2048)
def parse(expression: str) -> dict[str, Any]:
    """fhirpathpy's parse tree (parsing costs milliseconds; each expression is parsed once)."""
    return _parse(expression)

BOOL, INT, DEC, STR = "System.Boolean", "System.Integer", "System.Decimal", "System.String"
_NUMERIC = {INT, DEC, "integer", "decimal", "positiveInt", "unsignedInt", "System.Integer", "System.Decimal"}
_STRINGS = {STR, "string", "code", "id", "uri", "url", "canonical", "markdown", "oid", "uuid", "base64Binary"}
_TEMPORAL = {"date", "dateTime", "instant", "time", "System.Date", "System.DateTime", "System.Time"}
_QUANTITIES = {"Quantity", "Age", "Count", "Distance", "Duration", "MoneyQuantity", "SimpleQuantity"}


class Unsupported(Exception):
    """Outside the compiled subset: the caller uses fhirpathpy."""


class NoValue:
    """A primitive that has only extensions (``_name`` without ``name``): it exists, has no value."""

    __slots__ = ("parts",)

    def __init__(self, parts: Any) -> None:
        self.parts = parts


def compile_fast(expression: str, type_path: str, variables: dict[str, str] | None = None) -> Fn | None:
    """Closures for ``expression`` evaluated with a focus of ``type_path``, or None if outside the subset.

    ``variables`` maps the ``%name``s the expression may use to their FHIR type (``integer``,
    ``boolean``…); the closure reads them from its ``env`` (a value or a list of values)."""
    first = type_path.split(".", 1)[0]
    resource_type = first if "Resource" in _chain(first)[1:] else None
    try:
        tree = parse(expression)
        fn, _ = _Compiler(resource_type, variables or {}).expr(tree["children"][0], type_path)
    except Unsupported:
        return None
    except Exception:  # the parser's own errors: leave them to fhirpathpy's message
        return None
    return fn


# ---- static types ------------------------------------------------------------------------------
def _chain(type_path: str) -> list[str]:
    if "." in type_path:
        return [type_path, "BackboneElement", "Element"]
    out = [type_path]
    while out[-1] in _PARENTS:
        out.append(_PARENTS[out[-1]])
    return out


def _child(type_path: str | None, name: str) -> list[tuple[str, str]]:
    """(JSON key, type path of the values found there) for navigating ``name`` from ``type_path``."""
    if type_path is None or type_path.startswith("System.") or type_path in _STRINGS | _NUMERIC | _TEMPORAL | {
            "boolean", "xhtml"}:
        raise Unsupported(f"navigation from {type_path}")
    for base in _chain(type_path):
        path = f"{base}.{name}"
        path = _ELSEWHERE.get(path, path)
        if path in _CHOICES:
            return [(name + t[:1].upper() + t[1:], t[:1].lower() + t[1:] if t[:1].lower() + t[1:] in _PRIMS else t)
                    for t in _CHOICES[path]]
        if path in _PATH2TYPE:
            return [(name, _PATH2TYPE[path])]
    if name[:1].isupper():
        raise Unsupported(f"type name {name}")
    return [(name, f"{_ELSEWHERE.get(type_path + '.' + name, type_path + '.' + name)}")]


_PRIMS = {"base64Binary", "boolean", "canonical", "code", "date", "dateTime", "decimal", "id", "instant", "integer",
          "markdown", "oid", "positiveInt", "string", "time", "unsignedInt", "uri", "url", "uuid"}


def _navigate(items: list[Any], key: str) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if type(item) is not dict:
            continue
        value = item.get(key)
        if type(value) is list:
            parts = item.get("_" + key)
            for i, v in enumerate(value):
                if v is not None:
                    out.append(v)
                elif type(parts) is list and i < len(parts) and parts[i] is not None:
                    out.append(NoValue(parts[i]))
        elif value is not None:
            out.append(value)
        else:
            parts = item.get("_" + key)
            if type(parts) is dict:
                out.append(NoValue(parts))
            elif type(parts) is list:
                out.extend(NoValue(p) for p in parts if p is not None)
    return out


# ---- values ------------------------------------------------------------------------------------
def _truth(items: list[Any]) -> bool | None:
    """Singleton evaluation in a boolean context (FHIRPath §4.5)."""
    if not items:
        return None
    if len(items) > 1:
        raise ValueError("boolean context on a collection of more than one item")
    v = items[0]
    return v if type(v) is bool else True


def _num(v: Any) -> Any:
    return Decimal(str(v)) if type(v) is float else v


def _eq(a: Any, b: Any) -> bool:
    if type(a) is bool or type(b) is bool:
        return type(a) is type(b) and a is b
    if isinstance(a, NoValue) or isinstance(b, NoValue):
        return False
    if isinstance(a, (int, float, Decimal)) and isinstance(b, (int, float, Decimal)):
        return bool(_num(a) == _num(b))
    return bool(a == b)


def _equal(left: list[Any], right: list[Any]) -> list[Any]:
    if not left or not right:
        return []
    if len(left) != len(right):
        return [False]
    return [all(_eq(a, b) for a, b in zip(left, right, strict=True))]


class _Compiler:
    typed = True  # static FHIR types decide what compiles (invariants); record expressions decide at run time

    def __init__(self, resource_type: str | None, variables: dict[str, str]) -> None:
        self.resource_type = resource_type
        self.variables = variables

    def expr(self, node: dict[str, Any], scope: str | None) -> tuple[Fn, str | None]:
        kind = node["type"]
        method = getattr(self, "_" + kind, None)
        if method is None:
            raise Unsupported(kind)
        result: tuple[Fn, str | None] = method(node, scope)
        return result

    # terms
    def _TermExpression(self, node: dict[str, Any], scope: str | None) -> tuple[Fn, str | None]:
        return self.expr(node["children"][0], scope)

    def _ParenthesizedTerm(self, node: dict[str, Any], scope: str | None) -> tuple[Fn, str | None]:
        return self.expr(node["children"][0], scope)

    def _InvocationTerm(self, node: dict[str, Any], scope: str | None) -> tuple[Fn, str | None]:
        inner = node["children"][0]
        if inner["type"] == "ThisInvocation":
            return (lambda focus, env: focus), scope
        return self._invoke(inner, lambda focus, env: focus, scope, scope)

    def _LiteralTerm(self, node: dict[str, Any], scope: str | None) -> tuple[Fn, str | None]:
        lit = node["children"][0]
        text = lit["terminalNodeText"][0] if lit.get("terminalNodeText") else ""
        kind = lit["type"]
        if kind == "NullLiteral":
            return (lambda focus, env: []), None
        if kind == "BooleanLiteral":
            value = text == "true"
            return (lambda focus, env: [value]), BOOL
        if kind == "StringLiteral":
            s = _unescape(text[1:-1])
            return (lambda focus, env: [s]), STR
        if kind == "NumberLiteral":
            if "." in text:
                d = Decimal(text)
                return (lambda focus, env: [d]), DEC
            i = int(text)
            return (lambda focus, env: [i]), INT
        raise Unsupported(kind)

    def _ExternalConstantTerm(self, node: dict[str, Any], scope: str | None) -> tuple[Fn, str | None]:
        ident = node["children"][0]["children"][0]
        name = ident["terminalNodeText"][0] if ident.get("terminalNodeText") else ident.get("text", "")
        if name == "ucum":
            return (lambda focus, env: ["http://unitsofmeasure.org"]), STR
        if name == "resource" and self.resource_type:
            return (lambda focus, env: [env["resource"]] if env.get("resource") is not None else []), self.resource_type
        if name in self.variables:
            def variable(focus: list[Any], env: dict[str, Any]) -> list[Any]:
                value = env.get(name)
                return list(value) if isinstance(value, list) else [] if value is None else [value]
            return variable, self.variables[name]
        raise Unsupported(f"%{name}")

    # invocations
    def _InvocationExpression(self, node: dict[str, Any], scope: str | None) -> tuple[Fn, str | None]:
        left, ltype = self.expr(node["children"][0], scope)
        return self._invoke(node["children"][1], left, ltype, scope)

    def _invoke(self, inv: dict[str, Any], left: Fn, ltype: str | None,
                scope: str | None) -> tuple[Fn, str | None]:
        if inv["type"] == "MemberInvocation":
            name = _identifier(inv["children"][0])
            targets = _child(ltype, name)
            if len(targets) == 1:
                key, t = targets[0]
                return (lambda focus, env: _navigate(left(focus, env), key)), t
            keys = [k for k, _ in targets]
            return (lambda focus, env: [v for k in keys for v in _navigate(left(focus, env), k)]), None
        if inv["type"] == "FunctionInvocation":
            functn = inv["children"][0]
            name = _identifier(functn["children"][0])
            params = functn["children"][1]["children"] if len(functn["children"]) > 1 else []
            return self._function(name, params, left, ltype, scope)
        raise Unsupported(inv["type"])

    def _function(self, name: str, params: list[dict[str, Any]], left: Fn, ltype: str | None,
                  scope: str | None) -> tuple[Fn, str | None]:
        n = len(params)
        if name == "exists" and n == 0:
            return (lambda focus, env: [bool(left(focus, env))]), BOOL
        if name == "empty" and n == 0:
            return (lambda focus, env: [not left(focus, env)]), BOOL
        if name == "count" and n == 0:
            return (lambda focus, env: [len(left(focus, env))]), INT
        if name == "not" and n == 0:
            def not_(focus: list[Any], env: dict[str, Any]) -> list[Any]:
                t = _truth(left(focus, env))
                return [] if t is None else [not t]
            return not_, BOOL
        if name == "hasValue" and n == 0:
            def has_value(focus: list[Any], env: dict[str, Any]) -> list[Any]:
                items = left(focus, env)
                return [len(items) == 1 and type(items[0]) is not dict and not isinstance(items[0], NoValue)]
            return has_value, BOOL
        if name == "first" and n == 0:
            return (lambda focus, env: left(focus, env)[:1]), ltype
        if name == "isDistinct" and n == 0:
            def distinct(focus: list[Any], env: dict[str, Any]) -> list[Any]:
                items = left(focus, env)
                return [all(not _eq(a, b) for i, a in enumerate(items) for b in items[i + 1:])]
            return distinct, BOOL
        if name in ("where", "exists", "all") and n == 1:
            crit, _ = self.expr(params[0], ltype)
            if name == "where":
                return (lambda focus, env: [i for i in left(focus, env) if crit([i], env) == [True]]), ltype
            if name == "exists":
                return (lambda focus, env: [any(crit([i], env) == [True] for i in left(focus, env))]), BOOL
            return (lambda focus, env: [all(crit([i], env) == [True] for i in left(focus, env))]), BOOL
        if name in ("intersect", "combine", "exclude") and n == 1:
            # the argument is evaluated from the same focus as the whole invocation (FHIRPath §5.4)
            other, otype = self.expr(params[0], scope)
            for t in (ltype, otype):
                if t is None or t in _TEMPORAL or t in _QUANTITIES:
                    raise Unsupported(f"{name} on {t}")
            return self._collection_fn(name, left, other), ltype if ltype == otype else None
        if name in ("matches", "startsWith", "endsWith", "contains") and n == 1:
            if ltype not in _STRINGS:
                raise Unsupported(f"{name} on {ltype}")
            arg, atype = self.expr(params[0], None)
            if atype != STR:
                raise Unsupported(f"{name} argument")
            return self._string_fn(name, left, arg), BOOL
        if name == "length" and n == 0 and ltype in _STRINGS:
            def length(focus: list[Any], env: dict[str, Any]) -> list[Any]:
                items = left(focus, env)
                return [len(items[0])] if len(items) == 1 and isinstance(items[0], str) else []
            return length, INT
        raise Unsupported(f"function {name}/{n}")

    def _collection_fn(self, name: str, left: Fn, other: Fn) -> Fn:
        def fn(focus: list[Any], env: dict[str, Any]) -> list[Any]:
            a, b = left(focus, env), other(focus, env)
            if name == "combine":
                return a + b
            if name == "exclude":
                return [x for x in a if not any(_eq(x, y) for y in b)]
            out: list[Any] = []
            for x in a:
                if any(_eq(x, y) for y in b) and not any(_eq(x, o) for o in out):
                    out.append(x)
            return out
        return fn

    def _string_fn(self, name: str, left: Fn, arg: Fn) -> Fn:
        def fn(focus: list[Any], env: dict[str, Any]) -> list[Any]:
            items = left(focus, env)
            if len(items) != 1 or not isinstance(items[0], str):
                if len(items) > 1:
                    raise ValueError(f"{name}() on more than one item")
                return []
            a = arg(focus, env)
            if len(a) != 1 or not isinstance(a[0], str):
                return []
            s, x = items[0], a[0]
            if name == "matches":
                return [re.search(x, s) is not None]
            if name == "startsWith":
                return [s.startswith(x)]
            if name == "endsWith":
                return [s.endswith(x)]
            return [x in s]
        return fn

    # operators
    def _EqualityExpression(self, node: dict[str, Any], scope: str | None) -> tuple[Fn, str | None]:
        op = node["terminalNodeText"][0]
        if op not in ("=", "!="):
            raise Unsupported(op)
        left, lt = self.expr(node["children"][0], scope)
        right, rt = self.expr(node["children"][1], scope)
        for t in (lt, rt):
            if t is None or t in _TEMPORAL or t in _QUANTITIES:
                raise Unsupported(f"equality on {t}")
        if op == "=":
            return (lambda focus, env: _equal(left(focus, env), right(focus, env))), BOOL

        def not_equal(focus: list[Any], env: dict[str, Any]) -> list[Any]:
            r = _equal(left(focus, env), right(focus, env))
            return [not r[0]] if r else []
        return not_equal, BOOL

    def _InequalityExpression(self, node: dict[str, Any], scope: str | None) -> tuple[Fn, str | None]:
        op = node["terminalNodeText"][0]
        left, lt = self.expr(node["children"][0], scope)
        right, rt = self.expr(node["children"][1], scope)
        if not ((lt in _NUMERIC and rt in _NUMERIC) or (lt in _STRINGS and rt in _STRINGS)):
            raise Unsupported(f"comparison of {lt} and {rt}")
        compare: Callable[[Any, Any], bool] = {
            "<": lambda a, b: a < b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b,
        }[op]

        def fn(focus: list[Any], env: dict[str, Any]) -> list[Any]:
            a, b = left(focus, env), right(focus, env)
            if not a or not b:
                return []
            if len(a) > 1 or len(b) > 1:
                raise ValueError("comparison of collections")
            x, y = a[0], b[0]
            if isinstance(x, NoValue) or isinstance(y, NoValue) or type(x) is bool or type(y) is bool:
                return []
            if isinstance(x, str) != isinstance(y, str):
                return []
            return [compare(_num(x), _num(y))]
        return fn, BOOL

    def _AndExpression(self, node: dict[str, Any], scope: str | None) -> tuple[Fn, str | None]:
        left, _ = self.expr(node["children"][0], scope)
        right, _ = self.expr(node["children"][1], scope)

        def fn(focus: list[Any], env: dict[str, Any]) -> list[Any]:
            a = _truth(left(focus, env))
            if a is False:
                return [False]
            b = _truth(right(focus, env))
            if b is False:
                return [False]
            return [True] if a and b else []
        return fn, BOOL

    def _OrExpression(self, node: dict[str, Any], scope: str | None) -> tuple[Fn, str | None]:
        op = node["terminalNodeText"][0]
        left, _ = self.expr(node["children"][0], scope)
        right, _ = self.expr(node["children"][1], scope)
        if op == "xor":
            def xor(focus: list[Any], env: dict[str, Any]) -> list[Any]:
                a, b = _truth(left(focus, env)), _truth(right(focus, env))
                return [] if a is None or b is None else [a != b]
            return xor, BOOL

        def or_(focus: list[Any], env: dict[str, Any]) -> list[Any]:
            a = _truth(left(focus, env))
            if a is True:
                return [True]
            b = _truth(right(focus, env))
            if b is True:
                return [True]
            return [False] if a is False and b is False else []
        return or_, BOOL

    def _ImpliesExpression(self, node: dict[str, Any], scope: str | None) -> tuple[Fn, str | None]:
        left, _ = self.expr(node["children"][0], scope)
        right, _ = self.expr(node["children"][1], scope)

        def fn(focus: list[Any], env: dict[str, Any]) -> list[Any]:
            a = _truth(left(focus, env))
            if a is False:
                return [True]
            b = _truth(right(focus, env))
            if b is True:
                return [True]
            if a is True and b is False:
                return [False]
            return []
        return fn, BOOL

    def _UnionExpression(self, node: dict[str, Any], scope: str | None) -> tuple[Fn, str | None]:
        left, lt = self.expr(node["children"][0], scope)
        right, rt = self.expr(node["children"][1], scope)

        def fn(focus: list[Any], env: dict[str, Any]) -> list[Any]:
            out: list[Any] = []
            for v in left(focus, env) + right(focus, env):
                if not any(_eq(v, o) for o in out):
                    out.append(v)
            return out
        return fn, lt if lt == rt else None

    def _MembershipExpression(self, node: dict[str, Any], scope: str | None) -> tuple[Fn, str | None]:
        op = node["terminalNodeText"][0]
        left, lt = self.expr(node["children"][0], scope)
        right, rt = self.expr(node["children"][1], scope)
        for t in (lt, rt):
            if self.typed and (t is None or t in _TEMPORAL or t in _QUANTITIES):
                raise Unsupported(f"membership on {t}")
        item_fn, coll_fn = (left, right) if op == "in" else (right, left)

        def fn(focus: list[Any], env: dict[str, Any]) -> list[Any]:
            item = item_fn(focus, env)
            if not item:
                return []
            if len(item) > 1:
                raise ValueError(f"'{op}' with more than one item")
            return [any(_eq(item[0], c) for c in coll_fn(focus, env))]
        return fn, BOOL


_CONSTANTS = itertools.count()


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


def _identifier(node: dict[str, Any]) -> str:
    text = node["terminalNodeText"][0] if node.get("terminalNodeText") else node.get("text", "")
    return str(text).strip("`")


def _unescape(s: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r", "f": "\f"}.get(m.group(1), m.group(1)), s)


# ---- record expressions (the facts of Library/alk-facts) ---------------------------------------
# Fact definitions read EHR records whose element types vary (a union of Conditions from the list and
# from EpisodeOfCare.diagnosis, ``answer.value`` of any type, ``performed`` as dateTime or Period), so
# they are compiled without static types: navigation follows the JSON (a choice element ``onset`` is
# found as ``onsetDateTime``/``onsetPeriod``…, using the R4 model's choice names), and comparisons
# decide at run time between numbers, FHIR dates/dateTimes (compared at their common precision, empty
# when undecided, FHIRPath §6.1.5) and strings. The few FHIR-specific functions the facts need
# (``memberOf``, ``resolve``, and our ``namesMemberOf``) are supplied by the caller, so that this
# module stays free of terminology and of the record index. tests/test_facts.py evaluates every fact
# of the package with fhirpathpy (given the same functions) over every example record and requires the
# same values.

_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2})"
                   r"(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?)?)?$")
_CALENDAR_UNITS = {"year": "year", "years": "year", "month": "month", "months": "month", "week": "week",
                   "weeks": "week", "day": "day", "days": "day", "'a'": "year", "'mo'": "month", "'wk'": "week",
                   "'d'": "day"}
_CHOICE_SUFFIXES: dict[str, tuple[str, ...]] = {}
for _path, _types in _CHOICES.items():
    _name = _path.rsplit(".", 1)[-1]
    _CHOICE_SUFFIXES[_name] = tuple(sorted(set(_CHOICE_SUFFIXES.get(_name, ()))
                                           | {t[:1].upper() + t[1:] for t in _types}))
_CHOICE_KEYS: dict[str, frozenset[str]] = {n: frozenset(n + t for t in ts) for n, ts in _CHOICE_SUFFIXES.items()}
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


@lru_cache(maxsize=4096)
def _parsed_date(value: str) -> tuple[int, ...] | None:
    m = _DATE.match(value)
    if m is None:
        return None
    return tuple(int(g) for g in m.groups() if g is not None)


def _compare_dates(a: tuple[int, ...], b: tuple[int, ...]) -> int | None:
    """-1/0/1, or None when the common precision cannot decide (FHIRPath §6.1.5, no timezone shift)."""
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
    for key in item:
        if key in keys:
            return item[key]
    return None


def _dyn_navigate(items: list[Any], name: str) -> list[Any]:
    if len(items) == 1 and type(items[0]) is dict:  # the common case inside where()/select()
        value = items[0].get(name)
        if value is None:
            value = _choice_value(items[0], name)
            if value is None:
                return []
        return [v for v in value if v is not None] if type(value) is list else [value]
    out: list[Any] = []
    for item in items:
        if type(item) is not dict:
            continue
        value = item.get(name)
        if value is None:
            value = _choice_value(item, name)
            if value is None:
                continue
        if type(value) is list:
            out.extend(v for v in value if v is not None)
        else:
            out.append(value)
    return out


def _dyn_compare(x: Any, y: Any) -> int | None:
    if type(x) is bool or type(y) is bool or isinstance(x, NoValue) or isinstance(y, NoValue):
        return None
    if isinstance(x, (int, float, Decimal)) and isinstance(y, (int, float, Decimal)):
        a, b = _num(x), _num(y)
        return 0 if a == b else -1 if a < b else 1
    if isinstance(x, str) and isinstance(y, str):
        dx, dy = _date_parts(x), _date_parts(y)
        if dx is not None and dy is not None:
            return _compare_dates(dx, dy)
        if dx is None and dy is None:
            return 0 if x == y else -1 if x < y else 1
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


def compile_record_expression(expression: str, variables: set[str], functions: dict[str, HostFunction]) -> Fn:
    """Closures for a fact definition; raises ``Unsupported`` (with the reason) outside the subset, so
    that a package using more of FHIRPath is refused at start-up rather than evaluated slowly."""
    tree = parse(expression)
    fn, _ = _RecordCompiler(None, {v: "" for v in variables}, functions).expr(tree["children"][0], None)
    return fn


def _union(a: list[Any], b: list[Any]) -> list[Any]:
    """``a | b`` without duplicates (FHIRPath §6.5): record elements by identity, strings, numbers and
    booleans by value (hashed), anything else by FHIRPath equality."""
    if not b and len(a) <= 1:
        return a
    out: list[Any] = []
    seen: set[Any] = set()
    for v in (*a, *b):
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


def _member_chain(node: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``x.a.b.c`` as (x, [a, b, c]): a path navigated in one closure instead of one per step."""
    names: list[str] = []
    while node.get("type") == "InvocationExpression" and node["children"][1]["type"] == "MemberInvocation":
        names.append(_identifier(node["children"][1]["children"][0]))
        node = node["children"][0]
    return node, names[::-1]


class _RecordCompiler(_Compiler):
    typed = False

    def __init__(self, resource_type: str | None, variables: dict[str, str],
                 functions: dict[str, HostFunction]) -> None:
        super().__init__(resource_type, variables)
        self.functions = functions

    def _InvocationExpression(self, node: dict[str, Any], scope: str | None) -> tuple[Fn, str | None]:
        base_node, names = _member_chain(node)
        if len(names) < 2:
            return super()._InvocationExpression(node, scope)
        base, _ = self.expr(base_node, scope)
        path = tuple(names)

        def navigate(focus: list[Any], env: dict[str, Any]) -> list[Any]:
            items = base(focus, env)
            for name in path:
                if not items:
                    return items
                items = _dyn_navigate(items, name)
            return items
        return navigate, None

    def _ExternalConstantTerm(self, node: dict[str, Any], scope: str | None) -> tuple[Fn, str | None]:
        ident = node["children"][0]["children"][0]
        name = str(ident["terminalNodeText"][0] if ident.get("terminalNodeText") else ident.get("text", "")).strip("`")
        if name not in self.variables:
            raise Unsupported(f"%{name} is not declared")

        def variable(focus: list[Any], env: dict[str, Any]) -> list[Any]:
            try:  # env[...] so that a lazily computed fact is computed on its first read
                value = env[name]  # closures never change a collection they are given: no copy
            except KeyError:
                return []
            return value if type(value) is list else [] if value is None else [value]
        return variable, None

    def _LiteralTerm(self, node: dict[str, Any], scope: str | None) -> tuple[Fn, str | None]:
        lit = node["children"][0]
        kind = lit["type"]
        if kind in ("DateTimeLiteral", "DateLiteral"):
            text = lit["terminalNodeText"][0][1:]
            if _date_parts(text) is None:
                raise Unsupported(f"date literal {text}")
            return (lambda focus, env: [text]), None
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
            quantity = Quantity(value, unit)
            return (lambda focus, env: [quantity]), None
        fn, _ = super()._LiteralTerm(node, scope)
        return fn, None

    def _InvocationTerm(self, node: dict[str, Any], scope: str | None) -> tuple[Fn, str | None]:
        inner = node["children"][0]
        if inner["type"] == "TotalInvocation":
            return (lambda focus, env: list(env.get("$total") or [])), None
        if inner["type"] == "ThisInvocation":
            return (lambda focus, env: focus), None
        if inner["type"] == "MemberInvocation":
            name = _identifier(inner["children"][0])
            # a leading type name (``Condition.code``) filters the focus by type, as FHIRPath says
            if name[:1].isupper():
                return (lambda focus, env: [i for i in focus
                                            if type(i) is dict and i.get("resourceType") == name]), None
            return (lambda focus, env: _dyn_navigate(focus, name)), None
        return self._invoke(inner, lambda focus, env: focus, None, None)

    def _invoke(self, inv: dict[str, Any], left: Fn, ltype: str | None,
                scope: str | None) -> tuple[Fn, str | None]:
        if inv["type"] == "MemberInvocation":
            name = _identifier(inv["children"][0])
            return (lambda focus, env: _dyn_navigate(left(focus, env), name)), None
        return super()._invoke(inv, left, ltype, scope)

    def _function(self, name: str, params: list[dict[str, Any]], left: Fn, ltype: str | None,
                  scope: str | None) -> tuple[Fn, str | None]:
        n = len(params)
        if name in self.functions:
            host = self.functions[name]
            literals = [_string_literal(p) for p in params]
            if all(v is not None for v in literals):  # memberOf('…'): the argument is known now
                fixed = [[v] for v in literals]

                def call_fixed(focus: list[Any], env: dict[str, Any]) -> list[Any]:
                    return host(left(focus, env), fixed, env)
                return call_fixed, None
            args = [self.expr(p, None)[0] for p in params]

            def call(focus: list[Any], env: dict[str, Any]) -> list[Any]:
                return host(left(focus, env), [a(focus, env) for a in args], env)
            return call, None
        if name == "select" and n == 1:
            proj, _ = self.expr(params[0], None)
            return (lambda focus, env: [v for i in left(focus, env) for v in proj([i], env)]), None
        if name == "repeat" and n == 1:
            step, _ = self.expr(params[0], None)

            def repeat(focus: list[Any], env: dict[str, Any]) -> list[Any]:
                out: list[Any] = []
                todo = left(focus, env)
                while todo:
                    found = [v for i in todo for v in step([i], env)]
                    new = [v for v in found if not any(v is o for o in out)]
                    out.extend(new)
                    todo = new
                return out
            return repeat, None
        if name == "distinct" and n == 0:
            def distinct(focus: list[Any], env: dict[str, Any]) -> list[Any]:
                out: list[Any] = []
                for v in left(focus, env):
                    if not any(_eq(v, o) for o in out):
                        out.append(v)
                return out
            return distinct, None
        if name == "ofType" and n == 1:
            type_name = _type_specifier(params[0])
            test = _PRIMITIVE_TEST.get(type_name)
            if test is None:
                if not type_name[:1].isupper():
                    raise Unsupported(f"ofType({type_name})")
                return (lambda focus, env: [i for i in left(focus, env)
                                            if type(i) is dict and i.get("resourceType") == type_name]), None
            return (lambda focus, env: [i for i in left(focus, env) if test(i)]), None
        if name == "iif" and n in (2, 3):
            cond, _ = self.expr(params[0], None)
            then, _ = self.expr(params[1], None)
            other = self.expr(params[2], None)[0] if n == 3 else (lambda focus, env: [])

            def iif(focus: list[Any], env: dict[str, Any]) -> list[Any]:
                return then(focus, env) if _truth(cond(focus, env)) is True else other(focus, env)
            return (lambda focus, env: iif(left(focus, env), env)), None
        if name == "aggregate" and n in (1, 2):
            step, _ = self.expr(params[0], None)
            init = self.expr(params[1], None)[0] if n == 2 else None

            def aggregate(focus: list[Any], env: dict[str, Any]) -> list[Any]:
                # $total is set in the environment itself (not a copy): a lazily computed fact read
                # inside the step must land where the next read finds it
                total = init(focus, env) if init else []
                outer = env.pop("$total", None)
                try:
                    for item in left(focus, env):
                        env["$total"] = total
                        total = step([item], env)
                finally:
                    env.pop("$total", None)
                    if outer is not None:
                        env["$total"] = outer
                return total
            return aggregate, None
        if name in ("lower", "upper") and n == 0:
            def case(focus: list[Any], env: dict[str, Any]) -> list[Any]:
                items = left(focus, env)
                if len(items) != 1 or not isinstance(items[0], str):
                    return []
                return [items[0].lower() if name == "lower" else items[0].upper()]
            return case, None
        if name in ("where", "exists", "all") and n == 1:  # the typed compiler's, with no static types here
            return super()._function(name, params, left, ltype, scope)
        if name in ("first", "last") and n == 0:
            return (lambda focus, env: left(focus, env)[:1] if name == "first" else left(focus, env)[-1:]), None
        if name in ("startsWith", "endsWith", "contains", "matches") and n == 1:
            arg, _ = self.expr(params[0], None)
            return self._string_fn(name, left, arg), BOOL
        if name in ("intersect", "combine", "exclude") and n == 1:
            other, _ = self.expr(params[0], scope)
            return self._collection_fn(name, left, other), None
        if name in ("exists", "empty", "count", "not", "hasValue") and n == 0:
            return super()._function(name, params, left, ltype, scope)
        raise Unsupported(f"function {name}/{n}")

    def _EqualityExpression(self, node: dict[str, Any], scope: str | None) -> tuple[Fn, str | None]:
        op = node["terminalNodeText"][0]
        if op not in ("=", "!="):
            raise Unsupported(op)
        left, _ = self.expr(node["children"][0], scope)
        right, _ = self.expr(node["children"][1], scope)
        literal = _string_literal(node["children"][1])
        if literal is not None and _date_parts(literal) is None:  # status = 'active': the common case
            same = op == "="

            def equal_literal(focus: list[Any], env: dict[str, Any]) -> list[Any]:
                a = left(focus, env)
                if len(a) == 1 and type(a[0]) is str:
                    return [(a[0] == literal) == same]
                return [] if not a else [not same] if len(a) > 1 else (
                    [] if (r := _dyn_eq(a[0], literal)) is None else [r == same])
            return equal_literal, BOOL

        def equal(focus: list[Any], env: dict[str, Any]) -> list[Any]:
            a, b = left(focus, env), right(focus, env)
            if not a or not b:
                return []
            if len(a) == 1 == len(b):
                r = _dyn_eq(a[0], b[0])
                return [] if r is None else [r == (op == "=")]
            if len(a) != len(b):
                return [op == "!="]
            results = [_dyn_eq(x, y) for x, y in zip(a, b, strict=True)]
            if any(r is False for r in results):
                return [op == "!="]
            if any(r is None for r in results):
                return []
            return [op == "="]
        return equal, BOOL

    def _InequalityExpression(self, node: dict[str, Any], scope: str | None) -> tuple[Fn, str | None]:
        op = node["terminalNodeText"][0]
        left, _ = self.expr(node["children"][0], scope)
        right, _ = self.expr(node["children"][1], scope)
        accept: dict[str, Callable[[int], bool]] = {
            "<": lambda c: c < 0, ">": lambda c: c > 0, "<=": lambda c: c <= 0, ">=": lambda c: c >= 0}
        test = accept[op]

        def fn(focus: list[Any], env: dict[str, Any]) -> list[Any]:
            a, b = left(focus, env), right(focus, env)
            if not a or not b:
                return []
            if len(a) > 1 or len(b) > 1:
                raise ValueError("comparison of collections")
            c = _dyn_compare(a[0], b[0])
            return [] if c is None else [test(c)]
        return fn, BOOL

    def _AdditiveExpression(self, node: dict[str, Any], scope: str | None) -> tuple[Fn, str | None]:
        op = node["terminalNodeText"][0]
        if op not in ("+", "-"):
            raise Unsupported(op)
        left, _ = self.expr(node["children"][0], scope)
        right, _ = self.expr(node["children"][1], scope)
        sign = 1 if op == "+" else -1
        if _constant(node):  # e.g. %today - %careContactsWindow: once per evaluation, not per item
            key = f" constant {next(_CONSTANTS)}"  # an env key no FHIRPath %name can reach

            def once(focus: list[Any], env: dict[str, Any]) -> list[Any]:
                found = env.get(key)
                if found is None:
                    found = env[key] = fn([], env)
                return list(found)

        def fn(focus: list[Any], env: dict[str, Any]) -> list[Any]:
            a, b = left(focus, env), right(focus, env)
            if len(a) != 1 or len(b) != 1:
                return []
            x, y = a[0], b[0]
            if isinstance(y, Quantity) and isinstance(x, str):
                shifted = _shift(x, y, sign)
                return [] if shifted is None else [shifted]
            if type(x) in (int, Decimal) and type(y) in (int, Decimal):
                return [x + y if sign == 1 else x - y]
            return []
        return (once if _constant(node) else fn), None

    def _UnionExpression(self, node: dict[str, Any], scope: str | None) -> tuple[Fn, str | None]:
        left, _ = self.expr(node["children"][0], scope)
        right, _ = self.expr(node["children"][1], scope)

        def fn(focus: list[Any], env: dict[str, Any]) -> list[Any]:
            return _union(left(focus, env), right(focus, env))
        return fn, None
