"""The demo EHR (``alk-fhir serve --demo``, issue 23): example patients, a SMART EHR launch, FHIR
read/search/create for them, and the EHR side of CDS Hooks; nothing of it when the demo is off."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
from fastapi.testclient import TestClient

from alk_fhir.api.app import create_app
from alk_fhir.cli.serve_cmd import served_base_url
from alk_fhir.config import Settings
from alk_fhir.demo.smart import s256
from alk_fhir.knowledge import Package

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "patients"


def _client(tmp_path: Path, package: Package, **kw: Any) -> TestClient:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'alk.sqlite3'}", **kw)
    return TestClient(create_app(settings, package))


@pytest.fixture()
def demo(tmp_path: Path, package: Package) -> Iterator[TestClient]:
    with _client(tmp_path, package, demo=True) as c:  # CDS client JWTs required (the production default)
        yield c


def _patient_ids() -> set[str]:
    ids = set()
    for path in EXAMPLES.glob("*.json"):
        bundle = json.loads(path.read_text(encoding="utf-8"))
        ids |= {e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"}
    return ids


def test_nothing_of_the_demo_is_reachable_when_it_is_off(tmp_path: Path, package: Package) -> None:
    with _client(tmp_path, package) as c:
        for path in ("/demo/", "/demo/fhir/metadata", "/demo/fhir/.well-known/smart-configuration",
                     "/demo/launch/pat-anna", "/demo/cds/pat-anna", "/demo/jwks.json",
                     "/demo/api/patients/pat-anna/hook-request", "/demo/static/cds.js"):
            assert c.get(path, follow_redirects=False).status_code == 404, path
        assert c.post("/demo/api/patients/pat-anna/accept", json=[]).status_code == 404
        assert "/demo/" not in c.get("/", headers={"Accept": "text/html"}).text


def test_the_demo_lists_every_example_patient_and_links_the_app_and_the_cards(demo: TestClient) -> None:
    home = demo.get("/", headers={"Accept": "text/html"}).text
    assert 'href="/demo/"' in home
    page = demo.get("/demo/").text
    ids = _patient_ids()
    assert len(ids) >= 9
    for pid in ids:
        assert f'href="/demo/launch/{pid}"' in page and f'href="/demo/cds/{pid}?lang=nl"' in page
    assert "Open in de app" in page and 'lang="nl"' in page
    assert "Voorbeelddossier" not in page, "every example patient has its own sentence (demo/web/patients.json)"
    english = demo.get("/demo/?lang=en").text
    assert "Open in the app" in english and "Show the CDS cards" in english


def _launch(demo: TestClient, pid: str) -> dict[str, Any]:
    """Play the app's part of SMART App Launch 2.0 (EHR launch, PKCE S256) and return the token response."""
    to_app = demo.get(f"/demo/launch/{pid}", follow_redirects=False)
    assert to_app.status_code == 303
    query = parse_qs(urlparse(to_app.headers["location"]).query)
    iss, launch = query["iss"][0], query["launch"][0]
    assert urlparse(to_app.headers["location"]).path == "/app/launch.html"
    config = demo.get(urlparse(iss).path + "/.well-known/smart-configuration").json()
    assert "S256" in config["code_challenge_methods_supported"]
    verifier = secrets.token_urlsafe(48)
    redirect_uri = "http://127.0.0.1:8080/app/index.html"
    params = {"response_type": "code", "client_id": "alk-fhir-app", "redirect_uri": redirect_uri,
              "scope": "openid fhirUser launch patient/*.rs patient/Task.c", "state": "s1", "aud": iss,
              "launch": launch, "code_challenge": s256(verifier), "code_challenge_method": "S256"}
    answer = demo.get(urlparse(config["authorization_endpoint"]).path + "?" + urlencode(params),
                      follow_redirects=False)
    back = parse_qs(urlparse(answer.headers["location"]).query)
    assert back["state"] == ["s1"] and "code" in back, back
    token_path = urlparse(config["token_endpoint"]).path
    form = {"grant_type": "authorization_code", "code": back["code"][0], "redirect_uri": redirect_uri,
            "client_id": "alk-fhir-app"}
    wrong = demo.post(token_path, data={**form, "code_verifier": "x" * 50})
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    # the code was used up by the wrong verifier (single use, RFC 6749 §4.1.2): launch again
    launch2 = parse_qs(urlparse(demo.get(f"/demo/launch/{pid}", follow_redirects=False).headers["location"]).query)
    params["launch"] = launch2["launch"][0]
    back = parse_qs(urlparse(demo.get(urlparse(config["authorization_endpoint"]).path + "?" + urlencode(params),
                                      follow_redirects=False).headers["location"]).query)
    token = demo.post(token_path, data={**form, "code": back["code"][0], "code_verifier": verifier})
    assert token.status_code == 200, token.text
    body: dict[str, Any] = token.json()
    return body


def test_ehr_launch_gives_the_patient_and_the_results_view(demo: TestClient) -> None:
    token = _launch(demo, "pat-dirk")
    assert token["patient"] == "pat-dirk" and json.loads(token["appContext"]) == {"view": "results"}
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    assert demo.get("/demo/fhir/Patient/pat-dirk", headers=auth).json()["id"] == "pat-dirk"
    assert demo.get("/demo/fhir/Patient/pat-anna", headers=auth).status_code == 404  # another patient
    assert demo.get("/demo/fhir/Patient/pat-dirk").status_code == 401
    meds = demo.get("/demo/fhir/MedicationStatement?patient=pat-dirk&_count=100", headers=auth).json()
    assert meds["resourceType"] == "Bundle" and meds["total"] >= 5
    assert all(e["resource"]["subject"]["reference"] == "Patient/pat-dirk" for e in meds["entry"]
               if e["search"]["mode"] == "match")
    refused = demo.get("/demo/fhir/Condition?patient=pat-dirk&onset-date=ge2020", headers=auth)
    assert refused.status_code == 400 and "onset-date" in refused.json()["issue"][0]["diagnostics"]
    task = {"resourceType": "Task", "status": "requested", "intent": "proposal",
            "for": {"reference": "Patient/pat-dirk"}}
    created = demo.post("/demo/fhir/Task", json=task, headers=auth)
    assert created.status_code == 201 and created.headers["location"].endswith("/_history/1")
    assert demo.post("/demo/fhir/CarePlan", json={"resourceType": "CarePlan"}, headers=auth).status_code == 403


def _cards(demo: TestClient, pid: str, service: str = "alk-patient-view", **extra: str) -> list[dict[str, Any]]:
    call = demo.get(f"/demo/api/patients/{pid}/hook-request", params={"service": service, **extra}).json()
    assert call["jwt"], "the service requires client JWTs here: the demo EHR signs one per call"
    answer = demo.post(call["url"], json=call["request"], headers={"Authorization": f"Bearer {call['jwt']}"})
    assert answer.status_code == 200, answer.text
    replay = demo.post(call["url"], json=call["request"], headers={"Authorization": f"Bearer {call['jwt']}"})
    assert replay.status_code == 401  # a client JWT is single use
    cards: list[dict[str, Any]] = answer.json()["cards"]
    return cards


def test_the_cds_view_calls_the_services_as_an_ehr_with_a_signed_jwt(demo: TestClient) -> None:
    cards = _cards(demo, "pat-dirk")
    summaries = [c["summary"] for c in cards]
    assert any("Polyfarmacie" in s for s in summaries), summaries
    assert _cards(demo, "pat-frank") == []  # no ALK: no advice
    order = _cards(demo, "pat-dirk", "alk-order-select", drug="lorazepam")
    assert order and all(c["source"]["topic"]["code"] for c in order)
    assert demo.get("/demo/api/patients/pat-dirk/hook-request", params={"drug": "cocaine"}).status_code == 404
    page = demo.get("/demo/cds/pat-dirk").text
    assert "/demo/static/cds.js" in page and "pat-dirk" in page


def test_accepting_a_suggestion_creates_its_resources_in_the_demo_record(demo: TestClient) -> None:
    cards = _cards(demo, "pat-dirk")
    suggestion = next(s for c in cards for s in c.get("suggestions", [])
                      if all(a["type"] == "create" for a in s.get("actions", [])))
    made = demo.post("/demo/api/patients/pat-dirk/accept", json=suggestion["actions"])
    assert made.status_code == 200, made.text
    created = [e["resource"] for e in made.json()["entry"]]
    assert [r["resourceType"] for r in created] == [a["resource"]["resourceType"] for a in suggestion["actions"]]
    token = _launch(demo, "pat-dirk")
    rtype = created[0]["resourceType"]
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    found = demo.get(f"/demo/fhir/{rtype}/{created[0]['id']}", headers=auth)
    assert found.status_code == 200
    other = {"resourceType": "Task", "status": "requested", "intent": "proposal",
             "for": {"reference": "Patient/pat-anna"}}
    refused = demo.post("/demo/api/patients/pat-dirk/accept", json=[{"type": "create", "resource": other}])
    assert refused.status_code == 403
    assert demo.post("/demo/api/patients/pat-dirk/accept", json={"a": 1}).status_code == 400


def test_conditional_create_by_identifier_does_not_create_twice(demo: TestClient) -> None:
    task = {"resourceType": "Task", "status": "requested", "intent": "proposal",
            "for": {"reference": "Patient/pat-eva"}, "identifier": [{"system": "urn:test", "value": "one"}]}
    action = [{"type": "create", "resource": task, "ifNoneExist": "identifier=urn:test|one"}]
    first = demo.post("/demo/api/patients/pat-eva/accept", json=action).json()["entry"][0]["resource"]["id"]
    second = demo.post("/demo/api/patients/pat-eva/accept", json=action).json()["entry"][0]["resource"]["id"]
    assert first == second


def test_base_url_follows_the_host_and_port_served() -> None:
    assert served_base_url("127.0.0.1", 47050) == "http://127.0.0.1:47050"
    assert served_base_url("0.0.0.0", 9000) == "http://127.0.0.1:9000"
    assert served_base_url("::1", 9000) == "http://[::1]:9000"
