"""Access tokens by SMART Backend Services (SMART App Launch 2.x, ``backend-services.html``).

The flow, as that page and ``client-confidential-asymmetric.html`` describe it:

1. Discovery: ``GET [fhir base]/.well-known/smart-configuration`` gives ``token_endpoint``; a server
   that lists ``token_endpoint_auth_methods_supported`` must include ``private_key_jwt``, and one
   that lists ``token_endpoint_auth_signing_alg_values_supported`` must include our algorithm.
2. A one-time client assertion JWT, signed RS384 or ES384 with the client's private key: header
   ``alg``, ``kid`` (required), ``typ: JWT``; claims ``iss`` = ``sub`` = client_id, ``aud`` = the
   token endpoint, ``exp`` no more than five minutes ahead, a unique ``jti``.
3. ``POST`` to the token endpoint, form-encoded: ``grant_type=client_credentials``, ``scope``,
   ``client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer``,
   ``client_assertion``. The answer has ``access_token``, ``token_type`` bearer and ``expires_in``
   (short-lived, SHOULD NOT exceed 300 s).

The token is cached and renewed shortly before it expires. A retried token request gets a fresh
assertion (fresh ``jti``): servers reject a replayed one. Tokens and assertions are never logged.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from alk_fhir.exchange.client import check_transport
from alk_fhir.exchange.errors import ExchangeError, error_from_response, response_json
from alk_fhir.exchange.retry import RetryPolicy, call_with_retries

log = logging.getLogger("alk_fhir.exchange")

WELL_KNOWN = "/.well-known/smart-configuration"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALGORITHMS = ("ES384", "RS384")
DEFAULT_SCOPES = ("system/Bundle.write", "system/Bundle.read")
MAX_ASSERTION_LIFETIME = 300

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def load_private_key(pem: str | bytes, alg: str) -> PrivateKey:
    """The PEM private key, checked against the algorithm (ES384 needs P-384, RS384 RSA ≥ 2048 bits)."""
    if alg not in ALGORITHMS:
        raise ValueError(f"alg must be one of {', '.join(ALGORITHMS)}, not {alg!r}")
    try:
        key = serialization.load_pem_private_key(pem.encode() if isinstance(pem, str) else pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"private key is not an unencrypted PEM private key: {exc}") from exc
    if alg == "ES384":
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp384r1":
            raise ValueError("ES384 needs an EC private key on curve P-384 (secp384r1)")
        return key
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 2048:
        raise ValueError("RS384 needs an RSA private key of at least 2048 bits")
    return key


def public_jwk(key: PrivateKey, alg: str, kid: str | None = None) -> dict[str, Any]:
    """The public half as a JWK with ``kid`` and ``alg``: what a partner registers for this client."""
    public = key.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        jwk = ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
    jwk = dict(jwk)
    jwk["kid"] = kid or jwk_thumbprint(jwk)
    jwk["alg"] = alg
    jwk["use"] = "sig"
    return jwk


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint (SHA-256): the default ``kid``, stable for the same key."""
    members = ("crv", "kty", "x", "y") if jwk["kty"] == "EC" else ("e", "kty", "n")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def smart_configuration_url(server: str) -> str:
    """``server`` is a FHIR base URL or already the smart-configuration URL."""
    server = server.rstrip("/")
    return server if server.endswith(WELL_KNOWN) else server + WELL_KNOWN


class BackendServicesAuth:
    """A token provider for ``FhirClient``: ``auth()`` returns a valid access token."""

    def __init__(
        self,
        server: str,
        client_id: str,
        private_key_pem: str | bytes,
        *,
        alg: str = "ES384",
        scopes: Sequence[str] = DEFAULT_SCOPES,
        kid: str | None = None,
        token_endpoint: str | None = None,
        assertion_lifetime: int = MAX_ASSERTION_LIFETIME,
        refresh_margin: float = 30.0,
        timeout: float | tuple[float, float] = (5.0, 15.0),
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
        allow_http: bool = False,
    ) -> None:
        if not client_id:
            raise ValueError("client_id is required")
        if not 0 < assertion_lifetime <= MAX_ASSERTION_LIFETIME:
            raise ValueError("assertion_lifetime must be 1..300 seconds (SMART: no more than five minutes)")
        if not scopes:
            raise ValueError("at least one scope is required, e.g. system/Bundle.write")
        self.config_url = smart_configuration_url(server)
        self.allow_http = allow_http
        check_transport(self.config_url, allow_http)
        if token_endpoint:
            check_transport(token_endpoint, allow_http)
        self.client_id = client_id
        self.alg = alg
        self._key = load_private_key(private_key_pem, alg)
        self.kid = kid or str(public_jwk(self._key, alg)["kid"])
        self.scopes = tuple(scopes)
        self.assertion_lifetime = assertion_lifetime
        self.refresh_margin = refresh_margin
        self.timeout = timeout
        self.retry = retry or RetryPolicy(retries=3, max_total=60.0)
        self.session = session or requests.Session()
        self._clock = clock
        self._token_endpoint = token_endpoint
        self._token: str | None = None
        self._renew_at = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._renew_at:
                self._token, lifetime = self._request_token()
                margin = min(self.refresh_margin, lifetime / 2)
                self._renew_at = self._clock() + lifetime - margin
            return self._token

    def invalidate(self) -> None:
        """Forget the cached token (the resource server refused it); the next call gets a new one."""
        with self._lock:
            self._token = None

    def public_jwks(self) -> dict[str, Any]:
        return {"keys": [public_jwk(self._key, self.alg, self.kid)]}

    @property
    def token_endpoint(self) -> str:
        if self._token_endpoint is None:
            self._token_endpoint = self._discover()
        return self._token_endpoint

    def client_assertion(self) -> str:
        now = int(time.time())
        claims = {"iss": self.client_id, "sub": self.client_id, "aud": self.token_endpoint,
                  "iat": now, "exp": now + self.assertion_lifetime, "jti": str(uuid.uuid4())}
        return jwt.encode(claims, self._key, algorithm=self.alg, headers={"kid": self.kid, "typ": "JWT"})

    def _discover(self) -> str:
        url = self.config_url
        response = call_with_retries(
            lambda: self.session.get(url, headers={"Accept": "application/json"}, timeout=self.timeout),
            "GET", url, self.retry)
        if response.status_code != 200:
            raise error_from_response("GET", url, response, "SMART configuration")
        config = response_json(response)
        if not isinstance(config, dict) or not isinstance(config.get("token_endpoint"), str):
            raise ExchangeError("GET", url, 200, "SMART configuration has no token_endpoint")
        methods = config.get("token_endpoint_auth_methods_supported")
        if isinstance(methods, list) and "private_key_jwt" not in methods:
            raise ExchangeError("GET", url, 200, f"server does not accept private_key_jwt (only {methods})")
        algs = config.get("token_endpoint_auth_signing_alg_values_supported")
        if isinstance(algs, list) and self.alg not in algs:
            raise ExchangeError("GET", url, 200,
                                f"server does not accept {self.alg} assertions (only {algs})")
        grants = config.get("grant_types_supported")
        if isinstance(grants, list) and "client_credentials" not in grants:
            raise ExchangeError("GET", url, 200, "server does not offer the client_credentials grant")
        endpoint: str = config["token_endpoint"]
        try:
            check_transport(endpoint, self.allow_http)
        except ValueError as exc:
            raise ExchangeError("GET", url, 200, f"token_endpoint {exc}") from exc
        return endpoint

    def _request_token(self) -> tuple[str, float]:
        url = self.token_endpoint

        def attempt() -> requests.Response:
            form = {"grant_type": "client_credentials", "scope": " ".join(self.scopes),
                    "client_assertion_type": ASSERTION_TYPE, "client_assertion": self.client_assertion()}
            return self.session.post(url, data=form, headers={"Accept": "application/json"},
                                     timeout=self.timeout)

        response = call_with_retries(attempt, "POST", url, self.retry)
        if response.status_code != 200:
            raise error_from_response("POST", url, response, f"token request for client {self.client_id}")
        body = response_json(response)
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise ExchangeError("POST", url, 200, "token response has no access_token")
        assert isinstance(body, dict)
        if str(body.get("token_type", "")).lower() != "bearer":
            raise ExchangeError("POST", url, 200,
                                f"token_type is {body.get('token_type')!r}, expected bearer")
        # expires_in is required; a server that leaves it out gets a new token request every time
        expires_in = body.get("expires_in")
        lifetime = float(expires_in) if isinstance(expires_in, int | float) and expires_in > 0 else 0.0
        log.info("access token for %s from %s (expires in %.0f s, scope %s)", self.client_id, url, lifetime,
                 body.get("scope", "?"))
        return token, lifetime
