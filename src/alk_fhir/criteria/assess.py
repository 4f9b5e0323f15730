"""Assess the three criteria of persistent ALK (H §1.1, Profielschets) and the profile features.

Sources, in order of authority: the clinician's answers in the criteria Questionnaire, then the
record (outcomes of ALK treatments, onset of the ALK condition, care contacts). A criterion the
questionnaire answers is decided by that answer; the record's evidence is still listed. One met
criterion is enough (H §1.1); all three not met means not persistent ALK; otherwise unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from alk_fhir.context import PatientContext
from alk_fhir.context.facts import (
    CRITERIA_Q,
    alk_treatments,
    answer_bool,
    answer_code,
    answers,
    is_active_condition,
    latest_response,
    treatment_outcome,
)
from alk_fhir.context.fhirdata import JSON, as_dict, codings, parse_date, resource_key
from alk_fhir.knowledge import CANONICAL_BASE, CONCEPTS_SYSTEM, Package

MET, NOT_MET, UNKNOWN = "criterion-met", "criterion-not-met", "criterion-unknown"
ASSESSMENT_PROFILE = f"{CANONICAL_BASE}/StructureDefinition/alk-assessment"
EVIDENCE_EXT = f"{CANONICAL_BASE}/StructureDefinition/alk-evidence"
# Record outcomes that meet each criterion (H §1.1): 1 no effect, 2 worsening, 3 never/failed attempt.
CRITERION_OUTCOMES = {
    "criterion-1": ("outcome-no-effect",),
    "criterion-2": ("outcome-worsened",),
    "criterion-3": ("outcome-not-completed", "outcome-never-started"),
}
MANY_CONTACTS_PER_YEAR = 12
# Observation.derivedFrom may only point at these (R4); other evidence stays on the components.
DERIVED_FROM_TYPES = ("DocumentReference", "ImagingStudy", "Media", "QuestionnaireResponse", "MolecularSequence",
                      "Observation")  # "very many care contacts" (P), operationalised as monthly or more


@dataclass
class CriterionResult:
    code: str
    status: str
    evidence: list[JSON] = field(default_factory=list)


@dataclass
class Assessment:
    criteria: list[CriterionResult]
    features: dict[str, list[JSON]]
    recorded: JSON | None
    questionnaire: JSON | None

    @property
    def overall(self) -> str:
        statuses = {c.status for c in self.criteria}
        if MET in statuses:
            return MET
        return NOT_MET if statuses == {NOT_MET} else UNKNOWN

    def facts(self) -> dict[str, Any]:
        return {
            "assessmentDone": self.questionnaire is not None or self.recorded is not None,
            "persistentAlk": self.overall == MET,
            "profileFeatureCount": len(self.features),
        }


def _qr_evidence(response: JSON, link: str) -> JSON:
    return {"reference": resource_key(response), "display": f"{response.get('questionnaire', '')}#{link}"}


def assess(ctx: PatientContext, pkg: Package) -> Assessment:
    response = latest_response(ctx, CRITERIA_Q)
    found = answers(response)
    treatments = alk_treatments(ctx, pkg)
    criteria = []
    for code, outcomes in CRITERION_OUTCOMES.items():
        record = [t for t in treatments if treatment_outcome(t) in outcomes]
        evidence = [{"reference": resource_key(t)} for t in record]
        answered = answer_code(found, code)
        if answered in (MET, NOT_MET, UNKNOWN) and response is not None:
            criteria.append(CriterionResult(code, answered, [_qr_evidence(response, code), *evidence]))
        elif record:
            criteria.append(CriterionResult(code, MET, evidence))
        elif treatments and all(treatment_outcome(t) == "outcome-effective" for t in treatments):
            criteria.append(CriterionResult(code, NOT_MET, [{"reference": resource_key(t)} for t in treatments]))
        else:
            criteria.append(CriterionResult(code, UNKNOWN, []))
    features = _features(ctx, pkg, response, found)
    recorded = _recorded_assessment(ctx)
    return Assessment(criteria=criteria, features=features, recorded=recorded, questionnaire=response)


def _features(ctx: PatientContext, pkg: Package, response: JSON | None,
              found: dict[str, list[JSON]]) -> dict[str, list[JSON]]:
    features: dict[str, list[JSON]] = {}
    feature_codes = {c["code"] for c in pkg.terminology.expand(f"{CANONICAL_BASE}/ValueSet/alk-profile-features")}
    if response is not None:
        for code in sorted(feature_codes):
            if answer_bool(found, code) is True:
                features.setdefault(code, []).append(_qr_evidence(response, code))
    # From the record: duration of a year or more (onset of an active ALK condition), many contacts.
    for cond in ctx.of_type("Condition"):
        if not is_active_condition(cond) or not pkg.any_in_valueset(
                f"{CANONICAL_BASE}/ValueSet/alk-conditions", codings(cond.get("code"))):
            continue
        onset = parse_date(cond.get("onsetDateTime")) or parse_date(as_dict(cond.get("onsetPeriod")).get("start"))
        if onset and _years(onset, ctx.today) >= 1:
            features.setdefault("feature-duration", []).append({"reference": resource_key(cond)})
    if ctx.facts.get("careContactCount12m", 0) >= MANY_CONTACTS_PER_YEAR:
        features.setdefault("feature-many-care-contacts", []).extend(
            {"reference": resource_key(e)} for e in ctx.of_type("Encounter")[:MANY_CONTACTS_PER_YEAR])
    return features


def _years(earlier: date, later: date) -> int:
    return later.year - earlier.year - ((later.month, later.day) < (earlier.month, earlier.day))


def _recorded_assessment(ctx: PatientContext) -> JSON | None:
    recorded = [o for o in ctx.of_type("Observation")
                if o.get("status") in ("final", "amended", "corrected")
                and any(c.get("system") == CONCEPTS_SYSTEM and c.get("code") == "persistent-alk-assessment"
                        for c in codings(o.get("code")))]
    return max(recorded, key=lambda o: str(o.get("effectiveDateTime", ""))) if recorded else None


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
        if crit.evidence:
            comp["extension"] = [{"url": EVIDENCE_EXT, "valueReference": ev} for ev in crit.evidence]
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
        "status": "preliminary" if assessment.overall == UNKNOWN else "final",
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
