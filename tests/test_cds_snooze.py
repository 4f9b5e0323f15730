"""Remembered overrides (issue 21), played as an EHR plays them: call the hook, send CDS Hooks feedback
overriding a card with one of the reasons it offered, call again. The card stays away for that patient
for the period the package sets for the reason, comes back when that ends or when the finding behind it
changes; a card on a lasting wish to die never stays away longer than the shortest period. The store
keeps a keyed pseudonym of the patient, never the patient. On SQLite, and on PostgreSQL when
ALK_FHIR_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import copy
import os
import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from alk_fhir.cds import cds_state
from alk_fhir.cds.snooze import policy_of
from alk_fhir.knowledge import CONCEPTS_SYSTEM, Package
from alk_fhir.store.db import normalise_url
from test_cds_closed_loop import RECORDS, hook_call, plan_actions
from test_cds_examples import TODAY, cds_app, patient_bundle

JSON = dict[str, Any]
PG_URL = os.environ.get("ALK_FHIR_TEST_POSTGRES_URL", "")
BACKENDS = ["sqlite", *(["postgresql"] if PG_URL else [])]


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'snooze.sqlite3'}"
        return
    schema = f"alk_snooze_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalise_url(PG_URL))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield normalise_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def key_file(tmp_path: Path) -> str:
    path = tmp_path / "snooze.key"
    path.write_bytes(os.urandom(48))
    return str(path)


def make_app(tmp_path: Path, database_url: str, key_file: str) -> FastAPI:
    return cds_app(tmp_path, database_url=database_url, snooze_key_file=key_file)


def on_day(app: FastAPI, days: int) -> None:
    cds_state(app).today = lambda: TODAY + timedelta(days=days)


def card_of(cards: list[JSON], title: str) -> JSON | None:
    pattern = re.compile(".+".join(re.escape(p) for p in re.split(r"\{[A-Za-z]+\}", title)))
    return next((c for c in cards if pattern.fullmatch(c["summary"])), None)


def override(client: TestClient, card: JSON, code: str, service: str = "alk-patient-view") -> None:
    [reason] = [r for r in card["overrideReasons"] if r["code"] == code]
    assert reason["system"] == CONCEPTS_SYSTEM  # a Coding, as CDS Hooks 2.0 asks
    response = client.post(f"/cds-services/{service}/feedback", json={"feedback": [{
        "card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-23T10:00:00Z",
        "overrideReason": {"reason": reason}}]})
    assert response.status_code == 200, response.text


def test_the_package_sets_a_period_per_reason_with_a_maximum(package: Package) -> None:
    policy = policy_of(package)
    assert set(policy.days) == {"override-already-arranged", "override-not-applicable", "override-patient-declines",
                                "override-not-now", "override-clinically-justified"}
    assert policy.days["override-not-now"] == policy.shortest < policy.days["override-patient-declines"] \
        < policy.maximum == policy.days["override-already-arranged"]
    assert policy.capped_fact == "wishToDie"
    assert policy.period("override-already-arranged", capped=True) == policy.shortest


def test_an_override_keeps_the_card_away_for_its_period(tmp_path: Path, database_url: str, key_file: str,
                                                         package: Package) -> None:
    app = make_app(tmp_path, database_url, key_file)
    client = TestClient(app)
    title = plan_actions(package)["case-coordinator"]["title"]
    anna = copy.deepcopy(RECORDS["criterion1-failed-cbt-physio"])
    other = [e["resource"] for e in patient_bundle("patient-criterion3-never-in-treatment")["entry"]]
    first = hook_call(client, anna)
    card = card_of(first, title)
    assert card is not None
    override(client, card, "override-not-now")
    again = hook_call(client, anna)
    assert card_of(again, title) is None
    assert [c["summary"] for c in again] == [c["summary"] for c in first if c is not card]  # only that card
    days = policy_of(package).days["override-not-now"]
    on_day(app, days - 1)
    assert card_of(hook_call(client, anna), title) is None  # the last day of the period
    on_day(app, days)
    assert card_of(hook_call(client, anna), title) is not None  # the period is over: shown again
    # another patient's same card is not affected
    on_day(app, 0)
    assert card_of(hook_call(client, other), title) is not None


def test_a_changed_finding_brings_the_card_back(tmp_path: Path, database_url: str, key_file: str,
                                                package: Package) -> None:
    app = make_app(tmp_path, database_url, key_file)
    client = TestClient(app)
    title = plan_actions(package)["medication-review"]["title"]
    dirk = copy.deepcopy(RECORDS["polypharmacy-opioid-benzo"])
    card = card_of(hook_call(client, dirk), title)
    assert card is not None
    override(client, card, "override-already-arranged")
    assert card_of(hook_call(client, dirk), title) is None
    dirk.append({"resourceType": "MedicationStatement", "id": "med-new", "status": "active",
                 "subject": {"reference": "Patient/pat-dirk"}, "effectivePeriod": {"start": "2026-11-20"},
                 "medicationCodeableConcept": {"text": "amitriptyline 10 mg"}})
    assert card_of(hook_call(client, dirk), title) is not None  # one more drug: the finding changed


def test_a_card_on_a_lasting_wish_to_die_stays_away_at_most_the_shortest_period(
        tmp_path: Path, database_url: str, key_file: str, package: Package) -> None:
    app = make_app(tmp_path, database_url, key_file)
    client = TestClient(app)
    actions = plan_actions(package)
    wish, other = actions["consult-euthanasia-expertise"]["title"], actions["consult-cce"]["title"]
    carla = copy.deepcopy(RECORDS["everything"])
    cards = hook_call(client, carla)
    for title in (wish, other):
        card = card_of(cards, title)
        assert card is not None
        override(client, card, "override-already-arranged")  # the longest period
    shortest = policy_of(package).shortest
    on_day(app, shortest - 1)
    later = hook_call(client, carla)
    assert card_of(later, wish) is None and card_of(later, other) is None
    on_day(app, shortest)
    later = hook_call(client, carla)
    assert card_of(later, wish) is not None and card_of(later, other) is None


def test_feedback_without_a_package_reason_snoozes_nothing(tmp_path: Path, database_url: str, key_file: str,
                                                          package: Package) -> None:
    client = TestClient(make_app(tmp_path, database_url, key_file))
    title = plan_actions(package)["case-coordinator"]["title"]
    anna = copy.deepcopy(RECORDS["criterion1-failed-cbt-physio"])
    card = card_of(hook_call(client, anna), title)
    assert card is not None
    for reason in ({"userComment": "later"}, {"reason": {"system": "http://example.org/other", "code": "x"}}):
        response = client.post("/cds-services/alk-patient-view/feedback", json={"feedback": [{
            "card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-23T10:00:00Z",
            "overrideReason": reason}]})
        assert response.status_code == 200
    accepted = client.post("/cds-services/alk-patient-view/feedback", json={"feedback": [{
        "card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": "2026-11-23T10:00:00Z",
        "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}]}]})
    assert accepted.status_code == 200
    assert card_of(hook_call(client, anna), title) is not None


def test_the_store_keeps_a_keyed_pseudonym_and_forgets_ended_snoozes(
        tmp_path: Path, database_url: str, key_file: str, package: Package) -> None:
    app = make_app(tmp_path, database_url, key_file)
    client = TestClient(app)
    title = plan_actions(package)["case-coordinator"]["title"]
    anna = copy.deepcopy(RECORDS["criterion1-failed-cbt-physio"])
    override(client, card_of(hook_call(client, anna), title) or {}, "override-not-now")
    engine = app.state.store.engine
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(text("SELECT * FROM alk_cds_snooze"))]
    [row] = rows
    assert set(row) == {"id", "subject", "action_id", "reason", "trigger", "until"}
    assert re.fullmatch(r"[0-9a-f]{64}", row["subject"]) and "anna" not in str(row)
    assert row["action_id"] == "case-coordinator" and row["reason"] == "override-not-now"
    assert row["until"] == (TODAY + timedelta(days=policy_of(package).shortest - 1)).isoformat()
    # a second worker with the same key and database leaves the card out too; with another key it cannot
    second = cds_app(tmp_path / "second", database_url=database_url, snooze_key_file=key_file)
    assert card_of(hook_call(TestClient(second), anna), title) is None
    other_key = tmp_path / "other.key"
    other_key.write_bytes(os.urandom(48))
    third = cds_app(tmp_path / "third", database_url=database_url, snooze_key_file=str(other_key))
    assert card_of(hook_call(TestClient(third), anna), title) is not None
    # retention = the period: once it is over, the next snooze written removes the row
    on_day(app, 60)
    dirk = copy.deepcopy(RECORDS["polypharmacy-opioid-benzo"])
    review = card_of(hook_call(client, dirk), plan_actions(package)["medication-review"]["title"])
    override(client, review or {}, "override-not-now")
    with engine.connect() as conn:
        left = [r.action_id for r in conn.execute(text("SELECT action_id FROM alk_cds_snooze"))]
    assert left == ["medication-review"]


def test_a_short_key_file_is_refused(tmp_path: Path) -> None:
    short = tmp_path / "short.key"
    short.write_bytes(b"too short")
    with pytest.raises(ValueError, match="at least 32 bytes"):
        cds_app(tmp_path, snooze_key_file=str(short))
    with pytest.raises(ValueError, match=r"missing\.key: cannot read the snooze key"):
        cds_app(tmp_path, snooze_key_file=str(tmp_path / "missing.key"))


def test_a_store_that_fails_never_fails_a_call(tmp_path: Path, key_file: str, package: Package) -> None:
    """The lookup failing shows every card (logged); an override the store cannot keep is a 503 that stores
    no feedback either, so the EHR's retry counts once."""
    app = make_app(tmp_path, f"sqlite:///{tmp_path / 'down.sqlite3'}", key_file)
    client = TestClient(app)
    title = plan_actions(package)["case-coordinator"]["title"]
    anna = copy.deepcopy(RECORDS["criterion1-failed-cbt-physio"])
    card = card_of(hook_call(client, anna), title)
    assert card is not None

    class Down:
        def snoozes_for(self, subject: str, today: str) -> Any:
            raise RuntimeError("database is away")

        def save_snooze(self, *args: Any) -> None:
            raise RuntimeError("database is away")

    state = cds_state(app)
    state.snoozer.store = Down()
    assert card_of(hook_call(client, anna), title) is not None
    card = card_of(hook_call(client, anna), title) or {}
    response = client.post("/cds-services/alk-patient-view/feedback", json={"feedback": [{
        "card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-23T10:00:00Z",
        "overrideReason": {"reason": {"system": CONCEPTS_SYSTEM, "code": "override-not-now"}}}]})
    assert response.status_code == 503 and response.json()
    assert state.feedback.items == []  # type: ignore[attr-defined]
