"""Dutch wording for FHIR values: dates, names, codes and references as a clinician reads them.

Shared by the narratives, the rendered page and the diff, so a medication or a step reads the same
wherever it appears.
"""

from __future__ import annotations

from typing import Any

from alk_fhir.context import PatientContext
from alk_fhir.context.fhirdata import JSON, codings
from alk_fhir.knowledge import Package

_ROLE_WORDS = {"Practitioner", "PractitionerRole", "RelatedPerson", "Patient", "Organization", "CareTeam"}


def nl_date(value: Any) -> str:
    """FHIR date/dateTime → ``dd-mm-jjjj`` (partial dates stay partial: ``03-2019``, ``2019``)."""
    if not isinstance(value, str) or len(value) < 4:
        return ""
    if len(value) == 4:
        return value
    if len(value) == 7:
        return f"{value[5:7]}-{value[:4]}"
    day = f"{value[8:10]}-{value[5:7]}-{value[:4]}"
    if len(value) > 10 and "T" in value:
        return f"{day} {value[11:16]}"
    return day


def nl_period(period: Any) -> str:
    if not isinstance(period, dict):
        return ""
    start, end = nl_date(period.get("start")), nl_date(period.get("end"))
    if start and end:
        return f"{start} t/m {end}"
    if start:
        return f"vanaf {start}"
    return f"tot {end}" if end else ""


def human_name(res: JSON | None) -> str:
    """The readable name of a person or organisation resource ('' when it has none)."""
    if not isinstance(res, dict):
        return ""
    if isinstance(res.get("name"), str):
        return str(res["name"])
    names = res.get("name")
    if isinstance(names, list):
        for name in names:
            if not isinstance(name, dict):
                continue
            if isinstance(name.get("text"), str) and name["text"].strip():
                return str(name["text"]).strip()
            parts = [*(name.get("prefix") or []), *(name.get("given") or []), name.get("family") or ""]
            text = " ".join(str(p) for p in parts if isinstance(p, str) and p)
            if text:
                return text
    return ""


def concept_text(concept: Any, pkg: Package | None = None) -> str:
    """``text``, else the display of the first coding (our CodeSystems' Dutch display first)."""
    if isinstance(concept, list):
        return "; ".join(t for t in (concept_text(c, pkg) for c in concept) if t)
    if not isinstance(concept, dict):
        return ""
    if isinstance(concept.get("text"), str) and concept["text"].strip():
        return str(concept["text"]).strip()
    for coding in codings(concept):
        if pkg is not None and coding.get("system") and coding.get("code"):
            shown = pkg.terminology.display(str(coding["system"]), str(coding["code"]))
            if shown:
                return shown
        if coding.get("display"):
            return str(coding["display"])
    for coding in codings(concept):
        if coding.get("code"):
            return str(coding["code"])
    return ""


def code_label(concept: Any, system: str, label: str) -> str:
    """`` (ICD-10 F45.4)`` style suffix for one code system, or ''."""
    for coding in codings(concept):
        if coding.get("system") == system and coding.get("code"):
            return f" ({label} {coding['code']})"
    return ""


def reference_text(ctx: PatientContext, ref: Any, contained_in: JSON | None = None) -> str:
    """Who or what a Reference points at, in words: the resource's name, else the display."""
    if not isinstance(ref, dict):
        return ""
    target = ctx.resolve(ref, contained_in=contained_in)
    if target is not None:
        rtype = target.get("resourceType")
        if rtype == "PractitionerRole":
            who = human_name(ctx.resolve(target.get("practitioner"))) or str(
                (target.get("practitioner") or {}).get("display", ""))
            org = human_name(ctx.resolve(target.get("organization"))) or str(
                (target.get("organization") or {}).get("display", ""))
            role = concept_text(target.get("code"))
            bits = [b for b in (who, role, org) if b]
            if bits:
                return ", ".join(bits)
        elif rtype == "CareTeam":
            return str(target.get("name") or "zorgteam")
        elif rtype in _ROLE_WORDS:
            name = human_name(target)
            if name:
                return name
        elif rtype == "Goal":
            return concept_text(target.get("description"))
    if isinstance(ref.get("display"), str) and ref["display"].strip():
        return str(ref["display"]).strip()
    ident = ref.get("identifier")
    if isinstance(ident, dict) and ident.get("value"):
        return f"{ident.get('system', '')}|{ident['value']}"
    return str(ref.get("reference", ""))


def patient_line(patient: JSON | None) -> str:
    """'Dirk Bos, man, geboren 04-11-1969, BSN 999911156' (what is known of it)."""
    if not patient:
        return "onbekende patiënt"
    bits = [human_name(patient) or f"Patient/{patient.get('id', '?')}"]
    gender = {"male": "man", "female": "vrouw", "other": "anders", "unknown": "geslacht onbekend"}.get(
        str(patient.get("gender")), "")
    if gender:
        bits.append(gender)
    if patient.get("birthDate"):
        bits.append(f"geboren {nl_date(patient['birthDate'])}")
    for ident in patient.get("identifier") or []:
        if isinstance(ident, dict) and ident.get("system") == "http://fhir.nl/fhir/NamingSystem/bsn":
            bits.append(f"BSN {ident.get('value')}")
            break
    return ", ".join(bits)
