"""A small FHIRPath compiler for the expressions invariants and rule conditions are made of, with
our interpreter (``alk_fhir.fhirpath``) for the rest.

Why: fhirpathpy interprets its syntax tree on every call (about 40 µs for ``a.exists() implies
b.exists()``); a questionnaire response alone evaluates ``qrs-1`` on every item. Invariants use a
narrow part of FHIRPath — navigation, ``exists/empty/not/count/where/all/first``, boolean logic,
equality and literals — so this module compiles exactly that part, from the syntax tree of our
parser (``alk_fhir.fhirpath.parser``, shared with the interpreter and ``recordpath``), into
Python closures (about 1 µs), and answers ``None`` for anything else (type operators,
date/quantity comparison, unknown functions, navigation whose type it cannot tell), which then
goes to the interpreter. Equality and ``matches()`` are the interpreter's own (``values.equal``,
``functions.regex``). The guideline's PlanDefinition conditions (``%persistentAlk and
%hasCaseCoordinator.not()``) use the same subset over typed ``%variables`` (the facts the Library
declares), so ``$apply`` evaluates them here too. The facts themselves, FHIRPath over records whose
types vary, are compiled by ``alk_fhir.recordpath`` (which shares this module's parser and values).

Semantics follow FHIRPath N1 (http://hl7.org/fhirpath/N1): collections in and out, empty
propagation for operators, three-valued ``and/or/xor/implies``, singleton evaluation of
collections in boolean context. Choice elements (``value`` → ``valueQuantity``) are resolved with
the same R4 model fhirpathpy uses (``choiceTypePaths``), tracked statically from the focus type.
``tests/test_validation_fhirpath.py`` evaluates every core and package invariant this module
accepts with fhirpathpy too over a corpus of instances and requires identical results;
``tests/test_fhirpath_suite.py`` runs the HL7 FHIRPath suite through it (0 wrong answers).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache
from typing import Any

from fhirpathpy.models import models

from alk_fhir.fhirpath import model as _model
from alk_fhir.fhirpath.engine import Unsupported
from alk_fhir.fhirpath.functions import regex
from alk_fhir.fhirpath.parser import Node as Tree
from alk_fhir.fhirpath.parser import parse as _parse_text
from alk_fhir.fhirpath.values import FHIRPathEvaluationError, equal

_MODEL = models["r4"]
_PATH2TYPE: dict[str, str] = _MODEL["path2Type"]
_CHOICES: dict[str, list[str]] = _MODEL["choiceTypePaths"]
_ELSEWHERE: dict[str, str] = _MODEL["pathsDefinedElsewhere"]
_PARENTS: dict[str, str] = _MODEL["type2Parent"]

Fn = Callable[[list[Any], dict[str, Any]], list[Any]]


@lru_cache(maxsize=2048)
def parse(expression: str) -> Tree:
    """Our parser's syntax tree (``alk_fhir.fhirpath.parser``), once per expression."""
    return _parse_text(expression)

BOOL, INT, DEC, STR = "System.Boolean", "System.Integer", "System.Decimal", "System.String"
_NUMERIC = {INT, DEC, "integer", "decimal", "positiveInt", "unsignedInt", "System.Integer", "System.Decimal"}
_STRINGS = {STR, "string", "code", "id", "uri", "url", "canonical", "markdown", "oid", "uuid", "base64Binary"}
_TEMPORAL = {"date", "dateTime", "instant", "time", "System.Date", "System.DateTime", "System.Time"}
_QUANTITIES = {"Quantity", "Age", "Count", "Distance", "Duration", "MoneyQuantity", "SimpleQuantity"}


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
        fn, _ = _Compiler(resource_type, variables or {}).expr(tree, type_path)
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
        if path in _model.CHOICE_NAMES:
            raise Unsupported(f"{name}: a choice element is named by its base name")
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
    """``=`` of two items is ``values.equal`` (the one definition); a primitive without a value
    equals nothing. Only ``True`` counts: an undecided comparison is not equal here."""
    kind = type(a)
    if kind is type(b) and (kind is str or kind is bool or kind is int or kind is dict):  # common: no call
        return bool(a == b)
    if isinstance(a, NoValue) or isinstance(b, NoValue):
        return False
    return equal(_num(a), _num(b)) is True


def _equal(left: list[Any], right: list[Any]) -> list[Any]:
    if not left or not right:
        return []
    if len(left) != len(right):
        return [False]
    return [all(_eq(a, b) for a, b in zip(left, right, strict=True))]


def collection_op(name: str, a: list[Any], b: list[Any]) -> list[Any]:
    """``intersect``, ``combine`` and ``exclude`` (FHIRPath §6.5), by FHIRPath equality."""
    if name == "combine":
        return a + b
    if name == "exclude":
        return [x for x in a if not any(_eq(x, y) for y in b)]
    out: list[Any] = []
    for x in a:
        if any(_eq(x, y) for y in b) and not any(_eq(x, o) for o in out):
            out.append(x)
    return out


def string_test(name: str, items: list[Any], arg: list[Any]) -> bool | None:
    """``matches``, ``startsWith``, ``endsWith``, ``contains`` of one string (None: empty result)."""
    if len(items) != 1 or not isinstance(items[0], str):
        if len(items) > 1:
            raise ValueError(f"{name}() on more than one item")
        if items and not isinstance(items[0], NoValue):
            raise FHIRPathEvaluationError(f"{name}() on a {type(items[0]).__name__}, not a string")
        return None
    if len(arg) != 1 or not isinstance(arg[0], str):
        return None
    s, x = items[0], arg[0]
    if name == "matches":  # single-line mode: '.' matches a new line too (N1 §5.6.9)
        return regex(x).search(s) is not None
    if name == "startsWith":
        return s.startswith(x)
    if name == "endsWith":
        return s.endswith(x)
    return x in s


class _Compiler:
    def __init__(self, resource_type: str | None, variables: dict[str, str]) -> None:
        self.resource_type = resource_type
        self.variables = variables

    def expr(self, node: Tree, scope: str | None) -> tuple[Fn, str | None]:
        kind = node[0]
        if kind == "binary":
            method = _BINARY.get(node[1])
            if method is None:
                raise Unsupported(f"operator {node[1]}")
            return method(self, node, scope)
        handler = {"lit": _Compiler.literal, "empty": _Compiler.empty, "var": _Compiler.variable,
                   "this": _Compiler.this, "member": _Compiler.member, "call": _Compiler.call}.get(kind)
        if handler is None:
            raise Unsupported(kind)
        return handler(self, node, scope)

    # terms
    def literal(self, node: Tree, scope: str | None) -> tuple[Fn, str | None]:
        value = node[1]
        if type(value) is bool:
            return (lambda focus, env: [value]), BOOL
        if type(value) is str:
            return (lambda focus, env: [value]), STR
        if type(value) is int:
            return (lambda focus, env: [value]), INT
        if type(value) is Decimal:
            return (lambda focus, env: [value]), DEC
        raise Unsupported(f"literal {value!r}")

    def empty(self, node: Tree, scope: str | None) -> tuple[Fn, str | None]:
        return (lambda focus, env: []), None

    def this(self, node: Tree, scope: str | None) -> tuple[Fn, str | None]:
        return (lambda focus, env: focus), scope

    def variable(self, node: Tree, scope: str | None) -> tuple[Fn, str | None]:
        name = node[1]
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

    def member(self, node: Tree, scope: str | None) -> tuple[Fn, str | None]:
        _, base, name = node
        if base is None:
            left: Fn = _identity
            ltype = scope
        else:
            left, ltype = self.expr(base, scope)
        targets = _child(ltype, name)
        if len(targets) == 1:
            key, t = targets[0]
            return (lambda focus, env: _navigate(left(focus, env), key)), t
        keys = [k for k, _ in targets]
        return (lambda focus, env: [v for k in keys for v in _navigate(left(focus, env), k)]), None

    def call(self, node: Tree, scope: str | None) -> tuple[Fn, str | None]:
        _, base, name, args = node
        if base is None:
            return self._function(name, args, _identity, scope, scope)
        left, ltype = self.expr(base, scope)
        return self._function(name, args, left, ltype, scope)

    def _function(self, name: str, params: list[Tree], left: Fn, ltype: str | None,
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
        return lambda focus, env: collection_op(name, left(focus, env), other(focus, env))

    def _string_fn(self, name: str, left: Fn, arg: Fn) -> Fn:
        def fn(focus: list[Any], env: dict[str, Any]) -> list[Any]:
            t = string_test(name, left(focus, env), arg(focus, env))
            return [] if t is None else [t]
        return fn

    # operators
    def equality(self, node: Tree, scope: str | None) -> tuple[Fn, str | None]:
        op = node[1]
        left, lt = self.expr(node[2], scope)
        right, rt = self.expr(node[3], scope)
        for t in (lt, rt):
            if t is None or t in _TEMPORAL or t in _QUANTITIES:
                raise Unsupported(f"equality on {t}")
        if op == "=":
            return (lambda focus, env: _equal(left(focus, env), right(focus, env))), BOOL

        def not_equal(focus: list[Any], env: dict[str, Any]) -> list[Any]:
            r = _equal(left(focus, env), right(focus, env))
            return [not r[0]] if r else []
        return not_equal, BOOL

    def inequality(self, node: Tree, scope: str | None) -> tuple[Fn, str | None]:
        op = node[1]
        left, lt = self.expr(node[2], scope)
        right, rt = self.expr(node[3], scope)
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
            if isinstance(x, (dict, list)) or isinstance(y, (dict, list)):  # malformed input: not a primitive
                raise ValueError("comparison of a non-primitive value")
            return [compare(_num(x), _num(y))]
        return fn, BOOL

    def and_(self, node: Tree, scope: str | None) -> tuple[Fn, str | None]:
        left, _ = self.expr(node[2], scope)
        right, _ = self.expr(node[3], scope)

        def fn(focus: list[Any], env: dict[str, Any]) -> list[Any]:
            a = _truth(left(focus, env))
            if a is False:
                return [False]
            b = _truth(right(focus, env))
            if b is False:
                return [False]
            return [True] if a and b else []
        return fn, BOOL

    def or_(self, node: Tree, scope: str | None) -> tuple[Fn, str | None]:
        op = node[1]
        left, _ = self.expr(node[2], scope)
        right, _ = self.expr(node[3], scope)
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

    def implies(self, node: Tree, scope: str | None) -> tuple[Fn, str | None]:
        left, _ = self.expr(node[2], scope)
        right, _ = self.expr(node[3], scope)

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

    def union(self, node: Tree, scope: str | None) -> tuple[Fn, str | None]:
        left, lt = self.expr(node[2], scope)
        right, rt = self.expr(node[3], scope)

        def fn(focus: list[Any], env: dict[str, Any]) -> list[Any]:
            out: list[Any] = []
            for v in left(focus, env) + right(focus, env):
                if not any(_eq(v, o) for o in out):
                    out.append(v)
            return out
        return fn, lt if lt == rt else None

    def membership(self, node: Tree, scope: str | None) -> tuple[Fn, str | None]:
        op = node[1]
        left, lt = self.expr(node[2], scope)
        right, rt = self.expr(node[3], scope)
        for t in (lt, rt):
            if t is None or t in _TEMPORAL or t in _QUANTITIES:
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




def _identity(focus: list[Any], env: dict[str, Any]) -> list[Any]:
    return focus


_BINARY: dict[str, Callable[[_Compiler, Tree, str | None], tuple[Fn, str | None]]] = {
    "=": _Compiler.equality, "!=": _Compiler.equality, "<": _Compiler.inequality, "<=": _Compiler.inequality,
    ">": _Compiler.inequality, ">=": _Compiler.inequality, "and": _Compiler.and_, "or": _Compiler.or_,
    "xor": _Compiler.or_, "implies": _Compiler.implies, "|": _Compiler.union, "in": _Compiler.membership,
    "contains": _Compiler.membership,
}
