"""Build the case overview document from a patient record.

The result is a FHIR R4 document (documents.html): a Bundle of type ``document`` (profile
alk-case-overview-document) whose first entry is the Composition (profile alk-case-overview, ten
sections coded with our concept and the guideline section), followed by every resource the
Composition refers to and, transitively, every resource those refer to that the record holds
("the document bundle SHALL include … any resources referenced from the Composition").

Identity: one overview per patient record and keeping organisation. ``Bundle.identifier`` and
``Composition.identifier`` are name-based UUIDs (RFC 9562 §5.5) of the custodian's identifier and
the patient's place in the record (its fullUrl, else ``Patient/id``), so every later build from
that record is a version of the same document, and so is the version a partner returns after
editing it (``edit.py`` keeps both identifiers); a receiving store keeps one resource per
``Bundle.identifier`` and a new version whenever the content changes. The BSN is deliberately not
hashed into the identifier: BSNs are few enough to recover one from its hash, and the identifier
travels further (audit trails, Provenance, logs) than the patient data. The same record, day and
timestamp always give byte-identical output.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

from alk_fhir.context import PatientContext, build_context
from alk_fhir.context.fhirdata import JSON, resource_key
from alk_fhir.knowledge import CONCEPTS_SYSTEM, GUIDELINE_SYSTEM, Package
from alk_fhir.overview.consent import require_exchange_consent
from alk_fhir.overview.document import identifiers_of
from alk_fhir.overview.items import SectionItems, section_items
from alk_fhir.overview.narrative import (
    EMPTY_DISPLAY,
    EMPTY_REASON_SYSTEM,
    composition_text,
    empty_sentence,
    section_text,
)
from alk_fhir.overview.sections import DOCUMENT_PROFILE, PROFILE, SectionSpec, section_specs
from alk_fhir.overview.select import select_sections
from alk_fhir.overview.text import human_name

ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://alk-fhir.org/fhir/case-overview")
URI_SYSTEM = "urn:ietf:rfc:3986"
URA = "http://fhir.nl/fhir/NamingSystem/ura"
LOINC = "http://loinc.org"
DOCUMENT_TYPE = {"coding": [{"system": LOINC, "code": "18776-5", "display": "Plan of care note"}]}
_SKIP_TYPES = {"Composition", "Provenance", "Bundle"}


class OverviewError(ValueError):
    """The record cannot give an overview (no patient, unknown author …); says what is missing."""


def now_instant() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def full_urls(record: Any) -> dict[str, str]:
    """``Type/id`` -> the ``fullUrl`` the record gave it (nested Bundles included)."""
    found: dict[str, str] = {}

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict) and node.get("resourceType") == "Bundle":
            for entry in node.get("entry") or []:
                res = entry.get("resource") if isinstance(entry, dict) else None
                if isinstance(res, dict) and isinstance(entry.get("fullUrl"), str):
                    found.setdefault(resource_key(res), entry["fullUrl"])
                walk(res)

    walk(record)
    return found


def overview_identity(holder: JSON, patient: JSON, full_url: str | None) -> str:
    """What names this overview: the keeping organisation and the patient's place in its record."""
    orgs = sorted(identifiers_of(holder), key=lambda i: i[0] != URA)
    keeper = f"{orgs[0][0]}|{orgs[0][1]}" if orgs else resource_key(holder)
    return f"{keeper}|{full_url or resource_key(patient)}"


def overview_identifiers(identity: str) -> tuple[str, str]:
    """(Bundle.identifier.value, Composition.identifier.value) for an overview identity."""
    return (f"urn:uuid:{uuid.uuid5(ID_NAMESPACE, 'document|' + identity)}",
            f"urn:uuid:{uuid.uuid5(ID_NAMESPACE, 'composition|' + identity)}")


def _base_of(full_url: str | None, res: JSON) -> str | None:
    suffix = f"{res.get('resourceType')}/{res.get('id')}"
    if full_url and full_url.startswith(("http://", "https://")) and full_url.endswith("/" + suffix):
        return full_url[: -len(suffix)]
    return None


def find_resource(ctx: PatientContext, spec: str, types: tuple[str, ...]) -> JSON | None:
    """``Type/id`` or, for organisations, ``system|value`` of one of its identifiers."""
    if "|" in spec:
        system, value = spec.split("|", 1)
        for rtype in types:
            for res in ctx.of_type(rtype):
                if (system, value) in identifiers_of(res):
                    return res
        return None
    found = ctx.by_key.get(spec)
    return found if found is not None and found.get("resourceType") in types else None


def _references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str) and not ref.startswith("#"):
            yield ref
        for key, value in node.items():
            if key != "contained":
                yield from _references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _references(item)


def _closure(ctx: PatientContext, start: list[JSON]) -> list[JSON]:
    """``start`` plus every record resource reachable from it by reference, in discovery order."""
    out: dict[str, JSON] = {}
    queue = list(start)
    while queue:
        res = queue.pop(0)
        key = resource_key(res)
        if key in out or res.get("resourceType") in _SKIP_TYPES:
            continue
        out[key] = res
        for ref in _references(res):
            target = ctx.resolve({"reference": ref})
            if target is not None and resource_key(target) not in out:
                queue.append(target)
    return list(out.values())


def section_json(spec: SectionSpec, pkg: Package, content: SectionItems, refs: list[JSON]) -> JSON:
    code = copy.deepcopy(spec.code)
    for coding in code.get("coding", []):
        shown = pkg.terminology.display(str(coding.get("system")), str(coding.get("code")))
        if shown and coding.get("system") in (CONCEPTS_SYSTEM, GUIDELINE_SYSTEM):
            coding["display"] = shown
    section: JSON = {"title": spec.title, "code": code, "text": section_text(spec, content)}
    if refs:
        section["entry"] = refs
    else:
        reason, _ = empty_sentence(spec)
        section["emptyReason"] = {"coding": [{"system": EMPTY_REASON_SYSTEM, "code": reason,
                                              "display": EMPTY_DISPLAY[reason]}]}
    return section


def build_overview(record: Any, pkg: Package, *, today: date, timestamp: str | None = None,
                   author: str | None = None, custodian: str | None = None, recipient: str | None = None,
                   status: str = "final") -> JSON:
    """The overview document of the record's patient.

    ``author``: ``Type/id`` of a Practitioner, PractitionerRole or Organization in the record
    (default: the custodian). ``custodian``: ``system|value`` (URA/AGB) or ``Organization/id``
    (default: the patient's general practice). ``recipient``: when the overview is built for an
    exchange, the receiving organisation (``system|value``): the consent gate then applies and
    :class:`~alk_fhir.overview.consent.ConsentRefused` is raised without an active covering Consent.
    """
    ctx = build_context(record, pkg, today)
    patient = ctx.patient
    if patient is None or resource_key(patient) not in ctx.by_key:
        raise OverviewError("the record holds no Patient: an overview is always about one patient")
    urls = full_urls(record)

    holder = find_resource(ctx, custodian, ("Organization",)) if custodian else None
    if custodian and holder is None:
        raise OverviewError(f"custodian {custodian!r} is not an Organization in the record")
    if holder is None:  # the general practice: an Organization, or the organization of a PractitionerRole
        for practice in patient.get("generalPractitioner") or []:
            target = ctx.resolve(practice)
            if target is not None and target.get("resourceType") == "PractitionerRole":
                target = ctx.resolve(target.get("organization"))  # zib2020 / MP9: the role names the practice
            if target is not None and target.get("resourceType") == "Organization":
                holder = target
                break
    if holder is None:
        raise OverviewError("no custodian: pass the organisation that keeps the overview "
                            "(system|value or Organization/id); the patient has no general practice")
    writer = holder
    if author:
        found = find_resource(ctx, author, ("Practitioner", "PractitionerRole", "Organization"))
        if found is None:
            raise OverviewError(f"author {author!r} is not a Practitioner, PractitionerRole or Organization "
                                "in the record")
        writer = found
    if recipient:
        senders = [f"{s}|{v}" for s, v in identifiers_of(holder)] + [resource_key(holder)]
        require_exchange_consent(ctx, recipient=recipient, senders=senders, today=today)

    specs = section_specs(pkg)
    chosen = select_sections(ctx, pkg)
    identity = overview_identity(holder, patient, urls.get(resource_key(patient)))
    bundle_id, composition_identifier = overview_identifiers(identity)
    composition_id = composition_identifier.removeprefix("urn:uuid:")
    base = _base_of(urls.get(resource_key(patient)), patient)

    def ref(res: JSON, display: bool = False) -> JSON:
        url = urls.get(resource_key(res))
        out: JSON = {"reference": url if url and url.startswith("urn:") else resource_key(res)}
        name = human_name(res) if display else ""
        if name:
            out["display"] = name
        return out

    sections = []
    contents: list[tuple[SectionSpec, SectionItems]] = []
    for spec in specs:
        resources = chosen.get(spec.key, [])
        content = section_items(spec.key, resources, ctx, pkg)
        contents.append((spec, content))
        sections.append(section_json(spec, pkg, content, [ref(r) for r in resources]))
    when = timestamp or now_instant()
    composition: JSON = {
        "resourceType": "Composition",
        "id": composition_id,
        "meta": {"profile": [PROFILE]},
        "identifier": {"system": URI_SYSTEM, "value": composition_identifier},
        "status": status,
        "type": copy.deepcopy(DOCUMENT_TYPE),
        "category": [{"coding": [{"system": CONCEPTS_SYSTEM, "code": "case-overview",
                                  "display": pkg.terminology.display(CONCEPTS_SYSTEM, "case-overview")
                                  or "case-overview"}]}],
        "subject": ref(patient, display=True),
        "date": when,
        "author": [ref(writer, display=True)],
        "title": f"Casusoverzicht hardnekkige ALK — {human_name(patient) or resource_key(patient)}",
        "custodian": ref(holder, display=True),
        "section": sections,
    }
    composition = {"resourceType": "Composition", "id": composition_id, "meta": composition["meta"],
                   "text": composition_text(composition, ctx, contents),
                   **{k: v for k, v in composition.items() if k not in ("resourceType", "id", "meta")}}
    members = _closure(ctx, [patient, holder, writer] + [r for s in specs for r in chosen.get(s.key, [])])

    def entry(res: JSON) -> JSON:
        url = urls.get(resource_key(res))
        if not url:
            url = f"{base}{resource_key(res)}" if base else f"urn:uuid:{uuid.uuid5(ID_NAMESPACE, resource_key(res))}"
        return {"fullUrl": url, "resource": copy.deepcopy(res)}

    composition_url = f"{base}Composition/{composition_id}" if base else f"urn:uuid:{composition_id}"
    return {
        "resourceType": "Bundle",
        "meta": {"profile": [DOCUMENT_PROFILE]},
        "identifier": {"system": URI_SYSTEM, "value": bundle_id},
        "type": "document",
        "timestamp": when,
        "entry": [{"fullUrl": composition_url, "resource": composition}] + [entry(r) for r in members],
    }

