"""Public keys of CDS clients and partners: allow-listed JWKS URLs, fetched once, cached by ``kid``.

Rules followed (SMART App Launch 2.x, "Client Authentication: Asymmetric", Signature Verification;
CDS Hooks 2.0, "Trusting CDS Clients"):
- a URL that is not allow-listed in configuration is never dereferenced (a ``jku`` header is
  attacker-controlled until proven otherwise);
- the key is the single JWK whose ``kid`` matches and whose ``kty`` (and EC curve) fits ``alg``;
  none or several matching keys is a failure;
- the set is cached, never longer than the server's ``Cache-Control: max-age``; an unknown ``kid``
  triggers one refetch (key rotation), rate-limited so random ``kid`` values cannot make us hammer
  the client's server.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
from jwt import PyJWK
from jwt.exceptions import PyJWKError

from alk_fhir.fhir import is_secure_transport

# alg -> (kty, EC curve or None); only the algorithms CDS Hooks and SMART recommend.
ALGORITHM_KEYS: dict[str, tuple[str, str | None]] = {"ES384": ("EC", "P-384"), "RS384": ("RSA", None)}
MAX_JWKS_BYTES = 256 * 1024
_MAX_AGE = re.compile(r"max-age\s*=\s*(\d+)")


class JwksError(Exception):
    """No usable key: the reason is for the log, never for the caller."""


class JwksFetchNeeded(JwksError):
    """The key is not cached and ``allow_fetch`` was False: ask again where blocking I/O is fine."""


@dataclass(frozen=True)
class FetchedJwks:
    jwks: dict[str, Any]
    max_age: int | None  # from Cache-Control; 0 for no-store / no-cache


Fetcher = Callable[[str], FetchedJwks]


def cache_max_age(cache_control: str | None) -> int | None:
    if not cache_control:
        return None
    lowered = cache_control.lower()
    if "no-store" in lowered or "no-cache" in lowered:
        return 0
    match = _MAX_AGE.search(lowered)
    return int(match.group(1)) if match else None


def http_fetch(url: str, timeout: float = 5.0) -> FetchedJwks:
    """GET a JWK Set. No redirects: a redirect would lead to a URL nobody allow-listed."""
    try:
        with requests.get(url, headers={"Accept": "application/json"}, timeout=timeout,
                          allow_redirects=False, stream=True) as response:
            if response.status_code != 200:
                raise JwksError(f"JWKS {url} answered HTTP {response.status_code}")
            body = response.raw.read(MAX_JWKS_BYTES + 1, decode_content=True)
            if len(body) > MAX_JWKS_BYTES:
                raise JwksError(f"JWKS {url} is larger than {MAX_JWKS_BYTES} bytes")
            cache_control = response.headers.get("Cache-Control")
    except requests.RequestException as exc:
        raise JwksError(f"JWKS {url} could not be fetched: {exc.__class__.__name__}") from exc
    try:
        jwks = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise JwksError(f"JWKS {url} is not JSON") from exc
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise JwksError(f"JWKS {url} has no 'keys' array")
    return FetchedJwks(jwks, cache_max_age(cache_control))


def _fits(jwk: Mapping[str, Any], alg: str) -> bool:
    kty, crv = ALGORITHM_KEYS[alg]
    if jwk.get("kty") != kty or (crv is not None and jwk.get("crv") != crv):
        return False
    if jwk.get("use", "sig") != "sig" or jwk.get("alg", alg) != alg:
        return False
    ops = jwk.get("key_ops")
    return ops is None or (isinstance(ops, list) and "verify" in ops)


def select_key(jwks: Mapping[str, Any], kid: str, alg: str) -> PyJWK | None:
    """The one key of ``jwks`` for this ``kid`` and ``alg``; None when there is not exactly one."""
    if alg not in ALGORITHM_KEYS:
        return None
    keys = jwks.get("keys")
    if not isinstance(keys, list):
        return None
    matches = [k for k in keys if isinstance(k, dict) and k.get("kid") == kid and _fits(k, alg)]
    if len(matches) != 1:
        return None
    try:
        return PyJWK(matches[0], algorithm=alg)
    except PyJWKError:
        return None


@dataclass
class _Entry:
    jwks: dict[str, Any]
    fetched_at: float
    expires_at: float
    # (kid, alg) -> the parsed key: building a PyJWK costs ~25 µs, paid once per key, not per token
    parsed: dict[tuple[str, str], PyJWK | None] = field(default_factory=dict)

    def select(self, kid: str, alg: str) -> PyJWK | None:
        if (kid, alg) not in self.parsed:
            self.parsed[(kid, alg)] = select_key(self.jwks, kid, alg)
        return self.parsed[(kid, alg)]


class JwksCache:
    """Thread-safe cache of allow-listed JWK Sets (FastAPI runs sync dependencies in a thread pool)."""

    def __init__(self, allowed_urls: Collection[str], fetcher: Fetcher = http_fetch, ttl: float = 600,
                 min_refetch_interval: float = 10, clock: Callable[[], float] = time.time) -> None:
        bad = sorted(u for u in allowed_urls if not is_secure_transport(u))
        if bad:
            raise ValueError(f"JWKS URLs must be https (or http on loopback): {', '.join(bad)}")
        self.allowed_urls = frozenset(allowed_urls)
        self._fetcher = fetcher
        self._ttl = ttl
        self._min_refetch = min_refetch_interval
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._failures: dict[str, float] = {}
        self._lock = threading.Lock()

    def key(self, url: str, kid: str, alg: str, *, allow_fetch: bool = True) -> PyJWK:
        """The verification key for ``kid`` from the JWK Set at ``url``; raises JwksError
        (JwksFetchNeeded when only a fetch could answer and ``allow_fetch`` is False)."""
        if url not in self.allowed_urls:
            raise JwksError(f"JWKS URL {url} is not allow-listed")
        if alg not in ALGORITHM_KEYS:
            raise JwksError(f"algorithm {alg} not accepted")
        now = self._clock()
        with self._lock:
            entry = self._entries.get(url)
            failed_at = self._failures.get(url)
        if entry is not None:
            found = entry.select(kid, alg)
            if found is not None and now < entry.expires_at:
                return found
            if found is None and now - entry.fetched_at < self._min_refetch:
                raise JwksError(f"kid {kid!r} not in JWKS {url} (fetched {now - entry.fetched_at:.0f}s ago)")
        if failed_at is not None and now - failed_at < self._min_refetch:
            raise JwksError(f"JWKS {url} failed {now - failed_at:.0f}s ago; not retried yet")
        if not allow_fetch:
            raise JwksFetchNeeded(f"JWKS {url} must be fetched for kid {kid!r}")
        entry = self._refresh(url, now)
        found = entry.select(kid, alg)
        if found is None:
            raise JwksError(f"no single {alg} key with kid {kid!r} in JWKS {url}")
        return found

    def _refresh(self, url: str, now: float) -> _Entry:
        try:
            fetched = self._fetcher(url)
        except JwksError:
            with self._lock:
                self._failures[url] = now
            raise
        ttl = self._ttl if fetched.max_age is None else min(self._ttl, fetched.max_age)
        entry = _Entry(fetched.jwks, now, now + ttl)
        with self._lock:
            self._entries[url] = entry
            self._failures.pop(url, None)
        return entry
