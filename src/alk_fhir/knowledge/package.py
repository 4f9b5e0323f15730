"""Load the package in ``profiles/`` once and index it.

A broken package (unreadable file, a resource ``fhir.resources`` rejects, a duplicate canonical,
a canonical reference that points nowhere) must stop start-up: serving advice from half a
guideline is worse than not serving.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

from alk_fhir.knowledge import valuesets

META_FILES = {"package.json", ".index.json"}

# Canonical-typed elements whose targets must live inside the package (or be a known base resource).
_CANONICAL_KEYS = {
    "definitionCanonical", "valueSet", "answerValueSet", "profile", "targetProfile", "library",
    "baseDefinition", "questionnaire", "instantiatesCanonical", "valueCanonical",
}
_EXTERNAL_PREFIXES = ("http://hl7.org/fhir/", "http://terminology.hl7.org/")


class BrokenPackage(RuntimeError):
    """The package cannot be served; the message names the file and the reason."""


@dataclass
class Package:
    root: Path
    manifest: dict[str, Any]
    resources: list[dict[str, Any]] = field(default_factory=list)
    files: dict[tuple[str, str], str] = field(default_factory=dict)
    by_canonical: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_id: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    terminology: valuesets.Terminology = field(default_factory=valuesets.Terminology)
    # what other modules compile from this package once (e.g. the facts of Library alk-facts), keyed
    # by the compiling module: the package is immutable while loaded, so its derivations are too
    compiled: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def name(self) -> str:
        return str(self.manifest["name"])

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    def get(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        return self.by_id.get((resource_type, resource_id))

    def resolve(self, reference: str) -> dict[str, Any] | None:
        """Look a canonical up as ``url`` or ``url|version`` (the version must then match)."""
        return self.by_canonical.get(reference) or (
            None if "|" in reference else self.by_canonical.get(reference.split("|", 1)[0])
        )

    def of_type(self, resource_type: str) -> list[dict[str, Any]]:
        return [r for r in self.resources if r["resourceType"] == resource_type]

    def search(self, resource_type: str, **params: str) -> list[dict[str, Any]]:
        """The knowledge-repository searches: ``url``, ``version``, ``name``, ``status``, ``_id``."""
        found = []
        for res in self.of_type(resource_type):
            if all(_matches(res, key, value) for key, value in params.items()):
                found.append(res)
        return found

    def in_valueset(self, valueset_url: str, system: str | None, code: str | None) -> bool:
        return self.terminology.contains(valueset_url, system, code)

    def any_in_valueset(self, valueset_url: str, codings: list[dict[str, Any]]) -> bool:
        return any(self.in_valueset(valueset_url, c.get("system"), c.get("code")) for c in codings)


def _matches(res: dict[str, Any], key: str, value: str) -> bool:
    if key == "_id":
        return res.get("id") == value
    return str(res.get(key, "")) == value


def load_package(root: Path, conceptmaps: tuple[Path, ...] = ()) -> Package:
    """The package in ``root``, with the installation's ConceptMaps (e.g. G-Standaard -> ATC) added to
    its terminology: they are the installation's, not the package's, so they are not served."""
    manifest_path = root / "package.json"
    manifest = _read_json(manifest_path)
    if manifest.get("fhirVersions") != ["4.0.1"]:
        raise BrokenPackage(f"{manifest_path}: fhirVersions must be ['4.0.1']")
    pkg = Package(root=root, manifest=manifest)
    for path in sorted(root.glob("*.json")):
        if path.name in META_FILES:
            continue
        res = _read_json(path)
        _check_model(path, res)
        key = (res["resourceType"], res.get("id", ""))
        if not key[1]:
            raise BrokenPackage(f"{path}: resource has no id")
        if key in pkg.by_id:
            raise BrokenPackage(f"{path}: duplicate {key[0]}/{key[1]} (also in {pkg.files[key]})")
        pkg.by_id[key] = res
        pkg.files[key] = path.name
        pkg.resources.append(res)
        url = res.get("url")
        if url:
            if url in pkg.by_canonical:
                raise BrokenPackage(f"{path}: duplicate canonical {url}")
            pkg.by_canonical[url] = res
            if res.get("version"):
                pkg.by_canonical[f"{url}|{res['version']}"] = res
    pkg.terminology = valuesets.Terminology.from_resources(pkg.resources)
    for path in conceptmaps:
        conceptmap = _read_json(path)
        if conceptmap.get("resourceType") != "ConceptMap":
            raise BrokenPackage(f"{path}: not a ConceptMap (ALK_FHIR_CONCEPTMAPS)")
        _check_model(path, conceptmap)
        pkg.terminology.add_conceptmap(conceptmap)
    unresolved = sorted(set(unresolved_canonicals(pkg)))
    if unresolved:
        raise BrokenPackage("canonical references that resolve nowhere: " + ", ".join(unresolved))
    return pkg


def canonical_references(node: Any) -> Iterator[str]:
    """Every canonical-typed value inside a resource (recursively)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _CANONICAL_KEYS:
                yield from (v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str))
            else:
                yield from canonical_references(value)
    elif isinstance(node, list):
        for item in node:
            yield from canonical_references(item)


def unresolved_canonicals(pkg: Package) -> Iterator[str]:
    own = pkg.manifest.get("canonical", "")
    for res in pkg.resources:
        for ref in canonical_references(res):
            if ref.startswith(own) and pkg.resolve(ref) is None:
                yield f"{res['resourceType']}/{res['id']} -> {ref}"
            elif not ref.startswith(own) and not ref.startswith(_EXTERNAL_PREFIXES) and not ref.startswith("#"):
                yield f"{res['resourceType']}/{res['id']} -> {ref} (unknown publisher)"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BrokenPackage(f"{path}: {exc}") from exc
    if not isinstance(data, dict):
        raise BrokenPackage(f"{path}: not a JSON object")
    return data


def _check_model(path: Path, res: dict[str, Any]) -> None:
    rtype = res.get("resourceType")
    if not isinstance(rtype, str):
        raise BrokenPackage(f"{path}: no resourceType")
    try:
        get_fhir_model_class(rtype).model_validate(res)
    except Exception as exc:
        raise BrokenPackage(f"{path}: not a valid FHIR {rtype}: {exc}") from exc
