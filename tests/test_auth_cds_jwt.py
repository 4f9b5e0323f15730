"""CDS client JWTs (CDS Hooks 2.0 "Trusting CDS Clients"): every way a JWT must fail, and those that pass."""

from __future__ import annotations

import base64
import time
import uuid
from typing import Annotated, Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.testclient import TestClient

from alk_fhir.auth.cds_jwt import CdsClientAuth, CdsJwtError, verify_cds_jwt
from alk_fhir.auth.jwks import JwksCache, JwksFetchNeeded
from alk_fhir.auth.replay import MemoryJtiCache
from alk_fhir.auth.state import install_auth_state
from alk_fhir.auth.tokens import TokenIssuer
from alk_fhir.config import Settings
from fixtures.auth.jwtkit import StaticFetcher, cds_claims, ec_key, public_jwk, rsa_key, sign, unsigned

ISS = "https://ehr.example.org"
JWKS_URL = "https://ehr.example.org/.well-known/jwks.json"
AUD = "https://alk.example.org/cds-services/alk-patient-view"
EC_KID, RSA_KID = "ec-1", "rsa-1"
EC_KEY, RSA_KEY = ec_key(), rsa_key()


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fetcher() -> StaticFetcher:
    return StaticFetcher({JWKS_URL: {"keys": [public_jwk(EC_KEY, EC_KID), public_jwk(RSA_KEY, RSA_KID)]}})


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def verify(fetcher: StaticFetcher, clock: Clock) -> Any:
    jwks = JwksCache({JWKS_URL}, fetcher=fetcher, clock=clock)
    replay = MemoryJtiCache()

    def run(token: str, audience: str = AUD) -> dict[str, Any]:
        return verify_cds_jwt(token, audience=audience, trusted_issuers={ISS: JWKS_URL}, jwks=jwks,
                              replay=replay, leeway=60)
    return run


def es384(claims: dict[str, Any] | None = None, kid: str | None = EC_KID, **headers: Any) -> str:
    return sign(claims if claims is not None else cds_claims(ISS, AUD), EC_KEY, "ES384", kid, **headers)


def test_valid_es384_and_rs384_pass(verify: Any) -> None:
    claims = verify(es384(cds_claims(ISS, AUD, tenant="2ddd6c3a")))
    assert claims["iss"] == ISS and claims["aud"] == AUD and claims["tenant"] == "2ddd6c3a"
    claims = verify(sign(cds_claims(ISS, AUD), RSA_KEY, "RS384", RSA_KID))
    assert claims["iss"] == ISS


def test_aud_may_be_an_array_and_jku_may_name_the_configured_url(verify: Any) -> None:
    assert verify(es384(cds_claims(ISS, [AUD]), jku=JWKS_URL))["aud"] == [AUD]


def test_iat_slightly_ahead_within_clock_skew_passes(verify: Any) -> None:
    assert verify(es384(cds_claims(ISS, AUD, iat=int(time.time()) + 30)))["iss"] == ISS


def refused(verify: Any, token: str, fragment: str, audience: str = AUD) -> None:
    with pytest.raises(CdsJwtError) as info:
        verify(token, audience)
    assert fragment.lower() in str(info.value).lower()


def test_alg_none_is_refused(verify: Any) -> None:
    refused(verify, unsigned(cds_claims(ISS, AUD), kid=EC_KID), "alg 'none'")


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_is_refused(verify: Any, alg: str) -> None:
    token = sign(cds_claims(ISS, AUD), b"s" * 64, alg, EC_KID)
    refused(verify, token, f"alg '{alg}'")


def test_rs256_and_es256_are_refused(verify: Any) -> None:
    refused(verify, sign(cds_claims(ISS, AUD), RSA_KEY, "RS256", RSA_KID), "alg 'RS256'")
    refused(verify, sign(cds_claims(ISS, AUD), ec_key(ec.SECP256R1()), "ES256", EC_KID), "alg 'ES256'")


@pytest.mark.parametrize("claim", ["exp", "iat", "jti", "aud", "iss"])
def test_missing_required_claim_is_refused(verify: Any, claim: str) -> None:
    claims = cds_claims(ISS, AUD)
    del claims[claim]
    with pytest.raises(CdsJwtError):
        verify(es384(claims))


def test_expired_is_refused(verify: Any) -> None:
    now = int(time.time())
    refused(verify, es384(cds_claims(ISS, AUD, iat=now - 600, exp=now - 120)), "Expired")


def test_iat_in_the_future_beyond_skew_is_refused(verify: Any) -> None:
    now = int(time.time())
    refused(verify, es384(cds_claims(ISS, AUD, iat=now + 600, exp=now + 900)), "iat")


def test_wrong_audience_is_refused(verify: Any) -> None:
    refused(verify, es384(cds_claims(ISS, "https://alk.example.org/cds-services/other")), "audience")


def test_untrusted_issuer_is_refused_without_fetching(verify: Any, fetcher: StaticFetcher) -> None:
    refused(verify, es384(cds_claims("https://evil.example", AUD)), "not trusted")
    assert fetcher.calls == []


def test_jku_not_allow_listed_is_refused_without_fetching(verify: Any, fetcher: StaticFetcher) -> None:
    refused(verify, es384(jku="https://evil.example/jwks.json"), "jku")
    assert fetcher.calls == []


def test_missing_kid_and_wrong_typ_are_refused(verify: Any) -> None:
    refused(verify, es384(kid=None), "kid")
    refused(verify, es384(typ="at+jwt"), "typ")


def test_unknown_kid_refetches_once_then_refuses(verify: Any, fetcher: StaticFetcher, clock: Clock) -> None:
    verify(es384())
    assert fetcher.calls == [JWKS_URL]
    refused(verify, es384(kid="rotated"), "kid 'rotated'")
    assert fetcher.calls == [JWKS_URL]  # fetched moments ago: no refetch storm on random kids
    clock.now += 30
    refused(verify, es384(kid="rotated"), "kid 'rotated'")
    assert fetcher.calls == [JWKS_URL, JWKS_URL]  # one refetch, still unknown


def test_key_rotation_is_picked_up_by_the_refetch(verify: Any, fetcher: StaticFetcher, clock: Clock) -> None:
    verify(es384())
    new_key = ec_key()
    fetcher.sets[JWKS_URL]["keys"].append(public_jwk(new_key, "ec-2"))
    clock.now += 30
    assert verify(sign(cds_claims(ISS, AUD), new_key, "ES384", "ec-2"))["iss"] == ISS
    assert len(fetcher.calls) == 2


def test_bad_signature_is_refused(verify: Any) -> None:
    refused(verify, sign(cds_claims(ISS, AUD), ec_key(), "ES384", EC_KID), "Signature")
    header, _, signature = es384().split(".")
    other_payload = es384(cds_claims(ISS, AUD, tenant="x")).split(".")[1]
    refused(verify, f"{header}.{other_payload}.{signature}", "Signature")


def test_key_of_the_wrong_type_for_alg_is_refused(verify: Any) -> None:
    # RS384 header pointing at the EC key's kid: kty does not fit the algorithm.
    refused(verify, sign(cds_claims(ISS, AUD), RSA_KEY, "RS384", EC_KID), "no single RS384 key")


def test_replayed_jti_is_refused(verify: Any) -> None:
    token = es384()
    verify(token)
    refused(verify, token, "already used")
    # A new JWT that reuses the jti is a replay too.
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    refused(verify, es384(cds_claims(ISS, AUD, jti=jti)), "already used")


def test_garbage_is_refused(verify: Any) -> None:
    refused(verify, "not-a-jwt", "not a JWT")
    segment = base64.urlsafe_b64encode(b"[" * 3_000 + b"]" * 3_000).decode().rstrip("=")  # within 8 kB
    refused(verify, f"{segment}.e30.c2ln", "not a JWT")  # nested past the parser's recursion: still a 401
    refused(verify, "W10.e30.c2ln", "JSON objects")  # header an array
    refused(verify, "e30.bm90IGpzb24.c2ln", "not a JWT")  # claims not JSON


# --- the FastAPI dependency -----------------------------------------------------------------------

BASE = "https://alk.example.org"
SANDBOX = "https://sandbox.cds-hooks.org"
SANDBOX_JWKS = "https://sandbox.cds-hooks.org/.well-known/jwks.json"
SANDBOX_KID = "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f"
SANDBOX_KEY = ec_key()
CdsCaller = Annotated[str | None, Depends(CdsClientAuth())]


def cds_app(cds_auth: str = "jwt") -> FastAPI:
    """A stand-in CDS router guarded the way the real one is: ``Depends(CdsClientAuth())``."""
    settings = Settings(base_url=BASE, cds_auth=cds_auth, cors_origins=(SANDBOX,),
                        cds_trusted_issuers={ISS: JWKS_URL, SANDBOX: SANDBOX_JWKS})
    app = FastAPI()
    app.state.settings = settings
    app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                       allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type"])
    fetcher = StaticFetcher({JWKS_URL: {"keys": [public_jwk(EC_KEY, EC_KID)]},
                             SANDBOX_JWKS: {"keys": [public_jwk(SANDBOX_KEY, SANDBOX_KID, "ES384")]}})
    install_auth_state(app, fetcher=fetcher, tokens=TokenIssuer(ec_key(), BASE))

    @app.get("/cds-services")
    def discovery(issuer: CdsCaller) -> dict[str, Any]:
        return {"services": [{"id": "alk-patient-view", "hook": "patient-view"}], "caller": issuer}

    @app.post("/cds-services/{service_id}")
    async def hook(service_id: str, request: Request, issuer: CdsCaller) -> dict[str, Any]:
        body = await request.json()
        return {"cards": [], "caller": issuer, "hookInstance": body["hookInstance"]}

    return app


def sandbox_jwt(audience: str) -> str:
    """Exactly what the public CDS Hooks sandbox sends (its jwt-generator): ES384, kid, typ, jku."""
    now = int(time.time())
    payload = {"iss": SANDBOX, "aud": audience, "exp": now + 300, "iat": now, "jti": str(uuid.uuid4())}
    return jwt.encode(payload, SANDBOX_KEY, algorithm="ES384",
                      headers={"alg": "ES384", "typ": "JWT", "kid": SANDBOX_KID, "jku": SANDBOX_JWKS})


def patient_view_request() -> dict[str, Any]:
    return {"hookInstance": str(uuid.uuid4()), "fhirServer": "https://launch.smarthealthit.org/v/r4/fhir",
            "hook": "patient-view", "context": {"userId": "Practitioner/example", "patientId": "1288992"},
            "prefetch": {"patient": {"resourceType": "Patient", "id": "1288992"}}}


def test_dependency_refuses_without_detail() -> None:
    client = TestClient(cds_app())
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer " + es384(
            cds_claims(ISS, AUD, exp=int(time.time()) - 3600, iat=int(time.time()) - 4000))}):
        response = client.post("/cds-services/alk-patient-view", json=patient_view_request(), headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        text = response.text.lower()
        assert "expired" not in text and "signature" not in text and "jwt" not in text


def test_dependency_checks_aud_against_configured_base_url_and_path() -> None:
    client = TestClient(cds_app())
    ok = client.post("/cds-services/alk-patient-view", json=patient_view_request(),
                     headers={"Authorization": f"Bearer {es384()}"})
    assert ok.status_code == 200 and ok.json()["caller"] == ISS
    wrong_service = es384(cds_claims(ISS, f"{BASE}/cds-services/other-service"))
    response = client.post("/cds-services/alk-patient-view", json=patient_view_request(),
                           headers={"Authorization": f"Bearer {wrong_service}"})
    assert response.status_code == 401


def test_auth_off_lets_requests_through_without_jwt() -> None:
    response = TestClient(cds_app("off")).post("/cds-services/alk-patient-view", json=patient_view_request())
    assert response.status_code == 200 and response.json()["caller"] is None


def test_as_the_cds_hooks_sandbox_would() -> None:
    client = TestClient(cds_app())
    origin = {"Origin": SANDBOX}
    preflight = client.options("/cds-services/alk-patient-view", headers={
        **origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == SANDBOX
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()

    discovery = client.get("/cds-services", headers={
        **origin, "Authorization": f"Bearer {sandbox_jwt(BASE + '/cds-services')}"})
    assert discovery.status_code == 200 and discovery.json()["caller"] == SANDBOX
    assert discovery.headers["access-control-allow-origin"] == SANDBOX

    request = patient_view_request()
    token = sandbox_jwt(BASE + "/cds-services/alk-patient-view")
    call = client.post("/cds-services/alk-patient-view", json=request,
                       headers={**origin, "Authorization": f"Bearer {token}",
                                "Content-Type": "application/json"})
    assert call.status_code == 200
    assert call.json() == {"cards": [], "caller": SANDBOX, "hookInstance": request["hookInstance"]}
    replay = client.post("/cds-services/alk-patient-view", json=request,
                         headers={**origin, "Authorization": f"Bearer {token}"})
    assert replay.status_code == 401

    other_origin = client.options("/cds-services/alk-patient-view", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in other_origin.headers


def test_without_fetching_an_uncached_key_asks_for_a_fetch_and_consumes_nothing(fetcher: StaticFetcher) -> None:
    """The dependency verifies on the event loop with allow_fetch=False and falls back to the thread
    pool only for a JWKS fetch: that first attempt must not have recorded the jti."""
    jwks = JwksCache({JWKS_URL}, fetcher=fetcher)
    replay = MemoryJtiCache()
    token = es384()

    def run(allow_fetch: bool) -> dict[str, Any]:
        return verify_cds_jwt(token, audience=AUD, trusted_issuers={ISS: JWKS_URL}, jwks=jwks, replay=replay,
                              allow_fetch=allow_fetch)
    with pytest.raises(JwksFetchNeeded):
        run(False)
    assert fetcher.calls == []
    assert run(True)["iss"] == ISS  # the same token: its jti was not spent by the first attempt
    assert fetcher.calls == [JWKS_URL]
    with pytest.raises(CdsJwtError, match="already used"):
        run(False)  # cached now: no fetch needed, and the replay is refused
    second = es384()
    assert verify_cds_jwt(second, audience=AUD, trusted_issuers={ISS: JWKS_URL}, jwks=jwks, replay=replay,
                          allow_fetch=False)["iss"] == ISS
    assert fetcher.calls == [JWKS_URL]
