"""The CDS Services we offer and the discovery document (CDS Hooks 2.0 "Discovery").

Each service's prefetch is generated, once per package, from what its actions read: the PlanDefinition
actions triggered by the service's hook, the facts their conditions name, the facts those read in
turn, and finally the data requirements of Library alk-facts the facts are defined over. So a
service asks for exactly the data its advice depends on ("minimum necessary") and nothing written
twice can drift. Templates use only what CDS Hooks 2.0 "Prefetch query restrictions" allows:
instance reads and type searches by ``patient``, with token equality where a data requirement has a
``codeFilter`` (only our own assessment Observations, which a record otherwise holds among all its
observations), and ``_include`` for resources that have no patient of their own (the Medication of a
statement, the PractitionerRole that performed a procedure). No template filters on status or on our
own codes for data an EHR holds: the facts decide what counts.

CDS Hooks 2.0 has no date arithmetic in prefetch tokens, so encounters are fetched without a date
filter: the facts count the window themselves.

``encounter-start`` is not offered: the guidance belongs to the chart as a whole and
``patient-view`` already gives it when the chart opens; a second service with the same cards
at the start of every encounter would only add alert fatigue.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from alk_fhir.apply import Engine
from alk_fhir.apply.engine import DEFAULT_PLAN, CompiledAction
from alk_fhir.cds.text import Texts, pick
from alk_fhir.context import compile_facts
from alk_fhir.context.facts import BUILTINS
from alk_fhir.fhirpath import variables_in
from alk_fhir.knowledge.canonical import FACTS_LIBRARY

PATIENT = "{{context.patientId}}"
# R4 search parameters (MedicationStatement-medication, Procedure-performer, …) that reach the
# resources a fact resolves but that have no patient search parameter of their own.
INCLUDES: dict[str, tuple[tuple[str, str], ...]] = {
    "Medication": (("MedicationStatement", "medication"), ("MedicationRequest", "medication")),
    "PractitionerRole": (("Procedure", "performer"), ("DiagnosticReport", "performer")),
}
# The user, for a display name only: the advice is the same without it.
USER_TEMPLATES = {"user": "Practitioner/{{userPractitionerId}}",
                  "userRole": "PractitionerRole/{{userPractitionerRoleId}}"}
OPTIONAL_KEYS = frozenset(USER_TEMPLATES)
_generated: dict[str, dict[str, str]] = {}  # hook -> key -> template, for the package being served
_operationalisations: dict[str, dict[str, str]] = {}  # Library parameter -> {"nl": "hier: …", "en": …}

PROFESSIONAL_USERS = ("Practitioner", "PractitionerRole")


def _facts_read(actions: tuple[CompiledAction, ...]) -> set[str]:
    out: set[str] = set()
    for action in actions:
        for condition in action.conditions:
            out |= set(variables_in(condition))
        out |= _facts_read(action.children)
    return out


def _code_filter(requirement: dict[str, Any]) -> str:
    tokens = [f"{c['system']}|{c['code']}" for f in requirement.get("codeFilter", []) if f.get("path") == "code"
              for c in f.get("code", [])]
    return f"&code={','.join(tokens)}" if tokens else ""


def generate_templates(engine: Engine, plan: str = DEFAULT_PLAN) -> dict[str, dict[str, str]]:
    """Per hook the prefetch templates its actions need (see the module docstring)."""
    try:
        compiled = engine.plan(plan)
    except KeyError:  # a package without the guideline plan (a stub): the services answer 503
        return {}
    program = compile_facts(engine.package)
    library = engine.package.resolve(FACTS_LIBRARY) or {}
    requirement_of = {str(r.get("id")): r for r in library.get("dataRequirement", [])}
    out: dict[str, dict[str, str]] = {}
    for hook in sorted({t for a in compiled.actions for t in a.triggers}):
        actions = tuple(a for a in compiled.actions if hook in a.triggers)
        needed = program.requirements_of(_facts_read(actions)) - set(BUILTINS)
        declared = set(program.requirements.values())  # what resolve() may reach, fetched by _include
        templates = {"patient": "Patient/" + PATIENT}
        for req in sorted(needed):
            rtype = program.requirements[req]
            if rtype in INCLUDES:
                continue
            includes = "".join(f"&_include={src}:{param}" for target, pairs in INCLUDES.items() if target in declared
                               for src, param in pairs if src == rtype)
            templates[req] = f"{rtype}?patient={PATIENT}{_code_filter(requirement_of.get(req, {}))}{includes}"
        if hook == "patient-view":
            templates.update(USER_TEMPLATES)
        out[hook] = templates
    return out


def configure(engine: Engine) -> None:
    """Generate the services' prefetch for the package being served (at start-up, once). A process
    serves one package; a package without the guideline plan (a stub, whose services answer 503)
    leaves the templates as they were."""
    generated = generate_templates(engine)
    if not generated:
        return
    _generated.clear()
    _generated.update(generated)
    _operationalisations.clear()
    _operationalisations.update({f.name: f.operationalisation for f in compile_facts(engine.package).facts
                                 if f.operationalisation})


def templates_for(hook: str) -> dict[str, str]:
    if not _generated:
        from alk_fhir.apply import load_engine
        from alk_fhir.config import Settings
        from alk_fhir.knowledge import load_package

        settings = Settings.from_env()
        configure(load_engine(load_package(settings.package_dir, settings.conceptmaps)))
    return _generated.get(hook, {})


@dataclass(frozen=True)
class Service:
    id: str
    hook: str
    title: Texts
    description: Texts
    usage: Texts
    user_types: tuple[str, ...]

    @property
    def prefetch(self) -> dict[str, str]:
        return templates_for(self.hook)

    @property
    def prefetch_keys(self) -> tuple[str, ...]:
        return tuple(self.prefetch)

    def required(self, key: str) -> bool:
        return key not in OPTIONAL_KEYS

    def describe(self, lang: str) -> dict[str, Any]:
        return {
            "hook": self.hook,
            "title": pick(self.title, lang),
            "description": _with_numbers(pick(self.description, lang), lang),
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
        user_types=PROFESSIONAL_USERS,
    ),
    Service(
        id="alk-order-select",
        hook="order-select",
        title={"nl": "Hardnekkige ALK: risicomedicatie en polyfarmacie",
               "en": "Persistent ALK: risk medication and polypharmacy"},
        description={
            "nl": "Bij het kiezen van medicatie voor een patiënt met hardnekkige ALK: waarschuwt bij opioïden, "
                  "benzodiazepinen en gabapentinoïden en bij een middel erbij bij polyfarmacie "
                  "({polypharmacyThreshold}) (handreiking §2.2, "
                  "Profielschets: iatrogene schade); bij ALK die (nog) niet hardnekkig is: een verwijzing naar de "
                  "NHG-standaard SOLK en de zorgstandaarden (handreiking §1.2).",
            "en": "When medication is selected for a patient with persistent ALK: warns on opioids, benzodiazepines "
                  "and gabapentinoids, and on one more drug with polypharmacy ({polypharmacyThreshold}) "
                  "(guideline §2.2, profile sketch: "
                  "iatrogenic harm); for ALK that is not (yet) persistent: a pointer to the NHG guideline and the "
                  "care standards (guideline §1.2).",
        },
        usage=_USAGE,
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
        user_types=PROFESSIONAL_USERS,
    ),
)

SERVICES_BY_ID = {s.id: s for s in SERVICES}


def _with_numbers(text: str, lang: str) -> str:
    """``{parameter}`` in a description becomes the Library's operationalisation of that number."""
    return re.sub(r"\{([A-Za-z0-9]+)\}", lambda m: (_operationalisations.get(m.group(1)) or {}).get(
        lang, m.group(0)), text)


def discovery_document(lang: str) -> dict[str, Any]:
    templates_for("patient-view")  # generated on first use when start-up did not (tests)
    return {"services": [s.describe(lang) for s in SERVICES]}
