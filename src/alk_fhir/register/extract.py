"""One register row from one version of a case-overview document (``alk-case-overview-document``).

What the document carries is read through the engine's own definitions: the facts of Library
``alk-facts`` (``context``: ALK conditions, ALK treatments, active and risk medication, care
contacts, psychiatric comorbidity, a recorded assessment) and the assessment (``criteria``), run on
the document's resources on the document's date. A recorded assessment (fact ``recordedAssessment``,
an ``alk-assessment`` Observation with a conclusion), when the document carries one, gives the
criteria and features instead (``criteria_source`` says which). Codes leave only when they are members of the
package's ValueSets (conditions, treatments, outcomes, care-team roles, profile features) and, in
the systems with a known syntax (ICD-10, ICPC, ATC: ``codesyntax.CODE_SYNTAX``), have that syntax;
guideline sections only when they are codes of the ``alk-guideline`` CodeSystem. So no free text
can pass as a code: a malformed code or an unknown section is dropped and counted (``dropped``).
Dates leave only as a month or an age band.

Gaps of today's overview document (reported, not patched here): it holds no criteria questionnaire
and no encounters, so criteria the clinician answered in the questionnaire are ``criterion-unknown``
unless the treatments decide them, questionnaire-only profile features are missing, and
``care_contacts`` is null.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from alk_fhir.codesyntax import malformed_codes, valid_code
from alk_fhir.context import build_context
from alk_fhir.context.fhirdata import codings
from alk_fhir.criteria import assess
from alk_fhir.knowledge import CANONICAL_BASE, CONCEPTS_SYSTEM, GUIDELINE_SYSTEM, Package
from alk_fhir.register.fields import VS
from alk_fhir.register.pseudonym import BSN_SYSTEM, document_pseudonym, normalise_bsn, pseudonym

JSON = dict[str, Any]
DOCUMENT_PROFILE = f"{CANONICAL_BASE}/StructureDefinition/alk-case-overview-document"
CRITERIA = ("criterion-1", "criterion-2", "criterion-3")
STATUSES = ("criterion-met", "criterion-not-met", "criterion-unknown")
AGE_BANDS = ((18, "0-17"), (30, "18-29"), (40, "30-39"), (50, "40-49"), (60, "50-59"), (70, "60-69"), (80, "70-79"))
SEXES = ("male", "female", "other", "unknown")


class Skipped(Exception):
    """This version gives no row; the reason is a fixed phrase (never text from the document)."""


@dataclass(frozen=True)
class Version:
    """A stored (or read) version of a document: the Bundle, its version number and when it was stored."""

    resource: JSON
    version: int
    stored: datetime | None = None


def _entries(bundle: JSON) -> list[tuple[str, JSON]]:
    return [(str(e.get("fullUrl") or ""), e["resource"]) for e in bundle.get("entry") or []
            if isinstance(e, dict) and isinstance(e.get("resource"), dict)]


def _composition(bundle: JSON) -> JSON:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle" or bundle.get("type") != "document":
        raise Skipped("not a document Bundle")
    entries = _entries(bundle)
    if not entries or entries[0][1].get("resourceType") != "Composition":
        raise Skipped("not a document Bundle")
    composition = entries[0][1]
    profiles = (bundle.get("meta") or {}).get("profile") or []
    case_overview = any(c.get("system") == CONCEPTS_SYSTEM and c.get("code") == "case-overview"
                        for cc in composition.get("category") or [] for c in codings(cc))
    if DOCUMENT_PROFILE not in profiles and not case_overview:
        raise Skipped("not a case-overview document")
    return composition


def _patient(bundle: JSON, composition: JSON) -> JSON:
    ref = str((composition.get("subject") or {}).get("reference") or "")
    for full_url, res in _entries(bundle):
        if res.get("resourceType") != "Patient":
            continue
        key = f"Patient/{res.get('id')}"
        if ref and (ref in (full_url, key) or full_url.endswith("/" + ref)):
            return res
    raise Skipped("no Patient as the subject")


def _bsn(patient: JSON) -> str:
    for ident in patient.get("identifier") or []:
        if isinstance(ident, dict) and ident.get("system") == BSN_SYSTEM and isinstance(ident.get("value"), str):
            normal = normalise_bsn(ident["value"])
            if normal is not None:
                return normal
    raise Skipped("no BSN")


def _day(raw: Any) -> date | None:
    """A FHIR date or dateTime as a date (a partial date to its middle: YYYY → 1 July, YYYY-MM → the 15th)."""
    if not isinstance(raw, str) or len(raw) < 4 or not raw[:4].isdigit():
        return None
    try:
        if len(raw) == 4:
            return date(int(raw), 7, 1)
        if len(raw) == 7:
            return date(int(raw[:4]), int(raw[5:7]), 15)
        return date.fromisoformat(raw[:10])
    except ValueError:
        return None


def age_band(birth: date | None, on: date) -> str | None:
    if birth is None or birth > on:
        return None
    age = on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
    return next((band for limit, band in AGE_BANDS if age < limit), "80+")


MALFORMED = "malformed code"
UNKNOWN_SECTION = "unknown guideline section"


def _member_codes(pkg: Package, valueset: str, concept: Any) -> list[str]:
    """``system|code`` of the codings that are well-formed members of the ValueSet (membership checks
    the syntax too; checked here again because this is the last gate before the export)."""
    return [f"{c['system']}|{c['code']}" for c in codings(concept)
            if isinstance(c.get("system"), str) and isinstance(c.get("code"), str)
            and valid_code(c["system"], c["code"]) and pkg.any_in_valueset(VS + valueset, [c])]


def count_malformed(node: Any, dropped: Counter[str]) -> None:
    """Count every Coding in ``node`` whose code breaks its system's syntax: none of them can leave, and
    the suppression account says how many there were."""
    dropped[MALFORMED] += sum(1 for _ in malformed_codes(node))


def _concept_code(pkg: Package, valueset: str, concept: Any) -> str | None:
    return next((str(c["code"]) for c in codings(concept) if c.get("system") == CONCEPTS_SYSTEM
                 and isinstance(c.get("code"), str) and pkg.any_in_valueset(VS + valueset, [c])), None)


def _treatments(pkg: Package, procedures: list[JSON]) -> list[dict[str, str | None]]:
    found = []
    for proc in procedures:
        codes = _member_codes(pkg, "alk-treatments", proc.get("code"))
        if codes:
            outcomes = _member_codes(pkg, "alk-treatment-outcomes", proc.get("outcome"))
            found.append({"code": codes[0], "outcome": outcomes[0] if outcomes else None})
    return sorted(found, key=lambda t: (t["code"] or "", t["outcome"] or ""))


def _roles(pkg: Package, teams: list[JSON]) -> list[str]:
    roles = []
    for team in teams:
        if team.get("status") != "active":
            continue
        for participant in team.get("participant") or []:
            if not isinstance(participant, dict):
                continue
            codes = [code for concept in participant.get("role") or []
                     for code in _member_codes(pkg, "alk-careteam-roles", concept)]
            if codes:
                roles.append(codes[0])
    return sorted(roles)


def _resources(value: Any) -> list[JSON]:
    """A resource-valued fact as a list of resources."""
    items = value if isinstance(value, list) else [value]
    return [v for v in items if isinstance(v, dict) and "resourceType" in v]


def _recorded(pkg: Package, observation: JSON | None) -> tuple[str | None, dict[str, str], list[str]] | None:
    """Overall result, criteria and features of an alk-assessment Observation carried by the document."""
    if observation is None:
        return None
    criteria: dict[str, str] = {}
    features: list[str] = []
    for comp in observation.get("component") or []:
        if not isinstance(comp, dict):
            continue
        code = next((c.get("code") for c in codings(comp.get("code")) if c.get("system") == CONCEPTS_SYSTEM), None)
        if code in CRITERIA:
            status = _concept_code(pkg, "alk-criterion-status", comp.get("valueCodeableConcept"))
            if status in STATUSES:
                criteria[str(code)] = status
        elif code and comp.get("valueBoolean") is True and pkg.any_in_valueset(
                VS + "alk-profile-features", [{"system": CONCEPTS_SYSTEM, "code": code}]):
            features.append(str(code))
    overall = _concept_code(pkg, "alk-criterion-status", observation.get("valueCodeableConcept"))
    return (overall if overall in STATUSES else None), criteria, sorted(set(features))


def _advice_sections(pkg: Package, composition: JSON, dropped: Counter[str]) -> list[str]:
    """Guideline sections with entries: only codes the ``alk-guideline`` CodeSystem defines."""
    found = set()
    for section in composition.get("section") or []:
        if not isinstance(section, dict) or not section.get("entry"):
            continue
        for c in codings(section.get("code")):
            if c.get("system") != GUIDELINE_SYSTEM or not isinstance(c.get("code"), str):
                continue
            if pkg.terminology.concept(GUIDELINE_SYSTEM, c["code"]) is None:
                dropped[UNKNOWN_SECTION] += 1
            else:
                found.add(str(c["code"]))
    return sorted(found, key=lambda code: tuple(int(p) if p.isdigit() else 0 for p in code.split(".")))


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def register_row(version: Version, pkg: Package, key: bytes, dropped: Counter[str] | None = None) -> dict[str, Any]:
    """The row of one document version; :class:`Skipped` when it cannot give one. Codes left out because
    they are no codes (malformed, unknown section) are counted in ``dropped``."""
    dropped = Counter() if dropped is None else dropped
    bundle = version.resource
    composition = _composition(bundle)
    patient = _patient(bundle, composition)
    bsn = _bsn(patient)
    ident = bundle.get("identifier") or {}
    when = _day(composition.get("date")) or _day(bundle.get("timestamp")) or (
        version.stored.date() if version.stored else None)
    if when is None:
        raise Skipped("no document date")
    try:
        ctx = build_context(bundle, pkg, when)
        assessment = assess(ctx, pkg)
    except Exception as exc:  # a record the engine cannot read: counted, never stops the export
        raise Skipped("could not be evaluated") from exc
    facts = ctx.facts
    count_malformed(bundle, dropped)
    observations = sorted(_resources(facts.get("recordedAssessment")), key=lambda o: str(o.get("effectiveDateTime")))
    recorded = _recorded(pkg, observations[-1] if observations else None)
    if recorded is not None and recorded[1]:
        overall, criteria, features = recorded
        source = "recorded"
    else:
        overall = assessment.overall if assessment.overall in STATUSES else None
        criteria = {c.code: c.status for c in assessment.criteria if c.code in CRITERIA and c.status in STATUSES}
        features = sorted(code for code in assessment.features if pkg.any_in_valueset(
            VS + "alk-profile-features", [{"system": CONCEPTS_SYSTEM, "code": code}]))
        source = "derived"
    conditions = sorted({code for res in _resources(facts.get("alkConditions"))
                         for code in _member_codes(pkg, "alk-conditions", res.get("code"))})
    gender = patient.get("gender")
    return {
        "pseudonym": pseudonym(key, bsn),
        "document": document_pseudonym(key, str(ident.get("system") or ""), str(ident.get("value") or "")),
        "version": version.version,
        "period": f"{when.year:04d}-{when.month:02d}",
        "age_band": age_band(_day(patient.get("birthDate")), when),
        "sex": gender if gender in SEXES else None,
        "alk_conditions": conditions,
        "psychiatric_comorbidity": facts.get("psychiatricComorbidity") is True,
        "assessment": overall,
        "criteria_source": source,
        "criterion_1": criteria.get("criterion-1"),
        "criterion_2": criteria.get("criterion-2"),
        "criterion_3": criteria.get("criterion-3"),
        "profile_features": features,
        "active_medication_count": _int(facts.get("activeMedicationCount")),
        "risk_medication_count": _int(facts.get("riskMedicationCount")),
        "opioid_count": _int(facts.get("opioidCount")),
        "benzodiazepine_count": _int(facts.get("benzodiazepineCount")),
        "gabapentinoid_count": len(_resources(facts.get("gabapentinoids"))),
        "care_contacts": _int(facts.get("careContactCount")) if ctx.of_type("Encounter") else None,
        "treatments": _treatments(pkg, _resources(facts.get("alkTreatments"))),
        "care_team_roles": _roles(pkg, ctx.of_type("CareTeam")),
        "advice_sections": _advice_sections(pkg, composition, dropped),
    }
