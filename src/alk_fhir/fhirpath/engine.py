"""The FHIRPath interpreter: a syntax tree compiled once to nested closures over collections.

Why closures: an expression is compiled when the package is loaded and evaluated many times; the
tree is walked once, at compile time, where unsupported constructs are refused (``Unsupported``)
before anything is evaluated. Operators come from ``values`` (shared with the code generators),
functions from ``functions``.

Items in a collection are system values (``bool``, ``int``, ``Decimal``, ``str``, ``FDate``,
``FDateTime``, ``FTime``, ``Quantity``) or ``Node``s: elements met by navigation, with their FHIR
type from the R4 model when the input is a resource (``"resourceType"``), untyped otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from alk_fhir.fhirpath import model
from alk_fhir.fhirpath.parser import FHIRPathSyntaxError, parse
from alk_fhir.fhirpath.parser import Node as Tree
from alk_fhir.fhirpath.values import (
    FDate,
    FDateTime,
    FHIRPathEvaluationError,
    FTime,
    Quantity,
    _Temporal,
    add,
    compare,
    divide,
    equal,
    equivalent,
    int_div,
    modulo,
    multiply,
    negate,
    subtract,
    to_decimal,
)


class Unsupported(ValueError):
    """A construct of FHIRPath this engine does not implement; raised at compile time, naming it."""


HostFunction = Callable[[list[Any], list[Any], dict[str, Any]], list[Any]]
Fn = Callable[["Ctx", list[Any]], list[Any]]

_QUANTITY_TYPES = frozenset({"Quantity", "Age", "Duration", "Distance", "Count", "SimpleQuantity", "MoneyQuantity"})
_INTEGER_TYPES = frozenset({"integer", "positiveInt", "unsignedInt", "integer64"})


class Node:
    """An element of the input: its JSON ``data`` (a dict, or a primitive's value or None), its FHIR
    ``type`` (None when unknown), the model ``path`` its children are looked up under, and for a
    primitive the ``ext`` object holding its id and extensions (FHIR JSON ``_name``)."""

    __slots__ = ("data", "ext", "path", "type")

    def __init__(self, data: Any, type_: str | None, path: str | None, ext: Any = None) -> None:
        self.data, self.type, self.path, self.ext = data, type_, path, ext

    def __repr__(self) -> str:
        return f"Node({self.type}, {self.data!r})"


def wrap(value: Any) -> Any:
    """A Python value given as input or variable, as a collection item."""
    if isinstance(value, Node):
        return value
    if isinstance(value, dict):
        rt = value.get("resourceType")
        if isinstance(rt, str) and model.is_resource_type(rt):
            return Node(value, rt, rt)
        return Node(value, None, None)
    if isinstance(value, float):
        return to_decimal(value)
    if isinstance(value, str):  # a variable's string: untyped (a record's date is a JSON string)
        return Node(value, None, None)
    return value


_UNTYPED_DATE = re.compile(r"^\d{4}-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?$")


def value_of(item: Any) -> Any:
    """The system value of an item (N1 §4: FHIR primitives convert implicitly); None for a primitive
    without a value (one that carries only an extension)."""
    if type(item) is not Node:
        return item
    data, t = item.data, item.type
    if isinstance(data, dict):
        if t in _QUANTITY_TYPES and "value" in data:
            unit = data.get("code") if data.get("system") == "http://unitsofmeasure.org" else None
            return Quantity(to_decimal(data["value"]), unit or data.get("unit") or data.get("code") or "1")
        return data
    if data is None:
        return None
    if t is None:
        if isinstance(data, str) and _UNTYPED_DATE.match(data):
            return _parse_temporal(data) or data  # an untyped date string (records carry no types)
        return to_decimal(data) if isinstance(data, float) else data
    if t == "boolean":
        return bool(data)
    if t in _INTEGER_TYPES:
        return int(data)
    if t == "decimal":
        return to_decimal(data)
    if t == "date":
        return FDate.parse(str(data))
    if t in ("dateTime", "instant"):
        return FDateTime.parse(str(data))
    if t == "time":
        return FTime.parse(str(data))
    return str(data) if not isinstance(data, (bool, int, float, Decimal)) else data


def values(items: list[Any]) -> list[Any]:
    out = []
    for item in items:
        v = value_of(item)
        if v is not None:
            out.append(v)
    return out


def single(items: list[Any], what: str) -> Any:
    """The one value of a collection an operator needs, None when empty; more is an error (N1 §4.4)."""
    if not items:
        return None
    if len(items) > 1:
        raise FHIRPathEvaluationError(f"{what} needs one item, found {len(items)}")
    return value_of(items[0])


class Ctx:
    """One evaluation: the caller's variables (read, and wrapped, only when an expression reads them:
    a facts environment computes a fact on its first read), the host functions (given the caller's
    variables, as the facts' host functions expect), and the ``$index``/``$total`` in scope."""

    __slots__ = ("env", "functions", "index", "raw", "total")

    def __init__(self, env: dict[str, list[Any]], functions: Mapping[str, HostFunction],
                 index: int | None = None, total: list[Any] | None = None,
                 raw: Mapping[str, Any] | None = None) -> None:
        self.env, self.functions, self.index, self.total = env, functions, index, total
        self.raw: Mapping[str, Any] = raw if raw is not None else {}

    def at(self, index: int | None, total: list[Any] | None = None) -> Ctx:
        return Ctx(self.env, self.functions, index, self.total if total is None else total, self.raw)

    def variable(self, name: str) -> list[Any]:
        try:
            return self.env[name]
        except KeyError:
            pass
        try:
            value = self.raw[name]
        except KeyError:
            raise FHIRPathEvaluationError(f"unknown variable %{name}") from None
        items = value if isinstance(value, list) else [] if value is None else [value]
        wrapped = self.env[name] = [wrap(v) for v in items]
        return wrapped


# ---- navigation ----------------------------------------------------------------------------------
def _children_named(item: Any, name: str) -> list[Any]:
    if type(item) is not Node:
        return []
    data = item.data
    if not isinstance(data, dict):  # a primitive: its id and extensions live in ext
        if item.ext is None or name not in ("id", "extension"):
            return []
        return _children_named(Node(item.ext, "Element", "Element"), name)
    if item.type is None or item.path is None:
        return _untyped_children(data, name)
    found = model.child(item.path, name)
    if found is None:
        return _untyped_children(data, name) if item.type in ("Resource", "DomainResource") else []
    ftype, fpath = found
    if f"{item.path}.{name}" in model.CHOICE_NAMES:
        raise FHIRPathEvaluationError(f"{name} is not an element name in FHIRPath (use the choice's "
                                      f"base name with ofType())")
    if ftype == "choice":
        for suffix in model.choice_types(item.path, name):
            key = name + suffix
            if key in data or "_" + key in data:
                t = model.choice_type(suffix)
                return _items(data.get(key), data.get("_" + key), t, t)
        return []
    return _items(data.get(name), data.get("_" + name), ftype, fpath)


def _items(value: Any, ext: Any, ftype: str, fpath: str | None) -> list[Any]:
    if value is None and ext is None:
        return []
    return [_node(v, e, ftype, fpath) for v, e in _pairs(value, ext)]


def _node(value: Any, ext: Any, ftype: str, fpath: str | None) -> Node:
    if ftype == "Resource" and isinstance(value, dict):
        rt = value.get("resourceType")
        if isinstance(rt, str):
            return Node(value, rt, rt)
    return Node(value, ftype, fpath, ext)


def _untyped_children(data: dict[str, Any], name: str) -> list[Any]:
    value, ext = data.get(name), data.get("_" + name)
    if value is None and ext is None:
        for key in data:  # a choice element read by its base name: onset -> onsetDateTime
            if key.startswith(name) and len(key) > len(name) and key[len(name)].isupper():
                suffix = key[len(name):]
                t = model.choice_type(suffix)
                return [wrap(v) if isinstance(v, dict) and "resourceType" in v else Node(v, t, t, e)
                        for v, e in _pairs(data[key], data.get("_" + key))]
        return []
    return [wrap(v) if isinstance(v, dict) and "resourceType" in v else Node(v, None, None, e)
            for v, e in _pairs(value, ext)]


def _pairs(value: Any, ext: Any) -> list[tuple[Any, Any]]:
    if isinstance(value, list) or isinstance(ext, list):
        vs = value if isinstance(value, list) else []
        es = ext if isinstance(ext, list) else []
        n = max(len(vs), len(es))  # FHIR JSON: the two arrays align, either may be cut short
        vs, es = vs + [None] * (n - len(vs)), es + [None] * (n - len(es))
        return [(v, e) for v, e in zip(vs, es, strict=True) if v is not None or e is not None]
    return [(value, ext)]


def navigate(items: list[Any], name: str) -> list[Any]:
    out: list[Any] = []
    for item in items:
        out.extend(_children_named(item, name))
    return out


def children(item: Any) -> list[Any]:
    if type(item) is not Node:
        return []
    data = item.data
    if not isinstance(data, dict):
        return children(Node(item.ext, "Element", "Element")) if isinstance(item.ext, dict) else []
    out: list[Any] = []
    seen: set[str] = set()
    for key in data:
        if key == "resourceType":
            continue
        base = key[1:] if key.startswith("_") else key
        if base in seen:
            continue
        seen.add(base)
        if item.type is not None and item.path is not None and (
                model.child(item.path, base) is None or f"{item.path}.{base}" in model.CHOICE_NAMES):
            out.extend(_choice_child(item, base))
            continue
        out.extend(_children_named(item, base))
    return out


def _choice_child(item: Node, key: str) -> list[Any]:
    data = item.data
    for i in range(1, len(key)):
        if key[i].isupper():
            base, suffix = key[:i], key[i:]
            if suffix in model.choice_types(str(item.path), base):
                t = model.choice_type(suffix)
                return _items(data.get(key), data.get("_" + key), t, t)
    return _untyped_children(data, key)


# ---- types ---------------------------------------------------------------------------------------
_SYSTEM_TYPES = frozenset({"Boolean", "Integer", "Decimal", "String", "Date", "DateTime", "Time", "Quantity"})


def type_of(item: Any) -> tuple[str, str] | None:
    """(namespace, name) of an item's type; None for an untyped element."""
    if type(item) is Node:
        if item.type is None:
            return None
        return "FHIR", item.type
    from alk_fhir.fhirpath.values import type_name
    return "System", type_name(item)


def is_type(item: Any, spec: tuple[str | None, str]) -> bool:
    ns, name = spec
    found = type_of(item)
    if found is None:
        raise FHIRPathEvaluationError(f"the type of an element of an untyped record is unknown (is {name})")
    kind, t = found
    if kind == "System":
        return ns in (None, "System") and t == name
    if ns == "System":
        return False
    return name in model.ancestors(t) or (name == "BackboneElement" and "." in str(item.path))


def _known_type(spec: tuple[str | None, str]) -> None:
    ns, name = spec
    if ns is None and not (name in _SYSTEM_TYPES or name in model.PARENTS or name in model.PRIMITIVES
                           or name in ("BackboneElement", "Element", "Resource", "DomainResource")):
        raise FHIRPathSyntaxError(f"unknown type {name}")


# ---- compilation ---------------------------------------------------------------------------------
def compile_tree(tree: Tree) -> Fn:
    kind = tree[0]
    handler = _COMPILERS.get(kind)
    if handler is None:
        raise Unsupported(kind)
    return handler(tree)


def _lit(tree: Tree) -> Fn:
    value = [tree[1]]
    return lambda ctx, focus: value


def _empty(tree: Tree) -> Fn:
    return lambda ctx, focus: []


def _var(tree: Tree) -> Fn:
    name = tree[1]

    def run(ctx: Ctx, focus: list[Any]) -> list[Any]:
        return ctx.variable(name)
    if name.startswith("vs-"):  # FHIR R4 §2.1.9: %vs-[name] and %ext-[name] are canonical URLs
        url = ["http://hl7.org/fhir/ValueSet/" + name[3:]]
        return lambda ctx, focus: ctx.env.get(name) or list(ctx.raw.get(name) or url)
    if name.startswith("ext-"):
        ext_url = ["http://hl7.org/fhir/StructureDefinition/" + name[4:]]
        return lambda ctx, focus: ctx.env.get(name) or list(ctx.raw.get(name) or ext_url)
    return run


def _this(tree: Tree) -> Fn:
    return lambda ctx, focus: focus


def _index(tree: Tree) -> Fn:
    return lambda ctx, focus: [] if ctx.index is None else [ctx.index]


def _total(tree: Tree) -> Fn:
    return lambda ctx, focus: [] if ctx.total is None else ctx.total


def _member(tree: Tree) -> Fn:
    _, base, name = tree
    if base is None:
        if name[:1].isupper():  # a type name at the start: the focus when it is of that type
            def typed(ctx: Ctx, focus: list[Any]) -> list[Any]:
                return [i for i in focus if type(i) is Node and i.type is not None
                        and name in model.ancestors(i.type)] or navigate(focus, name)
            return typed
        return lambda ctx, focus: navigate(focus, name)
    left = compile_tree(base)
    return lambda ctx, focus: navigate(left(ctx, focus), name)


def _indexer(tree: Tree) -> Fn:
    left, index = compile_tree(tree[1]), compile_tree(tree[2])

    def run(ctx: Ctx, focus: list[Any]) -> list[Any]:
        items = left(ctx, focus)
        i = single(index(ctx, focus), "an index")
        if i is None:
            return []
        if type(i) is not int:
            raise FHIRPathEvaluationError("an index must be an integer")
        return items[i:i + 1] if i >= 0 else []
    return run


def _unary(tree: Tree) -> Fn:
    _, op, operand = tree
    inner = compile_tree(operand)
    if op == "+":
        def plus(ctx: Ctx, focus: list[Any]) -> list[Any]:
            v = single(inner(ctx, focus), "unary +")
            if v is None:
                return []
            negate(v)  # the same type check as '-'
            return [v]
        return plus

    def minus(ctx: Ctx, focus: list[Any]) -> list[Any]:
        v = single(inner(ctx, focus), "unary -")
        return [] if v is None else [negate(v)]
    return minus


def _type_op(tree: Tree) -> Fn:
    _, op, operand, spec = tree
    _known_type(spec)
    inner = compile_tree(operand)
    if op == "is":
        def is_(ctx: Ctx, focus: list[Any]) -> list[Any]:
            items = inner(ctx, focus)
            if not items:
                return []
            if len(items) > 1:
                raise FHIRPathEvaluationError("'is' needs one item")
            return [is_type(items[0], spec)]
        return is_

    def as_(ctx: Ctx, focus: list[Any]) -> list[Any]:
        items = inner(ctx, focus)
        if len(items) > 1:
            raise FHIRPathEvaluationError("'as' needs one item")
        return [i for i in items if is_type(i, spec)]
    return as_


def _truth(items: list[Any], what: str) -> bool | None:
    """A collection as a boolean (N1 §4.5 singleton evaluation): empty is None, one boolean is itself,
    one other item is true; more than one is an error."""
    if not items:
        return None
    if len(items) > 1:
        raise FHIRPathEvaluationError(f"{what} needs one item, found {len(items)}")
    v = value_of(items[0])
    if type(v) is bool:
        return v
    return True if v is not None else None


def _bl(v: bool | None) -> list[Any]:
    return [] if v is None else [v]


def _coerce(a: Any, b: Any) -> tuple[Any, Any]:
    """An untyped record's date string met by a date: read as a date (records carry no types)."""
    if isinstance(a, _Temporal) and type(b) is str:
        b = _parse_temporal(b) or b
    elif isinstance(b, _Temporal) and type(a) is str:
        a = _parse_temporal(a) or a
    return a, b


def _parse_temporal(text: str) -> Any:
    try:
        return FDate.parse(text) if "T" not in text else FDateTime.parse(text)
    except FHIRPathEvaluationError:
        return None


def equal_lists(a: list[Any], b: list[Any]) -> bool | None:
    if not a or not b:
        return None
    if len(a) != len(b):
        return False
    unknown = False
    for x, y in zip(a, b, strict=True):
        vx, vy = _coerce(value_of(x), value_of(y))
        if vx is None or vy is None:
            return None
        r = equal(vx, vy)
        if r is False:
            return False
        if r is None:
            unknown = True
    return None if unknown else True


def equivalent_lists(a: list[Any], b: list[Any]) -> bool:
    if not a and not b:
        return True
    if len(a) != len(b):
        return False
    va, vb = values(a), values(b)
    used = [False] * len(vb)
    for x in va:
        for j, y in enumerate(vb):
            if not used[j] and equivalent(*_coerce(x, y)):
                used[j] = True
                break
        else:
            return False
    return True


def contains_value(collection: list[Any], item: Any) -> bool:
    v = value_of(item)
    for c in collection:
        r = equal(*_coerce(v, value_of(c)))
        if r is True:
            return True
    return False


def _binary(tree: Tree) -> Fn:
    _, op, lt, rt = tree
    if op in ("and", "or", "xor", "implies"):
        return _logic(op, compile_tree(lt), compile_tree(rt))
    left, right = compile_tree(lt), compile_tree(rt)
    if op == "|":
        from alk_fhir.fhirpath.functions import union
        return lambda ctx, focus: union(left(ctx, focus), right(ctx, focus))
    if op in ("=", "!="):
        same = op == "="

        def eq(ctx: Ctx, focus: list[Any]) -> list[Any]:
            r = equal_lists(left(ctx, focus), right(ctx, focus))
            return [] if r is None else [r == same]
        return eq
    if op in ("~", "!~"):
        same = op == "~"
        return lambda ctx, focus: [equivalent_lists(left(ctx, focus), right(ctx, focus)) == same]
    if op in ("<", "<=", ">", ">="):
        test: Callable[[int], bool] = {"<": lambda c: c < 0, "<=": lambda c: c <= 0, ">": lambda c: c > 0,
                                       ">=": lambda c: c >= 0}[op]

        def cmp(ctx: Ctx, focus: list[Any]) -> list[Any]:
            a = single(left(ctx, focus), op)
            b = single(right(ctx, focus), op)
            if a is None or b is None:
                return []
            c = compare(*_coerce(a, b))
            return [] if c is None else [test(c)]
        return cmp
    if op in ("in", "contains"):
        item_fn, coll_fn = (left, right) if op == "in" else (right, left)

        def member(ctx: Ctx, focus: list[Any]) -> list[Any]:
            items = item_fn(ctx, focus)
            collection = coll_fn(ctx, focus)
            if not items:
                return []
            if len(items) > 1:
                raise FHIRPathEvaluationError(f"'{op}' needs one item")
            return [contains_value(collection, items[0])]
        return member
    if op == "&":
        def concat(ctx: Ctx, focus: list[Any]) -> list[Any]:
            a = single(left(ctx, focus), "&")
            b = single(right(ctx, focus), "&")
            if (a is not None and type(a) is not str) or (b is not None and type(b) is not str):
                raise FHIRPathEvaluationError("'&' needs strings")
            return [(a or "") + (b or "")]
        return concat
    arith = {"+": add, "-": subtract, "*": multiply, "/": divide, "div": int_div, "mod": modulo}.get(op)
    if arith is None:
        raise Unsupported(f"operator {op}")

    def arithmetic(ctx: Ctx, focus: list[Any]) -> list[Any]:
        a = single(left(ctx, focus), op)
        b = single(right(ctx, focus), op)
        if a is None or b is None:
            return []
        r = arith(*_coerce(a, b)) if op in ("+", "-") else arith(a, b)
        return [] if r is None else [r]
    return arithmetic


def _logic(op: str, left: Fn, right: Fn) -> Fn:
    """Three-valued ``and``/``or``/``xor``/``implies`` (N1 §6.5); the right side is evaluated only
    when the left one does not decide."""
    def run(ctx: Ctx, focus: list[Any]) -> list[Any]:
        a = _truth(left(ctx, focus), op)
        if op == "and":
            if a is False:
                return [False]
            b = _truth(right(ctx, focus), op)
            return [False] if b is False else [True] if a is True and b is True else []
        if op == "or":
            if a is True:
                return [True]
            b = _truth(right(ctx, focus), op)
            return [True] if b is True else [False] if a is False and b is False else []
        if op == "implies":
            if a is False:
                return [True]
            b = _truth(right(ctx, focus), op)
            return [True] if b is True else [False] if a is True and b is False else []
        b = _truth(right(ctx, focus), op)
        return [] if a is None or b is None else [a != b]
    return run


def _call(tree: Tree) -> Fn:
    from alk_fhir.fhirpath.functions import compile_call
    _, base, name, args = tree
    left = compile_tree(base) if base is not None else None
    return compile_call(name, left, args)


_COMPILERS: dict[str, Callable[[Tree], Fn]] = {
    "lit": _lit, "empty": _empty, "var": _var, "this": _this, "index": _index, "total": _total,
    "member": _member, "indexer": _indexer, "unary": _unary, "type": _type_op, "binary": _binary,
    "call": _call,
}


def compile_text(expression: str) -> Fn:
    return compile_tree(parse(expression))
