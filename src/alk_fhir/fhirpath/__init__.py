"""FHIRPath for alk-fhir: one engine, one semantics, and the public contract tools and tests use.

``evaluate(expression, resource, variables)`` evaluates with our own engine (``engine``,
``functions``, operators in ``values``), which implements FHIRPath N1 as far as the HL7 suite
proves it (tests/test_fhirpath_suite.py) and refuses everything else at compile time with
``Unsupported`` naming the construct. Values come back as Python values: ``bool``, ``int``,
``Decimal``, ``str`` (strings, codes, dates, times), ``Quantity`` (``.value``, ``.unit``), ``dict``
for elements.

fhirpathpy stays in one place only: ``compile_expression``/``evaluate_fhirpathpy``, the evaluator
of last resort for invariant and condition expressions our engine refuses (it keeps evaluation
state in a module-level object, so its evaluation is serialised with a lock), and the reference
that tests/test_facts.py compares the compiled facts against.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

import fhirpathpy
from fhirpathpy.models import models

from alk_fhir.fhirpath.engine import Ctx, Node, Unsupported, compile_tree, value_of, wrap
from alk_fhir.fhirpath.functions import HOST_NAMES
from alk_fhir.fhirpath.parser import FHIRPathSyntaxError, parse
from alk_fhir.fhirpath.values import FDate, FDateTime, FHIRPathEvaluationError, FTime, Quantity, decimal_text

__all__ = ["FHIRPathError", "FHIRPathEvaluationError", "FHIRPathSyntaxError", "HostFunction", "Quantity",
           "Unsupported", "compile_fhirpath", "evaluate", "to_json"]

HostFunction = Callable[[list[Any], list[Any], dict[str, Any]], list[Any]]
Evaluator = Callable[[Any, "Mapping[str, Any] | None"], list[Any]]
Compiled = Callable[[Any, Mapping[str, Any] | None], list[Any]]
Condition = Callable[[Any, Mapping[str, Any]], bool]

_R4_MODEL = models["r4"]
_cache: dict[str, Compiled] = {}
_lock = threading.RLock()


class FHIRPathError(ValueError):
    """An expression that does not parse or fails to evaluate."""


def compile_expression(expression: str) -> Compiled:
    """Return the compiled form of ``expression``, parsing it only the first time."""
    found = _cache.get(expression)
    if found is not None:
        return found
    with _lock:
        found = _cache.get(expression)
        if found is None:
            try:
                found = fhirpathpy.compile(expression, model=_R4_MODEL)
            except Exception as exc:  # the parser raises bare Exceptions
                raise FHIRPathError(f"cannot parse FHIRPath {expression!r}: {exc}") from exc
            _cache[expression] = found
        return found


def evaluate_fhirpathpy(resource: Any, expression: str, variables: Mapping[str, Any] | None = None) -> list[Any]:
    """Evaluate a (cached) expression with fhirpathpy; ``variables`` become ``%name`` variables."""
    fn = compile_expression(expression)
    with _lock:
        try:
            return list(fn(resource, dict(variables) if variables else None))
        except Exception as exc:
            raise FHIRPathError(f"cannot evaluate FHIRPath {expression!r}: {exc}") from exc


def is_true(resource: Any, expression: str, variables: Mapping[str, Any] | None = None) -> bool:
    """FHIRPath boolean semantics for a condition: exactly ``[True]`` is true, anything else false."""
    return evaluate_fhirpathpy(resource, expression, variables) == [True]


def compile_evaluator(expression: str, variable_types: Mapping[str, str], focus_type: str = "Patient") -> Compiled:
    """An expression over typed ``%variables``, compiled to closures by ``fastpath`` when it fits its
    subset (microseconds), else by our engine; fhirpathpy only for what both refuse (no condition
    or dynamicValue of the package today). tests/test_engine.py compares every plan condition with
    fhirpathpy's answer."""
    from alk_fhir import fastpath  # fastpath builds on this package's parser: imported when used

    try:
        ours = compile_fhirpath(expression)
    except FHIRPathSyntaxError as exc:
        raise FHIRPathError(f"cannot parse FHIRPath {expression!r}: {exc}") from exc
    except Unsupported:
        compile_expression(expression)
        return lambda resource, variables: evaluate_fhirpathpy(resource, expression, variables)
    fast = fastpath.compile_fast(expression, focus_type, dict(variable_types))

    def run(resource: Any, variables: Mapping[str, Any] | None) -> list[Any]:
        try:
            if fast is None:
                return [python_value(v) for v in ours(resource or None, variables)]
            env = variables if isinstance(variables, dict) else dict(variables or {})
            return fast([resource] if resource else [], env)
        except Exception as exc:
            raise FHIRPathError(f"cannot evaluate FHIRPath {expression!r}: {exc}") from exc
    return run


def compile_condition(expression: str, variable_types: Mapping[str, str], focus_type: str = "Patient") -> Condition:
    """A rule's applicability: exactly ``[True]`` is true (as ``is_true``)."""
    run = compile_evaluator(expression, variable_types, focus_type)
    return lambda resource, variables: run(resource, variables) == [True]


_VARIABLE = re.compile(r"%([A-Za-z][A-Za-z0-9_]*)")


def variables_in(expression: str) -> list[str]:
    """The ``%name`` environment variables an expression reads, in order of first use (once each)."""
    return list(dict.fromkeys(_VARIABLE.findall(expression)))


def cached_count() -> int:
    return len(_cache)


# ---- our engine ------------------------------------------------------------------------------------
_ours: dict[tuple[str, frozenset[str]], Any] = {}
_UCUM = "http://unitsofmeasure.org"


def compile_fhirpath(expression: str, host_functions: frozenset[str] = frozenset(), strict: bool = False) -> Evaluator:
    """``expression`` compiled by our engine, once; raises ``FHIRPathSyntaxError`` for text that is
    not FHIRPath and ``Unsupported`` (naming the construct) for what the engine does not implement.
    ``host_functions`` names functions the caller supplies at evaluation (``memberOf``, ``resolve``).
    ``strict`` asks for the suite's strict mode (paths checked against the model before evaluation),
    which this engine does not implement: refused."""
    if strict:
        raise Unsupported("strict mode (checking paths against the model at compile time)")
    key = (expression, host_functions)
    found = _ours.get(key)
    if found is None:
        token = HOST_NAMES.set(host_functions)
        try:
            tree = parse(expression)
            compiled = compile_tree(tree)
        finally:
            HOST_NAMES.reset(token)
        found = _ours[key] = _evaluator(compiled)
    return found


def _evaluator(compiled: Any) -> Evaluator:
    def run(resource: Any, variables: Mapping[str, Any] | None = None,
            functions: Mapping[str, HostFunction] | None = None) -> list[Any]:
        root = [] if resource is None else [wrap(resource)]
        env: dict[str, list[Any]] = {"ucum": [_UCUM], "sct": ["http://snomed.info/sct"],
                                     "loinc": ["http://loinc.org"]}
        raw = variables if variables is not None else {}
        for name in ("context", "resource", "rootResource"):
            if name not in raw:
                env[name] = root
        return list(compiled(Ctx(env, functions or {}, raw=raw), root))
    return run


def evaluate(expression: str, resource: Any, variables: Mapping[str, Any] | None = None,
             functions: Mapping[str, HostFunction] | None = None) -> list[Any]:
    """The public contract: ``expression`` over ``resource`` (a FHIR resource or any JSON element)
    with ``%name`` variables and host functions; the result as Python values (see the module doc).
    ``Unsupported``/``FHIRPathSyntaxError`` are raised before evaluation, ``FHIRPathEvaluationError``
    for an input the expression cannot be evaluated on (N1 execution errors)."""
    if not isinstance(expression, str):  # the order before issue 20 was (resource, expression)
        raise TypeError("evaluate(expression, resource, variables): the expression comes first")
    run = compile_fhirpath(expression, frozenset(functions or ()))
    return [python_value(v) for v in run(resource, variables, functions)]  # type: ignore[call-arg]


def typed(value: Any, type_path: str) -> Any:
    """An element given with its model path (``Patient``, ``HumanName``, ``Patient.contact``) as the
    typed focus of an evaluation (invariants are evaluated on elements, not only on resources)."""
    if isinstance(value, dict) and "resourceType" in value:
        return wrap(value)
    if "." in type_path:
        return Node(value, "BackboneElement", type_path)
    return Node(value, type_path, type_path)


def python_value(item: Any) -> Any:
    """A result item as a plain Python value (dates and times as their FHIR text)."""
    if isinstance(item, Node):
        if isinstance(item.data, dict):
            return item.data
        v = value_of(item)
        return v.text() if isinstance(v, (FDate, FDateTime, FTime)) else v
    if isinstance(item, (FDate, FDateTime, FTime)):
        return item.text()
    return item


def to_json(value: Any) -> Any:
    """A result value as JSON (for the command line): decimals as numbers, quantities as FHIR Quantity."""
    from decimal import Decimal
    if isinstance(value, Quantity):
        return {"value": to_json(value.value), "unit": value.unit}
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and "." not in str(value) else float(value)
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    return value


_ = decimal_text
