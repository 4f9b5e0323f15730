"""Reading a case-overview document: its Composition, its sections, and who it concerns.

A FHIR document (R4 documents.html) is a Bundle of type ``document`` whose first entry is the
Composition; the other entries are the resources it refers to. Everything here works on any such
document, ours or another system's, and raises :class:`DocumentError` (a ValueError naming the
element) when the shape is not that of a document.

The organisations a document names are what the access rules compare (by URA/AGB identifier):
its authors (Composition.author, through a PractitionerRole to its organisation), its custodian,
and its recipients: the parties of the exchange Consents it carries (the organisation that holds
the data and the actors with role IRCP "information recipient"; profile alk-exchange-consent), as
far as the consent rule lets the writer share with them (``consent.sharing_parties``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

from alk_fhir.context import PatientContext, build_context
from alk_fhir.context.fhirdata import JSON, has_code, parse_date, reference_key
from alk_fhir.knowledge import Package

OrgId = tuple[str, str]
ORG_SYSTEMS = ("http://fhir.nl/fhir/NamingSystem/ura", "http://fhir.nl/fhir/NamingSystem/agb-z")
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"


class DocumentError(ValueError):
    """Not a case-overview document; the message names the element."""


def composition_of(document: Any) -> JSON:
    if not isinstance(document, dict) or document.get("resourceType") != "Bundle":
        raise DocumentError("$.resourceType must be 'Bundle'")
    if document.get("type") != "document":
        raise DocumentError(f"Bundle.type must be 'document', not {document.get('type')!r}")
    entries = document.get("entry")
    first = entries[0] if isinstance(entries, list) and entries else None
    resource = first.get("resource") if isinstance(first, dict) else None
    if not isinstance(resource, dict) or resource.get("resourceType") != "Composition":
        raise DocumentError("Bundle.entry[0].resource must be the Composition")
    return resource


def document_day(document: Any) -> date:
    """The day the document speaks of (Composition.date): a version reads the same on any later day."""
    return parse_date(composition_of(document).get("date")) or parse_date(document.get("timestamp")) or date.today()


def document_context(document: Any, pkg: Package, today: date | None = None) -> PatientContext:
    composition = composition_of(document)
    subject = reference_key(composition.get("subject"))
    patient_id = subject.split("/", 1)[1] if subject and subject.startswith("Patient/") else None
    return build_context(document, pkg, today or document_day(document), patient_id=patient_id)


def section_entries(section: JSON, ctx: PatientContext) -> list[JSON]:
    """The resources a section's entries point at (unresolvable ones are left out)."""
    found: list[JSON] = []
    for ref in section.get("entry") or []:
        res = ctx.resolve(ref)
        if res is not None and res not in found:
            found.append(res)
    return found


def identifiers_of(res: JSON | None, systems: Iterable[str] | None = None) -> list[OrgId]:
    if not isinstance(res, dict):
        return []
    wanted = set(systems) if systems is not None else None
    return [(str(i["system"]), str(i["value"])) for i in res.get("identifier") or []
            if isinstance(i, dict) and isinstance(i.get("system"), str) and isinstance(i.get("value"), str)
            and (wanted is None or i["system"] in wanted)]


def organization_ids(ctx: PatientContext, ref: Any) -> list[OrgId]:
    """URA/AGB identifiers of the organisation a reference means (directly, via a PractitionerRole)."""
    if not isinstance(ref, dict):
        return []
    direct = ref.get("identifier")
    if isinstance(direct, dict) and direct.get("system") in ORG_SYSTEMS and direct.get("value"):
        return [(str(direct["system"]), str(direct["value"]))]
    target = ctx.resolve(ref)
    if target is None:
        return []
    if target.get("resourceType") == "Organization":
        return identifiers_of(target, ORG_SYSTEMS)
    if target.get("resourceType") == "PractitionerRole":
        return organization_ids(ctx, target.get("organization"))
    return []


def author_orgs(ctx: PatientContext, composition: JSON) -> list[OrgId]:
    return _unique(o for a in composition.get("author") or [] for o in organization_ids(ctx, a))


def custodian_orgs(ctx: PatientContext, composition: JSON) -> list[OrgId]:
    return organization_ids(ctx, composition.get("custodian"))


def is_exchange_consent(consent: JSON) -> bool:
    actors = (consent.get("provision") or {}).get("actor") or []
    return any(isinstance(a, dict) and has_code(a.get("role"), PARTICIPATION, "IRCP") for a in actors)


def patient_identifiers(ctx: PatientContext, composition: JSON) -> list[str]:
    """``system|value`` of every identifier of the document's subject."""
    patient = ctx.resolve(composition.get("subject"))
    return [f"{s}|{v}" for s, v in identifiers_of(patient)]


def _unique(items: Iterable[OrgId]) -> list[OrgId]:
    return list(dict.fromkeys(items))
