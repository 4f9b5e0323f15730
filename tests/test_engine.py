"""Issue #4 acceptance: context, assessment and $apply on the example patients."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from alk_fhir import fhirpath, recordpath
from alk_fhir.api.app import create_app
from alk_fhir.apply import ApplyResult, Engine, run
from alk_fhir.apply.engine import _walk
from alk_fhir.cli import main
from alk_fhir.config import Settings
from alk_fhir.context import build_context, compile_facts
from alk_fhir.knowledge import CONCEPTS_SYSTEM, Package
from fixtures.vignettes import VIGNETTES

TODAY = date(2026, 11, 23)
GP = {"reference": "Practitioner/prac-gp-jansen"}
ATC = "http://www.whocc.no/atc"

# The applicable PlanDefinition actions per example patient, in plan order (ids trace to sections).
EXPECTED_ACTIONS = {
    "patient-criterion1-failed-cbt-physio": [
        "persistent-alk",
        "starting-point",
        "somatic-diagnostics",
        "psychiatric-diagnostics",
        "consider-psychiatric-diagnostics",
        "explanatory-model",
        "case-coordinator",
        "expectations",
        "step-plan",
        "recovery",
    ],
    "patient-criterion3-never-in-treatment": [
        "persistent-alk",
        "starting-point",
        "somatic-diagnostics",
        "further-somatic-diagnostics",
        "psychiatric-diagnostics",
        "consider-psychiatric-diagnostics",
        "reconsider",
        "explanatory-model",
        "case-coordinator",
        "expectations",
        "step-plan",
        "recovery",
        "nothing-works",
        "ambit-grid",
    ],
    "patient-bedridden-tube-feeding": [
        "persistent-alk",
        "starting-point",
        "somatic-diagnostics",
        "psychiatric-diagnostics",
        "explanatory-model",
        "expectations",
        "alk-expert-consult",
        "step-plan",
        "recovery",
        "nothing-works",
        "admission",
        "consultation",
        "consult-euthanasia-expertise",
    ],
    "patient-polypharmacy-opioid-benzo": [
        "persistent-alk",
        "starting-point",
        "somatic-diagnostics",
        "further-somatic-diagnostics",
        "reassurance-needs-coordination",
        "medication-review",
        "psychiatric-diagnostics",
        "explanatory-model",
        "case-coordinator",
        "expectations",
        "step-plan",
        "recovery",
    ],
    "patient-care-team-coordinator": [
        "persistent-alk",
        "starting-point",
        "somatic-diagnostics",
        "reassurance-second-opinion",
        "psychiatric-diagnostics",
        "expectations",
        "perpetuating-factors",
        "recovery",
    ],
    "patient-no-alk": [],
    "patient-possible-persistent-alk": ["screen-persistent-alk"],
    "patient-gp-icpc-gstandaard": ["screen-persistent-alk"],
    "patient-ggz-snomed-procedures": ["screen-persistent-alk"],
    # zib2020/MP9 shapes: persistent by criterion 2 (ROM measurement of the CBT: worse); no "appoint a
    # coordinator" (a care team without status has a case manager); oxazepam restarted: risk medication
    "patient-ggz-zib2020-rom": ["persistent-alk", "starting-point", "somatic-diagnostics", "risk-medication-review",
                                "psychiatric-diagnostics", "explanatory-model", "expectations", "step-plan",
                                "recovery"],
}
EXPECTED_SECTIONS = {
    "patient-criterion1-failed-cbt-physio": {"2", "2.1", "2.2", "2.3", "2.5", "3.1", "3.2", "3.3", "3.5"},
    "patient-criterion3-never-in-treatment": {
        "2",
        "2.1",
        "2.2",
        "2.3",
        "2.4",
        "2.5",
        "3.1",
        "3.2",
        "3.3",
        "3.5",
        "4",
        "4.2",
    },
    "patient-bedridden-tube-feeding": {"2", "2.1", "2.2", "2.3", "2.5", "3.2", "3.3", "3.5", "4", "4.1", "4.3"},
    "patient-polypharmacy-opioid-benzo": {"2", "2.1", "2.2", "2.3", "2.5", "3.1", "3.2", "3.3", "3.5"},
    "patient-care-team-coordinator": {"2", "2.1", "2.2", "2.3", "3.2", "3.4", "3.5"},
    "patient-no-alk": set(),
    "patient-possible-persistent-alk": {"1.1"},
    "patient-gp-icpc-gstandaard": {"1.1"},
    "patient-ggz-snomed-procedures": {"1.1"},
    "patient-ggz-zib2020-rom": {"2", "2.1", "2.2", "2.3", "2.5", "3.2", "3.3", "3.5"},
}
# Criteria 1-3 status and the evidence each rests on (resource references; QR items by linkId).
EXPECTED_CRITERIA = {
    "patient-criterion1-failed-cbt-physio": [
        ("met", {"Procedure/proc-anna-cbt", "Procedure/proc-anna-fysio"}),
        ("unknown", set()),
        ("unknown", set()),
    ],
    "patient-criterion3-never-in-treatment": [
        ("unknown", {"QuestionnaireResponse/qr-bram-criteria"}),
        ("unknown", {"QuestionnaireResponse/qr-bram-criteria"}),
        ("met", {"QuestionnaireResponse/qr-bram-criteria"}),
    ],
    "patient-bedridden-tube-feeding": [
        ("unknown", {"QuestionnaireResponse/qr-carla-criteria"}),
        ("met", {"QuestionnaireResponse/qr-carla-criteria", "Procedure/proc-carla-mdt"}),
        ("met", {"QuestionnaireResponse/qr-carla-criteria", "Procedure/proc-carla-pmt"}),
    ],
    "patient-polypharmacy-opioid-benzo": [
        ("met", {"QuestionnaireResponse/qr-dirk-criteria", "Procedure/proc-dirk-cbt", "Procedure/proc-dirk-act"}),
        ("unknown", {"QuestionnaireResponse/qr-dirk-criteria"}),
        ("not-met", {"QuestionnaireResponse/qr-dirk-criteria"}),
    ],
    "patient-care-team-coordinator": [
        ("met", {"QuestionnaireResponse/qr-eva-criteria", "Procedure/proc-eva-fysio"}),
        ("not-met", {"QuestionnaireResponse/qr-eva-criteria"}),
        ("not-met", {"QuestionnaireResponse/qr-eva-criteria"}),
    ],
    "patient-no-alk": [("unknown", set())] * 3,
    "patient-possible-persistent-alk": [("unknown", set())] * 3,
    "patient-gp-icpc-gstandaard": [("unknown", set())] * 3,
    "patient-ggz-snomed-procedures": [("unknown", {"Procedure/proc-lotte-cgt"}), ("unknown", set()),
                                      ("unknown", set())],
    "patient-ggz-zib2020-rom": [("unknown", set()), ("met", {"Procedure/proc-sem-cgt"}), ("unknown", set())],
}
EXPECTED_OVERALL = {"patient-no-alk": "unknown", "patient-possible-persistent-alk": "unknown",
                    "patient-gp-icpc-gstandaard": "unknown", "patient-ggz-snomed-procedures": "unknown"}


def draft(code: str | None, text: str) -> dict[str, Any]:
    concept: dict[str, Any] = {"text": text}
    if code:
        concept["coding"] = [{"system": ATC, "code": code}]
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "resource": {
                    "resourceType": "MedicationRequest",
                    "id": "draft-1",
                    "status": "draft",
                    "intent": "order",
                    "medicationCodeableConcept": concept,
                    "subject": {"reference": "Patient/x"},
                }
            }
        ],
    }


def apply_to(engine: Engine, bundle: dict[str, Any], **kw: Any) -> ApplyResult:
    return run(engine, bundle, TODAY, practitioner=GP, **kw)


def action_ids(result: ApplyResult) -> list[str]:
    return [a["id"] for a in _walk(result.requestgroup.get("action", []))]


def test_there_are_at_least_six_patients(patients: dict[str, Any]) -> None:
    assert set(patients) == set(EXPECTED_ACTIONS)


@pytest.mark.parametrize("name", sorted(EXPECTED_ACTIONS))
def test_applicable_actions_and_sections_per_patient(engine: Engine, patients: dict[str, Any], name: str) -> None:
    result = apply_to(engine, patients[name])
    assert action_ids(result) == EXPECTED_ACTIONS[name]
    assert set(result.section_codes) == EXPECTED_SECTIONS[name]


@pytest.mark.parametrize("name", sorted(EXPECTED_CRITERIA))
def test_criteria_status_with_evidence(engine: Engine, patients: dict[str, Any], name: str) -> None:
    result = apply_to(engine, patients[name])
    got = [
        (c.status.removeprefix("criterion-"), {e["reference"] for e in c.evidence}) for c in result.assessment.criteria
    ]
    assert got == EXPECTED_CRITERIA[name]
    assert result.assessment.overall.removeprefix("criterion-") == EXPECTED_OVERALL.get(name, "met")
    obs = result.observation
    comps = {c["code"]["coding"][0]["code"]: c for c in obs["component"]}
    for i, (status, evidence) in enumerate(EXPECTED_CRITERIA[name], start=1):
        comp = comps[f"criterion-{i}"]
        assert comp["valueCodeableConcept"]["coding"][0] == {
            "system": CONCEPTS_SYSTEM,
            "code": f"criterion-{status}",
            "display": comp["valueCodeableConcept"]["coding"][0]["display"],
        }
        unknown = {e["reference"] for e in result.assessment.criteria[i - 1].unknown}  # named, answer them
        assert {e["valueReference"]["reference"] for e in comp.get("extension", [])} == evidence | unknown


def test_features_come_from_answers_and_the_record(engine: Engine, patients: dict[str, Any]) -> None:
    carla = apply_to(engine, patients["patient-bedridden-tube-feeding"]).assessment.features
    assert {"feature-bedridden-adl", "feature-harm-devices", "feature-many-care-contacts"} <= set(carla)
    gerda = apply_to(engine, patients["patient-possible-persistent-alk"]).assessment.features
    # No questionnaire: a condition since 2014 and 13 contacts in the last 12 months speak for themselves.
    assert set(gerda) == {"feature-duration", "feature-many-care-contacts"}
    assert gerda["feature-duration"] == [{"reference": "Condition/cond-gerda-ibs"}]


def test_medication_facts_of_the_polypharmacy_patient(engine: Engine, patients: dict[str, Any]) -> None:
    facts = apply_to(engine, patients["patient-polypharmacy-opioid-benzo"]).context.facts
    assert facts["activeMedicationCount"] == 12
    assert (facts["riskMedicationCount"], facts["opioidCount"], facts["benzodiazepineCount"]) == (5, 2, 2)
    assert facts["psychiatricComorbidity"] is True  # F32.1
    assert facts["careContactCount"] == 14
    assert facts["lastSomaticWorkup"] == "2023-06-01"
    assert facts["somaticWorkupLongAgo"] is True  # 24 months or more before 2026-11-23


def test_answered_medication_count_counts_when_the_record_holds_fewer(engine: Engine) -> None:
    """$apply with only the criteria response (pre-filled in the EHR's form): the answered count decides
    polypharmacy (H §2.2); the record's own count wins when it is higher."""
    def response(count: int) -> dict[str, Any]:
        return {"resourceType": "QuestionnaireResponse", "id": "qr-meds", "status": "completed",
                "questionnaire": "https://alk-fhir.org/fhir/Questionnaire/alk-criteria", "authored": "2026-11-01",
                "subject": {"reference": "Patient/p1"},
                "item": [{"linkId": "alk", "item": [{"linkId": "alk-present", "answer": [{"valueBoolean": True}]}]},
                         {"linkId": "criteria", "item": [{"linkId": "criterion-1", "answer": [{"valueCoding": {
                             "system": "https://alk-fhir.org/fhir/CodeSystem/alk-concepts",
                             "code": "criterion-met"}}]}]},
                         {"linkId": "situation", "item": [{"linkId": "active-medication-count",
                                                           "answer": [{"valueInteger": count}]}]}]}
    patient = {"resourceType": "Patient", "id": "p1"}
    many = apply_to(engine, {"resourceType": "Bundle", "type": "collection",
                             "entry": [{"resource": patient}, {"resource": response(11)}]})
    assert many.context.facts["activeMedicationCount"] == 11
    few = apply_to(engine, {"resourceType": "Bundle", "type": "collection",
                            "entry": [{"resource": patient}, {"resource": response(2)}]})
    assert few.context.facts["activeMedicationCount"] == 2
    assert "medication-review" in action_ids(many) and "medication-review" not in action_ids(few)


# Hook-time inputs that exercise the order-select actions (draftOrders).
HOOK_CASES = [
    (
        "patient-polypharmacy-opioid-benzo",
        draft("N02AA01", "morfine 10 mg"),
        ["medication-safety", "draft-risk-medication", "draft-polypharmacy"],
    ),
    ("patient-criterion1-failed-cbt-physio", draft(None, "paracetamol 500 mg"), []),
    ("patient-no-alk", draft("N02AA01", "morfine 10 mg"), []),
]


@pytest.mark.parametrize(("name", "orders", "expected"), HOOK_CASES)
def test_order_select_actions(
    engine: Engine, patients: dict[str, Any], name: str, orders: dict[str, Any], expected: list[str]
) -> None:
    result = apply_to(engine, patients[name], hook="order-select", draft_orders=orders)
    assert action_ids(result) == expected


def test_every_condition_is_exercised_both_ways(engine: Engine, package: Package, patients: dict[str, Any]) -> None:
    """Across the example patients (and the hook cases) each condition is once true and once false."""
    seen: dict[str, set[bool]] = {}
    runs = [apply_to(engine, b) for b in patients.values()]
    runs += [apply_to(engine, patients[n], draft_orders=o) for n, o, _ in HOOK_CASES]
    runs += [apply_to(engine, v.record(), hook=v.hook, draft_orders=list(v.draft) or None)
             for v in VIGNETTES]  # tests/fixtures/vignettes.py
    for result in runs:
        ctx = result.context
        for compiled in _all_compiled(engine):
            for expr, test in zip(compiled.conditions, compiled.tests, strict=True):
                reference = fhirpath.is_true({}, expr, ctx.facts.all())  # fhirpathpy, the reference engine
                assert test({}, ctx.facts) is reference, expr  # the compiled closures agree
                seen.setdefault(f"{compiled.action['id']}: {expr}", set()).add(reference)
    (plan,) = package.of_type("PlanDefinition")
    assert len(seen) == sum(len(a.get("condition", [])) for a in _plan_actions(plan["action"]))
    assert {k: v for k, v in seen.items() if v != {True, False}} == {}


def test_conditions_compile_to_closures_that_agree_with_fhirpathpy(engine: Engine) -> None:
    """Every plan condition compiles as the facts do (recordpath: generated code, no fhirpathpy call per
    request), and on facts set to every combination of empty, false/0, true/1 and larger values both
    engines agree."""
    compiled = [c for c in _all_compiled(engine) if c.conditions]
    types = {p["name"]: p["type"] for p in engine.package.resolve(
        "https://alk-fhir.org/fhir/Library/alk-facts")["parameter"] if p["use"] == "in"}
    for c in compiled:
        for expr in c.conditions:
            assert recordpath.compile_record_expression(expr, set(types), {}) is not None, expr
    samples = {"boolean": [[], False, True], "integer": [[], 0, 1, 4, 5, 23, 24, 25]}
    for c in compiled:
        for expr, test in zip(c.conditions, c.tests, strict=True):
            names = sorted(set(re.findall(r"%([A-Za-z]+)", expr)))
            for values in itertools.product(*(samples[types[n]] for n in names)):
                facts = dict(zip(names, values, strict=True))
                assert test({}, facts) is fhirpath.is_true({}, expr, facts), (expr, facts)


def _plan_actions(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [x for a in actions for x in [a, *_plan_actions(a.get("action", []))]]


def _all_compiled(engine: Engine) -> list[Any]:
    out = []
    stack = list(next(iter(engine.plans.values())).actions)
    while stack:
        a = stack.pop()
        out.append(a)
        stack.extend(a.children)
    return out


def test_output_is_deterministic_and_references_resolve(engine: Engine, patients: dict[str, Any]) -> None:
    bundle = patients["patient-polypharmacy-opioid-benzo"]
    first, second = apply_to(engine, bundle).as_bundle(), apply_to(engine, bundle).as_bundle()
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    full_urls = {e["fullUrl"] for e in first["entry"]}
    internal = [r for r in _references(first) if r.startswith("urn:uuid:")]
    assert internal and set(internal) <= full_urls
    careplan = apply_to(engine, bundle).as_careplan()
    contained = {f"#{r['id']}" for r in careplan["contained"]}
    assert {r for r in _references(careplan) if r.startswith("#")} <= contained
    assert not [r for r in _references(careplan) if r.startswith("urn:uuid:")]


def _references(node: Any) -> list[str]:
    if isinstance(node, list):
        return [r for n in node for r in _references(n)]
    if isinstance(node, dict):
        own = [node["reference"]] if isinstance(node.get("reference"), str) else []
        return own + [r for v in node.values() for r in _references(v)]
    return []


def test_requests_carry_the_activity_definition_and_the_user(engine: Engine, patients: dict[str, Any]) -> None:
    result = apply_to(engine, patients["patient-criterion1-failed-cbt-physio"])
    kinds = {
        (r["resourceType"], str(r.get("instantiatesCanonical", "")).split("/")[-1].split("|")[0])
        for r in result.requests if r["resourceType"] != "CommunicationRequest"
    }
    assert kinds == {
        ("Task", "collect-explanatory-model"),
        ("Task", "appoint-case-coordinator"),
        ("CarePlan", "draft-step-plan"),
    }
    task = next(r for r in result.requests if r["resourceType"] == "Task" and "appoint" in r["instantiatesCanonical"])
    assert task["for"] == {"reference": "Patient/pat-anna"} and task["owner"] == GP and task["intent"] == "option"
    assert "focus" not in task  # issue 21: no CareTeam naming the user; who coordinates is the clinician's call
    collect = next(r for r in result.requests if "collect-explanatory-model" in str(r.get("instantiatesCanonical")))
    assert collect["input"][0]["valueCanonical"] == "https://alk-fhir.org/fhir/Questionnaire/alk-explanatory-model"


def test_guidance_only_steps_carry_their_text_as_a_communication_request(
        engine: Engine, patients: dict[str, Any]) -> None:
    """R4 rqg-1: every RequestGroup action has a resource or sub-actions; a step that only informs
    references a CommunicationRequest to the clinician whose payload is the step's nl text (+ en)."""
    result = apply_to(engine, patients["patient-criterion1-failed-cbt-physio"])
    by_ref = {f"urn:uuid:{r['id']}": r for r in result.requests}
    leaves = [a for a in _all_actions(result.requestgroup.get("action", [])) if "action" not in a]
    assert leaves and all("resource" in a for a in leaves)
    messages = [(a, by_ref[a["resource"]["reference"]]) for a in leaves
                if by_ref[a["resource"]["reference"]]["resourceType"] == "CommunicationRequest"]
    assert messages
    for action, message in messages:
        payload = message["payload"][0]
        assert payload["contentString"] == action.get("description", action.get("title"))
        langs = {e["extension"][0]["valueCode"] for e in payload["_contentString"]["extension"]
                 if e["url"] == "http://hl7.org/fhir/StructureDefinition/translation"}
        assert "en" in langs
        assert message["status"] == "draft" and "intent" not in message  # R4 has no CommunicationRequest.intent
        assert message["subject"] == {"reference": "Patient/pat-anna"} and message["recipient"] == [GP]
        assert message["reasonCode"] == action["code"]
    assert not [a for a in _all_actions(result.requestgroup["action"]) if "action" in a and "resource" in a]


def _all_actions(actions: list[Any]) -> list[Any]:
    return [x for a in actions for x in [a, *_all_actions(a.get("action", []))]]


def test_malformed_and_unknown_resources_are_reported_not_fatal(engine: Engine, patients: dict[str, Any]) -> None:
    bundle = json.loads(json.dumps(patients["patient-criterion1-failed-cbt-physio"]))
    bundle["entry"] += [
        {"resource": {"resourceType": "Condition", "id": "broken"}},
        {"resource": {"resourceType": "Basic", "id": "b"}},
        {"resource": "not a resource"},
        {"resource": {"resourceType": "OperationOutcome", "issue": []}},
    ]
    result = apply_to(engine, bundle)
    assert action_ids(result) == EXPECTED_ACTIONS["patient-criterion1-failed-cbt-physio"]
    assert [i["code"] for i in result.context.issues] == ["required", "not-supported", "structure", "informational"]


def test_context_computes_exactly_the_declared_facts(package: Package, patients: dict[str, Any]) -> None:
    (library,) = package.of_type("Library")
    declared = [p["name"] for p in library["parameter"]]
    assert list(compile_facts(package).names) == declared
    ctx = build_context(patients["patient-no-alk"], package, TODAY)
    assert list(ctx.facts.all()) == declared


def test_apply_cli_prints_a_bundle_and_names_bad_input(tmp_path: Path) -> None:
    from alk_fhir.config import REPO_ROOT

    runner = CliRunner()
    path = REPO_ROOT / "examples/patients/patient-possible-persistent-alk.json"
    result = runner.invoke(main, ["apply", str(path), "--date", "2026-11-23"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["resourceType"] == "Bundle" and out["entry"][0]["resource"]["resourceType"] == "CarePlan"
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    result = runner.invoke(main, ["apply", str(bad)])
    assert result.exit_code != 0 and "bad.json" in result.output and "not JSON" in result.output
    result = runner.invoke(main, ["apply", str(path), "--date", "23-11-2026"])
    assert result.exit_code != 0 and "--date" in result.output
    result = runner.invoke(main, ["apply", str(path), "--date", "0001-01-01"])
    assert result.exit_code != 0 and "--date" in result.output and "outside" in result.output
    empty = tmp_path / "empty.json"
    empty.write_text('{"resourceType": "Bundle", "type": "collection"}')
    result = runner.invoke(main, ["apply", str(empty)])
    assert result.exit_code != 0 and "empty.json" in result.output and "no Patient" in result.output


@pytest.fixture(scope="module")
def client(package: Package, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    db = tmp_path_factory.mktemp("db") / "a.sqlite3"
    with TestClient(create_app(Settings(database_url=f"sqlite:///{db}", cds_auth="off"), package)) as c:
        yield c


def params(bundle: dict[str, Any], **extra: str) -> dict[str, Any]:
    parameter: list[dict[str, Any]] = [
        {"name": "data", "resource": bundle},
        {"name": "today", "valueDate": "2026-11-23"},
    ]
    parameter += [{"name": k, "valueString": v} for k, v in extra.items()]
    return {"resourceType": "Parameters", "parameter": parameter}


def test_http_apply_answers_the_careplan_with_contained_results(client: TestClient, patients: dict[str, Any]) -> None:
    body = params(
        patients["patient-care-team-coordinator"], subject="Patient/pat-eva", practitioner="Practitioner/prac-gp-jansen"
    )
    for path in ("/fhir/PlanDefinition/$apply", "/fhir/PlanDefinition/alk-guideline/$apply"):
        r = client.post(path, json=body, headers={"Content-Type": "application/fhir+json"})
        assert r.status_code == 200, r.text
        careplan = r.json()
        assert careplan["resourceType"] == "CarePlan" and careplan["intent"] == "proposal"
        rg = next(c for c in careplan["contained"] if c["resourceType"] == "RequestGroup")
        assert [a["id"] for a in _walk(rg["action"])] == EXPECTED_ACTIONS["patient-care-team-coordinator"]


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/fhir/PlanDefinition/$apply", {"resourceType": "Patient"}, 400),
        (
            "/fhir/PlanDefinition/$apply",
            {"resourceType": "Parameters", "parameter": [{"name": "bogus", "valueString": "x"}]},
            400,
        ),
        (
            "/fhir/PlanDefinition/$apply",
            {"resourceType": "Parameters", "parameter": [{"name": "subject", "valueString": "x"}]},
            400,
        ),
        ("/fhir/PlanDefinition/nope/$apply", {"resourceType": "Parameters"}, 404),
        (  # "today" outside the range the rules' date arithmetic is defined for
            "/fhir/PlanDefinition/$apply",
            {"resourceType": "Parameters", "parameter": [
                {"name": "today", "valueDate": "0001-01-01"},
                {"name": "data", "resource": {"resourceType": "Bundle", "type": "collection", "entry": [
                    {"resource": {"resourceType": "Patient", "id": "p"}}]}}]},
            400,
        ),
        (  # no subject and no Patient: nothing to apply the plan to
            "/fhir/PlanDefinition/$apply",
            {"resourceType": "Parameters", "parameter": [
                {"name": "data", "resource": {"resourceType": "Bundle", "entry": "x"}}]},
            400,
        ),
    ],
)
def test_http_apply_errors(client: TestClient, path: str, body: dict[str, Any], status: int) -> None:
    r = client.post(path, json=body)
    assert r.status_code == status and r.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("depth", [200, 5000])
def test_deeply_nested_bodies_are_400_not_500(client: TestClient, depth: int) -> None:
    """Below json's recursion limit (200) or beyond it (5000): refused by read_json_body, for every
    FHIR endpoint that reads a body."""
    body = ('{"resourceType": "Parameters", "parameter": [{"name": "data", "resource": ' + '{"a": [' * depth
            + "1" + "]}" * depth + "}]}").encode()
    for path in ("/fhir/PlanDefinition/$apply", "/fhir/$validate", "/fhir/Patient/$validate"):
        r = client.post(path, content=body, headers={"Content-Type": "application/fhir+json"})
        assert r.status_code == 400, (path, r.text[:200])
        assert "nests deeper" in r.json()["issue"][0]["diagnostics"]


def test_http_apply_rejects_non_json(client: TestClient) -> None:
    r = client.post("/fhir/PlanDefinition/$apply", content=b"<xml/>", headers={"Content-Type": "application/fhir+json"})
    assert r.status_code == 400 and r.json()["issue"][0]["code"] == "structure"


@pytest.fixture(scope="module")
def validator(package: Package, core_dir: Path) -> Any:
    from alk_fhir.validation import build_validator

    return build_validator(package, core_dir)


@pytest.mark.parametrize("name", sorted(EXPECTED_ACTIONS))
def test_apply_output_passes_our_validator(engine: Engine, patients: dict[str, Any], validator: Any, name: str) -> None:
    """CarePlan, RequestGroup, assessment Observation and every proposed request conform to their profiles."""
    from alk_fhir.validation import has_errors

    result = apply_to(engine, patients[name])
    for res in [result.careplan, result.requestgroup, result.observation, *result.requests]:
        outcome = validator.validate(res)
        errors = [i for i in outcome.get("issue", []) if i["severity"] in ("error", "fatal")]
        assert not has_errors(outcome), (res["resourceType"], errors)
    assert not has_errors(validator.validate(result.as_careplan()))
    assert not has_errors(validator.validate(result.as_bundle()))


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    items = node.items() if isinstance(node, dict) else enumerate(node[:2]) if isinstance(node, list) else []
    for key, value in items:
        yield (*prefix, key)
        yield from _paths(value, (*prefix, key))


@pytest.mark.parametrize("name", ["patient-polypharmacy-opioid-benzo", "patient-care-team-coordinator",
                                  "patient-criterion1-failed-cbt-physio"])
def test_malformed_elements_anywhere_never_crash_the_engine(engine: Engine, patients: dict[str, Any],
                                                             name: str) -> None:
    """Issue 4: "unknown or malformed resources are reported, not fatal". Every element of every
    resource of the record, in turn, replaced by a value of the wrong JSON type: $apply still answers."""
    bundle = patients[name]
    tried = 0
    for index, entry in enumerate(bundle["entry"]):
        for path in _paths(entry["resource"]):
            if path[0] in ("resourceType", "id"):
                continue
            for wrong in ("x", 5, {}, [5], [{"a": 1}]):
                broken = json.loads(json.dumps(bundle))
                node = broken["entry"][index]["resource"]
                for key in path[:-1]:
                    node = node[key]
                node[path[-1]] = wrong
                result = apply_to(engine, broken)  # raises on a crash
                assert result.careplan["subject"]
                tried += 1
    assert tried > 500


def test_resource_ids_are_rfc_4122_name_based() -> None:
    """The engine's ids are uuid5 of its namespace and the seed (computed without UUID objects)."""
    import uuid as _uuid

    from alk_fhir.apply.engine import _NAMESPACE, _uuid5

    for name in ("a", "Patient/pat-anna|https://alk-fhir.org/fhir/PlanDefinition/alk-guideline|0.1.0|x", "é|ü"):
        assert _uuid5(name) == str(_uuid.uuid5(_NAMESPACE, name))
