"""SMART Backend Services: discovery, the token endpoint, RequirePartner, and the audit trail."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import jwt
import pytest
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.testclient import TestClient
from fhir.resources.R4B.auditevent import AuditEvent

from alk_fhir.auth import (
    AGB_SYSTEM,
    SCOPE_READ,
    SCOPE_REPORT,
    SCOPE_WRITE,
    URA_SYSTEM,
    MemoryAuditSink,
    Partner,
    PartnerRegistry,
    Principal,
    RequirePartner,
    audit_access,
    install_auth_state,
    may_read,
    may_write,
    smart_routes,
)
from alk_fhir.auth.tokens import TokenIssuer
from alk_fhir.config import Settings
from fixtures.auth.jwtkit import assertion_claims, ec_key, public_jwk, rsa_key, serve_jwks, sign, unsigned

BASE = "https://alk.example.org"
TOKEN_URL = BASE + "/auth/token"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ORG_A, ORG_B, ORG_C = (URA_SYSTEM, "11111111"), (AGB_SYSTEM, "22222222"), (URA_SYSTEM, "33333333")
KEY_A, KEY_B, KEY_C = ec_key(), rsa_key(), ec_key()

Reader = Annotated[Principal, Depends(RequirePartner(SCOPE_READ))]
Writer = Annotated[Principal, Depends(RequirePartner(SCOPE_WRITE))]
DOCUMENTS = {"overview-1": {"authors": [ORG_A], "custodian": ORG_A, "recipients": [ORG_B]}}


@dataclass
class Env:
    client: TestClient
    audit: MemoryAuditSink
    tokens: TokenIssuer


def build_app(partners: PartnerRegistry) -> tuple[FastAPI, MemoryAuditSink, TokenIssuer]:
    app = FastAPI()
    app.state.settings = Settings(base_url=BASE)
    audit = MemoryAuditSink()
    tokens = TokenIssuer(ec_key(), BASE)
    install_auth_state(app, partners=partners, audit=audit, tokens=tokens)
    app.include_router(smart_routes.router)

    @app.get("/fhir/Bundle/{doc_id}")
    def read(doc_id: str, request: Request, principal: Reader) -> dict[str, Any]:
        doc = DOCUMENTS[doc_id]
        allowed = may_read(principal, doc["authors"], doc["recipients"])
        audit_access(request, principal, interaction="read", outcome="0" if allowed else "4",
                     entity_reference=f"Bundle/{doc_id}", description=None if allowed else "not addressed")
        if not allowed:
            raise HTTPException(403)
        return {"id": doc_id}

    @app.post("/fhir/Bundle")
    def write(request: Request, principal: Writer) -> dict[str, Any]:
        ok = may_write(principal, [ORG_A], ORG_A)
        audit_access(request, principal, interaction="create", outcome="0" if ok else "4")
        if not ok:
            raise HTTPException(403)
        return {"created": True}

    return app, audit, tokens


@pytest.fixture
def env() -> Iterator[Env]:
    with serve_jwks({"keys": [public_jwk(KEY_B, "b-1")]}) as server:
        partners = PartnerRegistry([
            Partner("client-a", "Huisartsenpraktijk A", *ORG_A, frozenset({SCOPE_READ, SCOPE_WRITE}),
                    jwks={"keys": [public_jwk(KEY_A, "a-1")]}),
            Partner("client-b", "GGZ-instelling B", *ORG_B, frozenset({SCOPE_READ}), jwks_url=server.url),
            Partner("client-c", "Ziekenhuis C", *ORG_C, frozenset({SCOPE_READ}),
                    jwks={"keys": [public_jwk(KEY_C, "c-1")]}),
        ])
        app, audit, tokens = build_app(partners)
        yield Env(TestClient(app), audit, tokens)


def assertion(client_id: str = "client-a", key: Any = KEY_A, alg: str = "ES384", kid: str | None = "a-1",
              **claims: Any) -> str:
    headers = claims.pop("headers", {})
    return sign(assertion_claims(client_id, TOKEN_URL, **claims), key, alg, kid, **headers)


def token_request(env: Env, client_assertion: str, scope: str = SCOPE_READ, **form: str) -> Any:
    data = {"grant_type": "client_credentials", "client_assertion_type": JWT_BEARER,
            "client_assertion": client_assertion, "scope": scope, **form}
    return env.client.post("/auth/token", data={k: v for k, v in data.items() if v is not None})


def access_token(env: Env, client_id: str = "client-a", key: Any = KEY_A, alg: str = "ES384",
                 kid: str = "a-1", scope: str = SCOPE_READ) -> str:
    response = token_request(env, assertion(client_id, key, alg, kid), scope)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def last_event(env: Env) -> dict[str, Any]:
    event = env.audit.events[-1]
    AuditEvent.model_validate(event)  # every recorded event is valid FHIR R4 (R4B model, same shape)
    return event


# --- discovery ------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/.well-known/smart-configuration",
                                  "/fhir/.well-known/smart-configuration"])
def test_smart_configuration(env: Env, path: str) -> None:
    response = env.client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    config = response.json()
    assert config["token_endpoint"] == TOKEN_URL
    assert config["grant_types_supported"] == ["client_credentials"]
    assert config["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert set(config["token_endpoint_auth_signing_alg_values_supported"]) == {"ES384", "RS384"}
    assert set(config["scopes_supported"]) == {SCOPE_READ, SCOPE_WRITE, SCOPE_REPORT}
    assert "client-confidential-asymmetric" in config["capabilities"]


# --- token endpoint -------------------------------------------------------------------------------

def test_token_happy_path_es384_inline_jwks(env: Env) -> None:
    response = token_request(env, assertion(), f"{SCOPE_READ} {SCOPE_WRITE}")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 300
    assert set(body["scope"].split()) == {SCOPE_READ, SCOPE_WRITE}
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["sub"] == "client-a" and claims["iss"] == BASE
    assert claims["org"] == f"{URA_SYSTEM}|11111111"
    assert claims["exp"] - claims["iat"] == 300
    event = last_event(env)
    assert event["outcome"] == "0" and event["subtype"][0]["code"] == "110122"
    assert event["agent"][0]["who"]["identifier"] == {"system": URA_SYSTEM, "value": "11111111"}
    assert event["agent"][0]["altId"] == "client-a"


def test_token_happy_path_rs384_jwks_url_on_a_real_server(env: Env) -> None:
    token = access_token(env, "client-b", KEY_B, "RS384", "b-1")
    assert jwt.decode(token, options={"verify_signature": False})["org"] == f"{AGB_SYSTEM}|22222222"


def oauth_error(response: Any, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert response.headers["cache-control"] == "no-store"


def refused_client(env: Env, response: Any, reason: str, claimed: str | None = "client-a") -> None:
    oauth_error(response, 401, "invalid_client")
    assert response.json()["error_description"] == "client authentication failed"  # no hint which check
    event = last_event(env)
    assert event["outcome"] == "4" and event["action"] == "E"
    assert reason.lower() in event["outcomeDesc"].lower()
    if claimed:
        assert event["agent"][0]["altId"] == claimed


def test_expired_assertion(env: Env) -> None:
    now = int(time.time())
    refused_client(env, token_request(env, assertion(exp=now - 120, iat=now - 400)), "expired")


def test_assertion_living_longer_than_five_minutes(env: Env) -> None:
    refused_client(env, token_request(env, assertion(exp=int(time.time()) + 3600)), "five minutes")


def test_wrongly_signed_assertion(env: Env) -> None:
    refused_client(env, token_request(env, assertion(key=ec_key())), "signature")


def test_replayed_assertion_jti(env: Env) -> None:
    first = assertion()
    assert token_request(env, first).status_code == 200
    refused_client(env, token_request(env, first), "already used")


def test_unknown_client(env: Env) -> None:
    refused_client(env, token_request(env, assertion("client-x")), "unknown client", claimed="client-x")
    assert "who" not in last_event(env)["agent"][0]


def test_wrong_audience(env: Env) -> None:
    refused_client(env, token_request(env, assertion(aud=BASE + "/token")), "audience")


def test_iss_differs_from_sub(env: Env) -> None:
    refused_client(env, token_request(env, assertion(sub="client-c")), "sub")


def test_client_id_parameter_must_match(env: Env) -> None:
    refused_client(env, token_request(env, assertion(), client_id="client-c"), "client_id")


def test_jku_not_registered(env: Env) -> None:
    response = token_request(env, assertion(headers={"jku": "https://evil.example/jwks.json"}))
    refused_client(env, response, "jku")


def test_hmac_and_none_assertions(env: Env) -> None:
    refused_client(env, token_request(env, assertion(key=b"k" * 48, alg="HS384")), "alg")
    none = unsigned(assertion_claims("client-a", TOKEN_URL), kid="a-1")
    refused_client(env, token_request(env, none), "alg 'none'")
    refused_client(env, token_request(env, "not.a.jwt"), "not a JWT", claimed=None)


def test_key_of_another_partner(env: Env) -> None:
    # client-c's own key under client-a's name: must not authenticate client-a.
    refused_client(env, token_request(env, assertion("client-a", KEY_C, kid="a-1")), "signature")


def test_unsupported_grant_type(env: Env) -> None:
    response = token_request(env, assertion(), grant_type="authorization_code")
    oauth_error(response, 400, "unsupported_grant_type")
    assert last_event(env)["outcome"] == "4"


@pytest.mark.parametrize(("form", "error"), [
    ({"grant_type": None}, "invalid_request"),
    ({"client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"},
     "invalid_request"),
    ({"client_assertion": ""}, "invalid_request"),
    ({"scope": ""}, "invalid_request"),
])
def test_malformed_requests(env: Env, form: dict[str, Any], error: str) -> None:
    oauth_error(token_request(env, form.pop("client_assertion", assertion()), **form), 400, error)


def test_scope_not_granted(env: Env) -> None:
    response = token_request(env, assertion("client-c", KEY_C, kid="c-1"), f"{SCOPE_READ} {SCOPE_WRITE}")
    oauth_error(response, 400, "invalid_scope")
    assert SCOPE_WRITE in response.json()["error_description"]
    event = last_event(env)
    assert event["agent"][0]["who"]["identifier"]["value"] == "33333333"
    oauth_error(token_request(env, assertion(), "system/*.read"), 400, "invalid_scope")


def test_form_encoding_is_required_and_parameters_unique(env: Env) -> None:
    response = env.client.post("/auth/token", json={"grant_type": "client_credentials"})
    oauth_error(response, 400, "invalid_request")
    response = env.client.post("/auth/token", content="grant_type=client_credentials&grant_type=x",
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    oauth_error(response, 400, "invalid_request")
    assert "repeated" in response.json()["error_description"]


# --- RequirePartner and access to documents -------------------------------------------------------

def test_no_token_is_401_and_audited(env: Env) -> None:
    response = env.client.get("/fhir/Bundle/overview-1")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="alk-fhir"'
    event = last_event(env)
    assert event["outcome"] == "4" and event["subtype"][0]["code"] == "read" and event["action"] == "R"
    assert event["agent"][0]["requestor"] is True and "who" not in event["agent"][0]


@pytest.mark.parametrize("make_token", [
    lambda env: "garbage",
    lambda env: TokenIssuer(ec_key(), BASE).issue("client-a", *ORG_A, [SCOPE_READ]).access_token,
    lambda env: TokenIssuer(env.tokens._private_key, BASE, clock=lambda: time.time() - 3600)
    .issue("client-a", *ORG_A, [SCOPE_READ]).access_token,
    lambda env: assertion(),  # a client assertion is not an access token
], ids=["garbage", "foreign-key", "expired", "client-assertion"])
def test_invalid_token_is_401_invalid_token(env: Env, make_token: Any) -> None:
    headers = {"Authorization": f"Bearer {make_token(env)}"}
    response = env.client.get("/fhir/Bundle/overview-1", headers=headers)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert last_event(env)["outcome"] == "4"


def test_missing_scope_is_403_insufficient_scope(env: Env) -> None:
    token = access_token(env, "client-c", KEY_C, kid="c-1")
    response = env.client.post("/fhir/Bundle", json={}, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    event = last_event(env)
    assert event["subtype"][0]["code"] == "create" and event["action"] == "C" and event["outcome"] == "4"
    assert event["agent"][0]["who"]["identifier"] == {"system": URA_SYSTEM, "value": "33333333"}


def test_read_allowed_for_author_and_addressee_refused_for_others(env: Env) -> None:
    allowed = (("client-a", KEY_A, "ES384", "a-1"), ("client-b", KEY_B, "RS384", "b-1"))
    for client_id, key, alg, kid in allowed:
        token = access_token(env, client_id, key, alg, kid)
        response = env.client.get("/fhir/Bundle/overview-1", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
        event = last_event(env)
        assert event["outcome"] == "0" and event["entity"][0]["what"]["reference"] == "Bundle/overview-1"
    other = access_token(env, "client-c", KEY_C, kid="c-1")
    response = env.client.get("/fhir/Bundle/overview-1", headers={"Authorization": f"Bearer {other}"})
    assert response.status_code == 403
    event = last_event(env)
    assert event["outcome"] == "4" and event["agent"][0]["altId"] == "client-c"
    assert event["entity"][0]["what"]["reference"] == "Bundle/overview-1"


def test_write_with_write_scope(env: Env) -> None:
    token = access_token(env, scope=SCOPE_WRITE)
    response = env.client.post("/fhir/Bundle", json={}, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200 and last_event(env)["outcome"] == "0"
    # The same token does not carry the read scope.
    assert env.client.get("/fhir/Bundle/overview-1",
                          headers={"Authorization": f"Bearer {token}"}).status_code == 403
