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
    """``matches(value, pattern)`` as a closure built once: slicing asks it for every item and slice."""
    if isinstance(pattern, dict):
        if all(not isinstance(p, (dict, list, bool)) for p in pattern.values()):
            flat = tuple(pattern.items())  # a Coding, an Identifier: compare the properties directly
            return lambda v: type(v) is dict and all(k in v and v[k] == p for k, p in flat)
        parts = tuple((k, compile_pattern(p)) for k, p in pattern.items())
        return lambda v: type(v) is dict and all(k in v and m(v[k]) for k, m in parts)
    if isinstance(pattern, list):
        items = tuple(compile_pattern(p) for p in pattern)
        return lambda v: type(v) is list and all(any(m(x) for x in v) for m in items)
    return lambda v: matches(v, pattern)


def show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= 200 else text[:197] + "..."
