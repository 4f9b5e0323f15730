"""The columns of the case register and their meaning: the one source of the data dictionary.

Every value is a code, a count, a month, a band or a pseudonym; never a name, an address, an exact
date or free text. ``quasi`` marks the quasi-identifiers the k-anonymity check works on.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from alk_fhir.knowledge import CANONICAL_BASE

VS = f"{CANONICAL_BASE}/ValueSet/"


@dataclass(frozen=True)
class Field:
    name: str
    type: str  # string | int | bool | list<string> | list<struct<code,outcome>>
    nl: str
    en: str
    values: str = ""
    quasi: bool = False
    nullable: bool = True


FIELDS: tuple[Field, ...] = (
    Field("pseudonym", "string", "Pseudoniem van de patiënt: HMAC-SHA256 van het BSN met de sleutel van de installatie",
          "Patient pseudonym: HMAC-SHA256 of the BSN under the installation's key", "64 hex digits", nullable=False),
    Field("document", "string", "Pseudoniem van het document (Bundle.identifier, zelfde sleutel)",
          "Document pseudonym (Bundle.identifier, same key)", "32 hex digits", nullable=False),
    Field("version", "int", "Versie van het document in de store", "Version of the document in the store",
          "1, 2, …", nullable=False),
    Field("period", "string", "Maand van deze versie (Composition.date)", "Month of this version (Composition.date)",
          "YYYY-MM; YYYY when generalised; null when suppressed", quasi=True),
    Field("age_band", "string", "Leeftijdsklasse op de datum van het document", "Age band on the document's date",
          "0-17, 18-29, 30-39, 40-49, 50-59, 60-69, 70-79, 80+; 18-39, 40-59, 60-79 when generalised; "
          "null when suppressed", quasi=True),
    Field("sex", "string", "Geslacht (Patient.gender)", "Administrative gender (Patient.gender)",
          "male, female, other, unknown; null when suppressed", quasi=True),
    Field("alk_conditions", "list<string>", "Actieve ALK-aandoeningen", "Active ALK-related conditions",
          f"system|code in {VS}alk-conditions; the ICD-10 category or ICPC rubric (system|K58) when "
          "generalised; null when suppressed", quasi=True),
    Field("psychiatric_comorbidity", "bool", "Psychiatrische comorbiditeit (H §2.3)",
          "Psychiatric comorbidity (H §2.3)", f"a condition in {VS}alk-psychiatric-conditions"),
    Field("assessment", "string", "Hardnekkige ALK (H §1.1): één criterium voldaan is genoeg",
          "Persistent ALK (H §1.1): one criterion met is enough",
          "criterion-met, criterion-not-met, criterion-unknown"),
    Field("criteria_source", "string", "Bron van de criteria: vastgelegde beoordeling in het document, "
          "of afgeleid uit de behandelingen en aandoeningen in het document",
          "Source of the criteria: an assessment recorded in the document, or derived from the document's "
          "treatments and conditions", "recorded, derived"),
    Field("criterion_1", "string", "Criterium 1: ALK-behandelingen hebben geen effect gehad",
          "Criterion 1: ALK treatments have had no effect", "criterion-met, criterion-not-met, criterion-unknown"),
    Field("criterion_2", "string", "Criterium 2: klachten breiden uit of functioneren verslechtert ondanks of "
          "tijdens ALK-behandeling", "Criterion 2: symptoms spread or functioning worsens despite or during ALK "
          "treatment", "criterion-met, criterion-not-met, criterion-unknown"),
    Field("criterion_3", "string", "Criterium 3: komt niet in ALK-behandeling of een poging slaagt niet",
          "Criterion 3: never gets into ALK treatment, or an attempt fails",
          "criterion-met, criterion-not-met, criterion-unknown"),
    Field("profile_features", "list<string>", "Kenmerken uit de Profielschets die het document laat zien",
          "Profile features (Profielschets) the document shows", f"codes in {VS}alk-profile-features",
          nullable=False),
    Field("active_medication_count", "int", "Aantal actieve geneesmiddelen", "Number of active medications"),
    Field("risk_medication_count", "int", "Waarvan risicomedicatie (opioïd, benzodiazepine, gabapentinoïd)",
          "Of which risk medication (opioid, benzodiazepine, gabapentinoid)", f"{VS}alk-risk-medication"),
    Field("opioid_count", "int", "Waarvan opioïden", "Of which opioids", f"{VS}alk-opioids"),
    Field("benzodiazepine_count", "int", "Waarvan benzodiazepinen en verwante middelen",
          "Of which benzodiazepines and related drugs", f"{VS}alk-benzodiazepines"),
    Field("gabapentinoid_count", "int", "Waarvan gabapentinoïden", "Of which gabapentinoids",
          f"{VS}alk-gabapentinoids"),
    Field("care_contacts", "int", "Zorgcontacten in het venster van het pakket (careContactsWindow, 12 maanden) voor "
          "het document; leeg als het document geen contacten bevat", "Care contacts in the package's window "
          "(careContactsWindow, 12 months) before the document; empty when the document holds no encounters",
          "count or null"),
    Field("treatments", "list<struct<code,outcome>>", "Eerdere ALK-behandelingen en hun effect",
          "ALK treatments tried and their outcome",
          f"code: system|code in {VS}alk-treatments; outcome: system|code in {VS}alk-treatment-outcomes or null",
          nullable=False),
    Field("care_team_roles", "list<string>", "Rollen in het actieve zorgteam (één per deelnemer)",
          "Roles in the active care team (one per participant)", f"system|code in {VS}alk-careteam-roles",
          nullable=False),
    Field("advice_sections", "list<string>", "Paragrafen van de handreiking waarvan het overzicht inhoud heeft "
          "(bv. 3.1 zorgteam, 3.3 stappenplan, 4.3 consultatie)", "Guideline sections whose part of the overview "
          "holds entries (e.g. 3.1 care team, 3.3 step plan, 4.3 consultation)", "codes of the alk-guideline "
          "CodeSystem; the chapter (3) when generalised; null when suppressed", quasi=True),
)
NAMES = tuple(f.name for f in FIELDS)
QUASI_IDENTIFIERS = tuple(f.name for f in FIELDS if f.quasi)


def dictionary_json() -> str:
    return json.dumps({"fields": [asdict(f) for f in FIELDS]}, ensure_ascii=False, indent=2) + "\n"


def dictionary_markdown() -> str:
    lines = [
        "# Casusregister hardnekkige ALK — datadictionary / case register data dictionary",
        "",
        "Written by `alk-fhir register export` beside every export (`data-dictionary.md`, `.json`) and kept in",
        "the repository as `src/alk_fhir/register/DATA-DICTIONARY.md` (a test keeps the two the same).",
        "One row per patient per document version. No names, addresses, exact dates or free text: every value",
        "is a pseudonym, a code, a count, a month or a band. QI = quasi-identifier. `H §` = Handreiking section.",
        "",
        "k-anonymity is per patient: the pseudonym links a patient's rows, so a patient's signature is the set",
        "of their rows' QI values, and every signature published is shared by at least k patients (default 5).",
        "Until it is, the patients of a too-small class are generalised, in all their rows, one step at a time:",
        "period to its year; diagnosis codes to their ICD-10 category or ICPC rubric; sections to their chapter;",
        "age band to a 20-year band; then period, diagnosis codes, sections, age band and sex are suppressed",
        "(null), in that order; a patient still alone is left out. `suppression.json` counts every step taken.",
        "Codes are exported only when they are valid codes of their system (ICD-10, ICPC, ATC syntax) and",
        "members of the package's ValueSets, sections only when the alk-guideline CodeSystem defines them;",
        "anything else is dropped and counted (`droppedCodes`).",
        "",
        "| column | type | QI | betekenis | meaning | values |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for f in FIELDS:
        kind = f.type + ("" if f.nullable else ", never null")
        lines.append(f"| `{f.name}` | {kind} | {'yes' if f.quasi else ''} | {f.nl} | {f.en} | {f.values} |")
    return "\n".join(lines) + "\n"
