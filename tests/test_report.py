"""The feedback report and the recording of shown cards: counts equal the store, nothing identifying.

End to end on the real app: the example CDS calls (examples/hooks) show cards, which the recorder
writes to the store; feedback is posted as an EHR would (accepted, overridden with our reasons, with
a reason of its own, with comments that name the patient); the report, in every format, must count
exactly what the store holds and say nothing about who the patient, the user or the EHR was.
"""

from __future__ import annotations

import json
import random
import re
import threading
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from alk_fhir.cds import cds_state
from alk_fhir.cli import main
from alk_fhir.knowledge import CONCEPTS_SYSTEM, GUIDELINE_SYSTEM
from alk_fhir.report import Labels, build_report
from alk_fhir.report.feedback import cell
from alk_fhir.shown import ShownRecorder, card_keys, shown_rows
from alk_fhir.store import Store, open_store
from alk_fhir.store.db import read_session
from alk_fhir.store.learning import feedback_month
from alk_fhir.store.models import CdsCardShown
from fixtures.auth.jwtkit import assertion_claims, ec_key, public_jwk, sign
from test_cds_examples import BASE, HOOKS_DIR, cds_app
from test_store import BACKENDS, database_url  # noqa: F401 (the fixture)

JSON = dict[str, Any]
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
TOKEN_URL = BASE + "/auth/token"
REPORT_SCOPE = "system/alk-report.read"
KEYS = {"wg": ec_key(), "gp": ec_key()}
SERVICES = {"patient-view": "alk-patient-view", "order-select": "alk-order-select", "order-sign": "alk-order-sign"}
COMMENT = "Eva Hendriks (BSN 999911168) wil eerst met haar man Pieter overleggen"
MONTHS = ("2026-10", "2026-11")


# --- the app, the calls, the feedback --------------------------------------------------------------

@dataclass
class Shown:
    service: str
    card: JSON
    body: JSON  # the request that showed it


@dataclass
class Env:
    app: FastAPI
    client: TestClient
    store: Store
    shown: list[Shown]
    feedback: list[tuple[str, JSON]]


def partners(tmp_path: Path) -> Path:
    def partner(client_id: str, scopes: list[str]) -> JSON:
        return {"client_id": client_id, "name": client_id,
                "organization": {"system": "http://fhir.nl/fhir/NamingSystem/ura", "value": "90000999"},
                "scopes": scopes, "jwks": {"keys": [public_jwk(KEYS[client_id], f"{client_id}-1", "ES384")]}}

    path = tmp_path / "partners.json"
    path.write_text(json.dumps([partner("wg", [REPORT_SCOPE]), partner("gp", ["system/Bundle.read"])]),
                    encoding="utf-8")
    return path


def bearer(client: TestClient, client_id: str, scope: str) -> dict[str, str]:
    assertion = sign(assertion_claims(client_id, TOKEN_URL), KEYS[client_id], "ES384", f"{client_id}-1")
    response = client.post("/auth/token", data={
        "grant_type": "client_credentials", "scope": scope, "client_assertion": assertion,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def example_calls() -> list[JSON]:
    bodies = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(HOOKS_DIR.glob("*.json"))]
    again = json.loads(json.dumps(bodies[-1]))
    again["hookInstance"] = str(uuid.UUID(int=7))  # the same patient seen again: a new call, new cards
    retried = json.loads(json.dumps(bodies[0]))  # the same call retried: the same cards, counted once
    return [*bodies, again, retried]


def feedback_items(shown: list[Shown]) -> list[tuple[str, JSON]]:
    """Feedback on some of the cards, as an EHR sends it; plus one on a card this server never showed."""
    rng = random.Random(13)
    items: list[tuple[str, JSON]] = []
    for i, s in enumerate(shown):
        kind = rng.choice(["none", "accepted", "ours", "foreign", "comment", "none"])
        stamp = f"{MONTHS[i % 2]}-{10 + i % 15:02d}T09:{i % 60:02d}:00+01:00"
        item: JSON = {"card": s.card["uuid"], "outcomeTimestamp": stamp}
        if kind == "none":
            continue
        if kind == "accepted":
            suggestion = (s.card.get("suggestions") or [{"uuid": str(uuid.uuid4())}])[0]["uuid"]
            item |= {"outcome": "accepted", "acceptedSuggestions": [{"id": suggestion}]}
        elif kind == "ours":
            item |= {"outcome": "overridden", "overrideReason": {"reason": {
                "system": CONCEPTS_SYSTEM, "code": rng.choice(["override-not-now", "override-patient-declines"])}}}
        elif kind == "foreign":
            item |= {"outcome": "overridden", "overrideReason": {
                "reason": {"system": "urn:ehr:reasons", "code": "Hendriks wants to wait", "display": COMMENT},
                "userComment": COMMENT}}
        else:
            item |= {"outcome": "overridden", "overrideReason": {"userComment": COMMENT}}
        items.append((s.service, item))
    items.append(("alk-patient-view", {"card": str(uuid.uuid4()), "outcome": "overridden",
                                       "outcomeTimestamp": "2026-11-02T08:00:00Z",
                                       "overrideReason": {"reason": {"system": CONCEPTS_SYSTEM,
                                                                     "code": "override-not-applicable"}}}))
    return items


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("report")
    app = cds_app(tmp, partners_file=str(partners(tmp)))
    cds_state(app).feedback = app.state.store  # the production wiring
    with TestClient(app, base_url=BASE) as client:
        shown: list[Shown] = []
        seen: set[tuple[str, str]] = set()
        for body in example_calls():
            service = SERVICES[body["hook"]]
            response = client.post(f"/cds-services/{service}", json=body)
            assert response.status_code == 200, response.text
            for card in response.json()["cards"]:
                if (service, card["uuid"]) not in seen:
                    seen.add((service, card["uuid"]))
                    shown.append(Shown(service, card, body))
        assert app.state.cds_shown.flush()
        items = feedback_items(shown)
        for service, item in items:
            response = client.post(f"/cds-services/{service}/feedback", json={"feedback": [item]})
            assert response.status_code == 200, response.text
        yield Env(app, client, app.state.store, shown, items)


def report_of(env: Env, fmt: str = "json", **params: str) -> Any:
    response = env.client.get("/report/feedback", params={"format": fmt, **params},
                              headers=bearer(env.client, "wg", REPORT_SCOPE))
    assert response.status_code == 200, response.text
    return response


# --- counts --------------------------------------------------------------------------------------

def action_ids(env: Env) -> dict[str, str]:
    """Dutch action title -> action id: the card's summary is its action's title (independent of the uuid rule)."""
    return {info.title["nl"]: action for action, info in cds_state(env.app).catalog.actions.items()}


def test_every_card_shown_is_recorded_with_its_section_and_action(env: Env) -> None:
    titles = action_ids(env)
    month = datetime.now(UTC).strftime("%Y-%m")
    expected = Counter((month, s.card["source"]["topic"]["code"], titles[s.card["summary"]]) for s in env.shown)
    recorded = Counter({(c.month, c.section, c.action_id): c.count for c in env.store.shown_counts()})
    assert recorded == expected
    assert sum(recorded.values()) == len(env.shown) > 20


def test_report_counts_equal_the_stored_feedback(env: Env) -> None:
    report = report_of(env).json()
    titles = action_ids(env)
    where = {(s.service, s.card["uuid"]): (s.card["source"]["topic"]["code"], titles[s.card["summary"]])
             for s in env.shown}
    stored = [(service, r) for service in SERVICES.values() for r in env.store.list_feedback(service)]
    assert len(stored) == len(env.feedback)  # what the EHR sent is what the store holds
    expected: Counter[tuple[Any, ...]] = Counter()
    reasons: Counter[tuple[Any, ...]] = Counter()
    for service, record in stored:
        section, action = where.get((service, record.card), (None, None))
        month = feedback_month(record.outcome_timestamp, record.received_at)
        expected[(month, section, action, record.outcome)] += 1
        if record.outcome == "overridden":
            coding = (record.item.get("overrideReason") or {}).get("reason")
            code = ("none" if coding is None else coding["code"] if coding.get("system") == CONCEPTS_SYSTEM
                    else "other")
            reasons[(month, section, action, code)] += 1
    counted: Counter[tuple[Any, ...]] = Counter()
    counted_reasons: Counter[tuple[Any, ...]] = Counter()
    for row in report["rows"]:
        key = (row["month"], row["section"], row["action"])
        for outcome in ("accepted", "overridden"):
            if row[outcome]:
                counted[(*key, outcome)] = row[outcome]
        for code, n in row["overrideReasons"].items():
            counted_reasons[(*key, code)] = n
    assert counted == {key: cell(n) for key, n in expected.items()}  # 1 to 4 shown as "<5"
    assert counted_reasons == {key: cell(n) for key, n in reasons.items()}
    assert (report["total"]["accepted"], report["total"]["overridden"]) == (
        cell(sum(r.outcome == "accepted" for _, r in stored)), cell(sum(r.outcome == "overridden" for _, r in stored)))
    assert report["total"]["shown"] == cell(len(env.shown))
    assert report["total"]["overrideComments"] == cell(sum(1 for _, i in env.feedback if "userComment" in
                                                           (i.get("overrideReason") or {})))
    assert ("2026-11", None, None, "overridden") in expected  # the card never shown is counted, as unknown


def test_since_leaves_out_earlier_months(env: Env) -> None:
    report = report_of(env, since="2026-11").json()
    assert report["since"] == "2026-11" and all(row["month"] >= "2026-11" for row in report["rows"])
    everything = report_of(env).json()
    assert report["rows"] == [r for r in everything["rows"] if r["month"] >= "2026-11"] and report["rows"]


def test_formats_agree(env: Env) -> None:
    as_json = report_of(env).json()
    csv_rows = report_of(env, "csv").text.splitlines()
    header = csv_rows[0].split(",")
    assert header[:10] == ["month", "section", "section_nl", "section_en", "action", "action_nl", "action_en",
                           "shown", "accepted", "overridden"]
    assert len(csv_rows) - 1 == len(as_json["rows"])
    import csv

    parsed = list(csv.DictReader(csv_rows))
    for row, in_json in zip(parsed, as_json["rows"], strict=True):
        assert [row[c] for c in ("month", "shown", "accepted", "overridden", "reason:other")] == [
            str(v) for v in (in_json["month"], in_json["shown"], in_json["accepted"], in_json["overridden"],
                             in_json["overrideReasons"].get("other", 0))]
    html = report_of(env, "html")
    assert html.headers["content-type"].startswith("text/html")
    assert f'shown</span>: {escape(str(as_json["total"]["shown"]))};' in html.text


def test_html_is_self_contained_bilingual_with_inline_svg(env: Env) -> None:
    html = report_of(env, "html").text
    assert html.startswith("<!DOCTYPE html>") and '<html lang="nl">' in html
    assert html.count("<svg") == 2 and "<title>" in html
    lowered = html.lower()
    for outside in ("<script", "<link", "@import", "src=", "href=", "url("):
        assert outside not in lowered
    assert set(re.findall(r"https?://[^\s\"'<>]+", html)) <= {"http://www.w3.org/2000/svg"}
    assert "Getoond" in html and "shown" in html and "Niet opgevolgd" in html and "overridden" in html


# --- nothing identifying ------------------------------------------------------------------------

def identifying(env: Env) -> set[str]:
    """Patients, users, EHRs and calls: everything the requests carried that is not a code."""
    found = {COMMENT, "Hendriks wants to wait", "Pieter", "999911168"}
    for s in env.shown:
        body = s.body
        found |= {body["hookInstance"], body["context"].get("patientId", ""), body["context"].get("userId", "")}
        for key in ("patient", "user"):
            res = (body.get("prefetch") or {}).get(key) or {}
            for ident in res.get("identifier", []):
                found.add(ident["value"])
            for name in res.get("name", []):
                found |= {name.get("family", ""), *name.get("given", [])}
            if res.get("birthDate"):
                found.add(res["birthDate"])
        found.add(s.card["uuid"])
        found |= {sug["uuid"] for sug in s.card.get("suggestions", [])}
    return {v for v in found if len(v) >= 3}


@pytest.mark.parametrize("fmt", ["html", "csv", "json"])
def test_no_patient_or_professional_identity_in_the_report(env: Env, fmt: str) -> None:
    text = report_of(env, fmt).text
    assert sorted(v for v in identifying(env) if v in text) == []
    assert DATE.search(text) is None


def test_the_shown_table_holds_no_identity(env: Env) -> None:
    with read_session(env.store.engine) as session:
        rows = [(r.service_id, r.card, r.section, r.action_id, r.month)
                for r in session.execute(select(CdsCardShown)).scalars()]
    assert len(rows) == len(env.shown)
    values = {v for row in rows for v in row if v}
    forbidden = identifying(env) - {s.card["uuid"] for s in env.shown}  # the card uuid is the feedback key
    assert not any(f in v for f in forbidden for v in values)
    assert all(re.fullmatch(r"\d{4}-\d{2}", row[4]) for row in rows)


# --- access and bad input ------------------------------------------------------------------------

def test_the_report_needs_a_token_with_the_report_scope(env: Env) -> None:
    refused_before = len(env.store.list_audit(outcome="4", limit=1000))
    none = env.client.get("/report/feedback")
    assert none.status_code == 401 and none.json()["resourceType"] == "OperationOutcome"
    assert none.headers["WWW-Authenticate"].startswith("Bearer")
    other = env.client.get("/report/feedback", headers=bearer(env.client, "gp", "system/Bundle.read"))
    assert other.status_code == 403 and REPORT_SCOPE in other.headers["WWW-Authenticate"]
    assert len(env.store.list_audit(outcome="4", limit=1000)) == refused_before + 2  # both refusals audited
    allowed_before = len(env.store.list_audit(outcome="0", limit=1000))
    report_of(env)
    assert any("feedback report" in json.dumps(e) for e in env.store.list_audit(outcome="0", limit=1000)[:3])
    assert len(env.store.list_audit(outcome="0", limit=1000)) > allowed_before


@pytest.mark.parametrize(("params", "fragment"), [
    ({"since": "2026-13"}, "since"), ({"since": "nov"}, "since"), ({"format": "pdf"}, "format")])
def test_bad_parameters_are_400_operation_outcomes(env: Env, params: dict[str, str], fragment: str) -> None:
    response = env.client.get("/report/feedback", params=params, headers=bearer(env.client, "wg", REPORT_SCOPE))
    assert response.status_code == 400
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome" and fragment in json.dumps(outcome)


# --- the store, both back-ends -------------------------------------------------------------------

def test_store_counts_equal_the_stored_feedback(database_url: str) -> None:  # noqa: F811
    store = open_store(database_url)
    try:
        rng = random.Random(5)
        cards = [(rng.choice(["alk-patient-view", "alk-order-sign"]), str(uuid.uuid4()),
                  rng.choice(["1.1", "2.2", "3.1", None]), rng.choice(["a", "b", None]),
                  rng.choice(["2026-09", "2026-10", "2026-11"])) for _ in range(60)]
        rows = [dict(zip(("service_id", "card", "section", "action_id", "month"), c, strict=True)) for c in cards]
        store.save_shown_cards(rows)
        store.save_shown_cards(rows[:10])  # recorded again: nothing new
        assert sum(c.count for c in store.shown_counts()) == 60
        for service, card, *_ in [*rng.sample(cards, 40), ("alk-patient-view", "never-shown", None, None, "")]:
            outcome = rng.choice(["accepted", "overridden"])
            item: JSON = {"card": card, "outcome": outcome,
                          "outcomeTimestamp": f"2026-{rng.choice([9, 10, 11]):02d}-15T23:30:00-02:00"}
            if outcome == "accepted":
                item["acceptedSuggestions"] = [{"id": "s"}]
            else:
                item["overrideReason"] = rng.choice([{"userComment": "x"}, {"reason": {
                    "system": CONCEPTS_SYSTEM, "code": "override-not-now"}}])
            store.save_feedback(service, item)
        labels = Labels(reasons={"override-not-now": {"nl": "Niet nu", "en": "Not now"}}, reason_system=CONCEPTS_SYSTEM)
        report = build_report(store.shown_counts(), store.feedback_facts(), labels)
        stored = [r for service in ("alk-patient-view", "alk-order-sign") for r in store.list_feedback(service)]
        total = report.total()
        assert total.shown == 60
        assert (total.accepted, total.overridden) == (sum(r.outcome == "accepted" for r in stored),
                                                      sum(r.outcome == "overridden" for r in stored))
        assert total.reasons["override-not-now"] + total.reasons["none"] == total.overridden
        # the month is the UTC one: 23:30 at UTC-2 on 31 October is 1 November in UTC
        assert feedback_month("2026-10-31T23:30:00-02:00", datetime.now(UTC)) == "2026-11"
        by_section = {s: t for s, t in report.per_section()}
        assert by_section[None].accepted + by_section[None].overridden >= 1  # the card never shown
        since = build_report(store.shown_counts(since="2026-10"), store.feedback_facts(since="2026-10"), labels,
                             since="2026-10")
        assert all(month >= "2026-10" for month in since.months)
        assert since.total().shown == sum(1 for c in cards if c[4] >= "2026-10")
    finally:
        store.close()


# --- the command line ----------------------------------------------------------------------------

def test_cli_report_from_the_store(env: Env, tmp_path: Path) -> None:
    url = str(env.store.engine.url)
    out = tmp_path / "report.json"
    result = CliRunner().invoke(main, ["report", "feedback", "--format", "json", "-o", str(out),
                                       "--database-url", url])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text(encoding="utf-8"))["total"] == report_of(env).json()["total"]
    html = CliRunner().invoke(main, ["report", "feedback", "--since", "2026-11", "--database-url", url])
    assert html.exit_code == 0 and html.output.startswith("<!DOCTYPE html>")


def test_cli_report_bad_input(tmp_path: Path) -> None:
    bad = CliRunner().invoke(main, ["report", "feedback", "--since", "11-2026"])
    assert bad.exit_code == 2 and "YYYY-MM" in bad.output
    missing = tmp_path / "none.sqlite3"
    gone = CliRunner().invoke(main, ["report", "feedback", "--database-url", f"sqlite:///{missing}"])
    assert gone.exit_code == 1 and str(missing) in gone.output and not missing.exists()
    assert "Traceback" not in gone.output


# --- the recorder --------------------------------------------------------------------------------

class Sink:
    def __init__(self, fail: int = 0, gate: threading.Event | None = None) -> None:
        self.rows: list[dict[str, Any]] = []
        self.fail = fail
        self.gate = gate
        self.entered = threading.Event()

    def save_shown_cards(self, rows: Sequence[Any]) -> int:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(30)
        if self.fail:
            self.fail -= 1
            raise OSError("database is down")
        self.rows += [dict(r) for r in rows]
        return len(rows)


def card(code: str | None = "3.1", card_uuid: str | None = None) -> JSON:
    topic = {"system": GUIDELINE_SYSTEM, "code": code} if code else {"system": "urn:other", "code": "x"}
    return {"uuid": card_uuid or str(uuid.uuid4()), "summary": "s", "indicator": "info",
            "source": {"label": "l", "topic": topic}}


def test_shown_rows_read_section_and_action() -> None:
    a, b = card("3.1"), card(None)
    rows = shown_rows("svc", "hook-1", card_keys([a, b, {"summary": "no uuid"}]), 1_790_000_000.0,
                      lambda hook, sections: {a["uuid"]: f"action-of-{hook}"} if sections == {"3.1", None} else {})
    assert rows == [{"service_id": "svc", "card": a["uuid"], "section": "3.1", "action_id": "action-of-hook-1",
                     "month": "2026-09"},
                    {"service_id": "svc", "card": b["uuid"], "section": None, "action_id": None, "month": "2026-09"}]


def test_recorder_writes_in_the_background_and_survives_a_failing_store() -> None:
    sink = Sink(fail=1)
    recorder = ShownRecorder(sink, interval=0)
    recorder.record("svc", "h1", [card()])
    assert recorder.flush()
    assert recorder.lost == 1 and sink.rows == []  # the store refused that batch: counted, thread alive
    recorder.record("svc", "h2", [card(), card("2.2")])
    recorder.record("svc", "h3", [])  # nothing shown: nothing queued
    assert recorder.flush()
    assert [r["section"] for r in sink.rows] == ["3.1", "2.2"]
    recorder.close()
    recorder.record("svc", "h4", [card()])  # after close: ignored
    recorder.flush(timeout=1)
    assert len(sink.rows) == 2


def test_a_full_queue_drops_cards_instead_of_waiting() -> None:
    gate = threading.Event()
    sink = Sink(gate=gate)
    recorder = ShownRecorder(sink, interval=0, capacity=2)
    recorder.record("svc", "h1", [card()])
    assert sink.entered.wait(30)  # the writer holds the first call and waits for the store
    recorder.record("svc", "h2", [card()])
    recorder.record("svc", "h3", [card()])
    recorder.record("svc", "h4", [card(), card()])  # queue full: dropped, counted, no waiting
    assert recorder.dropped == 2
    gate.set()
    assert recorder.flush()
    assert len(sink.rows) == 3
    recorder.close()


def test_cds_answers_even_when_recording_fails(tmp_path: Path) -> None:
    app = cds_app(tmp_path)
    app.state.cds_shown = ShownRecorder(Sink(fail=1000), interval=0)
    body = json.loads((HOOKS_DIR / "patient-view-care-team-coordinator.json").read_text(encoding="utf-8"))
    with TestClient(app) as client:
        response = client.post("/cds-services/alk-patient-view", json=body)
        assert response.status_code == 200 and response.json()["cards"]
        assert app.state.cds_shown.flush() and app.state.cds_shown.lost == len(response.json()["cards"])


def test_card_uuids_map_back_to_actions_by_the_card_builders_rule(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from alk_fhir.api import report_routes

    app = cds_app(tmp_path)
    actions = list(cds_state(app).catalog.actions)
    for hook in (str(uuid.uuid4()) for _ in range(50)):
        assert report_routes._uuids_fast(hook, actions) == report_routes._uuids_exact(hook, actions)
    # should the fast rule ever differ from the card builder's, the builder's own is used
    monkeypatch.setattr(report_routes, "_uuids_fast", lambda hook, ids: {f"wrong-{a}": a for a in ids})
    mapped = report_routes.actions_by_card(app)("hook-1", [None])
    assert mapped == report_routes._uuids_exact("hook-1", actions)
