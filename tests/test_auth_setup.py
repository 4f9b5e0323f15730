"""Auth configuration and wiring: partners file, token key, settings, replay cache, audit shape, the app."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from fhir.resources.R4B.auditevent import AuditEvent

from alk_fhir.api.app import create_app
from alk_fhir.auth import SCOPE_READ, SCOPE_WRITE, URA_SYSTEM, Principal, may_read, may_write
from alk_fhir.auth.audit import audit_event
from alk_fhir.auth.partners import AGB_SYSTEM, PartnerConfigError, load_partners
from alk_fhir.auth.replay import MemoryJtiCache
from alk_fhir.auth.state import AuthState
from alk_fhir.auth.tokens import InvalidAccessToken, TokenIssuer, load_signing_key
from alk_fhir.config import Settings
from alk_fhir.knowledge import Package
from fixtures.auth.jwtkit import ec_key, public_jwk

# --- partners file --------------------------------------------------------------------------------


def partner(**overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"client_id": "client-a", "name": "Praktijk A",
                             "organization": {"system": URA_SYSTEM, "value": "11111111"},
                             "scopes": [SCOPE_READ, SCOPE_WRITE],
                             "jwks": {"keys": [public_jwk(ec_key(), "a-1")]}}
    entry.update(overrides)
    return {k: v for k, v in entry.items() if v is not None}


def write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "partners.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def test_partners_file_loads(tmp_path: Path) -> None:
    registry = load_partners(write(tmp_path, [
        partner(), partner(client_id="client-b", organization={"system": AGB_SYSTEM, "value": "01234567"},
                           jwks=None, jwks_url="https://b.example/jwks.json", scopes=[SCOPE_READ])]))
    assert len(registry) == 2
    b = registry.get("client-b")
    assert b is not None and b.organization_system == AGB_SYSTEM and b.scopes == {SCOPE_READ}
    assert registry.jwks_urls() == {"https://b.example/jwks.json"}
    assert registry.get("nobody") is None


@pytest.mark.parametrize(("data", "message"), [
    ("{not json", "not valid JSON"),
    ({"client_id": "x"}, "a JSON list of partners"),
    ([partner(organization={"system": "http://example.org/ids", "value": "1"})], "[0].organization.system"),
    ([partner(), partner(client_id="client-b", scopes=["system/*.*"])], "[1].scopes: unsupported system/*.*"),
    ([partner(jwks_url="https://a.example/jwks.json")], "exactly one of 'jwks' and 'jwks_url'"),
    ([partner(jwks=None, jwks_url="http://a.example/jwks.json")], "[0].jwks_url"),
    ([partner(jwks={"keys": [{**public_jwk(ec_key(), "a-1"), "d": "secret"}]})],
     "[0].jwks.keys[0]: a private"),
    ([partner(jwks={"keys": [{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}]})], "[0].jwks.keys[0]"),
    ([partner(), partner()], "client_id 'client-a' registered twice"),
    ([partner(name=None)], "[0].name"),
])
def test_broken_partners_file_names_file_and_path(tmp_path: Path, data: Any, message: str) -> None:
    path = write(tmp_path, data)
    with pytest.raises(PartnerConfigError) as info:
        load_partners(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_missing_partners_file(tmp_path: Path) -> None:
    with pytest.raises(PartnerConfigError, match="cannot be read"):
        load_partners(tmp_path / "absent.json")


# --- token signing key ----------------------------------------------------------------------------

def pem(key: Any) -> bytes:
    return bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))


def test_key_file_gives_the_same_tokens_on_every_worker(tmp_path: Path) -> None:
    path = tmp_path / "token-key.pem"
    path.write_bytes(pem(ec_key()))
    worker_1 = TokenIssuer(load_signing_key(path), "https://alk.example.org")
    worker_2 = TokenIssuer(load_signing_key(path), "https://alk.example.org")
    assert worker_1.kid == worker_2.kid
    issued = worker_1.issue("client-a", URA_SYSTEM, "11111111", [SCOPE_WRITE, SCOPE_READ])
    claims = worker_2.verify(issued.access_token)
    assert (claims.client_id, claims.organization_system, claims.organization_value) == \
        ("client-a", URA_SYSTEM, "11111111")
    assert claims.scopes == {SCOPE_READ, SCOPE_WRITE}
    with pytest.raises(InvalidAccessToken):
        TokenIssuer(ec_key(), "https://alk.example.org").verify(issued.access_token)
    with pytest.raises(InvalidAccessToken):  # issued for another service
        TokenIssuer(load_signing_key(path), "https://other.example.org").verify(issued.access_token)


@pytest.mark.parametrize(("content", "message"), [
    (b"not a key", "not an unencrypted PEM"),
    (None, "EC P-384"),
])
def test_bad_key_files(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(content if content is not None else pem(ec.generate_private_key(ec.SECP256R1())))
    with pytest.raises(ValueError, match=message):
        load_signing_key(path)


# --- settings -------------------------------------------------------------------------------------

def test_auth_settings_defaults_and_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ALK_FHIR_TOKEN_KEY_FILE", "ALK_FHIR_TOKEN_LIFETIME", "ALK_FHIR_AUTH_CLOCK_SKEW"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings.from_env()
    assert (settings.token_key_file, settings.token_lifetime, settings.auth_clock_skew) == ("", 300, 60)
    monkeypatch.setenv("ALK_FHIR_TOKEN_LIFETIME", "120")
    assert Settings.from_env().token_lifetime == 120
    monkeypatch.setenv("ALK_FHIR_TOKEN_LIFETIME", "3600")
    with pytest.raises(ValueError, match="ALK_FHIR_TOKEN_LIFETIME"):
        Settings.from_env()
    monkeypatch.setenv("ALK_FHIR_TOKEN_LIFETIME", "five")
    with pytest.raises(ValueError, match="integer"):
        Settings.from_env()


# --- replay cache ---------------------------------------------------------------------------------

def test_memory_jti_cache_forgets_only_after_expiry() -> None:
    now = [1000.0]
    cache = MemoryJtiCache(clock=lambda: now[0])
    assert cache.remember("smart|a|1", 1100) is True
    assert cache.remember("smart|a|1", 1100) is False
    assert cache.remember("smart|b|1", 1100) is True
    now[0] = 1200
    assert cache.remember("smart|c|2", 1300) is True
    assert len(cache) == 1  # the expired ids were purged
    assert cache.remember("smart|a|1", 1300) is True


# --- audit shape and access policy ----------------------------------------------------------------

def test_audit_event_is_valid_fhir_with_the_expected_codes() -> None:
    event = audit_event(interaction="search", outcome="0", observer="https://alk.example.org",
                        client_id="client-a", organization=(URA_SYSTEM, "11111111"), agent_name="Praktijk A",
                        address="10.0.0.7", entity_identifier=("urn:ietf:rfc:3986", "urn:uuid:1"),
                        query="subject=Patient/1")
    model = AuditEvent.model_validate(event)
    assert model.type.code == "rest" and event["action"] == "E" and event["subtype"][0]["code"] == "search"
    assert event["agent"][0]["network"] == {"address": "10.0.0.7", "type": "2"}
    assert event["source"]["type"][0]["code"] == "4"
    assert event["recorded"].endswith("Z")
    assert event["entity"][0]["query"] == "c3ViamVjdD1QYXRpZW50LzE="
    create = audit_event(interaction="create", outcome="8", observer="https://alk.example.org")
    AuditEvent.model_validate(create)
    assert create["action"] == "C" and "entity" not in create
    assert create["agent"][0] == {"requestor": True, "name": "unauthenticated client"}


def test_document_access_policy() -> None:
    a = Principal("client-a", URA_SYSTEM, "1", frozenset({SCOPE_READ, SCOPE_WRITE}))
    org_a, org_b = (URA_SYSTEM, "1"), (AGB_SYSTEM, "2")
    assert may_write(a, [org_a], org_a)
    assert may_write(a, [org_a], None)
    assert not may_write(a, [org_a], org_b)   # custodian is someone else
    assert not may_write(a, [org_b], None)
    assert may_read(a, [org_a], [])
    assert may_read(a, [org_b], [org_a])
    assert not may_read(a, [org_b], [org_b])
    assert not may_read(a, [(AGB_SYSTEM, "1")], [])  # same value, other naming system


# --- wiring into the real app ---------------------------------------------------------------------

def stub_package(tmp_path: Path) -> Package:
    return Package(root=tmp_path, manifest={"name": "alk-fhir.r4", "version": "0.0.0"})


def test_app_serves_smart_configuration_before_the_knowledge_routes(tmp_path: Path) -> None:
    app = create_app(Settings(base_url="https://alk.example.org"), stub_package(tmp_path))
    with TestClient(app) as client:
        assert isinstance(app.state.auth, AuthState)  # built at start-up by the router's lifespan
        for path in ("/.well-known/smart-configuration", "/fhir/.well-known/smart-configuration"):
            response = client.get(path)
            assert response.status_code == 200
            assert response.json()["token_endpoint"] == "https://alk.example.org/auth/token"
        error = client.post("/auth/token", data={"grant_type": "password"})
        assert error.status_code == 400 and error.json()["error"] == "unsupported_grant_type"


def test_broken_partners_file_stops_start_up(tmp_path: Path) -> None:
    path = write(tmp_path, [partner(scopes=["user/*.*"])])
    app = create_app(Settings(partners_file=str(path)), stub_package(tmp_path))
    with pytest.raises(PartnerConfigError, match=r"partners\.json"), TestClient(app):
        pass


def test_cds_auth_off_warns_at_start_up(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="alk_fhir"):
        create_app(Settings(cds_auth="off"), stub_package(tmp_path))
    assert any("ALK_FHIR_CDS_AUTH=off" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="alk_fhir"):
        create_app(Settings(cds_auth="jwt"), stub_package(tmp_path))
    assert not any("ALK_FHIR_CDS_AUTH" in r.getMessage() for r in caplog.records)
