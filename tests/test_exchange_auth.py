"""SMART Backend Services tokens against a token endpoint that checks the assertion with PyJWT."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import jwt
import pytest

from alk_fhir.exchange import BackendServicesAuth, ExchangeError, FhirClient
from alk_fhir.exchange.backend_services import jwk_thumbprint, load_private_key, public_jwk
from test_exchange_fake import BSN, Failure, FakeFhirServer, es384_key, make_document, rs384_key


@pytest.fixture
def fake() -> Iterator[FakeFhirServer]:
    server = FakeFhirServer()
    server.state.require_auth = True
    server.start()
    yield server
    server.stop()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def registered(fake: FakeFhirServer, alg: str = "ES384", client_id: str = "huisarts-app",
               **kwargs: Any) -> BackendServicesAuth:
    pem, public = es384_key() if alg == "ES384" else rs384_key()
    auth = BackendServicesAuth(fake.base, client_id, pem, alg=alg, **kwargs)
    fake.register_client(client_id, public, alg, auth.kid)
    return auth


def client_for(fake: FakeFhirServer, auth: BackendServicesAuth) -> FhirClient:
    return FhirClient(fake.base, auth, timeout=(1.0, 2.0), retries=4, backoff=0.02, max_backoff=0.1)


@pytest.mark.parametrize("alg", ["ES384", "RS384"])
def test_send_and_fetch_with_a_backend_services_token(fake: FakeFhirServer, alg: str) -> None:
    auth = registered(fake, alg)
    with client_for(fake, auth) as client:
        client.send_document(make_document("doc-1", "111"))
        found = client.fetch_documents(BSN, "111")
    assert [d["identifier"]["value"] for d in found] == ["doc-1"]
    [request] = fake.state.token_requests  # one token for both calls
    header, claims = request["header"], request["claims"]
    assert header == {"alg": alg, "kid": auth.kid, "typ": "JWT"}
    assert claims["iss"] == claims["sub"] == "huisarts-app"
    assert claims["aud"] == fake.token_url
    assert 0 < claims["exp"] - claims["iat"] <= 300
    assert request["scope"] == ["system/Bundle.write", "system/Bundle.read"]
    fhir_hits = [h for h in fake.state.hits if h.path.startswith("/fhir/Bundle")]
    assert {h.authorization for h in fhir_hits} == {f"Bearer {request['token']}"}


def test_without_a_token_the_server_refuses(fake: FakeFhirServer) -> None:
    with FhirClient(fake.base, retries=0) as client, pytest.raises(ExchangeError) as info:
        client.send_document(make_document("doc-1", "111"))
    assert info.value.status == 401
    assert "expired access token" in info.value.diagnostics


def test_token_is_cached_then_renewed_shortly_before_expiry(fake: FakeFhirServer) -> None:
    clock = Clock()
    auth = registered(fake, clock=clock, refresh_margin=30)
    first = auth()
    clock.now += 200
    assert auth() == first  # still valid (server lifetime is 300 s)
    clock.now += 69
    assert auth() == first  # 269 s: one second before the renewal point
    clock.now += 2
    second = auth()  # 271 s: inside the 30 s margin
    assert second != first
    assert len(fake.state.token_requests) == 2
    jtis = {r["claims"]["jti"] for r in fake.state.token_requests}
    assert len(jtis) == 2


def test_short_lived_tokens_are_renewed_after_expiry(fake: FakeFhirServer) -> None:
    fake.state.token_lifetime = 10
    clock = Clock()
    auth = registered(fake, clock=clock, refresh_margin=30)  # the margin shrinks to half the lifetime
    first = auth()
    clock.now += 4
    assert auth() == first
    clock.now += 2
    assert auth() != first
    assert len(fake.state.token_requests) == 2


def test_a_token_the_server_no_longer_accepts_is_renewed_once(fake: FakeFhirServer) -> None:
    auth = registered(fake)
    with client_for(fake, auth) as client:
        client.send_document(make_document("doc-1", "111"))
        fake.state.tokens.clear()  # revoked server-side
        assert client.fetch_documents(BSN, "111")
    assert len(fake.state.token_requests) == 2
    assert [h.status for h in fake.state.hits_for("GET", "/fhir/Bundle")] == [401, 200]


def test_unregistered_key_gets_a_clear_error(fake: FakeFhirServer) -> None:
    auth = registered(fake)
    other_pem, _ = es384_key()
    impostor = BackendServicesAuth(fake.base, "huisarts-app", other_pem, kid=auth.kid)
    with pytest.raises(ExchangeError) as info:
        impostor()
    assert info.value.status == 400
    assert info.value.diagnostics.startswith("invalid_client: assertion rejected")
    assert "token request for client huisarts-app" in info.value.diagnostics


def test_scope_beyond_the_registration_is_refused(fake: FakeFhirServer) -> None:
    auth = registered(fake, scopes=["system/Patient.read"])
    with pytest.raises(ExchangeError, match="invalid_scope"):
        auth()


def test_retried_token_request_uses_a_fresh_assertion(fake: FakeFhirServer) -> None:
    fake.state.fail("POST", "/auth/token", Failure("reset"))
    auth = registered(fake)
    auth.retry = auth.retry.__class__(retries=2, backoff=0.01)
    assert auth()
    assert len(fake.state.hits_for("POST", "/auth/token")) == 2
    assert len(fake.state.token_requests) == 1


def test_server_without_our_algorithm_is_refused_at_discovery(fake: FakeFhirServer) -> None:
    fake.state.signing_algs = ("RS384",)
    auth = registered(fake, "ES384")
    with pytest.raises(ExchangeError, match="does not accept ES384"):
        auth()
    assert fake.state.hits_for("POST", "/auth/token") == []


def test_discovery_accepts_the_smart_configuration_url(fake: FakeFhirServer) -> None:
    pem, _ = es384_key()
    auth = BackendServicesAuth(fake.base + "/.well-known/smart-configuration/", "c", pem)
    assert auth.token_endpoint == fake.token_url


def test_no_token_or_assertion_in_logs_or_errors(fake: FakeFhirServer,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    auth = registered(fake)
    fake.state.fail("POST", "/fhir/Bundle", Failure("status", 503, retry_after="0"))
    with client_for(fake, auth) as client:
        client.send_document(make_document("doc-1", "111"))
        fake.state.tokens.clear()  # forces a 401 and a second token
        client.fetch_documents(BSN, "111")
        fake.state.fail("GET", "/fhir/Bundle", Failure("status", 400))
        with pytest.raises(ExchangeError) as info:
            client.fetch_documents(BSN, "111")
    tokens = [r["token"] for r in fake.state.token_requests]
    assert len(tokens) == 2
    logged = caplog.text + "\n" + str(info.value)
    assert "access token for huisarts-app" in caplog.text  # the token events are logged ...
    assert "HTTP 401, renewing the access token" in caplog.text
    for token in tokens:
        assert token not in logged  # ... without the token
    assert "eyJ" not in logged  # nor any JWT (the client assertions)


def test_key_must_fit_the_algorithm() -> None:
    es_pem, _ = es384_key()
    rs_pem, _ = rs384_key()
    with pytest.raises(ValueError, match="RS384 needs an RSA"):
        load_private_key(es_pem, "RS384")
    with pytest.raises(ValueError, match="ES384 needs an EC"):
        load_private_key(rs_pem, "ES384")
    with pytest.raises(ValueError, match="alg must be one of"):
        load_private_key(es_pem, "HS256")
    with pytest.raises(ValueError, match="not an unencrypted PEM"):
        load_private_key(b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n", "ES384")


def test_public_jwk_verifies_the_assertion_and_its_kid_is_the_thumbprint(fake: FakeFhirServer) -> None:
    pem, _ = es384_key()
    auth = BackendServicesAuth(fake.base, "c", pem)
    [jwk] = auth.public_jwks()["keys"]
    assert jwk["kid"] == auth.kid == jwk_thumbprint(jwk)
    assert jwk["kty"] == "EC" and jwk["crv"] == "P-384" and "d" not in jwk
    key = jwt.PyJWK(jwk).key
    claims = jwt.decode(auth.client_assertion(), key, algorithms=["ES384"], audience=fake.token_url)
    assert claims["iss"] == "c"
    assert public_jwk(load_private_key(pem, "ES384"), "ES384")["kid"] == auth.kid  # stable


def test_rfc7638_thumbprint_example() -> None:
    # RFC 7638 §3.1: the example RSA key has thumbprint NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs
    n = ("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP"
         "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY"
         "368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0f"
         "M4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
    assert jwk_thumbprint({"kty": "RSA", "n": n, "e": "AQAB", "alg": "RS256", "kid": "x"}) == \
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_token_endpoint_without_tls_is_refused(fake: FakeFhirServer) -> None:
    pem, _ = es384_key()
    with pytest.raises(ValueError, match="not an https URL"):
        BackendServicesAuth("http://partner.example/fhir", "c", pem)
    auth = BackendServicesAuth(fake.base, "c", pem, token_endpoint="http://localhost:9/token")
    assert auth.token_endpoint == "http://localhost:9/token"  # given, not discovered
    with pytest.raises(ValueError, match="not an https URL"):
        BackendServicesAuth(fake.base, "c", pem, token_endpoint="http://partner.example/token")


def test_bad_settings_are_refused() -> None:
    pem, _ = es384_key()
    with pytest.raises(ValueError, match="client_id"):
        BackendServicesAuth("http://127.0.0.1:9/fhir", "", pem)
    with pytest.raises(ValueError, match="five minutes"):
        BackendServicesAuth("http://127.0.0.1:9/fhir", "c", pem, assertion_lifetime=600)
    with pytest.raises(ValueError, match="scope"):
        BackendServicesAuth("http://127.0.0.1:9/fhir", "c", pem, scopes=[])
