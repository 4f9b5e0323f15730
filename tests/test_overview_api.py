"""The receiving endpoint /fhir/Bundle on the real app: validation, versions, searches, access, audit."""

from __future__ import annotations

import contextlib
import copy
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.auditevent import AuditEvent

from alk_fhir.api.app import create_app
from alk_fhir.config import Settings
from alk_fhir.overview import add_step, build_overview
from alk_fhir.store import Store
from fixtures.auth.jwtkit import assertion_claims, ec_key, public_jwk, rsa_key, sign
from fixtures.overview.kit import BSN, GGZ_URA, GP_URA, OTHER_URA, PATIENT_BSN, T1, T2, TODAY, URA, gp_record, package
from test_store import BACKENDS, database_url  # noqa: F401 (the fixture)

BASE = "https://alk.example.org"
TOKEN_URL = BASE + "/auth/token"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
READ, WRITE = "system/Bundle.read", "system/Bundle.write"
KEYS = {"gp": ec_key(), "ggz": ec_key(), "other": rsa_key(), "gp-reader": ec_key()}
ALGS = {"gp": "ES384", "ggz": "ES384", "other": "RS384", "gp-reader": "ES384"}


@dataclass
class Env:
    client: TestClient
    store: Store


def partner(client_id: str, ura: str, scopes: list[str]) -> dict[str, Any]:
    return {"client_id": client_id, "name": client_id, "organization": {"system": URA, "value": ura},
            "scopes": scopes, "jwks": {"keys": [public_jwk(KEYS[client_id], f"{client_id}-1", ALGS[client_id])]}}


@contextlib.contextmanager
def running(tmp_path: Path, url: str) -> Iterator[Env]:
    partners = tmp_path / "partners.json"
    partners.write_text(json.dumps([
        partner("gp", GP_URA, [READ, WRITE]), partner("ggz", GGZ_URA, [READ, WRITE]),
        partner("other", OTHER_URA, [READ, WRITE]), partner("gp-reader", GP_URA, [READ]),
    ]), encoding="utf-8")
    settings = Settings(base_url=BASE, database_url=url, partners_file=str(partners), cds_auth="off")
    app = create_app(settings, package())
    with TestClient(app, base_url=BASE) as client:
        yield Env(client, app.state.store)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with running(tmp_path, f"sqlite:///{tmp_path / 'store.sqlite3'}") as started:
        yield started


def assertion(client_id: str, **claims: Any) -> str:
    key = claims.pop("key", KEYS[client_id])
    return sign(assertion_claims(client_id, TOKEN_URL, **claims), key, ALGS[client_id], f"{client_id}-1")


def token_response(env: Env, client_assertion: str, scope: str) -> Any:
    return env.client.post("/auth/token", data={
        "grant_type": "client_credentials", "client_assertion_type": JWT_BEARER,
        "client_assertion": client_assertion, "scope": scope})


def bearer(env: Env, client_id: str, scope: str = f"{READ} {WRITE}") -> dict[str, str]:
    response = token_response(env, assertion(client_id), scope)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def gp_document(**options: Any) -> dict[str, Any]:
    options.setdefault("timestamp", T1)
    return build_overview(gp_record(), package(), today=TODAY, recipient=f"{URA}|{GGZ_URA}", **options)


def post(env: Env, doc: Any, headers: dict[str, str], **extra: str) -> Any:
    return env.client.post("/fhir/Bundle", content=json.dumps(doc),
                           headers={**headers, "Content-Type": "application/fhir+json", **extra})


def refusals(env: Env) -> list[dict[str, Any]]:
    events = env.store.list_audit(outcome="4", limit=1000)
    for event in events:
        AuditEvent.model_validate(event)
    return events


def last_refusal(env: Env) -> dict[str, Any]:
    return refusals(env)[0]  # newest first


def test_create_read_search_history(env: Env) -> None:
    gp = bearer(env, "gp")
    doc = gp_document()
    first = post(env, doc, gp, **{"If-None-Exist": f"identifier=urn:ietf:rfc:3986|{doc['identifier']['value']}"})
    assert first.status_code == 201, first.text
    stored = first.json()
    doc_id = stored["id"]
    assert stored["meta"]["versionId"] == "1" and first.headers["ETag"] == 'W/"1"'
    assert first.headers["Location"] == f"{BASE}/fhir/Bundle/{doc_id}/_history/1"
    assert first.headers["content-type"].startswith("application/fhir+json")

    again = post(env, doc, gp)  # the same document again: nothing new
    assert again.status_code == 200 and again.json()["meta"]["versionId"] == "1"

    ggz = bearer(env, "ggz")
    read = env.client.get(f"/fhir/Bundle/{doc_id}", headers=ggz)
    assert read.status_code == 200 and read.json()["identifier"] == doc["identifier"]
    for query in (f"identifier=urn:ietf:rfc:3986|{doc['identifier']['value']}",
                  f"composition.patient.identifier={BSN}|{PATIENT_BSN}",
                  f"composition.patient.identifier={PATIENT_BSN}"):
        found = env.client.get(f"/fhir/Bundle?{query}", headers=ggz).json()
        assert found["type"] == "searchset" and found["total"] == 1, query
        assert found["entry"][0]["fullUrl"] == f"{BASE}/fhir/Bundle/{doc_id}"
    none = env.client.get(f"/fhir/Bundle?composition.patient.identifier={BSN}|000000000", headers=ggz).json()
    assert none["total"] == 0 and "entry" not in none

    newer = add_step(stored, package(), description="Stap 2: afbouw oxazepam", start="2027-02-15",
                     performer="Practitioner/prac-gp-jansen", goal="Zonder oxazepam", timestamp=T2)
    second = post(env, newer, gp, Prefer="return=minimal")
    assert second.status_code == 200 and second.content == b"" and second.headers["ETag"] == 'W/"2"'
    history = env.client.get(f"/fhir/Bundle/{doc_id}/_history", headers=ggz).json()
    assert history["type"] == "history" and history["total"] == 2
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]
    assert history["entry"][1]["response"]["status"] == "201 Created"
    old = env.client.get(f"/fhir/Bundle/{doc_id}/_history/1", headers=ggz)
    assert old.status_code == 200 and old.json()["timestamp"] == T1
    assert env.client.get(f"/fhir/Bundle/{doc_id}", headers=ggz).json()["timestamp"] == T2

    allowed = env.store.list_audit(outcome="0", subtype="create", limit=10)
    assert [e["outcomeDesc"] for e in allowed] == ["stored version 2", "unchanged: version 1 kept, nothing stored",
                                                  "stored version 1"]
    assert allowed[0]["agent"][0]["who"]["identifier"] == {"system": URA, "value": GP_URA}
    reads = env.store.list_audit(outcome="0", subtype="read", limit=10)
    assert reads and all(e["agent"][0]["altId"] == "ggz" for e in reads)


def test_no_token_is_401_and_audited(env: Env) -> None:
    for method, path in (("GET", "/fhir/Bundle?identifier=x"), ("POST", "/fhir/Bundle"), ("GET", "/fhir/Bundle/x")):
        response = env.client.request(method, path)
        assert response.status_code == 401, path
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.json()["resourceType"] == "OperationOutcome"
    events = refusals(env)
    assert len(events) == 3 and {e["subtype"][0]["code"] for e in events} == {"search", "create", "read"}
    garbage = env.client.get("/fhir/Bundle/x", headers={"Authorization": "Bearer not-a-token"})
    assert garbage.status_code == 401 and 'error="invalid_token"' in garbage.headers["WWW-Authenticate"]
    assert len(refusals(env)) == 4


@pytest.mark.parametrize(("make", "why"), [
    (lambda: assertion("gp", exp=int(time.time()) - 600, iat=int(time.time()) - 900), "expired"),
    (lambda: assertion("gp", key=ec_key()), "wrongly signed"),
    (lambda: assertion("gp", aud="https://elsewhere.example/token"), "other audience"),
])
def test_bad_assertions_get_no_token(env: Env, make: Any, why: str) -> None:
    response = token_response(env, make(), WRITE)
    assert response.status_code == 401 and response.json()["error"] == "invalid_client", why
    event = last_refusal(env)
    assert event["subtype"][0]["code"] == "110122" and event["outcome"] == "4"


def test_replayed_assertion_is_refused(env: Env) -> None:
    once = assertion("gp")
    assert token_response(env, once, WRITE).status_code == 200
    replay = token_response(env, once, WRITE)
    assert replay.status_code == 401 and replay.json()["error"] == "invalid_client"
    assert "invalid_client" in last_refusal(env)["outcomeDesc"]


def test_scope_and_partner_rules(env: Env) -> None:
    doc = gp_document()
    reader = bearer(env, "gp-reader", READ)
    refused = post(env, doc, reader)
    assert refused.status_code == 403 and 'insufficient_scope' in refused.headers["WWW-Authenticate"]
    assert last_refusal(env)["agent"][0]["altId"] == "gp-reader"

    other = bearer(env, "other")
    forged = post(env, doc, other)  # another partner sends the GP's document
    assert forged.status_code == 403
    assert forged.json()["issue"][0]["diagnostics"] == "the document's custodian is not your organisation"
    event = last_refusal(env)
    assert event["agent"][0]["who"]["identifier"]["value"] == OTHER_URA
    assert event["entity"][0]["what"]["identifier"] == doc["identifier"]

    created = post(env, doc, bearer(env, "gp"))
    doc_id = created.json()["id"]
    unknown_id = str(uuid.uuid4())
    for suffix in ("", "/_history", "/_history/1"):
        # No existence oracle: a document the partner may not read answers exactly like an unknown one.
        denied = env.client.get(f"/fhir/Bundle/{doc_id}{suffix}", headers=other)
        refusal = last_refusal(env)
        unknown = env.client.get(f"/fhir/Bundle/{unknown_id}{suffix}", headers=other)
        assert denied.status_code == unknown.status_code == 404, suffix
        assert denied.headers["content-type"] == unknown.headers["content-type"]
        assert denied.text.replace(doc_id, "ID") == unknown.text.replace(unknown_id, "ID"), suffix
        # ... while the audit still records the refusal of an existing document as such.
        assert refusal["outcome"] == "4" and "refused" in refusal["outcomeDesc"], refusal
        assert refusal["entity"][0]["what"]["reference"].startswith(f"Bundle/{doc_id}")
        assert "refused" not in last_refusal(env)["outcomeDesc"]
    search = env.client.get(f"/fhir/Bundle?composition.patient.identifier={BSN}|{PATIENT_BSN}", headers=other)
    assert search.status_code == 200 and search.json()["total"] == 0  # not addressed: not listed
    assert env.client.get("/fhir/Bundle/unknown", headers=other).status_code == 404
    assert last_refusal(env)["outcomeDesc"] == "Bundle/unknown not found"


def test_invalid_documents_get_422_with_the_outcome(env: Env) -> None:
    gp = bearer(env, "gp")
    doc = gp_document()
    broken = copy.deepcopy(doc)
    del broken["entry"][0]["resource"]["section"][3]  # nine sections: the profile wants ten
    response = post(env, broken, gp)
    assert response.status_code == 422
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert any(i["severity"] == "error" for i in outcome["issue"])
    assert last_refusal(env)["subtype"][0]["code"] == "create"
    no_bsn = copy.deepcopy(doc)
    for entry in no_bsn["entry"]:
        if entry["resource"]["resourceType"] == "Patient":
            del entry["resource"]["identifier"]
    response = post(env, no_bsn, gp)
    assert response.status_code == 422 and "subject has no identifier" in response.text
    assert env.store.search_by_identifier(None, doc["identifier"]["value"]) == []


def test_bad_requests_are_400_with_an_outcome(env: Env) -> None:
    gp = bearer(env, "gp")
    bad_json = env.client.post("/fhir/Bundle", content=b"{", headers={**gp, "Content-Type": "application/fhir+json"})
    assert bad_json.status_code == 400 and bad_json.json()["resourceType"] == "OperationOutcome"
    patient = post(env, {"resourceType": "Patient"}, gp)
    assert patient.status_code == 400
    doc = gp_document()
    mismatch = post(env, doc, gp, **{"If-None-Exist": "identifier=urn:ietf:rfc:3986|urn:uuid:other"})
    assert mismatch.status_code == 400 and "own Bundle.identifier" in mismatch.text
    assert env.client.get("/fhir/Bundle?subject=x", headers=gp).status_code == 400
    assert env.client.get("/fhir/Bundle", headers=gp).status_code == 400
    assert len(refusals(env)) == 5


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
def test_ids_and_tokens_no_database_column_should_see_are_refused(
        tmp_path: Path, database_url: str) -> None:  # noqa: F811 (the fixture)
    """A NUL byte (PostgreSQL text cannot hold one) or a version number past any integer column: 404 for
    reads, 400 for searches, audited, never a 500 — on SQLite and on PostgreSQL."""
    with running(tmp_path, database_url) as env:
        gp = bearer(env, "gp")
        assert post(env, gp_document(), gp).status_code == 201
        for path in ("/fhir/Bundle/a%00b", "/fhir/Bundle/a%00b/_history", "/fhir/Bundle/x/_history/1%00",
                     "/fhir/Bundle/x/_history/99999999999999999999999", "/fhir/Bundle/" + "a" * 65):
            response = env.client.get(path, headers=gp)
            assert response.status_code == 404 and response.json()["resourceType"] == "OperationOutcome", path
        for query in ("identifier=a%00b", "composition.patient.identifier=x%00|y", "identifier=" + "v" * 3000):
            response = env.client.get(f"/fhir/Bundle?{query}", headers=gp)
            assert response.status_code == 400 and response.json()["resourceType"] == "OperationOutcome", query
        nul = gp_document()
        nul["identifier"]["value"] = "urn:uuid:a\x00b"
        response = post(env, nul, gp)
        assert response.status_code == 422 and "control characters" in response.text
        assert len(refusals(env)) == 9


def test_capability_statement_lists_bundle(env: Env) -> None:
    statement = env.client.get("/fhir/metadata").json()
    bundle = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Bundle")
    assert {i["code"] for i in bundle["interaction"]} == {"create", "read", "vread", "history-instance",
                                                         "search-type"}
    assert bundle["versioning"] == "versioned" and bundle["conditionalCreate"] is True
    assert {p["name"] for p in bundle["searchParam"]} == {"identifier", "composition"}
    assert bundle["supportedProfile"] == ["https://alk-fhir.org/fhir/StructureDefinition/alk-case-overview-document"]
