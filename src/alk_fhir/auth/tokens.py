"""Our access tokens: short-lived ES384 JWTs that name the partner, its organisation and its scopes.

SMART Backend Services ("Issue Access Token"): tokens SHALL be short-lived, ``expires_in`` SHOULD
NOT exceed 300 s, no refresh tokens. The token is self-contained so any worker can check it without
a lookup — provided every worker has the same key. The key comes from ``ALK_FHIR_TOKEN_KEY_FILE``
(PEM, EC P-384); without it a key is generated at start-up and lives in memory only, which is fine
for one process but means that **multi-worker deployments must set the file**, or a token issued
by one worker is refused by the next.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

log = logging.getLogger("alk_fhir.auth")

ALGORITHM = "ES384"
TOKEN_TYPE = "at+jwt"  # RFC 9068: keeps an access token from being mistaken for any other JWT


class InvalidAccessToken(Exception):
    """The bearer token is not one of ours, or no longer valid (reason for the log only)."""


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scope: str


@dataclass(frozen=True)
class AccessClaims:
    client_id: str
    organization_system: str
    organization_value: str
    scopes: frozenset[str]
    jti: str
    expires_at: int


def generate_signing_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


def load_signing_key(path: str | Path) -> ec.EllipticCurvePrivateKey:
    """The EC P-384 private key in a PEM file; ValueError naming the file otherwise."""
    file = Path(path)
    try:
        key = serialization.load_pem_private_key(file.read_bytes(), password=None)
    except OSError as exc:
        raise ValueError(f"{file}: cannot read the token signing key ({exc.strerror})") from exc
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{file}: not an unencrypted PEM private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP384R1):
        raise ValueError(f"{file}: the token signing key must be an EC P-384 key (for ES384)")
    return key


def key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """RFC 7638 JWK thumbprint, so the same key file gives the same ``kid`` on every worker."""
    numbers = public_key.public_numbers()

    def b64(n: int) -> str:
        return base64.urlsafe_b64encode(n.to_bytes(48, "big")).rstrip(b"=").decode("ascii")

    canonical = json.dumps({"crv": "P-384", "kty": "EC", "x": b64(numbers.x), "y": b64(numbers.y)},
                           separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode("ascii")


class TokenIssuer:
    """Issues and verifies our access tokens; ``issuer`` is the service's base URL (also the ``aud``)."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey, issuer: str, lifetime: int = 300,
                 leeway: int = 60, clock: Callable[[], float] = time.time) -> None:
        self._private_key = private_key
        self._public_key = private_key.public_key()
        self.kid = key_id(self._public_key)
        self.issuer = issuer.rstrip("/")
        self.lifetime = lifetime
        self._leeway = leeway
        self._clock = clock

    def issue(self, client_id: str, organization_system: str, organization_value: str,
              scopes: Iterable[str]) -> IssuedToken:
        now = int(self._clock())
        scope = " ".join(sorted(set(scopes)))
        claims = {"iss": self.issuer, "aud": self.issuer, "sub": client_id, "client_id": client_id,
                  "scope": scope, "org": f"{organization_system}|{organization_value}",
                  "iat": now, "exp": now + self.lifetime, "jti": str(uuid.uuid4())}
        token = jwt.encode(claims, self._private_key, algorithm=ALGORITHM,
                           headers={"kid": self.kid, "typ": TOKEN_TYPE})
        return IssuedToken(token, self.lifetime, scope)

    def verify(self, token: str) -> AccessClaims:
        try:
            header = jwt.get_unverified_header(token)
            if header.get("typ") != TOKEN_TYPE or header.get("alg") != ALGORITHM:
                raise InvalidAccessToken("not an access token of this service")
            claims: dict[str, Any] = jwt.decode(
                token, self._public_key, algorithms=[ALGORITHM], audience=self.issuer, issuer=self.issuer,
                leeway=self._leeway,
                options={"require": ["iss", "aud", "sub", "exp", "iat", "jti", "scope", "org"]})
        except jwt.PyJWTError as exc:
            raise InvalidAccessToken(f"{exc.__class__.__name__}: {exc}") from exc
        org, scope = claims.get("org"), claims.get("scope")
        if not isinstance(org, str) or "|" not in org or not isinstance(scope, str):
            raise InvalidAccessToken("malformed org or scope claim")
        system, value = org.split("|", 1)
        return AccessClaims(str(claims["sub"]), system, value, frozenset(scope.split()), str(claims["jti"]),
                            int(claims["exp"]))


def token_issuer(base_url: str, key_file: str, lifetime: int, leeway: int) -> TokenIssuer:
    if key_file:
        key = load_signing_key(key_file)
    else:
        log.warning("ALK_FHIR_TOKEN_KEY_FILE is not set: access tokens are signed with a key generated at "
                    "start-up; they do not survive a restart and are refused by other workers")
        key = generate_signing_key()
    return TokenIssuer(key, base_url, lifetime, leeway)
