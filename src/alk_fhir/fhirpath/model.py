"""The FHIR R4 type model FHIRPath navigation needs: element types, choice elements, type ancestry.

Why fhirpathpy's model files: they are the R4 StructureDefinitions reduced to four tables (path ->
type, choice paths -> types, content references, type -> parent) and ship with an installed
dependency, so evaluation needs no core package at run time. Only the data is used here, not
fhirpathpy's evaluator.
"""

from __future__ import annotations

from functools import lru_cache

from fhirpathpy.models import models

_R4 = models["r4"]
PATH_TYPES: dict[str, str] = dict(_R4["path2Type"])
CHOICES: dict[str, list[str]] = dict(_R4["choiceTypePaths"])
ELSEWHERE: dict[str, str] = dict(_R4["pathsDefinedElsewhere"])
PARENTS: dict[str, str] = dict(_R4["type2Parent"])

PRIMITIVES = frozenset({
    "base64Binary", "boolean", "canonical", "code", "date", "dateTime", "decimal", "id", "instant",
    "integer", "markdown", "oid", "positiveInt", "string", "time", "unsignedInt", "uri", "url", "uuid",
    "xhtml", "integer64",
})
RESOURCES = frozenset(t for t in PARENTS if _R4["type2Parent"].get(t) in ("DomainResource", "Resource")
                      ) | {"Resource", "DomainResource", "Bundle", "Parameters", "Binary"}
# value[x] spelled out (valueQuantity): not FHIRPath names (FHIR R4 §2.1.9.1, polymorphism)
CHOICE_NAMES = frozenset(f"{path}{t}" for path, types in CHOICES.items() for t in types)
_BACKBONES = frozenset(p.rsplit(".", 1)[0] for p in PATH_TYPES if p.count(".") >= 2)


def choice_type(suffix: str) -> str:
    """``DateTime`` (from ``valueDateTime``) as the FHIR type name ``dateTime``."""
    lowered = suffix[:1].lower() + suffix[1:]
    return lowered if lowered in PRIMITIVES else suffix


@lru_cache(maxsize=8192)
def child(path: str, name: str) -> tuple[str, str] | tuple[str, None] | None:
    """(FHIR type, model path for the child's own children) of element ``name`` under ``path``;
    ``("choice", None)`` for a choice element, None when the model has no such element."""
    key = f"{path}.{name}"
    key = ELSEWHERE.get(key, key) if key in ELSEWHERE else key
    if key in CHOICES:
        return "choice", None
    found = PATH_TYPES.get(key)
    if found is not None:
        if found.startswith("System."):
            return "string", "string"
        return found, found
    if key in _BACKBONES or f"{path}.{name}" in ELSEWHERE:
        return "BackboneElement", key
    base = PARENTS.get(path.split(".", 1)[0]) if "." not in path else None
    if base and base not in ("Element", "Base"):
        return child(base, name)
    if base == "Element" or "." in path:
        if name in ("id", "extension"):
            return ("string", "string") if name == "id" else ("Extension", "Extension")
        if name == "modifierExtension":
            return "Extension", "Extension"
    return None


def choice_types(path: str, name: str) -> list[str]:
    return CHOICES.get(ELSEWHERE.get(f"{path}.{name}", f"{path}.{name}"), [])


@lru_cache(maxsize=1024)
def ancestors(type_name: str) -> tuple[str, ...]:
    """``type_name`` and the types it specialises (``Age`` -> Age, Quantity, Element)."""
    out = [type_name]
    while out[-1] in PARENTS:
        out.append(PARENTS[out[-1]])
    return tuple(out)


def is_resource_type(name: str) -> bool:
    return "Resource" in ancestors(name) or name in RESOURCES
