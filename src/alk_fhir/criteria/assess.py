"""The persistent-ALK assessment (H §1.1, Profielschets) as an Observation, from the facts.

Every decision is a fact of Library alk-facts: each criterion's status (``criterion1`` …, the
clinician's answer until newer record evidence supersedes it, else the record), the overall
``persistenceStatus`` and the ``profileFeatures``. Which fact decides which criterion, which facts hold
its supporting or unknown entries, and which fact says its answer is superseded are properties of the
criterion's concept in CodeSystem alk-concepts (``fact``, ``evidence``, ``unknown-evidence``,
``superseded``). This module only lays those out as the alk-assessment profile asks: one component per
criterion and feature, each with its evidence references, the deciding evidence first (the form's
answer, or the newer record entries that superseded it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from alk_fhir.context import PatientContext
from alk_fhir.context.fhirdata import JSON, resource_key
from alk_fhir.knowledge import CANONICAL_BASE, CONCEPTS_SYSTEM, Package

MET, NOT_MET, UNKNOWN = "criterion-met", "criterion-not-met", "criterion-unknown"
ASSESSMENT_PROFILE = f"{CANONICAL_BASE}/StructureDefinition/alk-assessment"
EVIDENCE_EXT = f"{CANONICAL_BASE}/StructureDefinition/alk-evidence"
# Observation.derivedFrom may only point at these (R4); other evidence stays on the components.
DERIVED_FROM_TYPES = ("DocumentReference", "ImagingStudy", "Media", "QuestionnaireResponse", "MolecularSequence",
                      "Observation")


@dataclass
class CriterionResult:
    code: str
    status: str
    evidence: list[JSON] = field(default_factory=list)
    unknown: list[JSON] = field(default_factory=list)  # entries only text describes: the clinician must answer
    superseded: bool = False  # newer record evidence went against the clinician's answer: the record decided


@dataclass
class Assessment:
    criteria: list[CriterionResult]
    features: dict[str, list[JSON]]
    overall: str
    questionnaire: JSON | None
    reassess: bool = False  # newer record evidence went against the clinician's assessment


def _properties(concept: JSON | None, code: str) -> list[str]:
    return [str(p.get("valueString")) for p in (concept or {}).get("property", []) if p.get("code") == code]


def _refs(ctx: PatientContext, facts: list[str]) -> list[JSON]:
    out: list[JSON] = []
    seen: set[str] = set()
    for fact in facts:
        for ref in ctx.evidence(fact):  # {"reference": …} each: the same reference is the same dict
            if ref["reference"] not in seen:
                seen.add(ref["reference"])
                out.append(ref)
    return out


def _qr_evidence(response: JSON, link: str) -> JSON:
    return {"reference": resource_key(response), "display": f"{response.get('questionnaire', '')}#{link}"}


def _status(value: Any) -> str:
    return MET if value is True else NOT_MET if value is False else UNKNOWN


def _criteria(ctx: PatientContext, pkg: Package) -> list[tuple[str, JSON | None, str]]:
    """(code, concept, status) of each criterion of ValueSet alk-criteria, its status read from the
    fact its concept names (property ``fact``)."""
    term = pkg.terminology
    out = []
    for item in term.expand(f"{CANONICAL_BASE}/ValueSet/alk-criteria"):
        concept = term.concept(CONCEPTS_SYSTEM, item["code"])
        decides = _properties(concept, "fact")
        out.append((str(item["code"]), concept, _status(ctx.facts.get(decides[0])) if decides else UNKNOWN))
    return out


def unknown_entries(ctx: PatientContext, pkg: Package) -> list[JSON]:
    """References to the record's entries that leave a criterion unknown (its ``unknown-evidence``
    facts), without the rest of the assessment: what the §1.1 card names, read on every hook call."""
    out: list[JSON] = []
    for _, concept, status in _criteria(ctx, pkg):
        if status == UNKNOWN:
            out += [ref for ref in _refs(ctx, _properties(concept, "unknown-evidence")) if ref not in out]
    return out


def assess(ctx: PatientContext, pkg: Package) -> Assessment:
    facts = ctx.facts
    response = facts.get("criteriaResponse") if isinstance(facts.get("criteriaResponse"), dict) else None
    answered = {str(i.get("linkId")) for i in facts.get("criteriaAnswers", []) if isinstance(i, dict)}
    term = pkg.terminology
    criteria = []
    for code, concept, status in _criteria(ctx, pkg):
        evidence = _refs(ctx, _properties(concept, "evidence"))
        superseded = any(facts.get(name) is True for name in _properties(concept, "superseded"))
        if response is not None and code in answered:
            # the answer decides and comes first, unless newer record evidence superseded it
            evidence.insert(len(evidence) if superseded else 0, _qr_evidence(response, code))
        unknown = _refs(ctx, _properties(concept, "unknown-evidence")) if status == UNKNOWN else []
        criteria.append(CriterionResult(code, status, evidence, unknown, superseded))
    features: dict[str, list[JSON]] = {}
    for code in facts.get("profileFeatures", []):
        concept = term.concept(CONCEPTS_SYSTEM, str(code))
        evidence = [_qr_evidence(response, str(code))] if response is not None and code in answered else []
        features[str(code)] = evidence + _refs(ctx, _properties(concept, "evidence"))
    overall = str(facts.get("persistenceStatus") or UNKNOWN)
    whole = term.concept(CONCEPTS_SYSTEM, "persistent-alk-assessment")
    reassess = any(facts.get(name) is True for name in _properties(whole, "superseded"))
    return Assessment(criteria=criteria, features=features, overall=overall, questionnaire=response,
                      reassess=reassess)


def _concept(pkg: Package, code: str) -> JSON:
    coding: JSON = {"system": CONCEPTS_SYSTEM, "code": code}
    concept = pkg.terminology.concept(CONCEPTS_SYSTEM, code)
    if concept:
        coding["display"] = concept["display"]
    return {"coding": [coding]}


def _derivable(evidence: list[JSON]) -> dict[str, JSON]:
    return {ev["reference"]: {"reference": ev["reference"]} for ev in evidence
            if ev["reference"].split("/")[0] in DERIVED_FROM_TYPES}


def assessment_observation(assessment: Assessment, ctx: PatientContext, pkg: Package, obs_id: str) -> JSON:
    """The assessment as an Observation conforming to our alk-assessment profile."""
    components: list[JSON] = []
    derived: dict[str, JSON] = {}
    for crit in assessment.criteria:
        comp: JSON = {"code": _concept(pkg, crit.code), "valueCodeableConcept": _concept(pkg, crit.status)}
        evidence = crit.evidence + [ref for ref in crit.unknown if ref not in crit.evidence]
        if evidence:
            comp["extension"] = [{"url": EVIDENCE_EXT, "valueReference": ev} for ev in evidence]
        components.append(comp)
        derived.update(_derivable(crit.evidence))
    for code, evidence in sorted(assessment.features.items()):
        comp = {"code": _concept(pkg, code), "valueBoolean": True}
        if evidence:
            comp["extension"] = [{"url": EVIDENCE_EXT, "valueReference": ev} for ev in evidence]
        components.append(comp)
        derived.update(_derivable(evidence))
    obs: JSON = {
        "resourceType": "Observation",
        "id": obs_id,
        "meta": {"profile": [ASSESSMENT_PROFILE]},
        # interim while a criterion is unknown or newer record evidence awaits the clinician's reassessment
        "status": "preliminary" if assessment.overall == UNKNOWN or assessment.reassess else "final",
        "code": _concept(pkg, "persistent-alk-assessment"),
        "effectiveDateTime": ctx.today.isoformat(),
        "valueCodeableConcept": _concept(pkg, assessment.overall),
        "component": components,
    }
    if ctx.subject_reference:
        obs["subject"] = ctx.subject_reference
    if derived:
        obs["derivedFrom"] = [derived[k] for k in sorted(derived)]
    return obs
