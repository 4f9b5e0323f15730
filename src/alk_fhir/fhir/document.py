"""The identifier of a FHIR document Bundle: what the exchange sends on and the store keys by.

R4 bdl-9: a document has an ``identifier`` with ``system`` and ``value``; it names the document
across versions and servers, so a conditional create on it makes a retried send harmless.
"""

from __future__ import annotations

from typing import Any


def document_identifier(bundle: Any) -> tuple[str, str]:
    """``(system, value)`` of a document Bundle, or ``ValueError`` naming what is missing."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise ValueError("not a Bundle: a case overview is a FHIR document Bundle")
    if bundle.get("type") != "document":
        raise ValueError(f"Bundle.type is {bundle.get('type')!r}, expected 'document'")
    identifier = bundle.get("identifier")
    if not isinstance(identifier, dict):
        raise ValueError("Bundle.identifier is missing: without it a retry could create a duplicate")
    system, value = identifier.get("system"), identifier.get("value")
    if not isinstance(system, str) or not system:
        raise ValueError("Bundle.identifier.system is missing")
    if not isinstance(value, str) or not value:
        raise ValueError("Bundle.identifier.value is missing")
    return system, value
