"""Build a PatientContext once per request: index the resources, report the unusable ones.

Unknown or malformed resources never stop the request: they are listed as OperationOutcome issues
(``PatientContext.issues``) and left out, so one bad entry in an EHR prefetch cannot hide the advice
that the rest of the record supports.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from alk_fhir.context.fhirdata import JSON, as_dict, as_list, reference_key, resource_key
from alk_fhir.knowledge import Package

# Resource types the facts read, and the elements without which an instance says nothing usable.
USED_TYPES: dict[str, tuple[str, ...]] = {
    "Patient": (),
    "Condition": ("code",),
    "EpisodeOfCare": ("status",),
    "MedicationStatement": ("status",),
    "MedicationRequest": ("status",),
    "MedicationDispense": ("status",),
    "Medication": (),
    "Procedure": ("status", "code"),
    "DiagnosticReport": ("status", "code"),
    "Encounter": ("status",),
    "CareTeam": (),
    "CarePlan": ("status", "intent"),
    "QuestionnaireResponse": ("status",),
    "Consent": ("status",),
    "Observation": ("status", "code"),
    "Practitioner": (),
    "PractitionerRole": (),
    "Organization": (),
    "RelatedPerson": (),
    "Goal": (),
    "Task": (),
    "ServiceRequest": (),
    "Composition": (),
    "Provenance": (),
}


@dataclass
class PatientContext:
    today: date
    patient: JSON | None
    by_type: dict[str, list[JSON]] = field(default_factory=dict)
    by_key: dict[str, JSON] = field(default_factory=dict)
    draft_orders: list[JSON] = field(default_factory=list)
    issues: list[JSON] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    # id() of a '#id' Reference object inside a resource -> the contained resource it names
    local: dict[int, JSON] = field(default_factory=dict)

    def of_type(self, resource_type: str) -> list[JSON]:
        return self.by_type.get(resource_type, [])

    def resolve(self, ref: Any, contained_in: JSON | None = None) -> JSON | None:
        return resolve_reference(self.by_key, self.local, ref, contained_in)

    @property
    def subject_reference(self) -> JSON | None:
        return {"reference": resource_key(self.patient)} if self.patient else None

    def fact_resources(self, fact: str) -> list[JSON]:
        """The resources a fact holds (a single resource as a list of one)."""
        value = self.facts.get(fact)
        found = value if isinstance(value, list) else [value] if isinstance(value, dict) else []
        return [r for r in found if isinstance(r, dict) and "resourceType" in r]

    def evidence(self, fact: str) -> list[JSON]:
        """References to the resources a fact holds: what the assessment cites for it."""
        return [{"reference": resource_key(r)} for r in self.fact_resources(fact) if "id" in r]


def resolve_reference(by_key: dict[str, JSON], local: dict[int, JSON], ref: Any,
                      contained_in: JSON | None = None) -> JSON | None:
    """The resource a Reference names: ``Type/id`` in the record, or ``#id`` contained in
    ``contained_in`` (or in the resource the Reference sits in, as indexed in ``local``). A function
    of the two indexes, not of the context, so that the facts' environment can hold it without a
    reference cycle back to the context (which would keep each request's record alive until the
    garbage collector's next full pass)."""
    if isinstance(ref, dict) and isinstance(ref.get("reference"), str) and ref["reference"].startswith("#"):
        if contained_in is None:
            return local.get(id(ref))
        wanted = ref["reference"][1:]
        for res in as_list(as_dict(contained_in).get("contained")):
            if isinstance(res, dict) and res.get("id") == wanted:
                return res
        return None
    key = reference_key(ref)
    return by_key.get(key) if key else None


def _index_contained(ctx: PatientContext, res: JSON) -> None:
    """Remember which contained resource each local reference of ``res`` names (FHIR references.html#contained)."""
    contained = {c.get("id"): c for c in as_list(res.get("contained")) if isinstance(c, dict)}
    if not contained:
        return
    todo: list[Any] = [v for k, v in res.items() if k != "contained"]
    while todo:
        node = todo.pop()
        if isinstance(node, list):
            todo.extend(node)
        elif isinstance(node, dict):
            ref = node.get("reference")
            if isinstance(ref, str) and ref.startswith("#") and ref[1:] in contained:
                ctx.local[id(node)] = contained[ref[1:]]
            todo.extend(node.values())


def resources_of(data: Any) -> list[Any]:
    """Flatten a Bundle (any type, nested Bundles included), a list, or one resource."""
    if isinstance(data, list):
        return [r for item in data for r in resources_of(item)]
    if isinstance(data, dict) and data.get("resourceType") == "Bundle":
        out: list[Any] = []
        for entry in as_list(data.get("entry")):
            if isinstance(entry, dict) and "resource" in entry:
                res = entry["resource"]
                if type(res) is dict and res.get("resourceType") != "Bundle":
                    out.append(res)  # what resources_of(res) gives, without the call per entry
                else:
                    out += resources_of(res)
        return out
    if data is None:
        return []
    return [data]


def _issue(severity: str, code: str, text: str, where: str) -> JSON:
    return {"severity": severity, "code": code, "diagnostics": text, "expression": [where]}


_NO_ID: Any = object()


def _refuse(ctx: PatientContext, res: Any, i: int) -> None:
    """Why the i-th resource is left out, as an issue for the caller."""
    where = f"resource[{i}]"
    if not isinstance(res, dict) or not isinstance(res.get("resourceType"), str):
        ctx.issues.append(_issue("warning", "structure", "not a FHIR resource; ignored", where))
        return
    rtype = res["resourceType"]
    if rtype == "OperationOutcome":
        ctx.issues.append(_issue("information", "informational",
                                 "an OperationOutcome stood in for data; treated as no data", where))
        return
    if rtype not in USED_TYPES:
        ctx.issues.append(_issue("information", "not-supported", f"{rtype} is not used by the rules; ignored", where))
        return
    missing = [k for k in USED_TYPES[rtype] if k not in res]
    ctx.issues.append(_issue("warning", "required",
                             f"{rtype} without {', '.join(missing) or 'a usable id'}; ignored", where))


def _index_full_urls(by_key: dict[str, JSON], bundle: JSON) -> None:
    """Let ``urn:uuid:``/``urn:oid:`` references name the entry whose fullUrl they are, as a
    transaction or searchset Bundle's references do (FHIR bundle.html#references; MP9 3.0 sends
    them so). Only entries that were indexed are named; each resource stays listed once."""
    for entry in as_list(bundle.get("entry")):
        full_url = entry.get("fullUrl") if isinstance(entry, dict) else None
        if type(full_url) is not str or not full_url.startswith(("urn:uuid:", "urn:oid:")):
            continue
        res = entry.get("resource")
        if isinstance(res, dict):
            found = by_key.get(f"{res.get('resourceType')}/{res.get('id')}")
            if found is not None:
                by_key[entry["fullUrl"]] = found


def build_context(data: Iterable[Any] | JSON, pkg: Package, today: date,
                  draft_orders: Any = None, patient_id: str | None = None) -> PatientContext:
    """Index the resources and compute the facts declared in Library/alk-facts."""
    from alk_fhir.context.facts import compute_facts  # facts builds on this module's PatientContext

    ctx = PatientContext(today=today, patient=None)
    items = resources_of(data if isinstance(data, dict) else list(data))
    by_type, by_key = ctx.by_type, ctx.by_key
    for i, res in enumerate(items):  # every CDS call runs this loop: the common path is kept short
        rtype: Any = res.get("resourceType") if type(res) is dict else None
        required = USED_TYPES.get(rtype) if type(rtype) is str else None
        res_id = res.get("id", _NO_ID) if required is not None else _NO_ID
        usable = required is not None and (res_id is _NO_ID or type(res_id) is str)
        for k in required or ():  # a loop, not any(): at most two names, on every resource
            if k not in res:
                usable = False
        if not usable:
            _refuse(ctx, res, i)
            continue
        if res_id is _NO_ID:
            res_id = f"anon-{i}"
            res = {**res, "id": res_id}
            key = f"{rtype}/{res_id}"
        else:
            key = f"{rtype}/{res_id}"
            if key in by_key:  # the same resource twice (two prefetch keys, two pages): once
                continue
        found = by_type.get(rtype)
        if found is None:
            by_type[rtype] = [res]
        else:
            found.append(res)
        by_key[key] = res
        if "contained" in res:
            _index_contained(ctx, res)
    if isinstance(data, dict) and data.get("resourceType") == "Bundle":
        _index_full_urls(by_key, data)
    patients = ctx.of_type("Patient")
    if patient_id:
        ctx.patient = ctx.by_key.get(f"Patient/{patient_id}") or {"resourceType": "Patient", "id": patient_id}
    elif patients:
        ctx.patient = patients[0]
    ctx.draft_orders = [r for r in resources_of(draft_orders) if isinstance(r, dict)]
    for res in ctx.draft_orders:
        if "contained" in res:
            _index_contained(ctx, res)
    compute_facts(ctx, pkg)
    return ctx
