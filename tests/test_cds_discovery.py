"""Prefetch from the plan: each service's templates are generated from the facts its actions read,
and facts computed from what the templates fetch equal facts computed from the whole record."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from alk_fhir.apply import Engine
from alk_fhir.cds import SERVICES, parse_hook_request
from alk_fhir.cds.discovery import _facts_read, generate_templates
from alk_fhir.cds.prefetch import render, resolve
from alk_fhir.context import build_context, compile_facts
from fixtures.fhirsearch import search
from fixtures.vignettes import VIGNETTES

REPO = Path(__file__).resolve().parents[1]
TODAY = date(2026, 11, 23)
OWN = "https://alk-fhir.org/fhir/CodeSystem/alk-concepts"
RECORDS = {p.stem: json.loads(p.read_text(encoding="utf-8"))
           for p in sorted((REPO / "examples" / "patients").glob("patient-*.json"))}
RECORDS.update({f"vignette-{v.name}": v.record() for v in VIGNETTES})


def test_templates_never_filter_on_status_or_on_our_codes_for_ehr_data(engine: Engine) -> None:
    generated = generate_templates(engine)
    assert set(generated) == {"patient-view", "order-select", "order-sign"}
    for hook, templates in generated.items():
        for key, template in templates.items():
            assert "status=" not in template and "category=" not in template, (hook, key)
            if OWN in template:
                assert key == "assessments", (hook, key)  # only our own assessment Observations
    view = generated["patient-view"]
    assert view["medicationStatements"].endswith("&_include=MedicationStatement:medication")
    assert view["procedures"].endswith("&_include=Procedure:performer")
    assert view["user"] == "Practitioner/{{userPractitionerId}}"
    assert view["userRole"] == "PractitionerRole/{{userPractitionerRoleId}}"
    # the order hooks read what their actions read: no encounters, care teams or consents
    assert {"encounters", "careTeams", "consents", "user"}.isdisjoint(generated["order-select"])
    assert "procedures" in generated["order-select"]  # persistentAlk reads the treatments


def _request(service: Any, record: dict[str, Any], user: str) -> dict[str, Any]:
    resources = [e["resource"] for e in record["entry"]]
    pid = next(r["id"] for r in resources if r["resourceType"] == "Patient")
    body: dict[str, Any] = {"hookInstance": "d3d6a1f4-2a7c-4f5e-9d1e-1a2b3c4d5e6f", "hook": service.hook,
                            "context": {"userId": user, "patientId": pid}}
    if service.hook != "patient-view":
        draft = {"resourceType": "MedicationRequest", "id": "d1", "status": "draft", "intent": "order",
                 "subject": {"reference": f"Patient/{pid}"}, "medicationCodeableConcept": {"text": "tramadol 50 mg"}}
        body["context"]["draftOrders"] = {"resourceType": "Bundle", "type": "collection",
                                          "entry": [{"resource": draft}]}
        if service.hook == "order-select":
            body["context"]["selections"] = ["MedicationRequest/d1"]
    hook = parse_hook_request(body, service)
    prefetch = {}
    for key, template in service.prefetch.items():
        relative = render(template, hook)
        if relative is not None:
            prefetch[key] = search(resources, relative)
    body["prefetch"] = prefetch
    return body


@pytest.mark.parametrize("user", ["Practitioner/gp", "PractitionerRole/gp-role"])
@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.hook)
def test_facts_from_the_prefetch_equal_facts_from_the_whole_record(engine: Engine, service: Any, user: str) -> None:
    program = compile_facts(engine.package)
    compiled = engine.plan("https://alk-fhir.org/fhir/PlanDefinition/alk-guideline")
    read = _facts_read(tuple(a for a in compiled.actions if service.hook in a.triggers))
    # every fact the hook's conditions read, and every fact those are defined with
    needed = set(read)
    for fact in reversed(program.facts):
        if fact.name in needed:
            needed |= fact.uses
    assert read, service.hook
    for name, record in RECORDS.items():
        body = _request(service, record, user)
        resolved = resolve(parse_hook_request(body, service), service, lambda base, token: None)
        from_prefetch = build_context(resolved.resources, engine.package, TODAY).facts
        whole = build_context(record, engine.package, TODAY).facts
        for fact in sorted(needed & set(program.names)):
            assert json.dumps(from_prefetch[fact], sort_keys=True, default=str) == json.dumps(
                whole[fact], sort_keys=True, default=str), (service.hook, name, fact)
