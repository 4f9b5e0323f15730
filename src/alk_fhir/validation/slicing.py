"""Slicing: which slice each item of a sliced element belongs to, then per-slice cardinality.

R4 profiling.html#slicing and #discriminator: an item belongs to a slice when every discriminator
holds — ``value``/``pattern`` (the item's value at the discriminator path equals / matches the
fixed or pattern value the slice gives at that path; for extensions sliced on ``url`` that is the
slice's extension profile URL), ``exists`` (the path is present / absent as the slice's cardinality
says), ``type`` (the resource type at the path) and ``profile`` (the value at the path conforms to
the slice's profile). Items in no slice are errors when the rules are ``closed`` and must follow all
sliced items when ``openAtEnd``; ``ordered`` slices must appear in definition order. Each item is
then validated against its slice's definition (or the unsliced one).

Which slice an item is in is decided once per item, not by trying every slice: a slice whose
value/pattern discriminator gives a concrete value (a code, a url, a Coding, a CodeableConcept's
first coding) is filed under that value at compile time (``SliceKey``), and an item is only tried
against the slices filed under what it carries at the discriminator path, plus the slices that
cannot be filed (a required binding, exists/type/profile discriminators). The filing is a necessary
condition only; every candidate is still confirmed by its full matcher, in definition order, so
the first matching slice is the one trying them all would find.
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


Project = Callable[[Any], "list[Any] | tuple[Any, ...]"]


@dataclass(frozen=True)
class SliceKey:
    """Where a slice is filed: the discriminator ``path``, how a value there is turned into
    hashable keys (``shape``: ``("scalar",)``, ``("dict", *props)`` or ``("coding", *props)``) and
    the keys a matching value must produce (at least one of them)."""
    path: str
    shape: tuple[str, ...]
    keys: frozenset[Any]


@dataclass
class Slice:
    name: str
    min: int
    max: int
    match: Matcher
    check: ValueCheck
    key: SliceKey | None = None


def values_at(item: Any, path: str, is_type: Callable[[str], bool]) -> list[Any]:
    """The values at a (simple) discriminator path: ``$this``, dotted names, choice names,
    ``extension('url')``."""
    return path_getter(path, is_type)(item)


def path_getter(path: str, is_type: Callable[[str], bool]) -> Callable[[Any], list[Any]]:
    """``values_at`` for one path, with the path split once."""
    if path in ("$this", ""):
        return lambda item: [item]
    steps = tuple(_steps(path))
    if len(steps) == 1 and not steps[0].startswith("extension('"):
        step = steps[0]

        def get_one(item: Any) -> list[Any]:  # the common case, one element name (callers only read the list)
            if type(item) is not dict:
                return []
            found = item.get(step)
            if found is not None:
                return found if isinstance(found, list) else [found]
            out: list[Any] = []
            _step(item, step, out, is_type)  # a choice element named without its type
            return out
        return get_one

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
        extensions = value.get("extension")
        if isinstance(extensions, list):
            out.extend(e for e in extensions if isinstance(e, dict) and e.get("url") == url)
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
                    member: Callable[[str, Any], Callable[[Any], bool] | None]) -> tuple[Matcher, SliceKey | None]:
    """The slice's matcher and, when one of its value/pattern discriminators names a concrete
    value, the key it is filed under (see the module docstring)."""
    parts: list[Matcher] = []
    key: SliceKey | None = None
    for d in discriminators:
        kind, path = d.get("type"), str(d.get("path", "$this"))
        target = node_at(slice_node, path)
        if kind in ("value", "pattern"):
            match, found = _value_matcher(path, target, slice_node, where, is_type, member)
            parts.append(match)
            key = key or found
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
    if len(parts) == 1:
        return parts[0], key
    return (lambda item, run: all(p(item, run) for p in parts)), key


def _exists_matcher(path: str, must: bool, is_type: Callable[[str], bool]) -> Matcher:
    return lambda item, run: bool(values_at(item, path, is_type)) == must


def _type_matcher(path: str, types: frozenset[str], is_type: Callable[[str], bool]) -> Matcher:
    return lambda item, run: any(
        isinstance(v, dict) and v.get("resourceType") in types for v in values_at(item, path, is_type))


def _profile_matcher(path: str, urls: tuple[str, ...], is_type: Callable[[str], bool],
                     conforms: Callable[[Any, str, Run], bool]) -> Matcher:
    return lambda item, run: any(conforms(v, u, run) for v in values_at(item, path, is_type) for u in urls)


def _value_matcher(path: str, target: Node | None, slice_node: Node, where: str, is_type: Callable[[str], bool],
                   member: Callable[[str, Any], Callable[[Any], bool] | None]) -> tuple[Matcher, SliceKey | None]:
    if target is not None:
        found = patterns.fixed_or_pattern(target.el)
        get = path_getter(path, is_type)
        if found is not None:
            kind, expected = found
            test = patterns.compile_equal(expected) if kind == "fixed" else patterns.compile_pattern(expected)

            return (lambda item, run: any(map(test, get(item)))), _key_for(path, expected)
        binding = target.el.get("binding", {})
        if binding.get("strength") == "required" and binding.get("valueSet"):
            inside = member(binding["valueSet"], target)
            if inside is not None:
                return (lambda item, run: any(inside(v) for v in get(item))), None
    if path.rsplit(".", 1)[-1] == "url":
        owner = node_at(slice_node, path.rsplit(".", 1)[0]) if "." in path else slice_node
        urls = _profiles(owner) if owner is not None else []
        if urls:
            at = path_getter(path, is_type)
            return ((lambda item, run: any(v in urls for v in at(item))),
                    SliceKey(path, ("scalar",), frozenset(urls)))
    raise SlicingError(f"{where}: slice {slice_node.el.get('sliceName')} gives no value for discriminator {path}")


def _key_for(path: str, expected: Any) -> SliceKey | None:
    """The key a value equal to (or matching) ``expected`` must produce, when there is a simple one.
    Only strings and numbers are keys: they are equal exactly when their hashes are (a boolean
    would collide with 1 and 0; such a slice is tried for every item instead)."""
    if isinstance(expected, (str, int, float)) and not isinstance(expected, bool):
        return SliceKey(path, ("scalar",), frozenset([expected]))
    if not isinstance(expected, dict):
        return None
    if expected and all(isinstance(v, str) for v in expected.values()):
        props = tuple(sorted(expected))
        return SliceKey(path, ("dict", *props), frozenset([tuple(expected[k] for k in props)]))
    codings = expected.get("coding")
    first = codings[0] if isinstance(codings, list) and codings else None
    if isinstance(first, dict) and first and all(isinstance(v, str) for v in first.values()):
        props = tuple(sorted(first))
        return SliceKey(path, ("coding", *props), frozenset([tuple(first[k] for k in props)]))
    return None


def _projection(shape: tuple[str, ...]) -> Project:
    """Value at the discriminator path -> the keys it produces (see ``SliceKey``)."""
    kind, props = shape[0], shape[1:]
    if kind == "scalar":
        return lambda v: (v,) if type(v) in (str, int, float) else ()
    if kind == "dict":
        return lambda v: (tuple(map(v.get, props)),) if isinstance(v, dict) else ()

    def codings(v: Any) -> list[Any] | tuple[Any, ...]:
        coding = v.get("coding") if isinstance(v, dict) else None
        if not isinstance(coding, list):
            return ()
        return [tuple(map(c.get, props)) for c in coding if isinstance(c, dict)]
    return codings


def candidates(slices: list[Slice], is_type: Callable[[str], bool]) -> Callable[[Any], list[int]] | None:
    """For an item, the indexes (ascending) of the slices it may belong to; None when no slice is
    filed under a key (then every slice is a candidate)."""
    groups: dict[tuple[str, tuple[str, ...]], dict[Any, list[int]]] = {}
    always: list[int] = []
    for j, sl in enumerate(slices):
        if sl.key is None:
            always.append(j)
            continue
        table = groups.setdefault((sl.key.path, sl.key.shape), {})
        for k in sl.key.keys:
            table.setdefault(k, []).append(j)
    if not groups:
        return None
    lookups = tuple((path_getter(path, is_type), _projection(shape), table) for (path, shape), table in groups.items())
    fallback = tuple(always)

    if len(lookups) == 1 and not fallback:
        (one_get, one_project, one_table), = lookups

        def find_one(item: Any) -> list[int]:  # one way of filing, every slice filed: usually one hit
            hits: list[int] = []
            for v in one_get(item):
                for k in one_project(v):
                    try:
                        hit = one_table.get(k)
                    except TypeError:
                        continue
                    if hit:
                        hits = sorted({*hits, *hit}) if hits else hit
            return hits
        return find_one

    def find(item: Any) -> list[int]:
        found: set[int] = set(fallback)
        for get, project, table in lookups:
            for v in get(item):
                for k in project(v):
                    try:
                        hit = table.get(k)
                    except TypeError:  # an object or array where a string was expected: no key
                        continue
                    if hit:
                        found.update(hit)
        return sorted(found)
    return find


def compile_items_check(node: Node, slices: list[Slice], where: str, is_type: Callable[[str], bool]) -> ItemsCheck:
    slicing = node.el.get("slicing", {})
    rules = slicing.get("rules", "open")
    ordered = bool(slicing.get("ordered", False))
    find = candidates(slices, is_type)
    every = list(range(len(slices)))

    def check(items: list[Any], path: str, f: Field, run: Run, _: dict[str, Any]) -> None:
        assigned: list[int] = []
        counts = [0] * len(slices)
        for item in items:
            chosen = -1
            if item is not None:
                for j in (find(item) if find is not None else every):
                    if slices[j].match(item, run):
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
