"""CDS Hooks 2.0 conformance, one test per requirement of the specification (https://cds-hooks.hl7.org/2.0/).

Sections followed: "Use of JSON" (no null or empty optional values), "Discovery", "Calling a CDS
Service", "Providing FHIR Resources to a CDS Service" (prefetch, 412), "CDS Service Response" /
"Card Attributes", "Feedback", "Trusting CDS Clients" (the JWT: every way it must fail).
"""

from __future__ import annotations

import copy
import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from alk_fhir.auth import install_auth_state
from alk_fhir.auth.tokens import TokenIssuer
from alk_fhir.cds import SERVICES, routes
from alk_fhir.cds.feedback import MemoryFeedbackSink
from alk_fhir.cds.text import choose_language, shorten
from alk_fhir.fhir import body as fhir_body
from alk_fhir.store import StoreJtiCache
from fixtures.auth.jwtkit import StaticFetcher, cds_claims, ec_key, public_jwk, rsa_key, sign, unsigned
from test_cds_examples import BASE, HOOKS_DIR, cds_app, example, read_json

JSON = dict[str, Any]
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
PV = "/cds-services/alk-patient-view"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    return cds_app(tmp_path_factory.mktemp("conformance"), app_launch_url="https://app.alk.example.org/launch")


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    yield TestClient(app)


def empty_values(node: Any, path: str = "$") -> list[str]:
    """Paths of null, "", [] or {} anywhere in ``node`` ("Use of JSON": SHALL NOT be null or empty)."""
    if node is None or node in ("", [], {}):
        return [path]
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            found += empty_values(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += empty_values(value, f"{path}[{i}]")
    return found


def absolute(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("https", "http") and bool(parts.netloc)


def all_responses(client: TestClient) -> Iterator[tuple[str, JSON]]:
    for path in sorted(HOOKS_DIR.glob("*.json")):
        body = read_json(path)
        service = {"patient-view": "alk-patient-view", "order-select": "alk-order-select",
                   "order-sign": "alk-order-sign"}[body["hook"]]
        for lang in ("nl", "en"):
            response = client.post(f"/cds-services/{service}", json=body, headers={"Accept-Language": lang})
            assert response.status_code == 200, response.text
            yield f"{path.stem}/{lang}", response.json()


def all_cards(client: TestClient) -> Iterator[tuple[str, JSON]]:
    for name, body in all_responses(client):
        for card in body["cards"]:
            yield name, card


def post(client: TestClient, body: Any, path: str = PV, **kwargs: Any) -> Any:
    return client.post(path, content=json.dumps(body), headers={"Content-Type": "application/json"}, **kwargs)


def fresh(name: str = "patient-view-criterion1-failed-cbt-physio") -> JSON:
    body = copy.deepcopy(example(name))
    body["hookInstance"] = str(uuid.uuid4())
    return body


def assert_outcome(response: Any, status: int, fragment: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert fragment in outcome["issue"][0]["diagnostics"], outcome


# --- Discovery ------------------------------------------------------------------------------------

def test_discovery_lists_services_with_required_fields(client: TestClient) -> None:
    response = client.get("/cds-services")
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    services = response.json()["services"]
    assert [(s["id"], s["hook"]) for s in services] == [
        ("alk-patient-view", "patient-view"), ("alk-order-select", "order-select"), ("alk-order-sign", "order-sign")]
    for service in services:
        assert set(service) <= {"hook", "title", "description", "id", "prefetch", "usageRequirements"}
        assert all(isinstance(service[k], str) and service[k] for k in ("hook", "title", "description", "id"))


def test_discovery_has_no_null_or_empty_values(client: TestClient) -> None:
    assert empty_values(client.get("/cds-services").json()) == []


def test_prefetch_templates_use_only_allowed_tokens_and_queries(client: TestClient) -> None:
    """Prefetch tokens: context fields of the hook or the user identifiers; queries: reads and searches."""
    allowed = {"context.patientId", "context.userId", "context.encounterId", "userPractitionerId",
               "userPractitionerRoleId", "userPatientId", "userRelatedPersonId"}
    for service in client.get("/cds-services").json()["services"]:
        for key, template in service["prefetch"].items():
            tokens = set(re.findall(r"\{\{([^}]*)\}\}", template))
            assert tokens and tokens <= allowed, (key, template)
            resource_type = re.split(r"[/?]", template)[0]
            assert re.fullmatch(r"[A-Z][A-Za-z]+", resource_type), template
            assert "{{context.patientId}}" in template or "{{user" in template


def test_discovery_in_english_on_request(client: TestClient) -> None:
    english = client.get("/cds-services", headers={"Accept-Language": "en"}).json()["services"]
    dutch = client.get("/cds-services").json()["services"]
    assert english[0]["title"] == "Persistent ALK: steps from the guideline"
    assert dutch[0]["title"] == "Hardnekkige ALK: stappen uit de handreiking"
    assert [s["prefetch"] for s in english] == [s["prefetch"] for s in dutch]


# --- Response and cards ---------------------------------------------------------------------------

def test_responses_have_cards_and_no_null_or_empty_optional_values(client: TestClient) -> None:
    for name, body in all_responses(client):
        assert isinstance(body["cards"], list)
        problems = [p for p in empty_values(body) if p != "$.cards"]
        assert problems == [], name


def test_no_guidance_is_an_empty_cards_array(client: TestClient) -> None:
    response = post(client, fresh("patient-view-no-alk"))
    assert response.status_code == 200 and response.json() == {"cards": []}


def test_card_required_fields(client: TestClient) -> None:
    for name, card in all_cards(client):
        assert isinstance(card["summary"], str) and card["summary"], name
        assert card["indicator"] in ("info", "warning", "critical"), name
        assert isinstance(card["source"]["label"], str) and card["source"]["label"], name


def test_summary_is_shorter_than_140_characters(client: TestClient) -> None:
    for name, card in all_cards(client):
        assert len(card["summary"]) < 140, name
    long = "woord " * 40
    assert len(shorten(long, 140)) < 140 and shorten(long, 140).endswith("…")
    assert shorten("kort", 140) == "kort"


def test_card_uuid_is_a_uuid(client: TestClient) -> None:
    for name, card in all_cards(client):
        assert UUID.match(card["uuid"]), name
        for suggestion in card.get("suggestions", []):
            assert UUID.match(suggestion["uuid"]), name


def test_detail_is_markdown_citing_the_handreiking(client: TestClient) -> None:
    for name, card in all_cards(client):
        assert isinstance(card["detail"], str), name
        assert re.search(r"\[[^\]]*§[0-9.]*[^\]]*\]\(https://[^)]+\)", card["detail"]) or \
            "](https://www.nalk.info/)" in card["detail"], name


def test_source_url_is_absolute_and_topic_is_a_coding(client: TestClient) -> None:
    for name, card in all_cards(client):
        source = card["source"]
        assert absolute(source["url"]), name
        topic = source["topic"]
        assert set(topic) <= {"system", "code", "display"} and topic["system"] and topic["code"], name


def test_selection_behavior_is_present_exactly_when_suggestions_exist(client: TestClient) -> None:
    seen = 0
    for name, card in all_cards(client):
        if "suggestions" in card:
            seen += 1
            assert card["selectionBehavior"] in ("at-most-one", "any"), name
        else:
            assert "selectionBehavior" not in card, name
    assert seen > 0


def test_suggestion_actions_have_type_description_and_resource(client: TestClient) -> None:
    for name, card in all_cards(client):
        for suggestion in card.get("suggestions", []):
            assert isinstance(suggestion["label"], str) and suggestion["label"], name
            assert suggestion["actions"], name
            for action in suggestion["actions"]:
                assert action["type"] in ("create", "update", "delete"), name
                assert isinstance(action["description"], str) and action["description"], name
                if action["type"] == "create":
                    assert isinstance(action["resource"]["resourceType"], str), name


def test_override_reasons_are_codings_with_display(client: TestClient) -> None:
    seen = 0
    for name, card in all_cards(client):
        for reason in card.get("overrideReasons", []):
            seen += 1
            assert reason["system"] == "https://alk-fhir.org/fhir/CodeSystem/alk-concepts", name
            assert reason["code"] and reason["display"], name
    assert seen > 0


def test_links_are_absolute_or_smart_and_app_context_only_on_smart(client: TestClient) -> None:
    kinds = set()
    for name, card in all_cards(client):
        for link in card.get("links", []):
            kinds.add(link["type"])
            assert link["type"] in ("absolute", "smart") and link["label"] and absolute(link["url"]), name
            if link["type"] == "absolute":
                assert "appContext" not in link, name
    assert kinds == {"absolute", "smart"}


# --- Request checks: 400, 404, 415, 413 -----------------------------------------------------------

def test_unknown_service_is_404(client: TestClient) -> None:
    assert_outcome(post(client, fresh(), "/cds-services/no-such-service"), 404, "no-such-service")
    assert_outcome(post(client, {"feedback": []}, "/cds-services/no-such-service/feedback"), 404, "no-such-service")


BAD_REQUESTS: list[tuple[str, Any, str]] = [
    ("not an object", [], "JSON object"),
    ("no hook", {"hookInstance": str(uuid.uuid4()), "context": {}}, "hook"),
    ("other hook", {"hook": "order-sign"}, "answers hook 'patient-view'"),
    ("hookInstance not a UUID", {"hookInstance": "1234"}, "hookInstance must be a UUID"),
    ("no context", {"context": None}, "context must be an object"),
    ("no patientId", {"context": {"userId": "Practitioner/1"}}, "context.patientId"),
    ("patientId not an id", {"context": {"userId": "Practitioner/1", "patientId": "a b"}}, "FHIR id"),
    ("userId not a reference", {"context": {"userId": "dr. Jansen", "patientId": "p"}}, "context.userId"),
    ("fhirAuthorization without fhirServer", {"fhirAuthorization": {
        "access_token": "t", "token_type": "Bearer", "expires_in": 300, "scope": "user/*.read", "subject": "alk"}},
     "fhirServer is required"),
    ("fhirAuthorization without token", {"fhirServer": "https://ehr.example.org/fhir", "fhirAuthorization": {
        "token_type": "Bearer", "expires_in": 300, "scope": "s", "subject": "alk"}}, "access_token"),
    ("token_type not Bearer", {"fhirServer": "https://ehr.example.org/fhir", "fhirAuthorization": {
        "access_token": "t", "token_type": "MAC", "expires_in": 300, "scope": "s", "subject": "alk"}}, "Bearer"),
    ("fhirServer not a URL", {"fhirServer": "ehr"}, "fhirServer"),
    ("prefetch value not a resource", {"prefetch": {"patient": "Patient/1"}}, "prefetch.patient"),
    ("prefetch of another patient", {"prefetch": {"patient": {"resourceType": "Patient", "id": "someone-else"}}},
     "Patient other than context.patientId"),
]


@pytest.mark.parametrize(("case", "change", "fragment"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_malformed_requests_are_400_with_a_clear_body(client: TestClient, case: str, change: Any,
                                                      fragment: str) -> None:
    if isinstance(change, dict):
        body: Any = fresh()
        for key, value in change.items():
            if key == "prefetch":
                body["prefetch"].update(value)
            elif key == "context" and isinstance(value, dict):
                body["context"] = value
            else:
                body[key] = value
        if case == "no hook":
            del body["hook"]
    else:
        body = change
    assert_outcome(post(client, body), 400, fragment)


def test_order_hooks_require_their_context(client: TestClient) -> None:
    body = fresh("order-select-polypharmacy-oxycodone")
    del body["context"]["selections"]
    assert_outcome(post(client, body, "/cds-services/alk-order-select"), 400, "context.selections")
    body = fresh("order-select-polypharmacy-oxycodone")
    body["context"]["selections"] = ["MedicationRequest/not-in-the-drafts"]
    assert_outcome(post(client, body, "/cds-services/alk-order-select"), 400, "not an entry of context.draftOrders")
    body = fresh("order-sign-polypharmacy-oxycodone")
    body["context"]["draftOrders"] = {"resourceType": "MedicationRequest"}
    assert_outcome(post(client, body, "/cds-services/alk-order-sign"), 400, "context.draftOrders")
    body = fresh("order-sign-polypharmacy-oxycodone")
    body["context"]["userId"] = "Patient/pat-dirk"
    assert_outcome(post(client, body, "/cds-services/alk-order-sign"), 400, "context.userId")


def test_body_that_is_not_json_is_400_and_other_media_types_415(client: TestClient) -> None:
    response = client.post(PV, content=b"{not json", headers={"Content-Type": "application/json"})
    assert_outcome(response, 400, "not JSON")
    response = client.post(PV, content=b"hook=patient-view", headers={"Content-Type": "text/plain"})
    assert_outcome(response, 415, "Content-Type")


def test_body_too_large_is_413(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fhir_body, "MAX_BODY", 1000)
    assert_outcome(post(client, fresh()), 413, "larger than")


# --- Prefetch: null, missing, OperationOutcome, 412 -----------------------------------------------

def test_key_present_as_null_means_no_data(client: TestClient) -> None:
    body = fresh()
    for key in body["prefetch"]:
        body["prefetch"][key] = None
    response = post(client, body)
    assert response.status_code == 200
    assert response.json() == {"cards": []}  # no record: nothing of the guideline applies


def test_missing_key_without_fhir_server_is_412(client: TestClient) -> None:
    body = fresh()
    del body["prefetch"]["conditions"]
    assert_outcome(post(client, body), 412, "prefetch.conditions is missing")
    body = fresh()
    del body["prefetch"]
    assert_outcome(post(client, body), 412, "is missing")


def test_missing_optional_key_without_fhir_server_is_fine(client: TestClient) -> None:
    body = fresh()
    del body["prefetch"]["user"]
    assert post(client, body).status_code == 200


def test_fhir_server_over_plain_http_is_not_read(client: TestClient) -> None:
    body = fresh()
    del body["prefetch"]["conditions"]
    body["fhirServer"] = "http://ehr.example.org/fhir"
    assert_outcome(post(client, body), 412, "prefetch.conditions")


def test_operation_outcome_in_prefetch_is_no_data_and_reported(client: TestClient) -> None:
    body = fresh()
    body["prefetch"]["encounters"] = {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "timeout", "diagnostics": "search timed out"}]}
    body["prefetch"]["procedures"]["entry"].append(
        {"resource": {"resourceType": "OperationOutcome", "issue": [{"severity": "warning", "code": "too-costly"}]},
         "search": {"mode": "outcome"}})
    response = post(client, body)
    assert response.status_code == 200
    issues = response.json()["extension"][routes.DATA_ISSUES_EXTENSION]["issue"]
    assert {i["expression"][0] for i in issues} >= {"prefetch.encounters", "prefetch.procedures"}


@pytest.mark.parametrize("junk", [[], "x", 5, {"resource": "x"}])
def test_searchset_entries_that_hold_no_resource_are_reported_not_fatal(client: TestClient, junk: Any) -> None:
    body = fresh()
    body["prefetch"]["conditions"]["entry"].append(junk if isinstance(junk, dict) else {"resource": junk})
    body["prefetch"]["user"] = {"resourceType": "Practitioner", "id": body["context"]["userId"].split("/")[-1],
                                "name": {"text": "not a list"}}
    response = post(client, body)
    assert response.status_code == 200 and response.json()["cards"]
    issues = response.json()["extension"][routes.DATA_ISSUES_EXTENSION]["issue"]
    assert any(i["expression"] == ["prefetch.conditions"] and "no FHIR resource" in i["diagnostics"] for i in issues)


def test_paginated_prefetch_without_fhir_server_is_412(client: TestClient) -> None:
    body = fresh()
    body["prefetch"]["conditions"]["link"] = [
        {"relation": "next", "url": "https://ehr.example.org/fhir/Condition?patient=pat-anna&page=2"}]
    assert_outcome(post(client, body), 412, "paginated")


# --- Feedback --------------------------------------------------------------------------------------

def feedback_item(**changes: Any) -> JSON:
    item: JSON = {"card": str(uuid.uuid4()), "outcome": "accepted",
                  "acceptedSuggestions": [{"id": str(uuid.uuid4())}], "outcomeTimestamp": "2026-11-23T10:05:31Z"}
    item.update(changes)
    return {k: v for k, v in item.items() if v is not None}


def test_feedback_accepted_and_overridden_are_stored(app: FastAPI, client: TestClient) -> None:
    sink = MemoryFeedbackSink()
    app.state.cds.feedback = sink
    items = [feedback_item(),
             feedback_item(outcome="overridden", acceptedSuggestions=None),
             feedback_item(outcome="overridden", acceptedSuggestions=None, overrideReason={
                 "reason": {"system": "https://alk-fhir.org/fhir/CodeSystem/alk-concepts",
                            "code": "override-not-now", "display": "Niet op dit moment"},
                 "userComment": "Eerst bespreken met de patiënt."})]
    response = post(client, {"feedback": items}, PV + "/feedback")
    assert response.status_code == 200
    assert sink.items == [("alk-patient-view", item) for item in items]


BAD_FEEDBACK: list[tuple[str, Any, str]] = [
    ("no feedback array", {"cards": []}, "'feedback' array"),
    ("empty feedback array", {"feedback": []}, "'feedback' array"),
    ("no card", {"feedback": [feedback_item(card=None)]}, "feedback[0].card"),
    ("bad outcome", {"feedback": [feedback_item(outcome="ignored")]}, "feedback[0].outcome"),
    ("accepted without suggestions", {"feedback": [feedback_item(acceptedSuggestions=None)]},
     "acceptedSuggestions is required"),
    ("suggestion without id", {"feedback": [feedback_item(acceptedSuggestions=[{}])]}, "acceptedSuggestions[0].id"),
    ("no timestamp", {"feedback": [feedback_item(outcomeTimestamp=None)]}, "outcomeTimestamp"),
    ("timestamp without offset", {"feedback": [feedback_item(outcomeTimestamp="2026-11-23T10:05:31")]},
     "UTC offset"),
    ("timestamp not a date", {"feedback": [feedback_item(outcomeTimestamp="yesterday")]}, "ISO 8601"),
    ("override reason on accepted", {"feedback": [feedback_item(overrideReason={"userComment": "x"})]},
     "overridden outcome"),
    ("override reason without content", {"feedback": [feedback_item(
        outcome="overridden", acceptedSuggestions=None, overrideReason={})]}, "reason (Coding) or a userComment"),
    ("override reason coding without code", {"feedback": [feedback_item(
        outcome="overridden", acceptedSuggestions=None, overrideReason={"reason": {"system": "s"}})]},
     "reason.code"),
]


@pytest.mark.parametrize(("case", "body", "fragment"), BAD_FEEDBACK, ids=[c[0] for c in BAD_FEEDBACK])
def test_malformed_feedback_is_400(client: TestClient, case: str, body: Any, fragment: str) -> None:
    assert_outcome(post(client, body, PV + "/feedback"), 400, fragment)


def test_feedback_with_one_bad_entry_stores_nothing(app: FastAPI, client: TestClient) -> None:
    sink = MemoryFeedbackSink()
    app.state.cds.feedback = sink
    body = {"feedback": [feedback_item(), feedback_item(outcome="maybe")]}
    assert post(client, body, PV + "/feedback").status_code == 400
    assert sink.items == []


def test_feedback_is_persisted_in_the_store(tmp_path: Path) -> None:
    app = cds_app(tmp_path)
    app.state.cds.feedback = app.state.store  # the production wiring (create_app sets it)
    client = TestClient(app)
    item = feedback_item()
    assert post(client, {"feedback": [item]}, "/cds-services/alk-order-sign/feedback").status_code == 200
    stored = app.state.store.list_feedback("alk-order-sign")
    # stored reduced to what the report needs (issue 22): the day, not the time; uuids, no free text
    kept = {**item, "outcomeTimestamp": item["outcomeTimestamp"][:10]}
    assert [(r.card, r.outcome, r.item) for r in stored] == [(item["card"], "accepted", kept)]


def test_feedback_store_failure_is_503_not_500(app: FastAPI, client: TestClient) -> None:
    class Broken:
        def save_feedback_items(self, service_id: str, items: Any) -> list[int]:
            raise OSError("disk full")

    app.state.cds.feedback = Broken()
    assert_outcome(post(client, {"feedback": [feedback_item()]}, PV + "/feedback"), 503, "could not be stored")


def test_language_negotiation() -> None:
    assert choose_language(None) == "nl"
    assert choose_language("en") == "en"
    assert choose_language("nl-NL,nl;q=0.9,en;q=0.8") == "nl"
    assert choose_language("fr;q=1, en;q=0.5") == "en"
    assert choose_language("en;q=0") == "nl"
    assert choose_language("*") == "nl"


# --- Trusting CDS Clients: the JWT ----------------------------------------------------------------

ISS = "https://ehr.example.org"
JWKS_URL = "https://ehr.example.org/.well-known/jwks.json"
EC_KID, RSA_KID, OTHER_KID = "ec-1", "rsa-1", "ec-other"
EC_KEY, RSA_KEY, OTHER_KEY = ec_key(), rsa_key(), ec_key()
AUD = BASE + PV


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    app = cds_app(tmp_path_factory.mktemp("jwt"), cds_auth="jwt", cds_trusted_issuers={ISS: JWKS_URL})
    fetcher = StaticFetcher({JWKS_URL: {"keys": [public_jwk(EC_KEY, EC_KID), public_jwk(RSA_KEY, RSA_KID)]}})
    install_auth_state(app, fetcher=fetcher, tokens=TokenIssuer(ec_key(), BASE), replay=StoreJtiCache(app.state.store))
    return TestClient(app)


def es384(claims: JSON | None = None, kid: str | None = EC_KID, key: Any = EC_KEY, **headers: Any) -> str:
    return sign(claims if claims is not None else cds_claims(ISS, AUD), key, "ES384", kid, **headers)


def call_with(client: TestClient, token: str | None, path: str = PV) -> Any:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = token if token.startswith("Basic ") else f"Bearer {token}"
    if path.endswith("/cds-services"):
        return client.get(path, headers=headers)
    body: Any = {"feedback": [feedback_item()]} if path.endswith("/feedback") else fresh()
    return client.post(path, content=json.dumps(body), headers=headers)


def now() -> int:
    return int(time.time())


JWT_FAILURES: list[tuple[str, Any]] = [
    ("no Authorization header", lambda: None),
    ("Basic instead of Bearer", lambda: "Basic dXNlcjpwYXNz"),
    ("not a JWT", lambda: "not.a.jwt"),
    ("alg none", lambda: unsigned(cds_claims(ISS, AUD), kid=EC_KID)),
    ("HMAC HS256", lambda: jwt.encode(cds_claims(ISS, AUD), "shared-secret-" * 4, algorithm="HS256",
                                      headers={"kid": EC_KID})),
    ("HMAC HS384", lambda: jwt.encode(cds_claims(ISS, AUD), "shared-secret-" * 4, algorithm="HS384",
                                      headers={"kid": EC_KID})),
    ("RS256 not accepted", lambda: sign(cds_claims(ISS, AUD), RSA_KEY, "RS256", RSA_KID)),
    ("ES256 not accepted", lambda: sign(cds_claims(ISS, AUD), ec_key_p256(), "ES256", EC_KID)),
    ("no iss", lambda: es384(without("iss"))),
    ("no aud", lambda: es384(without("aud"))),
    ("no exp", lambda: es384(without("exp"))),
    ("no iat", lambda: es384(without("iat"))),
    ("no jti", lambda: es384(without("jti"))),
    ("expired", lambda: es384(cds_claims(ISS, AUD, exp=now() - 3600, iat=now() - 3900))),
    ("issued in the future", lambda: es384(cds_claims(ISS, AUD, iat=now() + 3600, exp=now() + 3900))),
    ("aud of another service", lambda: es384(cds_claims(ISS, BASE + "/cds-services/alk-order-sign"))),
    ("aud of another server", lambda: es384(cds_claims(ISS, "https://other.example.org" + PV))),
    ("untrusted iss", lambda: es384(cds_claims("https://evil.example.org", AUD))),
    ("jku not allow-listed", lambda: es384(jku="https://evil.example.org/jwks.json")),
    ("no kid", lambda: es384(kid=None)),
    ("unknown kid", lambda: es384(kid="no-such-kid")),
    ("signed with another key", lambda: es384(kid=EC_KID, key=OTHER_KEY)),
    ("typ not JWT", lambda: es384(typ="JWS")),
    ("no typ", lambda: jwt.encode(cds_claims(ISS, AUD), EC_KEY, algorithm="ES384",
                                  headers={"kid": EC_KID, "typ": None})),
    ("exp beyond the jti table's 64 bits", lambda: es384(cds_claims(ISS, AUD, exp=10**19))),
    ("exp a year ahead", lambda: es384(cds_claims(ISS, AUD, iat=now(), exp=now() + 365 * 86400))),
]


def without(claim: str) -> JSON:
    claims = cds_claims(ISS, AUD)
    del claims[claim]
    return claims


def ec_key_p256() -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


@pytest.mark.parametrize(("case", "token"), JWT_FAILURES, ids=[c[0] for c in JWT_FAILURES])
def test_jwt_failure_is_401_without_detail(secured: TestClient, case: str, token: Any) -> None:
    response = call_with(secured, token())
    assert response.status_code == 401, case
    assert response.headers["www-authenticate"] == "Bearer"
    text = response.text.lower()
    for word in ("expired", "signature", "issuer", "audience", "kid", "jti", "alg", "hmac"):
        assert word not in text, (case, word)


def test_valid_es384_and_rs384_are_accepted(secured: TestClient) -> None:
    assert call_with(secured, es384()).status_code == 200
    assert call_with(secured, sign(cds_claims(ISS, AUD), RSA_KEY, "RS384", RSA_KID)).status_code == 200
    assert call_with(secured, es384(cds_claims(ISS, [AUD]), jku=JWKS_URL)).status_code == 200


def test_replayed_jti_is_refused(secured: TestClient) -> None:
    token = es384()
    assert call_with(secured, token).status_code == 200
    assert call_with(secured, token).status_code == 401


def test_discovery_and_feedback_need_a_jwt_for_their_own_url(secured: TestClient) -> None:
    assert call_with(secured, None, "/cds-services").status_code == 401
    assert call_with(secured, es384(cds_claims(ISS, BASE + "/cds-services")), "/cds-services").status_code == 200
    feedback = PV + "/feedback"
    assert call_with(secured, es384(), feedback).status_code == 401  # aud is the service, not its feedback
    assert call_with(secured, es384(cds_claims(ISS, BASE + feedback)), feedback).status_code == 200


def test_unknown_service_with_a_valid_jwt_is_404(secured: TestClient) -> None:
    path = "/cds-services/nope"
    token = es384(cds_claims(ISS, BASE + path))
    response = secured.post(path, json=fresh(), headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 404


def test_every_service_is_listed_once() -> None:
    assert len({s.id for s in SERVICES}) == len(SERVICES)
