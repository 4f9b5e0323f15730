"""The ten sections of the case overview, read from the Composition profile in the package.

The profile (StructureDefinition alk-case-overview) is the one place that says which sections
exist and how each is coded (our concept ``overview-*`` plus the guideline section); this module
only reads it, so a section added to or recoded in the profile reaches build, render and diff
without a code change. Titles are the Dutch displays of the concepts in CodeSystem alk-concepts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alk_fhir.knowledge import CANONICAL_BASE, CONCEPTS_SYSTEM, GUIDELINE_SYSTEM, Package

PROFILE = f"{CANONICAL_BASE}/StructureDefinition/alk-case-overview"
DOCUMENT_PROFILE = f"{CANONICAL_BASE}/StructureDefinition/alk-case-overview-document"


@dataclass(frozen=True)
class SectionSpec:
    key: str  # the slice name, e.g. "stepPlan"
    concept: str  # our code, e.g. "overview-step-plan"
    guideline: str  # Handreiking section, e.g. "3.3"
    title: str  # Dutch display of ``concept``
    code: dict[str, Any]  # the section's CodeableConcept (the profile's pattern)


def section_specs(pkg: Package) -> tuple[SectionSpec, ...]:
    """The sections in profile order; LookupError when the package lacks the profile."""
    cached: tuple[SectionSpec, ...] | None = getattr(pkg, "_overview_sections", None)
    if cached is not None:
        return cached
    sd = pkg.resolve(PROFILE)
    if sd is None:
        raise LookupError(f"the package has no StructureDefinition {PROFILE}")
    elements = (sd.get("snapshot") or sd.get("differential") or {}).get("element", [])
    specs: list[SectionSpec] = []
    for el in elements:
        el_id = str(el.get("id", ""))
        if not (el_id.startswith("Composition.section:") and el_id.endswith(".code")):
            continue
        key = el_id[len("Composition.section:"):-len(".code")]
        if "." in key:
            continue
        pattern = el.get("patternCodeableConcept") or {}
        codes = {c.get("system"): c.get("code") for c in pattern.get("coding", [])}
        concept, guideline = codes.get(CONCEPTS_SYSTEM), codes.get(GUIDELINE_SYSTEM)
        if not concept or not guideline:
            raise LookupError(f"{PROFILE}: slice {key} is not coded with our concept and guideline section")
        title = pkg.terminology.display(CONCEPTS_SYSTEM, concept) or concept
        specs.append(SectionSpec(key, concept, guideline, title, pattern))
    if not specs:
        raise LookupError(f"{PROFILE} defines no section slices")
    result = tuple(specs)
    pkg._overview_sections = result  # type: ignore[attr-defined]  # read once per loaded package
    return result


def spec_of_section(pkg: Package, section: Any) -> SectionSpec | None:
    """The spec whose concept code the section carries (sections are recognised by code)."""
    if not isinstance(section, dict):
        return None
    codings = (section.get("code") or {}).get("coding") or []
    codes = {c.get("code") for c in codings if isinstance(c, dict) and c.get("system") == CONCEPTS_SYSTEM}
    for spec in section_specs(pkg):
        if spec.concept in codes:
            return spec
    return None
