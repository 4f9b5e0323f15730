"""Generate ``StructureDefinition.snapshot`` from a differential and its base (FHIR R4 4.0.1).

Why our own generator: the package must be rebuilt offline by one command, and the only snapshot
generators (HL7 Java, Firely, ``fhir-snapshot-generator``) would drag a JVM/.NET/Node toolchain
into a Python build. It follows FHIR R4 Profiling §5.1.0.x ("Snapshot generation", "Slicing",
"Differential statements") for the constructs our profiles use, and refuses everything else:

* the snapshot starts as a copy of the base snapshot (``baseDefinition``: one of our own profiles
  via ``lookup``, else the R4 core package); element ``base`` is kept from the base;
* differential elements are matched by ``id`` (``Path:sliceName.child``); a differential element
  without ``id`` gets one from its ``path`` and the slice it sits under, as in the differential's
  order (slice entries come before their children);
* a path that goes below a complex data type (``Bundle.identifier.system``) unfolds that type's
  children from its core definition, right after the parent, with ``base`` from the type;
* ``x.valueQuantity`` style paths are read as ``x.value[x]`` restricted to that type (R4 allows
  both); the snapshot keeps the ``[x]`` path;
* a slice (``sliceName``) is inserted after the sliced element and all its existing slices, as a
  copy of the (already constrained) sliced element plus all its children, with ``min`` 0 unless
  the differential says otherwise (a slice is optional unless required). ``extension`` elements
  are implicitly sliced by ``url`` (the R4 rule); any other slice needs a ``slicing`` entry;
* ``min``/``max`` may only narrow; ``type`` codes must be a subset of the base types (a
  ``Resource`` type may become any resource type) and ``profile``/``targetProfile`` must name
  structures of an allowed type; bindings may not weaken; fixed/pattern values may not change;
  constraints are appended with ``source`` = this profile; conditions and mappings accumulate;
* anything else is ValueError naming the element, never a half-built snapshot.

The output is deterministic: element order follows the base and then the differential, keys
follow the ElementDefinition order; no clocks, no sets.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alk_fhir.knowledge import corepkg

Element = dict[str, Any]
Resolver = Callable[[str], dict[str, Any] | None]

CORE_SD = "http://hl7.org/fhir/StructureDefinition/"
_EXTENSION_SLICING = {
    "discriminator": [{"type": "value", "path": "url"}],
    "description": "Extensions are always sliced by (at least) url",
    "rules": "open",
}
_STRENGTH = {"example": 0, "preferred": 1, "extensible": 2, "required": 3}
# ElementDefinition property order (R4); choice properties are matched by prefix.
_KEY_ORDER = [
    "id", "extension", "modifierExtension", "path", "representation", "sliceName", "sliceIsConstraining",
    "label", "code", "slicing", "short", "definition", "comment", "requirements", "alias", "min", "max",
    "base", "contentReference", "type", "defaultValue", "meaningWhenMissing", "orderMeaning", "fixed",
    "pattern", "example", "minValue", "maxValue", "maxLength", "condition", "constraint", "mustSupport",
    "isModifier", "isModifierReason", "isSummary", "binding", "mapping",
]
_CHOICE_PREFIXES = ("defaultValue", "fixed", "pattern", "minValue", "maxValue")
_SD_KEY_ORDER_BEFORE_SNAPSHOT = "differential"


def snapshotter(core_dir: Path) -> Callable[[dict[str, Any], Resolver], dict[str, Any]]:
    """The function the package build calls for each of our StructureDefinitions.

    ``lookup`` answers our own StructureDefinitions (already with snapshot); everything it does
    not know is read from the R4 core package in ``core_dir``.
    """

    def generate(sd: dict[str, Any], lookup: Resolver) -> dict[str, Any]:
        def resolve(url: str) -> dict[str, Any] | None:
            return lookup(url) or corepkg.read_canonical(core_dir, url)

        return generate_snapshot(sd, resolve)

    return generate


def generate_snapshot(sd: dict[str, Any], resolve: Resolver) -> dict[str, Any]:
    """Return a copy of ``sd`` with ``snapshot.element`` generated from its differential."""
    url = str(sd.get("url", sd.get("id", "?")))
    base_url = sd.get("baseDefinition")
    if not isinstance(base_url, str):
        raise ValueError(f"{url}: baseDefinition is required")
    base = resolve(base_url)
    if base is None or not base.get("snapshot", {}).get("element"):
        raise ValueError(f"{url}: base {base_url} not found (or has no snapshot)")
    if sd.get("derivation", "constraint") != "constraint":
        raise ValueError(f"{url}: only derivation 'constraint' is supported")
    if sd.get("type") != base.get("type"):
        raise ValueError(f"{url}: type {sd.get('type')} differs from base type {base.get('type')}")
    gen = _Generator(url, str(sd["type"]), copy.deepcopy(base["snapshot"]["element"]), resolve)
    diff = sd.get("differential", {}).get("element", [])
    for element, elem_id in zip(diff, differential_ids(diff, url), strict=True):
        gen.apply(element, elem_id)
    if sd["type"] == "Extension":
        gen.fix_extension_url(url)
    gen.check_slice_totals()
    out: dict[str, Any] = {}
    for key, value in sd.items():
        if key == "snapshot":
            continue
        if key == _SD_KEY_ORDER_BEFORE_SNAPSHOT:
            out["snapshot"] = {"element": [ordered(e) for e in gen.elements]}
        out[key] = copy.deepcopy(value)
    if "snapshot" not in out:
        out["snapshot"] = {"element": [ordered(e) for e in gen.elements]}
    return out


def differential_ids(diff: list[Element], where: str) -> list[str]:
    """The element id of each differential element (given, or derived from path and slice context)."""
    context: dict[str, str] = {}  # path -> the slice name currently open at that path
    ids = []
    for n, element in enumerate(diff):
        path = element.get("path")
        if not isinstance(path, str) or not path:
            raise ValueError(f"{where}: differential element {n} has no path")
        slice_name = element.get("sliceName")
        given = element.get("id")
        if isinstance(given, str):
            if id_to_path(given) != path:
                raise ValueError(f"{where}: element id {given} does not match path {path}")
            ids.append(given)
        else:
            parts = path.split(".")
            segs = []
            for i, part in enumerate(parts):
                prefix = ".".join(parts[: i + 1])
                if i == len(parts) - 1:
                    segs.append(f"{part}:{slice_name}" if slice_name else part)
                else:
                    segs.append(f"{part}:{context[prefix]}" if prefix in context else part)
            ids.append(".".join(segs))
        for open_path in [p for p in context if p == path or p.startswith(path + ".")]:
            del context[open_path]
        if slice_name:
            context[path] = str(slice_name)
    return ids


def id_to_path(element_id: str) -> str:
    return ".".join(seg.split(":", 1)[0] for seg in element_id.split("."))


def ordered(element: Element) -> Element:
    """Keys in ElementDefinition order (``_key`` right after ``key``), for stable output."""

    def rank(key: str) -> tuple[int, int, str]:
        bare = key.lstrip("_")
        for i, name in enumerate(_KEY_ORDER):
            suffix = bare[len(name):]
            typed_choice = name in _CHOICE_PREFIXES and bare.startswith(name) and suffix[:1].isupper()
            if bare == name or typed_choice:
                return (i, 1 if key.startswith("_") else 0, key)
        return (len(_KEY_ORDER), 0, key)

    return {k: element[k] for k in sorted(element, key=rank)}


def _max_value(value: str) -> float:
    return float("inf") if value == "*" else float(int(value))


class _Generator:
    """The working snapshot of one profile; one method per differential construct."""

    def __init__(self, url: str, type_name: str, elements: list[Element], resolve: Resolver) -> None:
        self.url = url
        self.type_name = type_name
        self.elements = elements
        self.resolve = resolve

    # -- locating ------------------------------------------------------------------------------

    def index_of(self, element_id: str) -> int | None:
        for i, element in enumerate(self.elements):
            if element.get("id") == element_id:
                return i
        return None

    def subtree_end(self, index: int) -> int:
        """Index after the element, its children and its slices."""
        root = self.elements[index]["id"]
        end = index + 1
        while end < len(self.elements):
            other = self.elements[end]["id"]
            if not (other.startswith(root + ".") or other.startswith(root + ":")):
                break
            end += 1
        return end

    def locate(self, element_id: str) -> tuple[int, str | None]:
        """Index of ``element_id`` (unfolding data types on the way) and the type a renamed choice forces."""
        found = self.index_of(element_id)
        if found is not None:
            return found, None
        if "." not in element_id:
            raise ValueError(f"{self.url}: {element_id} is not an element of {self.type_name}")
        parent_id, last = element_id.rsplit(".", 1)
        parent_index, forced = self.locate(parent_id)
        if forced is not None:  # going below x.valueQuantity restricts x.value[x] to Quantity
            parent = self.elements[parent_index]
            parent["type"] = [t for t in parent.get("type", []) if t.get("code") == forced]
            parent_id = parent["id"]
        self.unfold(parent_index)
        name, _, slice_name = last.partition(":")
        candidate = f"{parent_id}.{last}"
        found = self.index_of(candidate)
        if found is not None:
            return found, None
        if slice_name:
            raise ValueError(f"{self.url}: {element_id}: slice {slice_name} is not defined")
        return self.choice_rename(parent_id, name, element_id)

    def choice_rename(self, parent_id: str, name: str, element_id: str) -> tuple[int, str]:
        """``valueQuantity`` -> (``value[x]``, ``Quantity``) when the base allows that type."""
        for i, element in enumerate(self.elements):
            eid = element["id"]
            if not (eid.startswith(parent_id + ".") and eid.endswith("[x]")):
                continue
            stem = eid[len(parent_id) + 1 : -3]
            if "." in stem or ":" in stem or not name.startswith(stem):
                continue
            suffix = name[len(stem):]
            for t in element.get("type", []):
                code = str(t.get("code", ""))
                if code and code[0].upper() + code[1:] == suffix:
                    return i, code
        raise ValueError(f"{self.url}: {element_id} does not exist in the base of {self.type_name}")

    def unfold(self, index: int) -> None:
        """Add the children of a data-type element from the type's definition, if not there yet."""
        parent = self.elements[index]
        pid = parent["id"]
        nxt = self.elements[index + 1]["id"] if index + 1 < len(self.elements) else ""
        if nxt.startswith(pid + "."):
            return
        if "contentReference" in parent:
            raise ValueError(f"{self.url}: constraining below {pid} (contentReference) is not supported")
        codes = sorted({str(t.get("code")) for t in parent.get("type", [])})
        if len(codes) != 1:
            raise ValueError(f"{self.url}: cannot go below {pid}: {len(codes)} types (restrict it first)")
        profiles = [p for t in parent["type"] for p in t.get("profile", [])]
        source_url = profiles[0] if len(profiles) == 1 else CORE_SD + codes[0]
        source = self.resolve(source_url)
        if source is None or not source.get("snapshot", {}).get("element"):
            raise ValueError(f"{self.url}: cannot go below {pid}: {source_url} not found")
        root_path = source["snapshot"]["element"][0]["path"]
        children = []
        for child in source["snapshot"]["element"][1:]:
            c = copy.deepcopy(child)
            c["id"] = pid + c["id"][len(root_path):]
            c["path"] = parent["path"] + c["path"][len(root_path):]
            children.append(c)
        self.elements[index + 1 : index + 1] = children

    # -- applying ------------------------------------------------------------------------------

    def apply(self, diff: Element, element_id: str) -> None:
        slice_name = diff.get("sliceName")
        if slice_name and self.index_of(element_id) is None:
            self.add_slice(element_id, str(slice_name))
        index, forced = self.locate(element_id)
        target = self.elements[index]
        if forced is not None and "type" not in diff:
            diff = {**diff, "type": [{"code": forced}]}
        elif forced is not None and [t.get("code") for t in diff["type"]] != [forced]:
            raise ValueError(f"{self.url}: {element_id}: type must be {forced} for this path")
        self.merge(target, diff)

    def add_slice(self, element_id: str, slice_name: str) -> None:
        sliced_id = element_id[: -(len(slice_name) + 1)]
        if not element_id.endswith(":" + slice_name):
            raise ValueError(f"{self.url}: id {element_id} does not end in slice {slice_name}")
        sliced_index, _ = self.locate(sliced_id)
        sliced = self.elements[sliced_index]
        if "slicing" not in sliced:
            if sliced["path"].rsplit(".", 1)[-1] in ("extension", "modifierExtension"):
                sliced["slicing"] = copy.deepcopy(_EXTENSION_SLICING)
            else:
                raise ValueError(f"{self.url}: slice {element_id}: {sliced_id} has no slicing")
        if _max_value(str(sliced.get("max", "*"))) <= 1:
            raise ValueError(f"{self.url}: slice {element_id}: {sliced_id} is not repeating")
        head = copy.deepcopy(sliced)
        head.pop("slicing", None)
        head["id"] = element_id
        head["sliceName"] = slice_name
        head["min"] = 0
        new = [head]
        for child in self.elements[sliced_index + 1 : self.subtree_end(sliced_index)]:
            if child["id"].startswith(sliced_id + "."):
                c = copy.deepcopy(child)
                c["id"] = element_id + c["id"][len(sliced_id):]
                new.append(c)
        end = self.subtree_end(sliced_index)
        self.elements[end:end] = new

    def merge(self, target: Element, diff: Element) -> None:
        where = f"{self.url}: {target['id']}"
        self.merge_cardinality(target, diff, where)
        for key, value in diff.items():
            if key in ("id", "path", "sliceName", "min", "max", "base"):
                continue
            if key == "type":
                target["type"] = self.narrow_types(target.get("type", []), value, where)
            elif key == "constraint":
                have = {c.get("key") for c in target.get("constraint", [])}
                for c in value:
                    if c.get("key") in have:
                        raise ValueError(f"{where}: constraint key {c.get('key')} already defined")
                    added = {**copy.deepcopy(c), "source": c.get("source", self.url)}
                    target.setdefault("constraint", []).append(added)
            elif key in ("condition", "alias"):
                merged = list(target.get(key, []))
                merged += [v for v in value if v not in merged]
                target[key] = merged
            elif key == "mapping":
                target[key] = list(target.get(key, [])) + copy.deepcopy(value)
            elif key == "binding":
                self.merge_binding(target, value, where)
            elif key.startswith(("fixed", "pattern")):
                for old in [k for k in target if k.startswith(("fixed", "pattern"))]:
                    if old != key or target[old] != value:
                        raise ValueError(f"{where}: {key} conflicts with {old} of the base")
                target[key] = copy.deepcopy(value)
            elif key == "slicing":
                target["slicing"] = {**target.get("slicing", {}), **copy.deepcopy(value)}
            else:
                target[key] = copy.deepcopy(value)
                if not key.startswith("_") and f"_{key}" in target and f"_{key}" not in diff:
                    del target[f"_{key}"]

    def merge_cardinality(self, target: Element, diff: Element, where: str) -> None:
        base_min = int(target.get("min", 0))
        base_max = str(target.get("max", "*"))
        new_min = int(diff.get("min", base_min))
        new_max = str(diff.get("max", base_max))
        if new_min < base_min:
            raise ValueError(f"{where}: min {new_min} widens the base min {base_min}")
        if _max_value(new_max) > _max_value(base_max):
            raise ValueError(f"{where}: max {new_max} widens the base max {base_max}")
        if new_min > _max_value(new_max):
            raise ValueError(f"{where}: min {new_min} exceeds max {new_max}")
        target["min"] = new_min
        target["max"] = new_max

    def merge_binding(self, target: Element, binding: dict[str, Any], where: str) -> None:
        old = target.get("binding")
        new = {**(old or {}), **copy.deepcopy(binding)}
        if str(new.get("strength")) not in _STRENGTH:
            raise ValueError(f"{where}: binding strength {new.get('strength')!r} is not a FHIR strength")
        if old and _STRENGTH[str(new["strength"])] < _STRENGTH[str(old.get("strength"))]:
            raise ValueError(f"{where}: binding strength {new.get('strength')} weakens {old.get('strength')}")
        if old and old.get("strength") == "required" and new.get("valueSet") != old.get("valueSet"):
            # A required binding may only be replaced by a subset; we cannot prove that here.
            raise ValueError(f"{where}: cannot replace the required value set {old.get('valueSet')}")
        if "valueSet" in binding and "description" not in binding:
            new.pop("description", None)
        target["binding"] = new

    def narrow_types(self, base: list[Element], new: list[Element], where: str) -> list[Element]:
        by_code = {str(t.get("code")): t for t in base}
        out = []
        for t in new:
            code = str(t.get("code"))
            base_t = by_code.get(code)
            if base_t is None:
                if "Resource" in by_code and self.kind_of(code) == "resource":
                    base_t = by_code["Resource"]
                else:
                    raise ValueError(f"{where}: type {code} is not allowed by the base: {', '.join(by_code)}")
            merged = {**copy.deepcopy(base_t), **copy.deepcopy(t)}
            for profile in t.get("profile", []):
                allowed = base_t.get("profile", [])
                self.check_profile(profile, code, allowed, where)
            if "targetProfile" in t:
                base_targets = base_t.get("targetProfile", [])
                allowed_types = [self.type_of(p, where) for p in base_targets] or ["Resource"]
                for target_profile in t["targetProfile"]:
                    target_type = self.type_of(target_profile, where)
                    if target_type not in allowed_types and "Resource" not in allowed_types:
                        raise ValueError(
                            f"{where}: target {target_profile} ({target_type}) is not one of {allowed_types}")
            out.append(merged)
        return out

    def check_profile(self, profile: str, code: str, allowed: list[str], where: str) -> None:
        if self.type_of(profile, where) != code:
            raise ValueError(f"{where}: profile {profile} is not a profile on {code}")
        if allowed and profile not in allowed:
            raise ValueError(f"{where}: profile {profile} is not one of the base's {allowed}")

    def type_of(self, url: str, where: str) -> str:
        sd = self.resolve(url)
        if sd is None:
            raise ValueError(f"{where}: cannot resolve {url}")
        return str(sd.get("type"))

    def kind_of(self, code: str) -> str | None:
        sd = self.resolve(CORE_SD + code)
        return None if sd is None else str(sd.get("kind"))

    # -- whole-profile checks -------------------------------------------------------------------

    def fix_extension_url(self, url: str) -> None:
        """An extension definition's own ``Extension.url`` is fixed to its canonical (R4 Extensibility)."""
        index = self.index_of("Extension.url")
        if index is not None and "fixedUri" not in self.elements[index]:
            self.elements[index]["fixedUri"] = url

    def check_slice_totals(self) -> None:
        """The slices' minimums together may not exceed what the sliced element allows."""
        for element in self.elements:
            if "slicing" not in element:
                continue
            eid = element["id"]
            slice_ids = [e for e in self.elements if re.fullmatch(re.escape(eid) + r":[^.:]+", e["id"])]
            total = sum(int(e.get("min", 0)) for e in slice_ids)
            if total > _max_value(str(element.get("max", "*"))):
                raise ValueError(f"{self.url}: {eid}: slice minimums {total} exceed max {element.get('max')}")
