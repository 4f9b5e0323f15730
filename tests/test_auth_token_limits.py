"""CDS client JWTs at the edges of their numbers (issue 12): out-of-range NumericDates, the lifetime
cap, ``typ``, and how long a seen ``jti`` is kept.

The HTTP tests run the CDS client check against the store's replay table, on SQLite and (with
ALK_FHIR_TEST_POSTGRES_URL) on PostgreSQL, because that is where ``exp`` = 10¹⁹ used to become a
500 (SQLite ``OverflowError``, PostgreSQL ``NumericValueOutOfRange``).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import jwt
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select, text

from alk_fhir.auth.cds_jwt import CdsClientAuth, CdsJwtError, verify_cds_jwt
from alk_fhir.auth.claims import MAX_NUMERIC_DATE, numeric_date_problem
from alk_fhir.auth.jwks import JwksCache
from alk_fhir.auth.replay import MemoryJtiCache
from alk_fhir.auth.state import install_auth_state
from alk_fhir.auth.tokens import TokenIssuer
from alk_fhir.config import Settings
from alk_fhir.store import InvalidRecord, Store, StoreJtiCache, open_store
from alk_fhir.store.db import normalise_url, read_session
from alk_fhir.store.models import SeenJti
from fixtures.auth.jwtkit import StaticFetcher, cds_claims, ec_key, public_jwk, sign

ISS = "https://ehr.example.org"
JWKS_URL = "https://ehr.example.org/.well-known/jwks.json"
BASE = "https://alk.example.org"
PATH = "/cds-services/alk-patient-view"
AUD = BASE + PATH
KID = "ec-1"
KEY = ec_key()
LEEWAY = 60
PG_URL = os.environ.get("ALK_FHIR_TEST_POSTGRES_URL")


def token(claims: dict[str, Any] | None = None, **headers: Any) -> str:
    return sign(claims if claims is not None else cds_claims(ISS, AUD), KEY, "ES384", KID, **headers)


def typeless() -> str:
    """No ``typ`` header at all (PyJWT adds ``typ: JWT`` unless told ``typ: None``)."""
    return jwt.encode(cds_claims(ISS, AUD), KEY, algorithm="ES384", headers={"kid": KID, "typ": None})


class RecordingCache(MemoryJtiCache):
    """Remembers like the real one and keeps what it was asked to store."""

    def __init__(self) -> None:
        super().__init__()
        self.expiries: list[int] = []

    def remember(self, key: str, expires_at: int) -> bool:
        self.expiries.append(expires_at)
        return super().remember(key, expires_at)


def verifier(replay: Any, max_lifetime: int = 300) -> Any:
    jwks = JwksCache({JWKS_URL}, fetcher=StaticFetcher({JWKS_URL: {"keys": [public_jwk(KEY, KID)]}}))

    def run(jwt_text: str) -> dict[str, Any]:
        return verify_cds_jwt(jwt_text, audience=AUD, trusted_issuers={ISS: JWKS_URL}, jwks=jwks, replay=replay,
                              leeway=LEEWAY, max_lifetime=max_lifetime)
    return run


def now() -> int:
    return int(time.time())


# --- the check itself -------------------------------------------------------------------------------

OUT_OF_RANGE = [
    ("exp 10**19", {"exp": 10**19}),
    ("exp 1e19 as a float", {"exp": 1e19}),
    ("exp infinite", {"exp": float("inf")}),
    ("exp NaN", {"exp": float("nan")}),
    ("exp negative beyond 64 bits", {"exp": -(10**19)}),
    ("exp a string", {"exp": "9999999999"}),
    ("exp true", {"exp": True}),
    ("iat 10**19", {"iat": 10**19}),
    ("iat a string", {"iat": str(now())}),
    ("nbf 10**30", {"nbf": 10**30}),
]


@pytest.mark.parametrize(("case", "claims"), OUT_OF_RANGE, ids=[c[0] for c in OUT_OF_RANGE])
def test_numeric_claims_out_of_range_are_refused_before_anything_is_stored(case: str, claims: dict[str, Any]) -> None:
    replay = RecordingCache()
    with pytest.raises(CdsJwtError):
        verifier(replay)(token(cds_claims(ISS, AUD, **claims)))
    assert replay.expiries == [], case  # never reached the replay table


def test_numeric_date_problem_names_the_claim() -> None:
    assert numeric_date_problem({"exp": 10**19}) == "exp is out of range"
    assert numeric_date_problem({"iat": "1"}) == "iat is not a number"
    assert numeric_date_problem({"exp": MAX_NUMERIC_DATE, "iat": 0, "nbf": 1.5}) is None
    assert numeric_date_problem({}) is None


def test_lifetime_is_capped_past_iat() -> None:
    verify = verifier(MemoryJtiCache())
    issued = now()
    assert verify(token(cds_claims(ISS, AUD, iat=issued, exp=issued + 300)))["iss"] == ISS
    with pytest.raises(CdsJwtError, match="at most 300 s"):
        verify(token(cds_claims(ISS, AUD, iat=issued, exp=issued + 301)))
    with pytest.raises(CdsJwtError, match="at most 300 s"):
        verify(token(cds_claims(ISS, AUD, iat=issued, exp=issued + 365 * 86400)))  # a year ahead
    longer = verifier(MemoryJtiCache(), max_lifetime=3600)
    assert longer(token(cds_claims(ISS, AUD, iat=issued, exp=issued + 3600)))["iss"] == ISS


def test_typ_must_be_jwt() -> None:
    verify = verifier(MemoryJtiCache())
    assert "typ" not in jwt.get_unverified_header(typeless())
    with pytest.raises(CdsJwtError, match="typ None"):
        verify(typeless())
    with pytest.raises(CdsJwtError, match="typ"):
        verify(token(typ="at+jwt"))
    assert verify(token(typ="JWT"))["iss"] == ISS
    assert verify(token(typ="jwt"))["iss"] == ISS  # media type names are case-insensitive (RFC 7515 §4.1.9)


def test_replay_entries_never_outlive_the_cap() -> None:
    replay = RecordingCache()
    verify = verifier(replay, max_lifetime=120)
    issued = now()
    verify(token(cds_claims(ISS, AUD, iat=issued, exp=issued + 120)))
    verify(token(cds_claims(ISS, AUD, iat=issued + 50, exp=issued + 170)))  # iat ahead, within the skew
    verify(token(cds_claims(ISS, AUD, iat=issued, exp=issued + 10.5)))  # fractional exp: rounded up
    assert replay.expiries == [issued + 120 + LEEWAY, issued + 170 + LEEWAY, issued + 11 + LEEWAY]
    # Whatever the token says, the entry ends within cap + 2 × skew of now (iat may be a skew ahead).
    assert all(e <= time.time() + 120 + 2 * LEEWAY for e in replay.expiries)


def test_the_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALK_FHIR_CDS_TOKEN_MAX_LIFETIME", raising=False)
    assert Settings.from_env().cds_token_max_lifetime == 300
    monkeypatch.setenv("ALK_FHIR_CDS_TOKEN_MAX_LIFETIME", "900")
    assert Settings.from_env().cds_token_max_lifetime == 900
    for bad in ("0", "3601", "five"):
        monkeypatch.setenv("ALK_FHIR_CDS_TOKEN_MAX_LIFETIME", bad)
        with pytest.raises(ValueError, match="ALK_FHIR_CDS_TOKEN_MAX_LIFETIME"):
            Settings.from_env()


# --- over HTTP, with the replay table in the database ---------------------------------------------

@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        opened = open_store(f"sqlite:///{tmp_path / 'jti.sqlite3'}")
        try:
            yield opened
        finally:
            opened.close()
        return
    if not PG_URL:
        pytest.skip("ALK_FHIR_TEST_POSTGRES_URL is not set")
    schema = f"alk_jti_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalise_url(PG_URL))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = normalise_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
        opened = open_store(url.render_as_string(hide_password=False))
        try:
            yield opened
        finally:
            opened.close()
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def guarded_app(store: Store, max_lifetime: int = 300) -> FastAPI:
    """A route guarded exactly as the CDS router is, the seen jti ids in ``store``."""
    app = FastAPI()
    app.state.settings = Settings(base_url=BASE, cds_auth="jwt", cds_trusted_issuers={ISS: JWKS_URL},
                                  cds_token_max_lifetime=max_lifetime)
    install_auth_state(app, fetcher=StaticFetcher({JWKS_URL: {"keys": [public_jwk(KEY, KID)]}}),
                       tokens=TokenIssuer(ec_key(), BASE), replay=StoreJtiCache(store))

    @app.post(PATH)
    def hook(issuer: Annotated[str | None, Depends(CdsClientAuth())]) -> dict[str, Any]:
        return {"cards": [], "caller": issuer}

    return app


def call(client: TestClient, jwt_text: str) -> Any:
    return client.post(PATH, json={}, headers={"Authorization": f"Bearer {jwt_text}"})


def test_out_of_range_claims_are_401_not_500(store: Store) -> None:
    client = TestClient(guarded_app(store), raise_server_exceptions=False)
    for case, claims in OUT_OF_RANGE:
        response = call(client, token(cds_claims(ISS, AUD, **claims)))
        assert response.status_code == 401, (case, response.status_code, response.text[:200])
        assert response.headers["www-authenticate"] == "Bearer"
    assert call(client, token()).status_code == 200  # and the table still works


def test_long_lived_and_typeless_tokens_are_401(store: Store) -> None:
    client = TestClient(guarded_app(store), raise_server_exceptions=False)
    issued = now()
    assert call(client, token(cds_claims(ISS, AUD, iat=issued, exp=issued + 365 * 86400))).status_code == 401
    assert call(client, typeless()).status_code == 401
    assert call(client, token(cds_claims(ISS, AUD, iat=issued, exp=issued + 300))).status_code == 200
    roomy = TestClient(guarded_app(store, max_lifetime=900), raise_server_exceptions=False)
    assert call(roomy, token(cds_claims(ISS, AUD, iat=issued, exp=issued + 900))).status_code == 200


def test_stored_replay_rows_end_within_the_cap(store: Store) -> None:
    client = TestClient(guarded_app(store, max_lifetime=120))
    issued = now()
    assert call(client, token(cds_claims(ISS, AUD, iat=issued, exp=issued + 120))).status_code == 200
    with read_session(store.engine) as session:
        expiries = list(session.execute(select(SeenJti.expires_at)).scalars())
    assert expiries == [issued + 120 + LEEWAY]


def test_the_store_refuses_an_expiry_its_column_cannot_hold(store: Store) -> None:
    """Defence in depth below the token check: a clear InvalidRecord, not a driver overflow."""
    for bad in (2**63, 10**19, -1):
        with pytest.raises(InvalidRecord, match="jti expiry"):
            store.remember_jti(f"k-{bad}", bad)
    assert store.remember_jti("k-ok", 2**63 - 1)
