"""Where definitions come from: our package first, then the HL7 R4 core package.

Only canonical lookups and the type catalogue live here; nothing is compiled. The core package is
read through ``knowledge.corepkg`` (its ``.index.json`` gives every StructureDefinition's kind and
type without opening 4,581 files).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alk_fhir.knowledge import Package, corepkg

FHIR_SD = "http://hl7.org/fhir/StructureDefinition/"
SYSTEM_PREFIX = "http://hl7.org/fhirpath/System."
FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
REGEX_EXT = "http://hl7.org/fhir/StructureDefinition/regex"
ABSTRACT_RESOURCES = frozenset({"Resource", "DomainResource"})


@dataclass
class Definitions:
    package: Package
    core_dir: Path
    resource_types: frozenset[str] = frozenset()
    complex_types: frozenset[str] = frozenset()
    primitive_types: frozenset[str] = frozenset()
    _core_by_url: dict[str, str] = field(default_factory=dict)
    _core_cache: dict[str, dict[str, Any] | None] = field(default_factory=dict)

    @classmethod
    def load(cls, package: Package, core_dir: Path) -> Definitions:
        index = json.loads((core_dir / ".index.json").read_text(encoding="utf-8"))
        by_url: dict[str, str] = {}
        kinds: dict[str, set[str]] = {"resource": set(), "complex-type": set(), "primitive-type": set()}
        for entry in index["files"]:
            url = entry.get("url")
            if url:
                by_url[url] = entry["filename"]
            if entry["resourceType"] == "StructureDefinition" and url == FHIR_SD + str(entry.get("type")):
                kinds.setdefault(entry.get("kind", ""), set()).add(entry["type"])
        return cls(
            package=package,
            core_dir=core_dir,
            resource_types=frozenset(kinds["resource"] - ABSTRACT_RESOURCES),
            complex_types=frozenset(kinds["complex-type"]),
            primitive_types=frozenset(kinds["primitive-type"]),
            _core_by_url=by_url,
        )

    def resolve(self, url: str) -> dict[str, Any] | None:
        """A canonical resource (StructureDefinition, ValueSet, CodeSystem) from ours or the core."""
        bare = url.split("|", 1)[0]
        found = self.package.resolve(url) or self.package.resolve(bare)
        if found is not None:
            return found
        if bare in self._core_cache:
            return self._core_cache[bare]
        name = self._core_by_url.get(bare)
        res = None if name is None else _without_prose(corepkg.read_canonical(self.core_dir, bare))
        self._core_cache[bare] = res
        return res

    def is_ours(self, url: str) -> bool:
        return self.package.resolve(url.split("|", 1)[0]) is not None

    def structure(self, url: str) -> dict[str, Any] | None:
        res = self.resolve(url)
        return res if res is not None and res.get("resourceType") == "StructureDefinition" else None

    def type_structure(self, code: str) -> dict[str, Any] | None:
        return self.structure(type_url(code))

    def is_type(self, name: str) -> bool:
        return name in self.complex_types or name in self.primitive_types or name in self.resource_types


# What a core StructureDefinition says for people, which no check reads: the differential (the
# snapshot holds everything), mappings to other standards, and each element's prose. A validator
# keeps some 250 core definitions for the life of the process; without these they take about 8 MB
# less (of 18 MB).
_SD_PROSE = ("text", "differential", "mapping")
_ELEMENT_PROSE = ("short", "definition", "comment", "requirements", "alias", "mapping")


def _without_prose(res: dict[str, Any] | None) -> dict[str, Any] | None:
    if res is None or res.get("resourceType") != "StructureDefinition" or "snapshot" not in res:
        return res
    for key in _SD_PROSE:
        res.pop(key, None)
    for element in res["snapshot"].get("element", []):
        for key in _ELEMENT_PROSE:
            element.pop(key, None)
    return res


def type_url(code: str) -> str:
    return code if "/" in code else FHIR_SD + code


def element_type_code(type_entry: dict[str, Any]) -> str:
    """The FHIR type of an ElementDefinition.type entry (R4 writes System.String for ids, urls ...)."""
    code = str(type_entry.get("code", ""))
    if code.startswith(SYSTEM_PREFIX):
        for ext in type_entry.get("extension", []):
            if ext.get("url") == FHIR_TYPE_EXT:
                return str(ext.get("valueUrl") or ext.get("valueUri") or "string")
        return "string"
    return code
