"""What a section says, item by item: the common ground of narrative, rendering and diff.

A section's entries are FHIR resources; a clinician (and a diff) thinks in smaller units: one
medication, one step of the plan, one care-team member, one answer of the explanatory model. Each
becomes an :class:`Item` with a key that stays the same across versions of the overview (the
resource ``Type/id``, a step's element id, a questionnaire's canonical plus the answer's path), the
cells a table row shows, and a canonical ``value`` to compare. Which questionnaire answers belong
to which section is stated once, in ``SECTION_ANSWERS``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from alk_fhir.context import PatientContext
from alk_fhir.context.facts import ADMISSION_Q, AMBIT_Q, MODEL_Q, VS
from alk_fhir.context.fhirdata import JSON, codings, has_code, reference_key
from alk_fhir.knowledge import CONCEPTS_SYSTEM, Package
from alk_fhir.overview.text import (
    concept_text,
    nl_date,
    nl_period,
    reference_text,
)

ICD10 = "http://hl7.org/fhir/sid/icd-10"
ICD10_NL = "http://hl7.org/fhir/sid/icd-10-nl"
ATC = "http://www.whocc.no/atc"
# facts of Library alk-facts whose medications get a flag, and the ValueSet whose title names it
RISK_FLAGS = (("opioids", "alk-opioids"), ("benzodiazepines", "alk-benzodiazepines"),
              ("gabapentinoids", "alk-gabapentinoids"))
# zib MedicationUse2 (mp-MedicationUse2, Nictiz MP9): the prescriber; informationSource is who told us
PRESCRIBER_EXT = "http://nictiz.nl/fhir/StructureDefinition/ext-MedicationUse2.Prescriber"
# MP9 3.0 period of use on agreements and medication use (mp-MedicationAgreement, mp-MedicationUse2)
PERIOD_EXT = "http://nictiz.nl/fhir/StructureDefinition/ext-TimeInterval.Period"

# Which answers of which questionnaire a section shows (None: all of them).
SECTION_ANSWERS: dict[str, dict[str, frozenset[str] | None]] = {
    "complaints": {MODEL_Q: frozenset({"main-complaint"})},
    "explanatoryModel": {MODEL_Q: None},
    "expectations": {
        MODEL_Q: frozenset({"shared-goal"}),
        AMBIT_Q: frozenset({"expectations", "shared-conclusion"}),
        ADMISSION_Q: frozenset({"goals", "frame", "expectations", "aftercare"}),
    },
}

# Table headers per section (Dutch), the cells of every item follow them.
COLUMNS: dict[str, tuple[str, ...]] = {
    "complaints": ("Klacht of diagnose", "Sinds", "Status"),
    "somaticDiagnostics": ("Onderzoek of diagnose", "Datum", "Uitkomst"),
    "psychiatricDiagnostics": ("Onderzoek of diagnose", "Datum", "Uitkomst"),
    "medication": ("Middel", "Sinds", "Voorschrijver", "Let op"),
    "treatments": ("Behandeling", "Periode", "Effect"),
    "explanatoryModel": ("Onderdeel", "Inhoud"),
    "careTeam": ("Rol", "Naam", "Periode"),
    "stepPlan": ("Stap", "Periode", "Uitvoerenden", "Doelen", "Status"),
    "expectations": ("Afspraak", "Inhoud"),
    "consultations": ("Consultatie of toestemming", "Datum", "Status", "Antwoord of reikwijdte"),
}
DEFAULT_COLUMNS = ("Onderdeel", "Inhoud")

_STATUS_NL = {
    "active": "actief", "inactive": "niet actief", "resolved": "verdwenen", "remission": "in remissie",
    "recurrence": "terug", "relapse": "terugval", "completed": "afgerond", "in-progress": "loopt",
    "not-started": "nog niet gestart", "scheduled": "gepland", "on-hold": "gepauzeerd", "cancelled": "geannuleerd",
    "stopped": "gestopt", "draft": "concept", "revoked": "ingetrokken", "entered-in-error": "foutief ingevoerd",
    "final": "definitief", "preliminary": "voorlopig", "amended": "gewijzigd", "unknown": "onbekend",
    "requested": "aangevraagd", "received": "ontvangen", "accepted": "geaccepteerd", "rejected": "afgewezen",
    "ready": "gereed", "failed": "mislukt", "proposed": "voorgesteld", "planned": "gepland",
    "intended": "voorgenomen", "not-taken": "niet gebruikt", "rejected-consent": "geweigerd",
    "proposed-consent": "voorgesteld",
}


@dataclass(frozen=True)
class Item:
    key: str
    cells: tuple[str, ...]
    value: Any
    flags: tuple[str, ...] = ()
    kind: str = "entry"

    @property
    def label(self) -> str:
        text = " — ".join(c for c in self.cells if c)
        return f"{text} [{'; '.join(self.flags)}]" if self.flags else text


@dataclass
class SectionItems:
    key: str
    items: list[Item] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # section-level warnings, e.g. polypharmacy


def status_nl(code: Any) -> str:
    return _STATUS_NL.get(str(code), str(code or ""))


def comparable(res: JSON, *drop: str) -> JSON:
    """The resource without what a copy or a server may change freely (id, meta, narrative)."""
    return {k: v for k, v in res.items() if k not in {"id", "meta", "text", *drop}}


# --- per resource type ----------------------------------------------------------------------------

def _condition(res: JSON) -> Item:
    name = concept_text(res.get("code"))  # the words a clinician reads; the codes stay in the entry
    onset = nl_date(res.get("onsetDateTime")) or nl_period(res.get("onsetPeriod")) or nl_date(res.get("recordedDate"))
    clinical = [c.get("code") for c in codings(res.get("clinicalStatus"))]
    verification = [c.get("code") for c in codings(res.get("verificationStatus"))]
    status = ", ".join(status_nl(c) for c in clinical + [v for v in verification if v != "confirmed"] if c)
    return Item(f"Condition/{res.get('id')}", (name, onset, status), comparable(res), kind="condition")


def _event_date(res: JSON) -> str:
    for key in ("performedDateTime", "effectiveDateTime", "issued"):
        if res.get(key):
            return nl_date(res[key])
    for key in ("performedPeriod", "effectivePeriod"):
        if isinstance(res.get(key), dict):
            return nl_period(res[key])
    return ""


def _observation_result(res: JSON, pkg: Package) -> str:
    """A measured value as recorded (zib LaboratoryTestResult): quantity with unit, code or text, and
    its interpretation."""
    quantity = res.get("valueQuantity")
    value = ""
    if isinstance(quantity, dict) and quantity.get("value") is not None:
        value = f"{quantity['value']} {quantity.get('unit') or quantity.get('code') or ''}".strip()
    value = value or concept_text(res.get("valueCodeableConcept"), pkg) or str(res.get("valueString") or "")
    interpretation = "; ".join(concept_text(i, pkg) for i in res.get("interpretation") or [] if isinstance(i, dict))
    return f"{value} ({interpretation})" if value and interpretation else value or interpretation


def _diagnostic(res: JSON, pkg: Package) -> Item:
    name = concept_text(res.get("code"), pkg)
    result = (concept_text(res.get("outcome"), pkg) or str(res.get("conclusion") or "")
              or (_observation_result(res, pkg) if res.get("resourceType") == "Observation" else "")
              or concept_text(res.get("conclusionCode"), pkg)
              or "; ".join(str(n.get("text")) for n in res.get("note") or [] if isinstance(n, dict) and n.get("text")))
    if res.get("status") not in ("completed", "final", "amended", "corrected", "appended"):
        result = f"{result} ({status_nl(res.get('status'))})".strip()
    return Item(f"{res.get('resourceType')}/{res.get('id')}", (name, _event_date(res), result),
                comparable(res), kind="diagnostic")


# the facts of Library alk-facts that give a treatment its outcome when Procedure.outcome does not
# (a ROM measurement partOf/focus the treatment), and our concept that names it
OUTCOME_FACTS = (("worsenedTreatments", "outcome-worsened"), ("noEffectTreatments", "outcome-no-effect"),
                 ("failedAttempts", "outcome-not-completed"), ("effectiveTreatments", "outcome-effective"))
# a pre and a post measurement closer than the instrument's clear change: unknown, and the overview says so
NO_CLEAR_CHANGE = "Geen duidelijke verandering (meting): uitkomst onbekend"


def _treatment(ctx: PatientContext, res: JSON, pkg: Package) -> Item:
    effect = concept_text(res.get("outcome"), pkg)
    if not effect:
        for fact, concept in OUTCOME_FACTS:
            if any(t is res for t in ctx.facts.get(fact, [])):
                effect = f"{pkg.terminology.display(CONCEPTS_SYSTEM, concept) or concept} (meting)"
                break
        else:
            if any(t is res for t in ctx.facts.get("noClearChangeTreatments", [])):
                effect = NO_CLEAR_CHANGE
    effect = effect or status_nl(res.get("status"))
    return Item(f"Procedure/{res.get('id')}", (concept_text(res.get("code"), pkg), _event_date(res), effect),
                comparable(res), kind="treatment")


def medication_name(ctx: PatientContext, res: JSON) -> str:
    concept = res.get("medicationCodeableConcept")
    if concept is None:
        med = ctx.resolve(res.get("medicationReference"), contained_in=res)
        concept = (med or {}).get("code") or {"text": (res.get("medicationReference") or {}).get("display", "")}
    return concept_text(concept)  # the words a clinician reads; the ATC code stays in the entry


def medication_started(res: JSON) -> str:
    """When use began, as recorded ("Sinds"): the MP9 3.0 period of use (ext-TimeInterval.Period, on
    agreements and medication use), else the statement's effective[x], else when it was prescribed."""
    for ext in res.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == PERIOD_EXT and (ext.get("valuePeriod") or {}).get("start"):
            return str(ext["valuePeriod"]["start"])
    period = res.get("effectivePeriod")
    if isinstance(period, dict) and period.get("start"):
        return str(period["start"])
    for key in ("effectiveDateTime", "authoredOn"):
        if res.get(key):
            return str(res[key])
    validity = (res.get("dispenseRequest") or {}).get("validityPeriod") or {}
    return str(validity.get("start") or "")


def medication_start(res: JSON) -> str:
    started = medication_started(res)
    return nl_date(started) if started else ""


def medication_prescriber(ctx: PatientContext, res: JSON) -> str:
    """The prescriber: a request's requester; a statement's zib prescriber extension or the request it
    derives from. Never ``informationSource``: that is who reported the use (often the patient)."""
    if res.get("resourceType") == "MedicationRequest":
        return reference_text(ctx, res.get("requester"))
    for ext in res.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == PRESCRIBER_EXT and isinstance(ext.get("valueReference"), dict):
            return reference_text(ctx, ext["valueReference"])
    for ref in res.get("derivedFrom") or []:
        source = ctx.resolve(ref)
        if source and source.get("resourceType") == "MedicationRequest" and source.get("requester"):
            return reference_text(ctx, source["requester"])
    source = res.get("informationSource")
    kind = str(reference_key(source) or "").split("/")[0]
    return reference_text(ctx, source) if kind in ("Practitioner", "PractitionerRole") else ""


def risk_flags(ctx: PatientContext, res: JSON, pkg: Package) -> tuple[str, ...]:
    """'risicomedicatie: opioïden' etc.: the facts decide, the package's ValueSet titles name them."""
    flags = []
    for fact, group in RISK_FLAGS:
        if any(m is res for m in ctx.facts.get(fact, [])):
            vs = pkg.resolve(VS + group) or {}
            flags.append(f"risicomedicatie: {str(vs.get('title') or group).lower()}")
    if not flags and any(m is res for m in ctx.facts.get("riskMedications", [])):
        flags.append("risicomedicatie")
    return tuple(flags)


def _medication(ctx: PatientContext, res: JSON, pkg: Package) -> Item:
    flags = risk_flags(ctx, res, pkg)
    dosage = res.get("dosage") or res.get("dosageInstruction") or []
    dose = next((str(d["text"]) for d in dosage if isinstance(d, dict) and d.get("text")), "")
    name = medication_name(ctx, res) + (f", {dose}" if dose else "")
    return Item(f"{res.get('resourceType')}/{res.get('id')}",
                (name, medication_start(res), medication_prescriber(ctx, res), "; ".join(flags)),
                comparable(res), flags, kind="medication")


def is_coordinator(participant: JSON, ctx: PatientContext) -> bool:
    """A current case coordinator, as fact ``coordinators`` of Library alk-facts decides."""
    return any(c is participant for c in ctx.facts.get("coordinators", []))


def _care_team(ctx: PatientContext, res: JSON, pkg: Package) -> Iterator[Item]:
    team_key = f"CareTeam/{res.get('id')}"
    yield Item(team_key, ("Zorgteam", str(res.get("name") or ""), status_nl(res.get("status"))),
               comparable(res, "participant"), kind="team")
    seen: dict[str, int] = {}
    for p in res.get("participant") or []:
        if not isinstance(p, dict):
            continue
        member = str(reference_key(p.get("member")) or (p.get("member") or {}).get("display") or "?")
        seen[member] = seen.get(member, 0) + 1
        key = f"{team_key}#{member}" + (f"#{seen[member]}" if seen[member] > 1 else "")
        role = concept_text(p.get("role"), pkg)
        flags = ("casus-coördinator",) if is_coordinator(p, ctx) else ()
        if flags and "coördinator" not in role.lower():
            role = f"Casus-coördinator; {role}"
        name = reference_text(ctx, p.get("member"))
        org = reference_text(ctx, p.get("onBehalfOf")) if p.get("onBehalfOf") else ""
        yield Item(key, (role, f"{name} ({org})" if org else name, nl_period(p.get("period"))), p, flags,
                   kind="participant")


def step_key(plan: JSON, activity: JSON, index: int) -> str:
    """A step is known by its element id; without one by its description (or its position)."""
    detail = activity.get("detail") or {}
    ident = activity.get("id") or detail.get("description") or f"{index + 1}"
    return f"CarePlan/{plan.get('id')}#{ident}"


def _step_plan(ctx: PatientContext, res: JSON, pkg: Package) -> Iterator[Item]:
    yield Item(f"CarePlan/{res.get('id')}",
               (str(res.get("title") or "Stappenplan"), nl_period(res.get("period")), "", "",
                status_nl(res.get("status"))),
               comparable(res, "activity", "goal"), kind="plan")
    for i, activity in enumerate(res.get("activity") or []):
        if not isinstance(activity, dict):
            continue
        detail = activity.get("detail") or {}
        performers = ", ".join(reference_text(ctx, p) for p in detail.get("performer") or [])
        goals = "; ".join(reference_text(ctx, g, contained_in=res) for g in detail.get("goal") or [])
        flags = ("gericht op instandhoudende factor",) if has_code(
            detail.get("reasonCode"), CONCEPTS_SYSTEM, "perpetuating") else ()
        value = copy.deepcopy(activity)
        value["goalText"] = goals  # the goals' words, so a changed goal shows as a changed step
        text = str(detail.get("description") or concept_text(detail.get("code"), pkg))
        yield Item(step_key(res, activity, i),
                   (text, nl_period(detail.get("scheduledPeriod")) or nl_date(detail.get("scheduledString")),
                    performers, goals, status_nl(detail.get("status"))),
                   value, flags, kind="step")


def _answers_of(answer_list: Any, ctx: PatientContext, pkg: Package) -> list[str]:
    out = []
    for answer in answer_list or []:
        if not isinstance(answer, dict):
            continue
        for key, value in answer.items():
            if not key.startswith("value"):
                continue
            if key == "valueBoolean":
                out.append("ja" if value else "nee")
            elif key == "valueCoding":
                out.append(concept_text({"coding": [value]}, pkg))
            elif key in ("valueDate", "valueDateTime"):
                out.append(nl_date(value))
            elif key == "valueReference":
                out.append(reference_text(ctx, value))
            elif key == "valueQuantity" and isinstance(value, dict):
                out.append(f"{value.get('value', '')} {value.get('unit', '')}".strip())
            else:
                out.append(str(value))
    return [o for o in out if o]


def questionnaire_texts(pkg: Package, canonical: str) -> dict[str, str]:
    questionnaire = pkg.resolve(canonical) or pkg.resolve(canonical.split("|")[0]) or {}
    texts: dict[str, str] = {}

    def walk(items: Any) -> None:
        for item in items or []:
            if isinstance(item, dict):
                texts[str(item.get("linkId"))] = str(item.get("text") or item.get("linkId"))
                walk(item.get("item"))

    walk(questionnaire.get("item"))
    return texts


def _response(ctx: PatientContext, res: JSON, pkg: Package, wanted: frozenset[str] | None) -> Iterator[Item]:
    canonical = str(res.get("questionnaire", "")).split("|")[0]
    texts = questionnaire_texts(pkg, canonical)
    name = canonical.rsplit("/", 1)[-1] or f"QuestionnaireResponse/{res.get('id')}"

    def walk(items: Any, path: str, who: str) -> Iterator[Item]:
        counts: dict[str, int] = {}
        for item in items or []:
            if not isinstance(item, dict):
                continue
            link = str(item.get("linkId", ""))
            counts[link] = counts.get(link, 0) + 1
            here = f"{path}/{link}" + (f"[{counts[link]}]" if counts[link] > 1 else "")
            children = item.get("item")
            names = [a for c in children or [] if isinstance(c, dict) and c.get("linkId", "").endswith("-name")
                     for a in _answers_of(c.get("answer"), ctx, pkg)]
            shown = _answers_of(item.get("answer"), ctx, pkg)
            if shown and (wanted is None or link in wanted):
                question = texts.get(link, link) + (f" ({who})" if who else "")
                yield Item(f"{name}#{here.lstrip('/')}", (question, "; ".join(shown)), item.get("answer"),
                           kind="answer")
            yield from walk(children, here, names[0] if names else who)
            for answer in item.get("answer") or []:
                if isinstance(answer, dict):
                    yield from walk(answer.get("item"), here, who)

    yield from walk(res.get("item"), "", "")


def _consent(ctx: PatientContext, res: JSON) -> Item:
    provision = res.get("provision") or {}
    actors = ", ".join(reference_text(ctx, a.get("reference")) for a in provision.get("actor") or []
                       if isinstance(a, dict))
    holders = ", ".join(reference_text(ctx, o) for o in res.get("organization") or [])
    scope = "Toestemming uitwisseling casusoverzicht" if actors else "Toestemming"
    if has_code(res.get("category"), CONCEPTS_SYSTEM, "consent-consultation"):
        scope = "Toestemming voor consultatie"
    reach = f"van {holders} aan {actors}" if holders and actors else actors or holders
    if provision.get("period"):
        reach = f"{reach}, geldig {nl_period(provision['period'])}".strip(", ")
    return Item(f"Consent/{res.get('id')}", (scope, nl_date(res.get("dateTime")), status_nl(res.get("status")), reach),
                comparable(res), kind="consent")


def consultation_answers(ctx: PatientContext, request: JSON) -> list[JSON]:
    """Tasks and reports that answer a consultation request (their ``basedOn`` names it)."""
    key = f"ServiceRequest/{request.get('id')}"
    return [r for t in ("Task", "DiagnosticReport") for r in ctx.of_type(t)
            if any(reference_key(b) == key for b in r.get("basedOn") or [])]


def _answer_text(res: JSON, pkg: Package) -> str:
    if res.get("resourceType") == "DiagnosticReport":
        return str(res.get("conclusion") or concept_text(res.get("conclusionCode"), pkg))
    parts = [_answers_value(o.get(k)) for o in res.get("output") or [] if isinstance(o, dict)
             for k in o if k.startswith("value")]
    parts += [str(n.get("text")) for n in res.get("note") or [] if isinstance(n, dict) and n.get("text")]
    return "; ".join(p for p in parts if p)


def _answers_value(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("text") or value.get("display") or value.get("reference") or "")
    return str(value) if value is not None else ""


def _consultation(ctx: PatientContext, res: JSON, pkg: Package) -> Item:
    answers = consultation_answers(ctx, res)
    answer = "; ".join(t for t in (_answer_text(a, pkg) for a in answers) if t)
    status = status_nl(res.get("status"))
    if answers and any(a.get("status") in ("completed", "final", "amended") for a in answers):
        status = "beantwoord"
    when = nl_date(res.get("authoredOn")) or nl_date(res.get("occurrenceDateTime"))
    value = {"request": comparable(res), "answers": [comparable(a) for a in answers]}
    return Item(f"ServiceRequest/{res.get('id')}", (concept_text(res.get("code"), pkg), when, status,
                                                    answer or "nog geen antwoord"), value, kind="consultation")


def _other(res: JSON, pkg: Package) -> Item:
    words = concept_text(res.get("code"), pkg) or str(res.get("title") or res.get("name") or "")
    return Item(f"{res.get('resourceType')}/{res.get('id')}", (str(res.get("resourceType")), words),
                comparable(res), kind="entry")


def wanted_answers(key: str, response: JSON) -> frozenset[str] | None:
    """The linkIds of ``response`` that section ``key`` shows; None: all of them."""
    per_questionnaire = SECTION_ANSWERS.get(key)
    if per_questionnaire is None:
        return None
    canonical = str(response.get("questionnaire", "")).split("|")[0]
    return per_questionnaire.get(canonical, frozenset()) if canonical in per_questionnaire else frozenset()


# --- per section ----------------------------------------------------------------------------------

def section_items(key: str, entries: Iterable[JSON], ctx: PatientContext, pkg: Package) -> SectionItems:
    """The items of one section from its entries (resources already resolved)."""
    out = SectionItems(key)
    resources = list(entries)
    requests = {f"ServiceRequest/{r.get('id')}" for r in resources if r.get("resourceType") == "ServiceRequest"}
    for res in resources:
        rtype = res.get("resourceType")
        if rtype == "QuestionnaireResponse":
            out.items += list(_response(ctx, res, pkg, wanted_answers(key, res)))
        elif rtype == "Condition":
            out.items.append(_condition(res))
        elif rtype in ("MedicationStatement", "MedicationRequest"):
            out.items.append(_medication(ctx, res, pkg))
        elif rtype == "Procedure" and key == "treatments":
            out.items.append(_treatment(ctx, res, pkg))
        elif rtype in ("Procedure", "DiagnosticReport", "Task") and any(
                reference_key(b) in requests for b in res.get("basedOn") or []):
            continue  # the answer of a consultation: shown with its request
        elif rtype in ("Procedure", "DiagnosticReport") or (rtype == "Observation" and key in (
                "somaticDiagnostics", "psychiatricDiagnostics")):
            out.items.append(_diagnostic(res, pkg))
        elif rtype == "CareTeam":
            out.items += list(_care_team(ctx, res, pkg))
        elif rtype == "CarePlan":
            out.items += list(_step_plan(ctx, res, pkg))
        elif rtype == "Consent":
            out.items.append(_consent(ctx, res))
        elif rtype == "ServiceRequest":
            out.items.append(_consultation(ctx, res, pkg))
        else:
            out.items.append(_other(res, pkg))
    if key == "medication":  # the counts are the facts of Library alk-facts, never counted again here
        count = ctx.facts.get("activeMedicationCount")
        if ctx.facts.get("polypharmacy") is True:  # Library alk-facts decides, with its threshold
            out.notes.append(f"Polyfarmacie: {count} middelen in gebruik. Saneer stapsgewijs, één middel "
                             "tegelijk (Handreiking §2.2).")
        risky = ctx.facts.get("riskMedicationCount") or 0
        if risky:
            out.notes.append(f"Risicomedicatie: {risky} {'middel' if risky == 1 else 'middelen'} "
                             "(opioïden, benzodiazepinen of gabapentinoïden; Handreiking §2.2).")
    return out
