"""Hook calls on the example patients: the exact cards (topic, indicator, suggestions) per patient,
every suggested resource valid against our profiles, and the prefetch carrying what the facts need."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from alk_fhir.apply import Engine, run
from alk_fhir.cds import SERVICES_BY_ID, resolve
from alk_fhir.cds.prefetch import http_source
from alk_fhir.cds.request import parse_hook_request
from alk_fhir.knowledge import CONCEPTS_SYSTEM, GUIDELINE_SYSTEM, Package
from alk_fhir.validation import Validator, build_validator
from test_cds_examples import (
    HOOKS_DIR,
    TODAY,
    cds_app,
    draft,
    example,
    first_practitioner,
    patient_bundle,
    patient_id,
    read_json,
)

JSON = dict[str, Any]
LAUNCH = "https://app.alk.example.org/launch"

# Per example request: the cards in order, as (source.topic.code, indicator, number of suggestions).
EXPECTED: dict[str, list[tuple[str, str, int]]] = {
    # Issue 11: a patient is either asked to assess (§1.1) or in the pathway; only the case coordinator
    # ("Het allerbelangrijkste", H §3.1) is urgent; chapter 4 only when the situation is stuck.
    "order-select-criterion1-diazepam": [("2.2", "info", 0)],
    "order-select-criterion1-paracetamol": [],
    "order-select-no-alk-oxycodone": [],
    "order-select-polypharmacy-oxycodone": [("2.2", "info", 0), ("2.2", "info", 1)],
    "order-sign-polypharmacy-oxycodone": [("2.2", "info", 0), ("2.2", "info", 1)],
    "patient-view-bedridden-tube-feeding": [("2", "info", 0), ("2.5", "info", 1), ("3.2", "info", 1),
        ("3.3", "info", 1), ("4.1", "info", 1), ("4.3", "info", 1)],
    "patient-view-care-team-coordinator": [("2", "info", 0), ("2.2", "info", 1)],
    "patient-view-criterion1-failed-cbt-physio": [("2", "info", 0), ("2.5", "info", 1), ("3.1", "warning", 1),
        ("3.3", "info", 1)],
    "patient-view-criterion3-never-in-treatment": [("2", "info", 0), ("2.5", "info", 1), ("3.1", "warning", 1),
        ("3.3", "info", 1), ("4.2", "info", 1)],
    "patient-view-ggz-snomed-procedures": [("1.1", "info", 1)],
    # zib2020/MP9 shapes: persistent by a ROM measurement; the care team without status has a case manager,
    # so no urgent "no coordinator" card; one risk medicine (the restarted oxazepam), counted once
    "patient-view-ggz-zib2020-rom": [("2", "info", 0), ("2.2", "info", 1), ("2.5", "info", 1), ("3.3", "info", 1)],
    "patient-view-gp-icpc-gstandaard": [("1.1", "info", 1)],
    "patient-view-no-alk": [],
    "patient-view-polypharmacy-opioid-benzo": [("2", "info", 0), ("2.2", "info", 1), ("2.5", "info", 1),
        ("3.1", "warning", 1), ("3.3", "info", 1)],
    "patient-view-possible-persistent-alk": [("1.1", "info", 1)],
}
# The resource types each card's suggestion creates, per patient-view example (dependencies first).
CREATED = {
    "patient-view-criterion1-failed-cbt-physio": [["Task"], ["Task"], ["CarePlan"]],
    "patient-view-bedridden-tube-feeding": [["Task"], ["ServiceRequest"], ["CarePlan"], ["Task"], ["ServiceRequest"]],
}


def service_for(body: JSON) -> str:
    return {"patient-view": "alk-patient-view", "order-select": "alk-order-select",
            "order-sign": "alk-order-sign"}[body["hook"]]


@pytest.fixture(scope="module")
def app_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    yield TestClient(cds_app(tmp_path_factory.mktemp("hooks"), app_launch_url=LAUNCH))


@pytest.fixture(scope="module")
def validator(package: Package, core_dir: Path) -> Validator:
    return build_validator(package, core_dir)


def call(client: TestClient, name: str, lang: str | None = None) -> JSON:
    body = example(name)
    headers = {"Accept-Language": lang} if lang else {}
    response = client.post(f"/cds-services/{service_for(body)}", json=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    result: JSON = response.json()
    return result


def test_expected_covers_every_example() -> None:
    assert sorted(EXPECTED) == sorted(p.stem for p in HOOKS_DIR.glob("*.json"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_cards_per_example(app_client: TestClient, name: str) -> None:
    cards = call(app_client, name)["cards"]
    assert [(c["source"]["topic"]["code"], c["indicator"], len(c.get("suggestions", []))) for c in cards] == \
        EXPECTED[name]
    for card in cards:
        assert card["source"]["topic"]["system"] == GUIDELINE_SYSTEM
        assert card["source"]["url"] == "https://www.nalk.info/"
        assert "§" in card["detail"] and "https://www.nalk.info/" in card["detail"]


@pytest.mark.parametrize("name", sorted(CREATED))
def test_suggestions_create_the_activity_definition_requests(app_client: TestClient, name: str) -> None:
    cards = call(app_client, name)["cards"]
    created = [[a["resource"]["resourceType"] for a in s["actions"]] for c in cards for s in c.get("suggestions", [])]
    assert created == CREATED[name]
    for card in cards:
        for suggestion in card.get("suggestions", []):
            main = suggestion["actions"][-1]["resource"]
            canonical = main["instantiatesCanonical"]
            canonical = canonical if isinstance(canonical, str) else canonical[0]
            assert canonical.startswith("https://alk-fhir.org/fhir/ActivityDefinition/")
            if main["resourceType"] in ("Task", "ServiceRequest"):
                assert main["intent"] == "proposal" and main["status"] == "draft"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_suggested_resource_passes_our_profiles(app_client: TestClient, validator: Validator,
                                                      name: str) -> None:
    for card in call(app_client, name)["cards"]:
        for suggestion in card.get("suggestions", []):
            for action in suggestion["actions"]:
                resource = action["resource"]
                assert "urn:uuid:" not in json.dumps(resource), "internal references must not reach the EHR"
                outcome = validator.validate(resource)
                problems = [i for i in outcome["issue"] if i["severity"] in ("fatal", "error", "warning")]
                assert problems == [], (card["summary"], resource["resourceType"], problems)


def test_coordinator_suggestion_is_one_task_to_appoint_one_not_a_care_team_naming_the_user(
        app_client: TestClient) -> None:
    """Issue 21: one suggestion per intent. Appointing a coordinator is the clinician's decision with the
    patient (H §3.1): the card proposes a draft Task to do so, never a CareTeam naming the launching user."""
    cards = call(app_client, "patient-view-criterion1-failed-cbt-physio")["cards"]
    card = next(c for c in cards if c["source"]["topic"]["code"] == "3.1")
    [suggestion] = card["suggestions"]
    [action] = suggestion["actions"]
    task = action["resource"]
    assert task["resourceType"] == "Task" and task["status"] == "draft" and task["intent"] == "proposal"
    assert any(c["system"] == CONCEPTS_SYSTEM and c["code"] == "case-coordinator" for c in task["code"]["coding"])
    assert task["for"] == {"reference": "Patient/pat-anna"}
    assert "focus" not in task
    assert "CareTeam" not in json.dumps(card["suggestions"])


def test_english_on_request(app_client: TestClient) -> None:
    dutch = call(app_client, "patient-view-criterion1-failed-cbt-physio")["cards"]
    english = call(app_client, "patient-view-criterion1-failed-cbt-physio", "en-GB,en;q=0.9,nl;q=0.4")["cards"]
    assert [c["source"]["topic"]["code"] for c in english] == [c["source"]["topic"]["code"] for c in dutch]
    coordinator = next(c for c in english if c["source"]["topic"]["code"] == "3.1")
    assert coordinator["summary"] == "No case coordinator yet: appoint one"
    assert coordinator["source"]["label"] == "Guideline on persistent ALK (NALK)"
    assert coordinator["source"]["topic"]["display"] == "Case coordinator"
    assert coordinator["overrideReasons"][0]["display"] == "Already done or arranged"
    assert next(c for c in dutch if c["source"]["topic"]["code"] == "3.1")["summary"] == \
        "Nog geen casus-coördinator: wijs er één aan"
    german = call(app_client, "patient-view-criterion1-failed-cbt-physio", "de-DE")["cards"]
    assert [c["summary"] for c in german] == [c["summary"] for c in dutch]


def test_summary_card_lists_the_guidance_only_steps_with_their_sections(app_client: TestClient) -> None:
    cards = call(app_client, "patient-view-criterion3-never-in-treatment")["cards"]
    summary = cards[0]
    assert summary["source"]["topic"]["code"] == "2" and "suggestions" not in summary
    for section in ("§2.1", "§2.2", "§2.3", "§2.4", "§3.2", "§3.5"):
        assert section in summary["detail"], section
    assert summary["detail"].count("\n- **") >= 6  # one Markdown bullet per step


def test_smart_links_open_the_questionnaire_of_a_task(app_client: TestClient, tmp_path: Path) -> None:
    cards = call(app_client, "patient-view-possible-persistent-alk")["cards"]
    screen = cards[0]
    smart = [link for link in screen["links"] if link["type"] == "smart"]
    assert len(smart) == 1 and smart[0]["url"] == LAUNCH
    assert json.loads(smart[0]["appContext"])["questionnaire"] == "https://alk-fhir.org/fhir/Questionnaire/alk-criteria"
    absolute = [link for link in screen["links"] if link["type"] == "absolute"]
    assert absolute and all(link["url"].startswith("https://") for link in absolute)
    without = TestClient(cds_app(tmp_path))  # no ALK_FHIR_APP_LAUNCH_URL: no smart links at all
    body = example("patient-view-criterion1-failed-cbt-physio")
    plain = without.post("/cds-services/alk-patient-view", json=body).json()["cards"]
    assert all(link["type"] == "absolute" for c in plain for link in c.get("links", []))


def test_order_select_looks_at_the_selected_orders_only(app_client: TestClient) -> None:
    body = example("order-sign-polypharmacy-oxycodone")  # drafts: paracetamol, oxycodone
    body = copy.deepcopy(body)
    body["hook"] = "order-select"
    body["hookInstance"] = str(uuid.uuid4())
    body["context"]["selections"] = ["MedicationRequest/draft-1"]  # paracetamol
    cards = app_client.post("/cds-services/alk-order-select", json=body).json()["cards"]
    assert [(c["source"]["topic"]["code"], c["indicator"]) for c in cards] == [("2.2", "info")]  # polypharmacy
    # issue 21: the summary names the drug ordered and the count behind the polypharmacy
    assert cards[0]["summary"] == "Paracetamol 1000 mg 3dd erbij bij 12 middelen: polyfarmacie"
    assert "risicomedicatie" not in cards[0]["detail"].lower()
    body["context"]["selections"] = ["MedicationRequest/draft-2"]  # oxycodone
    cards = app_client.post("/cds-services/alk-order-select", json=body).json()["cards"]
    # the risk step is advice in the group's card (routine: the seed carries no urgency, issue 11)
    assert [(c["source"]["topic"]["code"], c["indicator"]) for c in cards] == [("2.2", "info"), ("2.2", "info")]
    assert cards[0]["summary"] == "Oxycodon 5 mg 4dd zo nodig: risicomedicatie bij hardnekkige ALK (afhankelijkheid)"
    assert cards[1]["summary"] == "Oxycodon 5 mg 4dd zo nodig erbij bij 12 middelen: polyfarmacie"
    assert all(len(c["summary"]) < 140 for c in cards)
    assert "**Aanleiding:** Actieve geneesmiddelen: 12 (" in cards[1]["detail"]  # the count and the drugs


def test_order_select_with_an_opioid_referenced_by_medication(app_client: TestClient) -> None:
    bundle = patient_bundle("patient-criterion1-failed-cbt-physio")
    body = copy.deepcopy(example("order-select-criterion1-paracetamol"))
    rx = draft(patient_id(bundle), "draft-9", "N02AX02", "tramadol", first_practitioner(bundle))
    del rx["medicationCodeableConcept"]
    rx["medicationReference"] = {"reference": "#tram"}
    rx["contained"] = [{"resourceType": "Medication", "id": "tram",
                        "code": {"coding": [{"system": "http://www.whocc.no/atc", "code": "N02AX02"}]}}]
    body["context"]["draftOrders"]["entry"] = [{"resource": rx}]
    body["context"]["selections"] = ["MedicationRequest/draft-9"]
    cards = app_client.post("/cds-services/alk-order-select", json=body).json()["cards"]
    assert [(c["source"]["topic"]["code"], c["indicator"]) for c in cards] == [("2.2", "info")]
    assert cards[0]["summary"] == "N02AX02: risicomedicatie bij hardnekkige ALK (afhankelijkheid)"


def test_patient_users_get_no_professional_guidance(app_client: TestClient) -> None:
    body = copy.deepcopy(example("patient-view-criterion1-failed-cbt-physio"))
    body["context"]["userId"] = "Patient/pat-anna"
    response = app_client.post("/cds-services/alk-patient-view", json=body)
    assert response.status_code == 200 and response.json() == {"cards": []}


@pytest.mark.parametrize("name", sorted(n for n in EXPECTED if n.startswith("patient-view")))
def test_prefetch_gives_the_engine_the_same_facts_as_the_whole_record(engine: Engine, name: str) -> None:
    """The templates fetch exactly what the facts read: facts from the prefetch == facts from the bundle."""
    body = example(name)
    service = SERVICES_BY_ID["alk-patient-view"]
    hook = parse_hook_request(body, service)
    resolved = resolve(hook, service, http_source)
    patient = name.removeprefix("patient-view-")
    whole = read_json(HOOKS_DIR.parent / "patients" / f"patient-{patient}.json")
    from_prefetch = run(engine, resolved.resources, TODAY, hook="patient-view", patient_id=hook.patient_id)
    from_record = run(engine, whole, TODAY, hook="patient-view", patient_id=hook.patient_id)
    assert from_prefetch.context.facts == from_record.context.facts
    assert from_prefetch.section_codes == from_record.section_codes


def test_card_uuids_are_unique_per_call_and_stable_for_the_same_call(app_client: TestClient) -> None:
    body = example("patient-view-bedridden-tube-feeding")
    first = app_client.post("/cds-services/alk-patient-view", json=body).json()["cards"]
    again = app_client.post("/cds-services/alk-patient-view", json=body).json()["cards"]
    uuids = [c["uuid"] for c in first] + [s["uuid"] for c in first for s in c.get("suggestions", [])]
    assert len(set(uuids)) == len(uuids)
    assert [c["uuid"] for c in again] == [c["uuid"] for c in first]
    other = {**body, "hookInstance": str(uuid.uuid4())}
    third = app_client.post("/cds-services/alk-patient-view", json=other).json()["cards"]
    assert not {c["uuid"] for c in third} & {c["uuid"] for c in first}


def test_a_call_leaves_no_cyclic_garbage(app_client: TestClient) -> None:
    """Each call's record, facts, requests and cards are freed by reference counting as soon as the
    answer is sent: no reference cycle keeps them for the garbage collector (the served app counts on
    this when it freezes its start-up objects and collects rarely, api.app.create_served_app). A
    cycle here (the facts' environment pointing back at the context, a recursive closure) once
    kept every request's record alive until the next collection."""
    import gc

    for name in ("patient-view-criterion1-failed-cbt-physio", "patient-view-bedridden-tube-feeding"):
        call(app_client, name)  # warm: caches filled once are not garbage
    gc.collect()
    gc.disable()
    try:
        for name in ("patient-view-criterion1-failed-cbt-physio", "patient-view-bedridden-tube-feeding"):
            call(app_client, name)
        # and $apply with everything read (assessment, Observation, CarePlan answer)
        patient = read_json(HOOKS_DIR.parent / "patients" / "patient-bedridden-tube-feeding.json")
        result = run(app_client.app.state.engine, patient, TODAY)  # type: ignore[attr-defined]
        assert result.as_careplan() and result.observation
        del result
        # what is left is the test client's own machinery (an HTTP exchange in a thread), never ours
        leftovers = [o for o in _cyclic_garbage() if _ours(o)]
        assert leftovers == []
    finally:
        gc.enable()


def _cyclic_garbage() -> list[Any]:
    import gc

    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        found = list(gc.garbage)
        gc.garbage.clear()
        return found
    finally:
        gc.set_debug(0)


def _ours(obj: Any) -> bool:
    """A function or a resource dict of alk-fhir among the garbage."""
    if callable(obj) and getattr(obj, "__module__", "") and str(obj.__module__).startswith("alk_fhir"):
        return True
    return isinstance(obj, dict) and isinstance(obj.get("resourceType"), str)


def test_served_app_freezes_its_start_up_objects(tmp_path: Path) -> None:
    """``alk-fhir serve`` runs create_served_app: after start-up the collector leaves the start-up
    objects alone (gc.freeze) and starts at a higher allocation count."""
    import gc

    from alk_fhir.api.app import GC_THRESHOLD, create_served_app
    from alk_fhir.config import Settings

    before = gc.get_threshold()
    app = create_served_app(Settings(cds_auth="off", database_url=f"sqlite:///{tmp_path / 'x.sqlite3'}"))
    try:
        with TestClient(app) as client:
            assert gc.get_freeze_count() > 100_000
            assert gc.get_threshold()[0] == GC_THRESHOLD
            assert client.get("/healthz").status_code == 200
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_the_trace_names_resource_types_no_fact_reads(app_client: TestClient) -> None:
    """Issue 18: what the record held that the guideline does not read is named, not dropped silently."""
    def unread_issues(answer: JSON) -> list[str]:
        outcome = answer.get("extension", {}).get("org.alk-fhir.data-issues", {})
        return [i["diagnostics"] for i in outcome.get("issue", []) if "not read by any fact" in i["diagnostics"]]

    assert unread_issues(call(app_client, "patient-view-criterion1-failed-cbt-physio")) == []
    body = example("patient-view-criterion1-failed-cbt-physio")
    patient = {"reference": f"Patient/{body['context']['patientId']}"}
    allergy = {"resourceType": "AllergyIntolerance", "id": "a1", "patient": patient, "code": {"text": "pinda"}}
    body["prefetch"]["conditions"]["entry"].append({"resource": allergy})
    response = app_client.post("/cds-services/alk-patient-view", json=body)
    assert response.status_code == 200
    (text,) = unread_issues(response.json())
    assert "AllergyIntolerance (1)" in text
