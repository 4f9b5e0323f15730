"""The service driven the way the public CDS Hooks sandbox (https://sandbox.cds-hooks.org) drives a
CDS service: from the browser (CORS preflight), with its ES384 JWT carrying ``kid``, ``typ`` and
``jku`` and ``aud`` = the URL called, its request shape (``fhirServer`` of an open SMART server, no
``fhirAuthorization``, the prefetch keys it could fill), then feedback on a card.

The sandbox's FHIR server is stood in for by an in-memory source: nothing leaves the machine."""

from __future__ import annotations

import copy
import time
import uuid
from typing import Any

import jwt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from alk_fhir.auth import install_auth_state
from alk_fhir.auth.tokens import TokenIssuer
from alk_fhir.cds.feedback import MemoryFeedbackSink
from alk_fhir.cds.prefetch import FetchError
from fixtures.auth.jwtkit import StaticFetcher, ec_key, public_jwk
from test_cds_examples import BASE, cds_app, example

SANDBOX = "https://sandbox.cds-hooks.org"
SANDBOX_JWKS = "https://sandbox.cds-hooks.org/.well-known/jwks.json"
SANDBOX_KID = "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f"
SANDBOX_KEY = ec_key()
SANDBOX_FHIR = "https://launch.smarthealthit.org/v/r4/fhir"
USER = {"resourceType": "Practitioner", "id": "COREPRACTITIONER1", "name": [{"family": "Careful", "given": ["Adam"]}]}


class SandboxFhir:
    """The sandbox's FHIR server: serves the user's Practitioner, records what it was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.tokens: list[str | None] = []

    def open(self, base: str, token: str | None) -> SandboxFhir:
        assert base == SANDBOX_FHIR
        self.tokens.append(token)
        return self

    def get(self, url: str) -> Any:
        self.asked.append(url)
        if url == f"{SANDBOX_FHIR}/Practitioner/COREPRACTITIONER1":
            return USER
        raise FetchError(f"unexpected read {url}")


def sandbox_jwt(audience: str) -> str:
    """What the sandbox's jwt-generator signs: ES384 with kid, typ and jku headers."""
    now = int(time.time())
    payload = {"iss": SANDBOX, "aud": audience, "exp": now + 300, "iat": now, "jti": str(uuid.uuid4())}
    return jwt.encode(payload, SANDBOX_KEY, algorithm="ES384",
                      headers={"alg": "ES384", "typ": "JWT", "kid": SANDBOX_KID, "jku": SANDBOX_JWKS})


@pytest.fixture
def sandbox_app(tmp_path: Any) -> tuple[FastAPI, SandboxFhir]:
    app = cds_app(tmp_path, cds_auth="jwt", cds_trusted_issuers={SANDBOX: SANDBOX_JWKS}, cors_origins=(SANDBOX,))
    install_auth_state(app, fetcher=StaticFetcher({SANDBOX_JWKS: {"keys": [public_jwk(SANDBOX_KEY, SANDBOX_KID,
                                                                                       "ES384")]}}),
                       tokens=TokenIssuer(ec_key(), BASE))
    fhir = SandboxFhir()
    app.state.cds.open_source = fhir.open
    return app, fhir


def sandbox_request() -> dict[str, Any]:
    """The sandbox's patient-view call: open FHIR server, no fhirAuthorization, no ``user`` key (it cannot
    resolve ``{{userPractitionerId}}``), the other keys filled from its server."""
    body = copy.deepcopy(example("patient-view-polypharmacy-opioid-benzo"))
    del body["prefetch"]["user"]
    return {"hookInstance": str(uuid.uuid4()), "fhirServer": SANDBOX_FHIR, "hook": "patient-view",
            "context": {"userId": "Practitioner/COREPRACTITIONER1", "patientId": body["context"]["patientId"]},
            "prefetch": body["prefetch"]}


def test_as_the_cds_hooks_sandbox_would(sandbox_app: tuple[FastAPI, SandboxFhir]) -> None:
    app, fhir = sandbox_app
    client = TestClient(app)
    origin = {"Origin": SANDBOX}
    for path in ("/cds-services", "/cds-services/alk-patient-view", "/cds-services/alk-patient-view/feedback"):
        preflight = client.options(path, headers={**origin, "Access-Control-Request-Method": "POST",
                                                  "Access-Control-Request-Headers": "authorization,content-type"})
        assert preflight.status_code == 200, path
        assert preflight.headers["access-control-allow-origin"] == SANDBOX
        allowed = preflight.headers["access-control-allow-headers"].lower()
        assert "authorization" in allowed and "content-type" in allowed
        assert "POST" in preflight.headers["access-control-allow-methods"]

    listing = sandbox_jwt(BASE + "/cds-services")
    discovery = client.get("/cds-services", headers={**origin, "Authorization": f"Bearer {listing}"})
    assert discovery.status_code == 200 and discovery.headers["access-control-allow-origin"] == SANDBOX
    assert "alk-patient-view" in [s["id"] for s in discovery.json()["services"]]

    request = sandbox_request()
    token = sandbox_jwt(BASE + "/cds-services/alk-patient-view")
    call = client.post("/cds-services/alk-patient-view", json=request,
                       headers={**origin, "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    assert call.status_code == 200, call.text
    assert call.headers["access-control-allow-origin"] == SANDBOX
    cards = call.json()["cards"]
    assert [c["source"]["topic"]["code"] for c in cards] == ["2", "2.2", "2.5", "3.1", "3.3"]
    # The missing ``user`` key was read from the sandbox's open FHIR server, without a token.
    assert fhir.asked == [f"{SANDBOX_FHIR}/Practitioner/COREPRACTITIONER1"] and fhir.tokens == [None]
    coordinator = next(c for c in cards if c["source"]["topic"]["code"] == "3.1")
    task = coordinator["suggestions"][0]["actions"][0]["resource"]  # the user owns the task to appoint one
    assert task["owner"] == {"reference": "Practitioner/COREPRACTITIONER1", "display": "Adam Careful"}

    replay = client.post("/cds-services/alk-patient-view", json=request,
                         headers={**origin, "Authorization": f"Bearer {token}"})
    assert replay.status_code == 401

    sink = MemoryFeedbackSink()
    app.state.cds.feedback = sink
    feedback = {"feedback": [{"card": coordinator["uuid"], "outcome": "accepted",
                              "acceptedSuggestions": [{"id": coordinator["suggestions"][0]["uuid"]}],
                              "outcomeTimestamp": "2026-11-23T10:05:31Z"}]}
    stored = client.post("/cds-services/alk-patient-view/feedback", json=feedback, headers={
        **origin, "Authorization": f"Bearer {sandbox_jwt(BASE + '/cds-services/alk-patient-view/feedback')}"})
    assert stored.status_code == 200 and stored.headers["access-control-allow-origin"] == SANDBOX
    assert [item["card"] for _, item in sink.items] == [coordinator["uuid"]]


def test_other_origins_get_no_cors_grant(sandbox_app: tuple[FastAPI, SandboxFhir]) -> None:
    client = TestClient(sandbox_app[0])
    preflight = client.options("/cds-services/alk-patient-view", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers


def test_the_sandbox_without_its_jwt_gets_401(sandbox_app: tuple[FastAPI, SandboxFhir]) -> None:
    client = TestClient(sandbox_app[0])
    response = client.post("/cds-services/alk-patient-view", json=sandbox_request(), headers={"Origin": SANDBOX})
    assert response.status_code == 401 and response.headers["access-control-allow-origin"] == SANDBOX
    assert sandbox_app[1].asked == []
