"""The CDS Services we offer and the discovery document (CDS Hooks 2.0 "Discovery").

Each service names the hook it answers and the prefetch templates that fetch exactly what the
facts of ``Library/alk-facts`` read (alk_fhir.context.facts): nothing more, so that the CDS client
hands over no data we do not use ("minimum necessary"). Templates use only what CDS Hooks 2.0
"Prefetch query restrictions" allows: instance reads, type searches by ``patient``, token equality
(``a,b`` is token equality with OR), plus ``_include`` of the medication so that a
``medicationReference`` can be classified by its ATC code.

CDS Hooks 2.0 has no date arithmetic in prefetch tokens, so encounters are fetched without a date
filter: the engine counts the last 12 months itself.

``encounter-start`` is not offered: the guidance belongs to the chart as a whole and
``patient-view`` already gives it when the chart opens; a second service with the same cards
at the start of every encounter would only add alert fatigue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alk_fhir.cds.text import Texts, pick
from alk_fhir.knowledge import CONCEPTS_SYSTEM

PATIENT = "{{context.patientId}}"
USER_PRACTITIONER = "{{userPractitionerId}}"

# key -> template. Keys are shared between services so that a CDS client can reuse results.
TEMPLATES: dict[str, str] = {
    "patient": "Patient/" + PATIENT,
    "conditions": "Condition?patient=" + PATIENT,
    "medicationStatements": ("MedicationStatement?patient=" + PATIENT
                             + "&status=active,intended&_include=MedicationStatement:medication"),
    "medicationRequests": ("MedicationRequest?patient=" + PATIENT
                           + "&status=active&_include=MedicationRequest:medication"),
    "procedures": "Procedure?patient=" + PATIENT,
    "diagnosticReports": "DiagnosticReport?patient=" + PATIENT,
    "encounters": "Encounter?patient=" + PATIENT,
    "careTeams": "CareTeam?patient=" + PATIENT + "&status=active",
    "carePlans": "CarePlan?patient=" + PATIENT + f"&category={CONCEPTS_SYSTEM}|step-plan",
    "questionnaireResponses": "QuestionnaireResponse?patient=" + PATIENT + "&status=completed,amended",
    "consents": "Consent?patient=" + PATIENT + f"&status=active&category={CONCEPTS_SYSTEM}|consent-consultation",
    "assessments": "Observation?patient=" + PATIENT + f"&code={CONCEPTS_SYSTEM}|persistent-alk-assessment",
    "user": "Practitioner/" + USER_PRACTITIONER,
}

PATIENT_VIEW_KEYS = ("patient", "conditions", "medicationStatements", "medicationRequests", "procedures",
                     "diagnosticReports", "encounters", "careTeams", "carePlans", "questionnaireResponses",
                     "consents", "assessments", "user")
# The medication-safety actions read hasAlk (conditions, criteria questionnaire) and the active
# medication count; nothing else.
ORDER_KEYS = ("patient", "conditions", "medicationStatements", "medicationRequests", "questionnaireResponses")
# Without these the advice stays right: the user's Practitioner only adds a display name.
OPTIONAL_KEYS = frozenset({"user"})

PROFESSIONAL_USERS = ("Practitioner", "PractitionerRole")


@dataclass(frozen=True)
class Service:
    id: str
    hook: str
    title: Texts
    description: Texts
    usage: Texts
    prefetch_keys: tuple[str, ...]
    user_types: tuple[str, ...]

    @property
    def prefetch(self) -> dict[str, str]:
        return {key: TEMPLATES[key] for key in self.prefetch_keys}

    def required(self, key: str) -> bool:
        return key not in OPTIONAL_KEYS

    def describe(self, lang: str) -> dict[str, Any]:
        return {
            "hook": self.hook,
            "title": pick(self.title, lang),
            "description": pick(self.description, lang),
            "id": self.id,
            "prefetch": self.prefetch,
            "usageRequirements": pick(self.usage, lang),
        }


_USAGE = {
    "nl": "Voor zorgverleners (context.userId is een Practitioner of PractitionerRole). Geef de prefetch mee "
          "of een fhirServer met fhirAuthorization; zonder beide antwoordt de service 412.",
    "en": "For professionals (context.userId is a Practitioner or PractitionerRole). Send the prefetch, or a "
          "fhirServer with fhirAuthorization; without either the service answers 412.",
}

SERVICES: tuple[Service, ...] = (
    Service(
        id="alk-patient-view",
        hook="patient-view",
        title={"nl": "Hardnekkige ALK: stappen uit de handreiking",
               "en": "Persistent ALK: steps from the guideline"},
        description={
            "nl": "Bij het openen van het dossier: of de patiënt mogelijk of zeker hardnekkige ALK heeft, en welke "
                  "stappen uit de NALK-handreiking (opnieuw) te overwegen zijn, met voorstellen voor casus-"
                  "coördinator, stappenplan, vragenlijsten, medicatiebeoordeling en consultatie.",
            "en": "When the chart opens: whether the patient may have or has persistent ALK, and which steps of the "
                  "NALK guideline to (re)consider, with proposals for a case coordinator, step plan, "
                  "questionnaires, medication review and consultation.",
        },
        usage=_USAGE,
        prefetch_keys=PATIENT_VIEW_KEYS,
        user_types=PROFESSIONAL_USERS,
    ),
    Service(
        id="alk-order-select",
        hook="order-select",
        title={"nl": "Hardnekkige ALK: risicomedicatie en polyfarmacie",
               "en": "Persistent ALK: risk medication and polypharmacy"},
        description={
            "nl": "Bij het kiezen van medicatie voor een patiënt met ALK: waarschuwt bij opioïden, benzodiazepinen en "
                  "gabapentinoïden en bij een middel erbij bij vijf of meer middelen (handreiking §2.2, "
                  "Profielschets: iatrogene schade).",
            "en": "When medication is selected for a patient with persistent physical symptoms: warns on opioids, "
                  "benzodiazepines and gabapentinoids, and on one more drug with five or more in use (guideline "
                  "§2.2, profile sketch: iatrogenic harm).",
        },
        usage=_USAGE,
        prefetch_keys=ORDER_KEYS,
        user_types=PROFESSIONAL_USERS,
    ),
    Service(
        id="alk-order-sign",
        hook="order-sign",
        title={"nl": "Hardnekkige ALK: medicatie controleren bij ondertekenen",
               "en": "Persistent ALK: check medication at signing"},
        description={
            "nl": "Bij het ondertekenen van medicatie voor een patiënt met ALK: dezelfde controle op risicomedicatie "
                  "en polyfarmacie over alle ongetekende orders (handreiking §2.2).",
            "en": "When medication is signed for a patient with persistent physical symptoms: the same check for risk "
                  "medication and polypharmacy over all unsigned orders (guideline §2.2).",
        },
        usage=_USAGE,
        prefetch_keys=ORDER_KEYS,
        user_types=PROFESSIONAL_USERS,
    ),
)

SERVICES_BY_ID = {s.id: s for s in SERVICES}


def discovery_document(lang: str) -> dict[str, Any]:
    return {"services": [s.describe(lang) for s in SERVICES]}
