"""fixed[x] and pattern[x] semantics (R4 elementdefinition-definitions.html#ElementDefinition.pattern_x_).

``fixed``: the instance value is exactly the given value (every property, nothing more).
``pattern``: every property the pattern gives is present with that value; for arrays, each item of
the pattern matches some item of the instance; other properties may be present.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def fixed_or_pattern(el: dict[str, Any]) -> tuple[str, Any] | None:
    for key, value in el.items():
        if key.startswith("fixed") and len(key) > 5 and key[5].isupper():
            return "fixed", value
        if key.startswith("pattern") and len(key) > 7 and key[7].isupper():
            return "pattern", value
    return None


def equal(value: Any, fixed: Any) -> bool:
    if isinstance(fixed, dict):
        return isinstance(value, dict) and value.keys() == fixed.keys() and all(
            equal(value[k], fixed[k]) for k in fixed)
    if isinstance(fixed, list):
        return isinstance(value, list) and len(value) == len(fixed) and all(
            equal(v, f) for v, f in zip(value, fixed, strict=True))
    if isinstance(fixed, bool) or isinstance(value, bool):
        return value is fixed
    return bool(value == fixed)


def matches(value: Any, pattern: Any) -> bool:
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(k in value and matches(value[k], p) for k, p in pattern.items())
    if isinstance(pattern, list):
        if not isinstance(value, list):
            return False
        return all(any(matches(v, p) for v in value) for p in pattern)
    if isinstance(pattern, bool) or isinstance(value, bool):
        return value is pattern
    return bool(value == pattern)


def compile_pattern(pattern: Any) -> Callable[[Any], bool]:
    """``matches(value, pattern)`` as a closure built once: profile checks and slicing ask it for
    every occurrence, so the recursion over the pattern is decided here rather than per value."""
    if isinstance(pattern, dict):
        flat = _flat(pattern)
        if flat is not None:
            return flat
        parts = tuple((k, compile_pattern(p)) for k, p in pattern.items())
        if len(parts) == 1:  # a CodeableConcept pattern: {"coding": [...]}
            (key, part), = parts
            return lambda v: isinstance(v, dict) and key in v and part(v[key])
        return lambda v: isinstance(v, dict) and all(k in v and m(v[k]) for k, m in parts)
    if isinstance(pattern, list):
        items = tuple(compile_pattern(p) for p in pattern)

        def each_found(v: Any) -> bool:  # every pattern item matches some item of the value
            if not isinstance(v, list):
                return False
            for m in items:
                for x in v:
                    if m(x):
                        break
                else:
                    return False
            return True
        return each_found
    return _scalar(pattern)


def compile_equal(fixed: Any) -> Callable[[Any], bool]:
    """``equal(value, fixed)`` as a closure built once."""
    if isinstance(fixed, dict):
        keys = fixed.keys()
        parts = tuple((k, compile_equal(p)) for k, p in fixed.items())
        return lambda v: isinstance(v, dict) and v.keys() == keys and all(m(v[k]) for k, m in parts)
    if isinstance(fixed, list):
        items = tuple(compile_equal(p) for p in fixed)
        n = len(items)
        return lambda v: isinstance(v, list) and len(v) == n and all(m(x) for m, x in zip(items, v, strict=True))
    return _scalar(fixed)


def _scalar(expected: Any) -> Callable[[Any], bool]:
    """A JSON scalar compared as ``equal``/``matches`` do: booleans by identity (so ``true`` never
    equals ``1``), everything else by ``==``."""
    if isinstance(expected, bool):
        return lambda v: v is expected
    if isinstance(expected, (int, float)):
        return lambda v: v == expected and not isinstance(v, bool)
    return lambda v: bool(v == expected)  # a string (or null): no boolean equals it


def _flat(pattern: dict[str, Any]) -> Callable[[Any], bool] | None:
    """A pattern whose values are all strings (a Coding, an Identifier): its properties compared
    directly, without a closure per property."""
    if not all(isinstance(p, str) for p in pattern.values()):
        return None
    items = tuple(pattern.items())
    if len(items) == 1:
        (k1, p1), = items
        return lambda v: isinstance(v, dict) and v.get(k1) == p1
    if len(items) == 2:
        (k1, p1), (k2, p2) = items
        return lambda v: isinstance(v, dict) and v.get(k1) == p1 and v.get(k2) == p2
    return lambda v: isinstance(v, dict) and all(v.get(k) == p for k, p in items)


def show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= 200 else text[:197] + "..."
