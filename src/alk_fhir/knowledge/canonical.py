"""The one canonical base and package identity; every artifact URL is built from these."""

from __future__ import annotations

CANONICAL_BASE = "https://alk-fhir.org/fhir"
PACKAGE_ID = "alk-fhir.r4"
PACKAGE_VERSION = "0.1.0"
FHIR_VERSION = "4.0.1"

GUIDELINE_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/alk-guideline"
CONCEPTS_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/alk-concepts"
TRANSLATION_EXT = "http://hl7.org/fhir/StructureDefinition/translation"
FACTS_LIBRARY = f"{CANONICAL_BASE}/Library/alk-facts"  # the facts the rules read (alk_fhir.context)


def canonical(resource_type: str, resource_id: str) -> str:
    return f"{CANONICAL_BASE}/{resource_type}/{resource_id}"
