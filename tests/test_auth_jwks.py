"""JWKS fetching against a real HTTP server on 127.0.0.1: allow-list, cache, Cache-Control, failures."""

from __future__ import annotations

import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from alk_fhir.auth.jwks import JwksCache, JwksError, cache_max_age, http_fetch, select_key
from fixtures.auth.jwtkit import ec_key, public_jwk, rsa_key, serve_jwks


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


KEY = ec_key()


def test_fetches_once_and_serves_from_cache() -> None:
    with serve_jwks({"keys": [public_jwk(KEY, "k1")]}) as server:
        cache = JwksCache({server.url}, clock=Clock())
        first = cache.key(server.url, "k1", "ES384")
        second = cache.key(server.url, "k1", "ES384")
        assert first.key_id == second.key_id == "k1"
        assert server.hits == ["/.well-known/jwks.json"]


def test_url_not_allow_listed_is_never_requested() -> None:
    with serve_jwks({"keys": [public_jwk(KEY, "k1")]}) as server:
        cache = JwksCache(set(), clock=Clock())
        with pytest.raises(JwksError, match="not allow-listed"):
            cache.key(server.url, "k1", "ES384")
        assert server.hits == []


def test_cache_control_max_age_limits_the_cache() -> None:
    clock = Clock()
    with serve_jwks({"keys": [public_jwk(KEY, "k1")]}) as server:
        server.cache_control = "public, max-age=5"
        cache = JwksCache({server.url}, clock=clock)
        cache.key(server.url, "k1", "ES384")
        clock.now += 3
        cache.key(server.url, "k1", "ES384")
        assert len(server.hits) == 1
        clock.now += 3
        cache.key(server.url, "k1", "ES384")
        assert len(server.hits) == 2


def test_rotated_key_found_by_refetch_on_unknown_kid() -> None:
    clock = Clock()
    with serve_jwks({"keys": [public_jwk(KEY, "k1")]}) as server:
        cache = JwksCache({server.url}, clock=clock)
        cache.key(server.url, "k1", "ES384")
        new = ec_key()
        server.jwks = {"keys": [public_jwk(KEY, "k1"), public_jwk(new, "k2")]}
        clock.now += 60
        assert cache.key(server.url, "k2", "ES384").key_id == "k2"
        assert len(server.hits) == 2


@pytest.mark.parametrize(("status", "body", "location", "message"), [
    (500, None, None, "HTTP 500"),
    (302, b"", "http://127.0.0.1:1/elsewhere", "HTTP 302"),
    (200, b"<html>", None, "not JSON"),
    (200, b'{"no": "keys"}', None, "no 'keys'"),
    (200, b'{"keys": []}' + b" " * (300 * 1024), None, "larger than"),
])
def test_fetch_failures_are_jwks_errors(status: int, body: bytes | None, location: str | None,
                                        message: str) -> None:
    with serve_jwks({"keys": []}) as server:
        server.status, server.body, server.location = status, body, location
        with pytest.raises(JwksError, match=message):
            http_fetch(server.url)
        assert server.hits == ["/.well-known/jwks.json"]  # the redirect was not followed


def test_unreachable_server_is_a_jwks_error_and_not_retried_at_once() -> None:
    clock = Clock()
    url = "http://127.0.0.1:9/jwks.json"  # discard port: nothing listens
    calls: list[str] = []

    def fetch(u: str) -> object:
        calls.append(u)
        return http_fetch(u, timeout=1)

    cache = JwksCache({url}, fetcher=fetch, clock=clock)  # type: ignore[arg-type]
    with pytest.raises(JwksError, match="could not be fetched"):
        cache.key(url, "k1", "ES384")
    with pytest.raises(JwksError, match="not retried"):
        cache.key(url, "k1", "ES384")
    assert len(calls) == 1


def test_cache_max_age_parsing() -> None:
    assert cache_max_age(None) is None
    assert cache_max_age("public, max-age=600") == 600
    assert cache_max_age("no-store") == 0
    assert cache_max_age("private") is None


def test_select_key_needs_one_key_of_the_right_type() -> None:
    rsa = rsa_key()
    p256 = ec_key(ec.SECP256R1())
    jwks = {"keys": [public_jwk(KEY, "ec"), public_jwk(rsa, "rsa"), public_jwk(p256, "p256"),
                     public_jwk(KEY, "dup"), public_jwk(ec_key(), "dup"),
                     {**public_jwk(KEY, "enc"), "use": "enc"}, public_jwk(KEY, "pinned", "ES256")]}
    assert select_key(jwks, "ec", "ES384") is not None
    assert select_key(jwks, "rsa", "RS384") is not None
    assert select_key(jwks, "ec", "RS384") is None       # kty does not fit alg
    assert select_key(jwks, "p256", "ES384") is None     # wrong curve for ES384
    assert select_key(jwks, "dup", "ES384") is None      # ambiguous kid
    assert select_key(jwks, "enc", "ES384") is None      # not a signing key
    assert select_key(jwks, "pinned", "ES384") is None   # key pinned to another alg
    assert select_key(jwks, "ec", "HS256") is None
    assert select_key(jwks, "missing", "ES384") is None


def test_plain_http_is_only_allowed_on_loopback() -> None:
    with pytest.raises(ValueError, match="https"):
        JwksCache({"http://ehr.example.org/jwks.json"})
    JwksCache({"https://ehr.example.org/jwks.json", "http://127.0.0.1:8000/jwks.json"})
