"""The facts declared in Library/alk-facts, computed from a PatientContext.

Which code counts as what is decided by the package's ValueSets (alk-conditions,
alk-risk-medication, …), never by code lists here; this module only knows FHIR structure.
Operational thresholds the guideline leaves open are stated where they are used: in the
PlanDefinition's conditions, visible to every reader of the package.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from alk_fhir.context.build import PatientContext
from alk_fhir.context.fhirdata import (
    JSON,
    as_dict,
    as_list,
    code_of,
    codings,
    effective_date,
    has_code,
    months_between,
    parse_date,
    resource_key,
    walk_answers,
)
from alk_fhir.knowledge import CANONICAL_BASE, CONCEPTS_SYSTEM, Package

VS = f"{CANONICAL_BASE}/ValueSet/"
Q = f"{CANONICAL_BASE}/Questionnaire/"
CRITERIA_Q = Q + "alk-criteria"
MODEL_Q = Q + "alk-explanatory-model"
AMBIT_Q = Q + "alk-ambit-grid"
ADMISSION_Q = Q + "alk-admission-goals"

FACT_NAMES = (
    "hasAlk", "assessmentDone", "persistentAlk", "failedTreatmentCount", "profileFeatureCount",
    "activeMedicationCount", "riskMedicationCount", "opioidCount", "benzodiazepineCount",
    "draftMedicationCount", "draftRiskMedicationCount", "somaticDiagnosticsCount",
    "psychiatricDiagnosticsCount", "monthsSinceSomaticWorkup", "monthsSincePsychiatricWorkup",
    "psychiatricComorbidity", "careContactCount12m", "hasCaseCoordinator", "coordinatorCount",
    "hasExplanatoryModel", "perpetuatingFactorCount", "hasStepPlan", "hasAmbitGrid",
    "hasAdmissionGoals", "newSomaticComplaint", "insufficientlyInvestigated", "reassuranceWish",
    "noClearExplanation", "disagreementChaos", "admissionConsidered", "moreThanAlk", "wishToDie",
    "consentConsultation",
)

# Criteria-questionnaire booleans that become facts directly (linkId -> fact).
SITUATION_FACTS = {
    "new-somatic-complaint": "newSomaticComplaint",
    "insufficiently-investigated": "insufficientlyInvestigated",
    "reassurance-wish": "reassuranceWish",
    "no-clear-explanation": "noClearExplanation",
    "disagreement-chaos": "disagreementChaos",
    "admission-considered": "admissionConsidered",
    "more-than-alk": "moreThanAlk",
    "wish-to-die": "wishToDie",
    "consent-consultation": "consentConsultation",
}
FAILED_OUTCOMES = ("outcome-no-effect", "outcome-worsened", "outcome-not-completed", "outcome-never-started")
_INACTIVE_CONDITION = {"inactive", "remission", "resolved"}
_EXCLUDED_VERIFICATION = {"refuted", "entered-in-error"}


def is_active_condition(res: JSON) -> bool:
    clinical = {c.get("code") for c in codings(res.get("clinicalStatus"))}
    verification = {c.get("code") for c in codings(res.get("verificationStatus"))}
    return not (clinical & _INACTIVE_CONDITION) and not (verification & _EXCLUDED_VERIFICATION)


def medication_codings(ctx: PatientContext, res: JSON) -> list[JSON]:
    if "medicationCodeableConcept" in res:
        return codings(res["medicationCodeableConcept"])
    med = ctx.resolve(res.get("medicationReference"), contained_in=res)
    return codings(med.get("code")) if med else []


def medication_key(ctx: PatientContext, res: JSON) -> str:
    """One product counts once even when both a statement and a prescription name it."""
    for c in medication_codings(ctx, res):
        if c.get("code"):
            return f"{c.get('system')}|{c['code']}"
    concept = as_dict(res.get("medicationCodeableConcept"))
    return str(concept.get("text") or as_dict(res.get("medicationReference")).get("reference") or resource_key(res))


def active_medications(ctx: PatientContext) -> list[JSON]:
    meds = [r for r in ctx.of_type("MedicationStatement") if r.get("status") in ("active", "intended")]
    meds += [r for r in ctx.of_type("MedicationRequest")
             if r.get("status") == "active" and r.get("intent") in ("order", "plan", "original-order", None)]
    seen: dict[str, JSON] = {}
    for res in meds:
        seen.setdefault(medication_key(ctx, res), res)
    return list(seen.values())


def latest_response(ctx: PatientContext, questionnaire: str) -> JSON | None:
    """The newest completed/amended response to one of our Questionnaires (any version)."""
    found = [r for r in ctx.of_type("QuestionnaireResponse")
             if r.get("status") in ("completed", "amended")
             and str(r.get("questionnaire", "")).split("|")[0] == questionnaire]
    return max(found, key=lambda r: str(r.get("authored", ""))) if found else None


def answers(response: JSON | None) -> dict[str, list[JSON]]:
    out: dict[str, list[JSON]] = {}
    if response:
        for link, answer in walk_answers(response.get("item")):
            out.setdefault(link, []).append(answer)
    return out


def answer_bool(found: dict[str, list[JSON]], link: str) -> bool | None:
    for answer in found.get(link, []):
        if isinstance(answer.get("valueBoolean"), bool):
            return bool(answer["valueBoolean"])
    return None


def answer_code(found: dict[str, list[JSON]], link: str) -> str | None:
    for answer in found.get(link, []):
        coding = answer.get("valueCoding")
        if isinstance(coding, dict) and coding.get("system") == CONCEPTS_SYSTEM:
            return str(coding.get("code"))
    return None


def answer_date(found: dict[str, list[JSON]], link: str) -> date | None:
    for answer in found.get(link, []):
        value = parse_date(answer.get("valueDate") or answer.get("valueDateTime"))
        if value:
            return value
    return None


def answer_int(found: dict[str, list[JSON]], link: str) -> int | None:
    for answer in found.get(link, []):
        value = answer.get("valueInteger")
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def is_psychiatric(res: JSON) -> bool:
    return has_code(res.get("category"), CONCEPTS_SYSTEM, "diagnostics-psychiatric")


def alk_treatments(ctx: PatientContext, pkg: Package) -> list[JSON]:
    return [r for r in ctx.of_type("Procedure")
            if r.get("status") != "entered-in-error"
            and pkg.any_in_valueset(VS + "alk-treatments", codings(r.get("code")))]


def treatment_outcome(res: JSON) -> str | None:
    return code_of(res.get("outcome"), CONCEPTS_SYSTEM)


RECORD_FACTS = tuple(n for n in FACT_NAMES if n not in ("assessmentDone", "persistentAlk", "profileFeatureCount"))


def compute_facts(ctx: PatientContext, pkg: Package) -> None:
    """Every fact that the record alone decides (see RECORD_FACTS)."""
    f: dict[str, Any] = {}
    today = ctx.today

    criteria = latest_response(ctx, CRITERIA_Q)
    crit = answers(criteria)

    conditions = [r for r in ctx.of_type("Condition") if is_active_condition(r)]
    alk_conditions = [r for r in conditions if pkg.any_in_valueset(VS + "alk-conditions", codings(r.get("code")))]
    for r in alk_conditions:
        ctx.add_evidence("hasAlk", r)
    f["hasAlk"] = bool(alk_conditions) or answer_bool(crit, "alk-present") is True
    psych = [r for r in conditions if pkg.any_in_valueset(VS + "alk-psychiatric-conditions", codings(r.get("code")))]
    for r in psych:
        ctx.add_evidence("psychiatricComorbidity", r)
    f["psychiatricComorbidity"] = bool(psych)

    meds = active_medications(ctx)
    # The record counts what it holds; a clinician's answer (pre-filled from the EHR the form ran in)
    # counts when our data holds fewer, e.g. $apply called with the questionnaire response only.
    answered = answer_int(crit, "active-medication-count")
    f["activeMedicationCount"] = max(len(meds), answered or 0)
    if criteria and answered is not None and answered > len(meds):
        ctx.add_evidence("activeMedicationCount", criteria)
    for fact, vs in (("riskMedicationCount", "alk-risk-medication"), ("opioidCount", "alk-opioids"),
                     ("benzodiazepineCount", "alk-benzodiazepines")):
        hits = [m for m in meds if pkg.any_in_valueset(VS + vs, medication_codings(ctx, m))]
        f[fact] = len(hits)
        for m in hits:
            ctx.add_evidence(fact, m)
    drafts = [r for r in ctx.draft_orders if r.get("resourceType") in ("MedicationRequest", "MedicationStatement")]
    f["draftMedicationCount"] = len(drafts)
    f["draftRiskMedicationCount"] = sum(
        1 for d in drafts if pkg.any_in_valueset(VS + "alk-risk-medication", medication_codings(ctx, d)))

    treatments = alk_treatments(ctx, pkg)
    failed = [t for t in treatments if treatment_outcome(t) in FAILED_OUTCOMES]
    f["failedTreatmentCount"] = len(failed)
    for t in failed:
        ctx.add_evidence("failedTreatmentCount", t)

    treatment_keys = {resource_key(t) for t in treatments}
    diagnostics = [r for r in ctx.of_type("Procedure") + ctx.of_type("DiagnosticReport")
                   if resource_key(r) not in treatment_keys and r.get("status") in
                   ("completed", "final", "amended", "corrected", "appended", "preliminary")]
    psychiatric = [r for r in diagnostics if is_psychiatric(r)]
    somatic = [r for r in diagnostics if not is_psychiatric(r)]
    f["somaticDiagnosticsCount"] = len(somatic)
    f["psychiatricDiagnosticsCount"] = len(psychiatric)
    f["monthsSinceSomaticWorkup"] = _months_since(today, somatic, answer_date(crit, "last-somatic-workup"))
    f["monthsSincePsychiatricWorkup"] = _months_since(today, psychiatric, answer_date(crit, "last-psychiatric-workup"))

    since = today - timedelta(days=365)
    contacts = [e for e in ctx.of_type("Encounter") if e.get("status") not in ("cancelled", "entered-in-error")
                and (d := effective_date(e)) is not None and since <= d <= today]
    f["careContactCount12m"] = len(contacts)

    coordinators = current_coordinators(ctx)
    f["coordinatorCount"] = len(coordinators)
    f["hasCaseCoordinator"] = bool(coordinators)

    model = latest_response(ctx, MODEL_Q)
    f["hasExplanatoryModel"] = model is not None
    f["perpetuatingFactorCount"] = sum(
        len([a for a in found if str(a.get("valueString", "")).strip()])
        for link, found in answers(model).items() if link.endswith("-perpetuating"))
    f["hasStepPlan"] = any(
        p.get("status") in ("draft", "active", "on-hold")
        and has_code(p.get("category"), CONCEPTS_SYSTEM, "step-plan")
        for p in ctx.of_type("CarePlan"))
    f["hasAmbitGrid"] = latest_response(ctx, AMBIT_Q) is not None
    f["hasAdmissionGoals"] = latest_response(ctx, ADMISSION_Q) is not None

    for link, fact in SITUATION_FACTS.items():
        f[fact] = answer_bool(crit, link) is True
    if not f["consentConsultation"]:
        consents = [c for c in ctx.of_type("Consent") if consent_covers(c, "consent-consultation", today)]
        f["consentConsultation"] = bool(consents)
        for c in consents:
            ctx.add_evidence("consentConsultation", c)

    # assessmentDone, persistentAlk and profileFeatureCount are the criteria module's to add.
    ctx.facts = f


def _months_since(today: date, events: list[JSON], answered: date | None) -> int | list[Any]:
    dates = [d for d in (effective_date(e) for e in events) if d is not None]
    if answered:
        dates.append(answered)
    dates = [d for d in dates if d <= today]
    return months_between(max(dates), today) if dates else []


def current_coordinators(ctx: PatientContext) -> list[JSON]:
    """Participants in the case-coordinator role of an active CareTeam whose period has not ended."""
    found = []
    for team in ctx.of_type("CareTeam"):
        if team.get("status") != "active":
            continue
        for p in as_list(team.get("participant")):
            if not isinstance(p, dict) or not has_code(p.get("role"), CONCEPTS_SYSTEM, "case-coordinator"):
                continue
            end = parse_date(as_dict(p.get("period")).get("end"))
            if end is None or end >= ctx.today:
                found.append(p)
                ctx.add_evidence("hasCaseCoordinator", team)
    return found


def consent_covers(consent: JSON, concept: str, today: date) -> bool:
    if consent.get("status") != "active" or not has_code(consent.get("category"), CONCEPTS_SYSTEM, concept):
        return False
    provision = consent.get("provision") or {}
    if provision.get("type", "permit") != "permit":
        return False
    period = provision.get("period") or {}
    start, end = parse_date(period.get("start")), parse_date(period.get("end"))
    return (start is None or start <= today) and (end is None or today <= end)
