"""Which resources of a patient record go into which section of a newly built overview.

The facts module already decides what counts as what (ALK conditions, psychiatric comorbidity,
ALK treatments, active medication, current step plan, the latest questionnaire responses): this
module reuses those readers and the evidence they leave on the context, and only sorts.
"""

from __future__ import annotations

from alk_fhir.context import PatientContext
from alk_fhir.context.facts import (
    ADMISSION_Q,
    AMBIT_Q,
    MODEL_Q,
    VS,
    active_medications,
    alk_treatments,
    is_active_condition,
    is_psychiatric,
    latest_response,
)
from alk_fhir.context.fhirdata import JSON, codings, effective_date, has_code, resource_key
from alk_fhir.knowledge import CONCEPTS_SYSTEM, Package
from alk_fhir.overview.document import is_exchange_consent
from alk_fhir.overview.items import consultation_answers, section_items, wanted_answers

_DONE = ("completed", "final", "amended", "corrected", "appended", "preliminary")
_CURRENT_PLAN = ("draft", "active", "on-hold")


def _by_date(resources: list[JSON]) -> list[JSON]:
    def key(res: JSON) -> tuple[str, str]:
        when = effective_date(res)
        start = ((res.get("effectivePeriod") or {}).get("start") or res.get("onsetDateTime") or "")
        return (when.isoformat() if when else str(start), resource_key(res))
    return sorted(resources, key=key)


def _started(medication: JSON) -> str:
    period = medication.get("effectivePeriod") or {}
    return str(period.get("start") or medication.get("effectiveDateTime") or medication.get("authoredOn") or "")


def _unique(resources: list[JSON]) -> list[JSON]:
    seen: dict[str, JSON] = {}
    for res in resources:
        seen.setdefault(resource_key(res), res)
    return list(seen.values())


def _evidence(ctx: PatientContext, fact: str) -> list[JSON]:
    found = [ctx.by_key.get(str(ref.get("reference"))) for ref in ctx.evidence.get(fact, [])]
    return _unique([r for r in found if r is not None])


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
    model = latest_response(ctx, MODEL_Q)
    treatments = alk_treatments(ctx, pkg)
    treatment_keys = {resource_key(t) for t in treatments}
    consult_requests = [r for r in ctx.of_type("ServiceRequest") if r.get("status") != "entered-in-error"
                        and pkg.any_in_valueset(VS + "alk-consultation-kinds", codings(r.get("code")))]
    answers = [a for r in consult_requests for a in consultation_answers(ctx, r)]
    answer_keys = {resource_key(a) for a in answers}
    work = [r for r in ctx.of_type("Procedure") + ctx.of_type("DiagnosticReport")
            if resource_key(r) not in treatment_keys and resource_key(r) not in answer_keys
            and r.get("status") in _DONE]
    alk = _evidence(ctx, "hasAlk")
    psychiatric_conditions = _evidence(ctx, "psychiatricComorbidity")
    known = {resource_key(r) for r in alk + psychiatric_conditions}
    other_conditions = [c for c in ctx.of_type("Condition")
                        if is_active_condition(c) and resource_key(c) not in known]
    consents = [c for c in ctx.of_type("Consent") if c.get("status") == "active" and (
        is_exchange_consent(c) or has_code(c.get("category"), CONCEPTS_SYSTEM, "consent-consultation"))]

    return {
        "complaints": _by_date(alk) + _answered_for("complaints", model, ctx, pkg),
        "somaticDiagnostics": _by_date([r for r in work if not is_psychiatric(r)]) + _by_date(other_conditions),
        "psychiatricDiagnostics": _by_date([r for r in work if is_psychiatric(r)]) + _by_date(psychiatric_conditions),
        "medication": sorted(active_medications(ctx), key=lambda m: (_started(m), resource_key(m))),
        "treatments": _by_date(treatments),
        "explanatoryModel": [model] if model else [],
        "careTeam": [t for t in ctx.of_type("CareTeam") if t.get("status") == "active"],
        "stepPlan": [p for p in ctx.of_type("CarePlan") if p.get("status") in _CURRENT_PLAN
                     and has_code(p.get("category"), CONCEPTS_SYSTEM, "step-plan")],
        "expectations": _unique(
            _answered_for("expectations", model, ctx, pkg)
            + _answered_for("expectations", latest_response(ctx, AMBIT_Q), ctx, pkg)
            + _answered_for("expectations", latest_response(ctx, ADMISSION_Q), ctx, pkg)),
        "consultations": _by_date(consult_requests) + _by_date(answers) + _by_date(consents),
    }

