"""The CapabilityStatement: what this server really supports, built from the mounted faces."""

from __future__ import annotations

from typing import Any

from alk_fhir import __version__
from alk_fhir.knowledge import Package

_KNOWLEDGE_SEARCH = [
    {"name": n, "type": t}
    for n, t in (("url", "uri"), ("version", "token"), ("name", "string"), ("status", "token"))
]


def capability_statement(base_url: str, pkg: Package, extra: list[dict[str, Any]] | None = None,
                         operations: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """``extra``: resource entries contributed by other faces (e.g. Bundle storage)."""
    knowledge_types = sorted({r["resourceType"] for r in pkg.resources})
    resources: list[dict[str, Any]] = []
    for rtype in knowledge_types:
        entry: dict[str, Any] = {
            "type": rtype,
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "searchParam": _KNOWLEDGE_SEARCH,
        }
        profiles = [r["url"] for r in pkg.of_type("StructureDefinition")
                    if r.get("type") == rtype and r.get("kind") == "resource"]
        if profiles:
            entry["supportedProfile"] = profiles
        if rtype == "ValueSet":
            entry["operation"] = [{"name": "expand", "definition": "http://hl7.org/fhir/OperationDefinition/ValueSet-expand"}]
        resources.append(entry)
    resources += extra or []
    rest: dict[str, Any] = {"mode": "server", "resource": sorted(resources, key=lambda r: str(r["type"]))}
    if operations:
        rest["operation"] = operations
    return {
        "resourceType": "CapabilityStatement",
        "id": "alk-fhir",
        "status": "active",
        "date": "2026-11-23",
        "kind": "instance",
        "software": {"name": "alk-fhir", "version": __version__},
        "implementation": {"description": "alk-fhir: hardnekkige ALK knowledge, validation and CDS",
                           "url": f"{base_url}/fhir"},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [rest],
    }
