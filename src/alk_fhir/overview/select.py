"""Which resources of a patient record go into which section of a newly built overview.

The facts of Library alk-facts already decide what counts as what (ALK conditions, psychiatric
comorbidity, ALK treatments, active medication, somatic and psychiatric work-up, the current step
plan, the latest questionnaire responses): this module takes their values and only sorts.
"""

from __future__ import annotations

from alk_fhir.context import PatientContext
from alk_fhir.context.facts import VS
from alk_fhir.context.fhirdata import JSON, codings, effective_date, has_code, resource_key
from alk_fhir.knowledge import CONCEPTS_SYSTEM, Package
from alk_fhir.overview.document import is_exchange_consent
from alk_fhir.overview.items import consultation_answers, medication_started, section_items, wanted_answers

_DONE = ("completed", "final", "amended", "corrected", "appended", "preliminary")
_CURRENT_PLAN = ("draft", "active", "on-hold")


def _by_date(resources: list[JSON]) -> list[JSON]:
    def key(res: JSON) -> tuple[str, str]:
        when = effective_date(res)
        start = ((res.get("effectivePeriod") or {}).get("start") or res.get("onsetDateTime") or "")
        return (when.isoformat() if when else str(start), resource_key(res))
    return sorted(resources, key=key)


def _unique(resources: list[JSON]) -> list[JSON]:
    seen: dict[str, JSON] = {}
    for res in resources:
        seen.setdefault(resource_key(res), res)
    return list(seen.values())


def _fact(ctx: PatientContext, fact: str) -> list[JSON]:
    return _unique(ctx.fact_resources(fact))


def _answered_for(key: str, response: JSON | None, ctx: PatientContext, pkg: Package) -> list[JSON]:
    """The response if it holds at least one answer the section shows."""
    if response is None:
        return []
    wanted = wanted_answers(key, response)
    if wanted is not None and not wanted:
        return []
    return [response] if section_items(key, [response], ctx, pkg).items else []


def select_sections(ctx: PatientContext, pkg: Package) -> dict[str, list[JSON]]:
    """Section key (slice name) -> the record's resources for it, in reading order."""
    model = next(iter(_fact(ctx, "modelResponse")), None)
    treatments = _fact(ctx, "alkTreatments")
    consult_requests = [r for r in ctx.of_type("ServiceRequest") if r.get("status") != "entered-in-error"
                        and pkg.any_in_valueset(VS + "alk-consultation-kinds", codings(r.get("code")))]
    answers = [a for r in consult_requests for a in consultation_answers(ctx, r)]
    answer_keys = {resource_key(a) for a in answers}
    somatic = [r for r in _fact(ctx, "somaticWorkups") if resource_key(r) not in answer_keys]
    psychiatric = [r for r in _fact(ctx, "psychiatricWorkups") if resource_key(r) not in answer_keys]
    alk = _fact(ctx, "alkConditions") + _fact(ctx, "alkRelatedComplaints")
    psychiatric_conditions = _fact(ctx, "psychiatricConditions")
    known = {resource_key(r) for r in alk + psychiatric_conditions}
    other_conditions = [c for c in _fact(ctx, "activeConditions") if resource_key(c) not in known]
    consents = [c for c in ctx.of_type("Consent") if c.get("status") == "active" and (
        is_exchange_consent(c) or has_code(c.get("category"), CONCEPTS_SYSTEM, "consent-consultation"))]

    return {
        "complaints": _by_date(alk) + _answered_for("complaints", model, ctx, pkg),
        "somaticDiagnostics": _by_date(somatic) + _by_date(other_conditions),
        "psychiatricDiagnostics": _by_date(psychiatric) + _by_date(psychiatric_conditions),
        "medication": sorted(_fact(ctx, "activeMedications"), key=lambda m: (medication_started(m), resource_key(m))),
        "treatments": _by_date(treatments),
        "explanatoryModel": [model] if model else [],
        "careTeam": _fact(ctx, "currentCareTeams"),
        "stepPlan": _fact(ctx, "stepPlans"),
        "expectations": _unique(
            _answered_for("expectations", model, ctx, pkg)
            + _answered_for("expectations", next(iter(_fact(ctx, "ambitResponse")), None), ctx, pkg)
            + _answered_for("expectations", next(iter(_fact(ctx, "admissionResponse")), None), ctx, pkg)),
        "consultations": _by_date(consult_requests) + _by_date(answers) + _by_date(consents),
    }

