"""One process-wide cache of compiled FHIRPath expressions.

Rules, invariants and questionnaire expressions are parsed once (at start-up, when the package
is indexed) and evaluated many times: parsing costs far more than evaluating. ``fhirpathpy``
keeps evaluation state in a module-level object, so evaluation is serialised with a lock.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

import fhirpathpy
from fhirpathpy.models import models

from alk_fhir import fastpath

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


def evaluate(resource: Any, expression: str, variables: Mapping[str, Any] | None = None) -> list[Any]:
    """Evaluate a (cached) expression; ``variables`` become ``%name`` environment variables."""
    fn = compile_expression(expression)
    with _lock:
        try:
            return list(fn(resource, dict(variables) if variables else None))
        except Exception as exc:
            raise FHIRPathError(f"cannot evaluate FHIRPath {expression!r}: {exc}") from exc


def is_true(resource: Any, expression: str, variables: Mapping[str, Any] | None = None) -> bool:
    """FHIRPath boolean semantics for a condition: exactly ``[True]`` is true, anything else false."""
    return evaluate(resource, expression, variables) == [True]


def compile_evaluator(expression: str, variable_types: Mapping[str, str], focus_type: str = "Patient") -> Compiled:
    """An expression over typed ``%variables``, compiled to closures by ``fastpath`` when it fits its
    subset (microseconds, no lock), else evaluated by fhirpathpy, with the same results either way
    (tests/test_engine.py compares both on every plan condition)."""
    compile_expression(expression)  # parse errors surface here, with fhirpathpy's message
    fast = fastpath.compile_fast(expression, focus_type, dict(variable_types))
    if fast is None:
        return lambda resource, variables: evaluate(resource, expression, variables)
    compiled = fast

    def run(resource: Any, variables: Mapping[str, Any] | None) -> list[Any]:
        env = variables if isinstance(variables, dict) else dict(variables or {})
        try:
            return compiled([resource] if resource else [], env)
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
