"""The closed loop, played as an EHR plays it (issue 21): call the hook, accept a card's suggestion
(create its resources, with the status the suggestion gives, honouring the If-None-Exist header value
the action carries), read the record again into the next prefetch, call again: the card is gone, or
changed into what comes next. One case per PlanDefinition action that suggests something."""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from alk_fhir.cds import SERVICES_BY_ID
from alk_fhir.knowledge import Package
from test_cds_examples import cds_app, draft, first_practitioner, patient_bundle, patient_id, prefetch_for

JSON = dict[str, Any]
C = "https://alk-fhir.org/fhir/CodeSystem/alk-concepts"
IF_NONE_EXIST = "davinci-crd.if-none-exist"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    yield TestClient(cds_app(tmp_path_factory.mktemp("loop")))


# ------------------------------------------------------------------------------ the EHR's side

def records() -> dict[str, list[JSON]]:
    """The example patients, and two made from them for the steps no example reaches."""
    out = {name: [e["resource"] for e in patient_bundle(f"patient-{name}")["entry"]] for name in (
        "possible-persistent-alk", "criterion1-failed-cbt-physio", "polypharmacy-opioid-benzo",
        "bedridden-tube-feeding")}
    # Carla (coordinator in place) whose criteria form also answers the situations of H §2.2 and §4
    carla = copy.deepcopy(out["bedridden-tube-feeding"])
    form = next(r for r in carla if r["resourceType"] == "QuestionnaireResponse")
    form["item"].append({"linkId": "situation", "item": [
        {"linkId": link, "answer": [{"valueBoolean": True}]} for link in (
            "reassurance-wish", "disagreement-chaos", "admission-considered", "nothing-works", "more-than-alk",
            "wish-to-die", "consent-consultation")]})
    out["everything"] = carla
    # Anna (persistent, no polypharmacy) with a benzodiazepine in use: the risk-medication review
    anna = copy.deepcopy(out["criterion1-failed-cbt-physio"])
    anna.append({"resourceType": "MedicationStatement", "id": "med-anna-diazepam", "status": "active",
                 "subject": {"reference": "Patient/pat-anna"}, "effectivePeriod": {"start": "2026-01-01"},
                 "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": "N05BA01"}],
                                               "text": "diazepam 5 mg"}})
    out["risk-medication"] = anna
    return out


RECORDS = records()
OXYCODON = ("N02AA05", "oxycodon 5 mg 4dd zo nodig")


def hook_call(client: TestClient, record: list[JSON], hook: str = "patient-view") -> list[JSON]:
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in record]}
    service = SERVICES_BY_ID[f"alk-{hook}"]
    user, pid = first_practitioner(bundle), patient_id(bundle)
    context: JSON = {"userId": user, "patientId": pid}
    if hook != "patient-view":
        rx = draft(pid, "draft-1", *OXYCODON, user)
        context.update(draftOrders={"resourceType": "Bundle", "type": "collection", "entry": [{"resource": rx}]},
                       selections=["MedicationRequest/draft-1"])
    body = {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": context,
            "prefetch": prefetch_for(bundle, service, user)}
    response = client.post(f"/cds-services/{service.id}", json=body)
    assert response.status_code == 200, response.text
    cards: list[JSON] = response.json()["cards"]
    return cards


def _matches(resource: JSON, condition: str) -> bool:
    """R4 search ``identifier=system|value`` over one resource (all the If-None-Exist we send)."""
    name, _, token = condition.partition("=")
    system, _, value = token.partition("|")
    assert name == "identifier"
    return any(i.get("system") == system and i.get("value") == value for i in resource.get("identifier", []))


def accept(record: list[JSON], suggestion: JSON) -> list[JSON]:
    """What an EHR does with an accepted suggestion (CDS Hooks 2.0 "Suggestion": its actions as one
    transaction): each ``create`` gets a server id, references between them follow, a conditional create
    whose If-None-Exist matches a resource already there creates nothing. Returns what was created."""
    created, ids = [], {}
    for action in suggestion["actions"]:
        assert action["type"] == "create"
        resource = copy.deepcopy(action["resource"])
        condition = (action.get("extension") or {}).get(IF_NONE_EXIST)
        if condition and any(_matches(r, condition) for r in record):
            continue
        new_id = f"ehr-{len(record) + len(created) + 1}"
        ids[f"{resource['resourceType']}/{resource['id']}"] = f"{resource['resourceType']}/{new_id}"
        resource["id"] = new_id
        created.append(resource)
    text = json.dumps(created)
    for old, new in ids.items():
        text = text.replace(f'"{old}"', f'"{new}"')
    found: list[JSON] = json.loads(text)
    record += found
    return found


# ------------------------------------------------------------------------------ the cases

# (action id, record, hook, what the card says once its request is in progress: None = the card is gone)
CASES: list[tuple[str, str, str, str | None]] = [
    ("screen-persistent-alk", "possible-persistent-alk", "patient-view", None),
    ("explanatory-model", "criterion1-failed-cbt-physio", "patient-view", None),
    ("case-coordinator", "criterion1-failed-cbt-physio", "patient-view", "case-coordinator-sought"),
    ("step-plan", "criterion1-failed-cbt-physio", "patient-view", None),
    ("medication-review", "polypharmacy-opioid-benzo", "patient-view", None),
    ("risk-medication-review", "risk-medication", "patient-view", None),
    ("reassurance-second-opinion", "everything", "patient-view", None),
    ("alk-expert-consult", "everything", "patient-view", None),
    ("admission", "everything", "patient-view", None),
    ("ambit-grid", "everything", "patient-view", None),
    ("consult-topggz", "everything", "patient-view", None),
    ("consult-cce", "everything", "patient-view", None),
    ("consult-euthanasia-expertise", "everything", "patient-view", None),
    ("draft-polypharmacy", "polypharmacy-opioid-benzo", "order-select", "draft-polypharmacy-review-running"),
]


def plan_actions(package: Package) -> dict[str, JSON]:
    (plan,) = package.of_type("PlanDefinition")
    out: dict[str, JSON] = {}
    stack = list(plan["action"])
    while stack:
        action = stack.pop()
        out[action["id"]] = action
        stack += action.get("action", [])
    return out


def card_of(cards: list[JSON], action: JSON) -> JSON | None:
    """The card whose summary is the action's title (a ``{fact}`` in it names this patient's entries)."""
    pattern = re.compile(".+".join(re.escape(part) for part in re.split(r"\{[A-Za-z]+\}", action["title"])))
    return next((c for c in cards if pattern.fullmatch(c["summary"])), None)


def test_every_suggesting_action_has_a_case(package: Package) -> None:
    suggesting = {a for a, action in plan_actions(package).items() if "definitionCanonical" in action}
    assert {case[0] for case in CASES} == suggesting


@pytest.mark.parametrize(("action_id", "name", "hook", "then"), CASES, ids=[c[0] for c in CASES])
def test_accepting_the_suggestion_closes_the_card(client: TestClient, package: Package, action_id: str, name: str,
                                                  hook: str, then: str | None) -> None:
    actions = plan_actions(package)
    action = actions[action_id]
    record = copy.deepcopy(RECORDS[name])
    card = card_of(hook_call(client, record, hook), action)
    assert card is not None, f"{action_id} gives no card for {name}"
    [suggestion] = card["suggestions"]
    created = accept(record, suggestion)
    assert created and all(r.get("status") in ("draft", "proposed") for r in created)  # for the clinician to complete
    after = hook_call(client, record, hook)
    assert card_of(after, action) is None, f"{action_id}: the card is still there after accepting"
    if then is not None:  # changed: the next step, citing the request in progress and its date
        step = actions[then]["title"]
        holder = next(c for c in after if f"**{step}**" in c["detail"] or c["summary"] == step)
        assert created[-1]["authoredOn"][:10] in holder["detail"]
        assert "suggestions" not in holder or all(
            s["label"] != suggestion["label"] for s in holder["suggestions"])


def test_accepting_twice_creates_once(client: TestClient) -> None:
    """The same card accepted twice, or the same step accepted from a second call the same day, is one
    conditional create on the identifier the resource carries."""
    record = copy.deepcopy(RECORDS["criterion1-failed-cbt-physio"])
    first = hook_call(client, record)
    second = hook_call(client, record)
    plan_card = next(c for c in first if c.get("suggestions"))
    again = next(c for c in second if c["summary"] == plan_card["summary"])
    assert again["uuid"] != plan_card["uuid"]  # another call, another card
    assert accept(record, plan_card["suggestions"][0])
    assert accept(record, plan_card["suggestions"][0]) == []
    assert accept(record, again["suggestions"][0]) == []
    identifiers = [i for r in record for i in r.get("identifier", [])
                   if i["system"] == "https://alk-fhir.org/fhir/sid/cds-suggestion"]
    assert len(identifiers) == 1


@pytest.mark.parametrize("status", ["cancelled", "rejected", "failed", "entered-in-error"])
def test_a_request_cancelled_or_rejected_is_not_done(client: TestClient, package: Package, status: str) -> None:
    action = plan_actions(package)["explanatory-model"]
    record = copy.deepcopy(RECORDS["criterion1-failed-cbt-physio"])
    card = card_of(hook_call(client, record), action)
    assert card is not None
    [task] = accept(record, card["suggestions"][0])
    task["status"] = status
    assert card_of(hook_call(client, record), action) is not None


@pytest.mark.parametrize("status", ["requested", "in-progress", "on-hold", "completed"])
def test_a_request_in_progress_or_done_keeps_the_card_away(client: TestClient, package: Package, status: str) -> None:
    action = plan_actions(package)["consult-euthanasia-expertise"]
    record = copy.deepcopy(RECORDS["everything"])
    card = card_of(hook_call(client, record), action)
    assert card is not None
    [request] = accept(record, card["suggestions"][0])
    request["status"] = {"requested": "active", "in-progress": "active"}.get(status, status)
    assert card_of(hook_call(client, record), action) is None


def test_the_prefetch_asks_for_what_suggestions_create() -> None:
    prefetch = SERVICES_BY_ID["alk-patient-view"].prefetch
    for rtype in ("Task", "ServiceRequest", "CarePlan", "CareTeam", "QuestionnaireResponse"):
        assert any(t.startswith(f"{rtype}?patient={{{{context.patientId}}}}") for t in prefetch.values()), rtype


def test_nothing_left_path(tmp_path: Path) -> None:
    """Accepting every suggestion in turn ends with no suggestion at all (no card comes back unchanged)."""
    client = TestClient(cds_app(tmp_path))
    record = copy.deepcopy(RECORDS["everything"])
    for _ in range(15):
        cards = hook_call(client, record)
        offered = [c for c in cards if c.get("suggestions")]
        if not offered:
            break
        accept(record, offered[0]["suggestions"][0])
    assert [c["summary"] for c in hook_call(client, record) if c.get("suggestions")] == []


def test_an_order_while_the_review_runs_still_names_the_drug(client: TestClient, package: Package) -> None:
    """Polypharmacy with a review in progress: no second review is suggested; the card names the drug
    ordered and its risk, and says the review runs, since when."""
    record = copy.deepcopy(RECORDS["polypharmacy-opioid-benzo"])
    poly = card_of(hook_call(client, record, "order-select"), plan_actions(package)["draft-polypharmacy"])
    assert poly is not None
    [review] = accept(record, poly["suggestions"][0])
    after = hook_call(client, record, "order-select")
    assert [c["summary"] for c in after] == [
        "Oxycodon 5 mg 4dd zo nodig: risicomedicatie bij hardnekkige ALK (afhankelijkheid)"]
    assert "suggestions" not in after[0]
    running = plan_actions(package)["draft-polypharmacy-review-running"]["title"]
    assert f"**{running}**" in after[0]["detail"] and f"sinds {review['authoredOn'][:10]}" in after[0]["detail"]
