"""The walk over a JSON instance, driven by a compiled plan; ``ele-1``/``ext-1`` decided on the way.

A ``ComplexPlan`` is what a StructureDefinition (or a backbone element of one) compiles to: a dict
from every JSON key the element may carry (``valueQuantity`` for ``value[x]`` of type Quantity) to a
``Field``, the fields that must be present, and the checks that apply to the object as a whole.
Validating an object is then one pass over its keys (R4 json.html: unknown keys are errors, a
repeating element is always an array and a single one never is, ``_name`` carries a primitive's
id/extensions and aligns with its array).

``ele-1`` ("hasValue() or (children().count() > id.count())", on every element) is exactly: an
object has a key other than ``id``; a primitive has a value or a non-empty ``_name`` part. The walk
checks this where it already holds the object, instead of evaluating FHIRPath on every element.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from alk_fhir.validation.invariants import ValueCheck
from alk_fhir.validation.run import Run

ELE1 = "ele-1: All FHIR elements must have a @value or children"
ItemsCheck = Callable[[list[Any], str, Any, Run, dict[str, Any]], None]


@dataclass(eq=False, slots=True)
class Field:
    key: str  # JSON key
    name: str  # element name (``value`` for ``value[x]``)
    label: str  # FHIRPath step: ``status`` or ``value.ofType(Quantity)``
    array: bool
    min: int
    max: int  # -1: unbounded
    primitive: bool
    choice: bool
    check: ValueCheck  # one item, already known to be of the right JSON shape
    slicing: ItemsCheck | None = None  # replaces the per-item loop when the element is sliced
    # What ``check`` does, in parts the walk calls directly (compile.Spec): a primitive's format
    # check (message or None) and what follows on a valid value; or the plan of a complex value and
    # the checks that follow on a JSON object.
    prim: Callable[[Any], str | None] | None = None
    after: ValueCheck | None = None
    record: bool = False  # a uri/url/canonical: '#id' values are local references (dom-3)
    plan: ComplexPlan | None = None
    extra: tuple[ValueCheck, ...] = ()


@dataclass(eq=False, slots=True)
class ComplexPlan:
    type_path: str
    url: str = ""
    is_resource: bool = False
    fields: dict[str, Field] = field(default_factory=dict)
    required: list[tuple[str, tuple[str, ...], str]] = field(default_factory=list)  # label, keys, message
    node_checks: list[tuple[str, ValueCheck]] = field(default_factory=list)
    primitive_element: ComplexPlan | None = None  # id + extension, for ``_name`` parts

    def add_field(self, f: Field) -> None:
        self.fields[f.key] = f



def _unaligned_null(run: Run, key: str, where: str) -> None:
    """One wording for a null in a primitive array with no `_key` entry beside it (json.html)."""
    run.error("structure", f"'{key}' has a null without a matching '_{key}' entry"
              " (json.html: null only keeps arrays aligned)", where)

def walk(node: Any, path: str, run: Run, plan: ComplexPlan) -> None:
    if type(node) is not dict:
        run.error("structure", f"expected a JSON object, got {_kind(node)}", path)
        return
    fields = plan.fields
    if not node or (len(node) == 1 and "id" in node):
        run.error("invariant", ELE1, path)
    choices: set[str] | None = None
    for key, value in node.items():
        f = fields.get(key)
        if f is None:
            if key[:1] == "_":
                pf = fields.get(key[1:])
                if pf is not None and pf.primitive:
                    _primitive_parts(pf, node.get(key[1:]), value, path, run, plan)
                    continue
            if key == "resourceType" and plan.is_resource:
                continue
            run.error("structure", f"unknown element '{key}'", f"{path}.{key}")
            continue
        if f.choice:
            if choices is None:
                choices = set()
            if f.name in choices:
                run.error("structure", f"more than one type given for {f.name}[x]", f"{path}.{f.name}")
            choices.add(f.name)
        if f.array:
            if type(value) is not list:
                run.error("structure", f"'{key}' repeats and must be a JSON array", f"{path}.{f.label}")
                continue
            n = len(value)
            if n == 0:
                run.error("structure", f"'{key}' is an empty array (json.html: arrays are never empty)",
                          f"{path}.{f.label}")
                continue
            if 0 <= f.max < n:
                run.error("structure", f"{f.name}: {n} values, at most {f.max} allowed", f"{path}.{f.label}")
            if n < f.min:
                run.error("required", f"{f.name}: {n} values, at least {f.min} required", f"{path}.{f.label}")
            if f.slicing is not None:
                f.slicing(value, f"{path}.{f.label}", f, run, node)
                continue
            prim = f.prim
            if prim is not None:
                parts = node.get("_" + key)
                after = f.after
                for i, item in enumerate(value):
                    if item is not None:
                        problem = prim(item)
                        if problem is not None:
                            run.error("value", problem, f"{path}.{f.label}[{i}]")
                            continue
                        if f.record and item[:1] == "#" and run.frame is not None:
                            run.frame.local_refs.add(item)
                        if after is not None:
                            after(item, f"{path}.{f.label}[{i}]", run)
                    elif type(parts) is not list or i >= len(parts) or parts[i] is None:
                        _unaligned_null(run, key, f"{path}.{f.label}[{i}]")
                continue
            sub = f.plan
            if sub is not None:
                extra = f.extra
                for i, item in enumerate(value):
                    where = f"{path}.{f.label}[{i}]"
                    walk(item, where, run, sub)
                    if extra and type(item) is dict:
                        for c in extra:
                            c(item, where, run)
                continue
            check = f.check
            if f.primitive:
                parts = node.get("_" + key)
                for i, item in enumerate(value):
                    if item is not None:
                        check(item, f"{path}.{f.label}[{i}]", run)
                    elif type(parts) is not list or i >= len(parts) or parts[i] is None:
                        _unaligned_null(run, key, f"{path}.{f.label}[{i}]")
            else:
                for i, item in enumerate(value):
                    check(item, f"{path}.{f.label}[{i}]", run)
        else:
            if type(value) is list:
                run.error("structure", f"'{key}' does not repeat and must not be an array", f"{path}.{f.label}")
                continue
            if value is None:
                run.error("structure", f"'{key}' is null (json.html: absent values are left out)", f"{path}.{f.label}")
                continue
            prim = f.prim
            if prim is not None:
                problem = prim(value)
                if problem is not None:
                    run.error("value", problem, f"{path}.{f.label}")
                    continue
                if f.record and value[:1] == "#" and run.frame is not None:
                    run.frame.local_refs.add(value)
                if f.after is not None:
                    f.after(value, f"{path}.{f.label}", run)
                continue
            sub = f.plan
            if sub is not None:
                where = f"{path}.{f.label}"
                walk(value, where, run, sub)
                if f.extra and type(value) is dict:
                    for c in f.extra:
                        c(value, where, run)
                continue
            f.check(value, f"{path}.{f.label}", run)
    for label, keys, message in plan.required:
        if node.keys().isdisjoint(keys):
            run.error("required", message, f"{path}.{label}")
    for _, node_check in plan.node_checks:
        node_check(node, path, run)


def _primitive_parts(f: Field, value: Any, parts: Any, path: str, run: Run, plan: ComplexPlan) -> None:
    """Validate ``_name``: the id/extensions of a primitive (or of each item of a primitive array)."""
    element_plan = plan.primitive_element
    where = f"{path}.{f.label}"
    if f.array:
        if type(parts) is not list:
            run.error("structure", f"'_{f.key}' must be an array aligned with '{f.key}'", where)
            return
        values = value if type(value) is list else []
        if value is not None and len(values) != len(parts):
            run.error("structure", f"'_{f.key}' and '{f.key}' have different lengths", where)
        for i, part in enumerate(parts):
            has_value = i < len(values) and values[i] is not None
            if part is None:
                if not has_value:
                    run.error("invariant", ELE1, f"{where}[{i}]")
                continue
            if element_plan is not None:
                walk(part, f"{where}[{i}]", run, element_plan)
        if value is None:
            _count(f, len(parts), where, run)
        return
    if parts is None:
        if value is None:
            run.error("invariant", ELE1, where)
        return
    if element_plan is not None:
        walk(parts, where, run, element_plan)


def _count(f: Field, n: int, where: str, run: Run) -> None:
    if 0 <= f.max < n:
        run.error("structure", f"{f.name}: {n} values, at most {f.max} allowed", where)
    if n < f.min:
        run.error("required", f"{f.name}: {n} values, at least {f.min} required", where)


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    return "null" if v is None else type(v).__name__


def ext1(node: Any, path: str, run: Run) -> None:
    """ext-1 "extension.exists() != value.exists()": nested extensions or a value, never both/neither."""
    if type(node) is not dict:
        return
    has_ext = node.get("extension") is not None or node.get("_extension") is not None
    has_value = any(k.startswith(("value", "_value")) and node[k] is not None for k in node)
    if has_ext == has_value:
        run.error("invariant", "ext-1: Must have either extensions or value[x], not both", path)
