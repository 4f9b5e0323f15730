"""Changing an overview someone sent: a new version of the same document.

The receiving side (say the GGz) edits the document it received — here: adds a step to the step
plan — and returns it as *its* version: same ``Bundle.identifier`` and ``Composition.identifier``
(the same overview, R4 Composition.identifier is "version-independent"), a new ``timestamp`` and
``Composition.date``, status ``amended`` (R4 composition-status: "the composition content or the
referenced resources have been modified … after the composition was initially created"), itself
as author and custodian, and every narrative regenerated so that text and data agree.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from alk_fhir.context import PatientContext
from alk_fhir.context.fhirdata import JSON, has_code, resource_key
from alk_fhir.knowledge import CONCEPTS_SYSTEM, Package
from alk_fhir.overview.build import ID_NAMESPACE, OverviewError, find_resource, now_instant
from alk_fhir.overview.document import composition_of, document_context, section_entries
from alk_fhir.overview.items import SectionItems, section_items
from alk_fhir.overview.narrative import careplan_text, composition_text, section_text
from alk_fhir.overview.sections import SectionSpec, spec_of_section
from alk_fhir.overview.text import human_name

STEP_STATUSES = ("not-started", "scheduled", "in-progress", "on-hold", "completed", "cancelled", "stopped")


def _sections(document: JSON, ctx: PatientContext, pkg: Package) -> list[tuple[JSON, SectionSpec, SectionItems]]:
    out = []
    for section in composition_of(document).get("section") or []:
        spec = spec_of_section(pkg, section)
        if spec is not None:
            out.append((section, spec, section_items(spec.key, section_entries(section, ctx), ctx, pkg)))
    return out


def refresh_narratives(document: JSON, pkg: Package) -> JSON:
    """Regenerate the narratives (sections, Composition, step plans) from the data, in place."""
    ctx = document_context(document, pkg)
    composition = composition_of(document)
    found = _sections(document, ctx, pkg)
    for section, spec, content in found:
        section["text"] = section_text(spec, content)
        if spec.key == "stepPlan":
            for plan in section_entries(section, ctx):
                if plan.get("resourceType") == "CarePlan":
                    plan["text"] = careplan_text(plan, section_items("stepPlan", [plan], ctx, pkg))
    composition["text"] = composition_text(composition, ctx, [(spec, content) for _, spec, content in found])
    return document


def revise(document: Any, pkg: Package, *, timestamp: str | None = None, author: str | None = None,
           custodian: str | None = None, status: str = "amended") -> JSON:
    """A copy stamped as a new version by ``author``/``custodian`` (``Type/id`` or ``system|value``)."""
    doc: JSON = copy.deepcopy(document)
    composition = composition_of(doc)
    ctx = document_context(doc, pkg)
    when = timestamp or now_instant()
    if custodian:
        holder = find_resource(ctx, custodian, ("Organization",))
        if holder is None:
            raise OverviewError(f"custodian {custodian!r} is not an Organization in the document")
        composition["custodian"] = _ref(holder)
    if author:
        writer = find_resource(ctx, author, ("Practitioner", "PractitionerRole", "Organization"))
        if writer is None:
            raise OverviewError(f"author {author!r} is not a Practitioner, PractitionerRole or Organization "
                                "in the document")
        composition["author"] = [_ref(writer)]
    composition["date"] = when
    composition["status"] = status
    doc["timestamp"] = when
    doc.pop("id", None)  # the server's id and version belong to the copy it kept, not to this one
    if isinstance(doc.get("meta"), dict):
        doc["meta"] = {k: v for k, v in doc["meta"].items() if k not in ("versionId", "lastUpdated")}
    return doc


def _ref(res: JSON) -> JSON:
    out: JSON = {"reference": resource_key(res)}
    name = human_name(res)
    if name:
        out["display"] = name
    return out


def _step_plan(doc: JSON, ctx: PatientContext, pkg: Package) -> JSON:
    for section in composition_of(doc).get("section") or []:
        spec = spec_of_section(pkg, section)
        if spec is None or spec.key != "stepPlan":
            continue
        for plan in section_entries(section, ctx):
            if plan.get("resourceType") == "CarePlan" and has_code(plan.get("category"), CONCEPTS_SYSTEM, "step-plan"):
                return plan
    raise OverviewError("the overview has no step plan to add a step to: a step plan belongs to a care team "
                        "with a case coordinator (Handreiking §3.1, §3.3); build it in the record first")


def add_step(document: Any, pkg: Package, *, description: str, start: str, end: str | None = None,
             performer: str, goal: str, status: str = "not-started", perpetuating: bool = False,
             timestamp: str | None = None, author: str | None = None, custodian: str | None = None) -> JSON:
    """A new version of ``document`` with one more step in its step plan (profile alk-stepplan:
    a step has the code ``step``, a description, a period, performers and at least one goal).

    ``performer``: ``Type/id`` of a resource in the document (Practitioner, PractitionerRole,
    Organization, RelatedPerson, Patient, CareTeam). ``goal``: the goal in words; it becomes a Goal
    resource in the document.
    """
    if not description.strip() or not goal.strip():
        raise OverviewError("a step needs a description and a goal")
    if status not in STEP_STATUSES:
        raise OverviewError(f"status must be one of {', '.join(STEP_STATUSES)}")
    doc = revise(document, pkg, timestamp=timestamp, author=author, custodian=custodian)
    ctx = document_context(doc, pkg)
    plan = _step_plan(doc, ctx, pkg)
    who = find_resource(ctx, performer, ("Practitioner", "PractitionerRole", "Organization", "RelatedPerson",
                                         "Patient", "CareTeam"))
    if who is None:
        raise OverviewError(f"performer {performer!r} is not in the document")
    seed = f"{resource_key(plan)}|{description}|{start}"
    goal_id = str(uuid.uuid5(ID_NAMESPACE, "goal|" + seed))
    subject = composition_of(doc).get("subject") or plan.get("subject")
    doc["entry"].append({"fullUrl": f"urn:uuid:{goal_id}", "resource": {
        "resourceType": "Goal", "id": goal_id, "lifecycleStatus": "active",
        "description": {"text": goal.strip()}, "subject": {"reference": str((subject or {}).get("reference"))}}})
    goal_ref = {"reference": f"Goal/{goal_id}", "display": goal.strip()}
    plan.setdefault("goal", []).append(dict(goal_ref))
    period = {"start": start, **({"end": end} if end else {})}
    detail: JSON = {"code": {"coding": [{"system": CONCEPTS_SYSTEM, "code": "step"}]}}
    if perpetuating:
        detail["reasonCode"] = [{"coding": [{"system": CONCEPTS_SYSTEM, "code": "perpetuating"}]}]
    detail.update({"status": status, "description": description.strip(), "goal": [goal_ref],
                   "performer": [_ref(who)], "scheduledPeriod": period})
    step_id = "step-" + str(uuid.uuid5(ID_NAMESPACE, "step|" + seed))[:8]
    plan.setdefault("activity", []).append({"id": step_id, "detail": detail})
    return refresh_narratives(doc, pkg)
