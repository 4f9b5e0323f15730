"""Slicing: which slice each item of a sliced element belongs to, then per-slice cardinality.

R4 profiling.html#slicing and #discriminator: an item belongs to a slice when every discriminator
holds — ``value``/``pattern`` (the item's value at the discriminator path equals / matches the
fixed or pattern value the slice gives at that path; for extensions sliced on ``url`` that is the
slice's extension profile URL), ``exists`` (the path is present / absent as the slice's cardinality
says), ``type`` (the resource type at the path) and ``profile`` (the value at the path conforms to
the slice's profile). Items in no slice are errors when the rules are ``closed`` and must follow all
sliced items when ``openAtEnd``; ``ordered`` slices must appear in definition order. Each item is
then validated against its slice's definition (or the unsliced one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from alk_fhir.validation import patterns
from alk_fhir.validation.invariants import ValueCheck
from alk_fhir.validation.run import Run
from alk_fhir.validation.structure import Field, ItemsCheck
from alk_fhir.validation.tree import Node

Matcher = Callable[[Any, Run], bool]


class SlicingError(ValueError):
    """A slicing that cannot be evaluated (unknown discriminator type, no value to match)."""


@dataclass
class Slice:
    name: str
    min: int
    max: int
    match: Matcher
    check: ValueCheck


def values_at(item: Any, path: str, is_type: Callable[[str], bool]) -> list[Any]:
    """The values at a (simple) discriminator path: ``$this``, dotted names, choice names,
    ``extension('url')``."""
    return path_getter(path, is_type)(item)


def path_getter(path: str, is_type: Callable[[str], bool]) -> Callable[[Any], list[Any]]:
    """``values_at`` for one path, with the path split once."""
    if path in ("$this", ""):
        return lambda item: [item]
    steps = tuple(_steps(path))

    def get(item: Any) -> list[Any]:
        current = [item]
        for step in steps:
            nxt: list[Any] = []
            for value in current:
                if type(value) is dict:
                    _step(value, step, nxt, is_type)
            current = nxt
        return current
    return get


def _step(value: dict[str, Any], step: str, out: list[Any], is_type: Callable[[str], bool]) -> None:
    if step.startswith("extension('") and step.endswith("')"):
        url = step[11:-2]
        out.extend(e for e in value.get("extension", []) if isinstance(e, dict) and e.get("url") == url)
        return
    found = value.get(step)
    if found is None:
        n = len(step)
        for key, v in value.items():
            if key.startswith(step) and len(key) > n and key[n].isupper() and (
                    is_type(key[n:]) or is_type(key[n].lower() + key[n + 1:])):
                found = v
                break
    if found is not None:
        out.extend(found if isinstance(found, list) else [found])


def _steps(path: str) -> list[str]:
    steps, depth, cur = [], 0, ""
    for ch in path:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "." and depth == 0:
            steps.append(cur)
            cur = ""
        else:
            cur += ch
    steps.append(cur)
    return steps


def node_at(node: Node, path: str) -> Node | None:
    if path in ("$this", ""):
        return node
    current: Node | None = node
    for step in _steps(path):
        if current is None:
            return None
        if step.startswith("extension('"):
            url = step[11:-2]
            ext = current.children.get("extension")
            current = next((s for s in (ext.slices.values() if ext else []) if url in _profiles(s)), None)
            continue
        current = current.children.get(step) or current.children.get(step + "[x]")
    return current


def _profiles(node: Node) -> list[str]:
    return [p for t in node.el.get("type", []) for p in t.get("profile", [])]


def compile_matcher(discriminators: list[dict[str, Any]], slice_node: Node, where: str,
                    is_type: Callable[[str], bool], conforms: Callable[[Any, str, Run], bool],
                    member: Callable[[str, Any], Callable[[Any], bool] | None]) -> Matcher:
    parts: list[Matcher] = []
    for d in discriminators:
        kind, path = d.get("type"), str(d.get("path", "$this"))
        target = node_at(slice_node, path)
        if kind in ("value", "pattern"):
            parts.append(_value_matcher(path, target, slice_node, where, is_type, member))
        elif kind == "exists":
            if target is None:
                raise SlicingError(f"{where}: exists discriminator path {path} not found in the slice")
            parts.append(_exists_matcher(path, int(target.el.get("min", 0)) > 0, is_type))
        elif kind == "type":
            types = frozenset(str(t.get("code")) for t in (target or slice_node).el.get("type", []))
            parts.append(_type_matcher(path, types, is_type))
        elif kind == "profile":
            urls = _profiles(target or slice_node)
            if not urls:
                raise SlicingError(f"{where}: profile discriminator at {path} but the slice names no profile")
            parts.append(_profile_matcher(path, tuple(urls), is_type, conforms))
        else:
            raise SlicingError(f"{where}: unsupported discriminator type {kind}")
    return lambda item, run: all(p(item, run) for p in parts)


def _exists_matcher(path: str, must: bool, is_type: Callable[[str], bool]) -> Matcher:
    return lambda item, run: bool(values_at(item, path, is_type)) == must


def _type_matcher(path: str, types: frozenset[str], is_type: Callable[[str], bool]) -> Matcher:
    return lambda item, run: any(
        isinstance(v, dict) and v.get("resourceType") in types for v in values_at(item, path, is_type))


def _profile_matcher(path: str, urls: tuple[str, ...], is_type: Callable[[str], bool],
                     conforms: Callable[[Any, str, Run], bool]) -> Matcher:
    return lambda item, run: any(conforms(v, u, run) for v in values_at(item, path, is_type) for u in urls)


def _value_matcher(path: str, target: Node | None, slice_node: Node, where: str, is_type: Callable[[str], bool],
                   member: Callable[[str, Any], Callable[[Any], bool] | None]) -> Matcher:
    if target is not None:
        found = patterns.fixed_or_pattern(target.el)
        get = path_getter(path, is_type)
        if found is not None:
            kind, expected = found
            if kind == "fixed":
                return lambda item, run: any(patterns.equal(v, expected) for v in get(item))
            test = patterns.compile_pattern(expected)
            return lambda item, run: any(test(v) for v in get(item))
        binding = target.el.get("binding", {})
        if binding.get("strength") == "required" and binding.get("valueSet"):
            inside = member(binding["valueSet"], target)
            if inside is not None:
                return lambda item, run: any(inside(v) for v in get(item))
    if path.rsplit(".", 1)[-1] == "url":
        owner = node_at(slice_node, path.rsplit(".", 1)[0]) if "." in path else slice_node
        urls = _profiles(owner) if owner is not None else []
        if urls:
            return lambda item, run: any(v in urls for v in values_at(item, path, is_type))
    raise SlicingError(f"{where}: slice {slice_node.el.get('sliceName')} gives no value for discriminator {path}")


def compile_items_check(node: Node, slices: list[Slice], where: str) -> ItemsCheck:
    slicing = node.el.get("slicing", {})
    rules = slicing.get("rules", "open")
    ordered = bool(slicing.get("ordered", False))

    def check(items: list[Any], path: str, f: Field, run: Run, _: dict[str, Any]) -> None:
        assigned: list[int] = []
        counts = [0] * len(slices)
        for item in items:
            chosen = -1
            if item is not None:
                for j, sl in enumerate(slices):
                    if sl.match(item, run):
                        chosen = j
                        counts[j] += 1
                        break
            assigned.append(chosen)
        last = -1
        seen_unmatched = False
        for i, chosen in enumerate(assigned):
            if chosen < 0:
                seen_unmatched = True
                if rules == "closed":
                    run.error("structure", f"{f.name}[{i}] matches none of the slices of {where} (closed slicing)",
                              f"{path}[{i}]")
                continue
            if rules == "openAtEnd" and seen_unmatched:
                run.error("structure", f"{f.name}[{i}] is in slice '{slices[chosen].name}' after an unsliced item"
                          " (openAtEnd)", f"{path}[{i}]")
            if ordered and chosen < last:
                run.error("structure", f"{f.name}[{i}] (slice '{slices[chosen].name}') is out of order", f"{path}[{i}]")
            last = max(last, chosen)
        for j, sl in enumerate(slices):
            if counts[j] < sl.min:
                run.error("required", f"slice '{sl.name}': minimum required = {sl.min}, but only found {counts[j]}",
                          path)
            if 0 <= sl.max < counts[j]:
                run.error("structure", f"slice '{sl.name}': at most {sl.max} allowed, found {counts[j]}", path)
        for i, item in enumerate(items):
            if item is None:
                continue
            chosen = assigned[i]
            (slices[chosen].check if chosen >= 0 else f.check)(item, f"{path}[{i}]", run)
    return check
