"""CDS client authentication: the signed JWT every CDS Hooks request carries.

Follows CDS Hooks 2.0, "Trusting CDS Clients" (https://cds-hooks.hl7.org/2.0/#trusting-cds-clients):
header ``alg``/``kid``/``typ`` (optional ``jku``; ``typ`` is required and must be ``JWT``), claims
``iss``, ``aud`` (the URL of the CDS Service endpoint being invoked), ``exp``, ``iat``, ``jti``;
``none`` and symmetric (HMAC) algorithms SHALL NOT be used, ES384 and RS384 are the recommended
ones and the only ones we accept; the service keeps an
allow-list of ``iss`` and ``jku``. Here the allow-list is ``ALK_FHIR_CDS_TRUSTED_ISSUERS`` (issuer ->
JWKS URL); a ``jku`` header must equal the URL configured for its issuer, and without ``jku`` that
configured URL is used (the spec's "communicated out-of-band").

Lifetime: ``exp`` may be at most ``ALK_FHIR_CDS_TOKEN_MAX_LIFETIME`` (default 300 s, as our own SMART
assertions) past ``iat``, and every NumericDate claim must be a finite number within year 9999; so a
token's ``jti`` is remembered for at most that long (plus the clock skew), and a token with
``exp`` = 10¹⁹ is a 401 like any other bad token rather than an overflow in the replay table.

Size: a token longer than :data:`MAX_TOKEN_LENGTH` (8 kB; an ES384 token with every claim above is
under 1 kB) is refused before it is decoded. ``alk-fhir serve`` already refuses a request head over
32 kB (``cli.http_limits``); this bound is the JWT's own, wherever the app runs.

``sub`` is not checked, nor required: CDS Hooks 2.0 lists exactly ``iss``, ``aud``, ``exp``, ``iat``,
``jti`` (required) and ``tenant`` (optional) as the payload, and says services SHOULD keep an allowlist of
``iss`` and ``jku`` (https://cds-hooks.hl7.org/2.0/#trusting-cds-clients); ``sub`` appeared only in
1.0's allowlist sentence. Who the client is follows from ``iss`` and the key that signed the token.

A failed check answers 401 with no detail: telling a caller which check failed helps only an
attacker. The reason goes to the log.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
import math
from collections.abc import Mapping
from typing import Any

import jwt
from fastapi import HTTPException, Request
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase
from fastapi.security.utils import get_authorization_scheme_param
from starlette.concurrency import run_in_threadpool

from alk_fhir.auth.claims import numeric_date_problem
from alk_fhir.auth.jwks import ALGORITHM_KEYS, JwksCache, JwksError, JwksFetchNeeded
from alk_fhir.auth.replay import JtiCache
from alk_fhir.auth.state import auth_state

log = logging.getLogger("alk_fhir.auth")

ACCEPTED_ALGORITHMS = tuple(ALGORITHM_KEYS)  # ES384, RS384
DEFAULT_MAX_LIFETIME = 300  # seconds from iat to exp; Settings.cds_token_max_lifetime
REQUIRED_CLAIMS = ("iss", "aud", "exp", "iat", "jti")
MAX_TOKEN_LENGTH = 8 * 1024  # characters of the compact JWS


class CdsJwtError(Exception):
    """Why a CDS client JWT was refused (logged, never returned)."""


def _unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims before verification, only to pick the key (``iss``, ``kid``, ``alg``) and
    refuse early: ``jwt.decode`` parses and checks the whole token again when it verifies it, so a
    token this plain base64url + JSON read accepts and PyJWT would not is still refused there (and
    this read costs a fifth of PyJWT's unverified decode, on every CDS call)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise CdsJwtError("not a JWT: not three dot-separated segments")
    try:
        header, payload = (json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))) for p in parts[:2])
    except (ValueError, binascii.Error, RecursionError) as exc:
        raise CdsJwtError(f"not a JWT: {exc.__class__.__name__}") from exc
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise CdsJwtError("not a JWT: header and claims must be JSON objects")
    return header, payload


def verify_cds_jwt(token: str, *, audience: str, trusted_issuers: Mapping[str, str], jwks: JwksCache,
                   replay: JtiCache, leeway: int = 60, allow_fetch: bool = True,
                   max_lifetime: int = DEFAULT_MAX_LIFETIME) -> dict[str, Any]:
    """The verified claims of a CDS client JWT addressed to ``audience``; raises CdsJwtError, or
    JwksFetchNeeded (before anything is recorded) when ``allow_fetch`` is False and the key is not cached."""
    if len(token) > MAX_TOKEN_LENGTH:
        raise CdsJwtError(f"token of {len(token)} characters: at most {MAX_TOKEN_LENGTH} accepted")
    header, unverified = _unverified(token)
    alg = header.get("alg")
    if alg not in ACCEPTED_ALGORITHMS:
        raise CdsJwtError(f"alg {alg!r} not accepted (only {', '.join(ACCEPTED_ALGORITHMS)})")
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.upper() != "JWT":
        raise CdsJwtError(f"typ {typ!r} is not JWT (CDS Hooks 2.0 requires typ JWT)")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise CdsJwtError("kid header missing")
    problem = numeric_date_problem(unverified)
    if problem:
        raise CdsJwtError(problem)
    iss = unverified.get("iss")
    if not isinstance(iss, str) or iss not in trusted_issuers:
        raise CdsJwtError(f"issuer {iss!r} not trusted")
    jwks_url = trusted_issuers[iss]
    jku = header.get("jku")
    if jku is not None and jku != jwks_url:
        raise CdsJwtError(f"jku {jku!r} is not the JWKS URL configured for {iss}")
    try:
        key = jwks.key(jwks_url, kid, alg, allow_fetch=allow_fetch)
    except JwksFetchNeeded:
        raise
    except JwksError as exc:
        raise CdsJwtError(str(exc)) from exc
    try:
        claims: dict[str, Any] = jwt.decode(
            token, key, algorithms=[alg], audience=[audience, audience + "/"], issuer=iss, leeway=leeway,
            options={"require": list(REQUIRED_CLAIMS), "verify_iat": True})
    except jwt.PyJWTError as exc:
        raise CdsJwtError(f"{exc.__class__.__name__}: {exc}") from exc
    exp, iat = claims["exp"], claims["iat"]
    if exp - iat > max_lifetime:
        raise CdsJwtError(f"exp is {exp - iat:.0f} s past iat; at most {max_lifetime} s accepted")
    jti = claims["jti"]
    if not isinstance(jti, str) or not jti:
        raise CdsJwtError("jti must be a non-empty string")
    # Remembered while the token could still pass the exp check: at most max_lifetime + leeway past iat.
    if not replay.remember(f"cds|{iss}|{jti}", math.ceil(exp) + leeway):
        raise CdsJwtError(f"jti {jti!r} of {iss} already used")
    return claims


class CdsClientAuth(SecurityBase):
    """FastAPI dependency: the verified CDS client issuer, or None when ``ALK_FHIR_CDS_AUTH=off``.

    Reads ``app.state.settings`` (``base_url``, ``cds_auth``, ``cds_trusted_issuers``,
    ``auth_clock_skew``, ``cds_token_max_lifetime``) and the shared caches of ``alk_fhir.auth.state``.
    The expected ``aud`` is the configured base URL plus the request path, so it is right behind a
    reverse proxy too.
    Usage: ``issuer: Annotated[str | None, Depends(CdsClientAuth())]``.
    """

    def __init__(self, *, scheme_name: str | None = None) -> None:
        self.model = HTTPBearerModel(bearerFormat="JWT", description="CDS Hooks 2.0 client JWT")
        self.scheme_name = scheme_name or self.__class__.__name__

    async def __call__(self, request: Request) -> str | None:
        # Verified on the event loop while the issuer's key is cached (signature check and one jti
        # INSERT: well under a millisecond, cheaper than a thread-pool hop); only a JWKS fetch, which
        # blocks on the network, goes to the thread pool.
        state = auth_state(request.app)
        settings = state.settings
        if settings.cds_auth == "off":
            return None
        scheme, token = get_authorization_scheme_param(request.headers.get("Authorization"))
        if scheme.lower() != "bearer" or not token:
            log.info("CDS request to %s refused: no Bearer JWT", request.url.path)
            raise _unauthorized()
        audience = settings.base_url.rstrip("/") + request.url.path
        verify = functools.partial(verify_cds_jwt, token, audience=audience,
                                   trusted_issuers=settings.cds_trusted_issuers, jwks=state.jwks,
                                   replay=state.replay, leeway=settings.auth_clock_skew,
                                   max_lifetime=settings.cds_token_max_lifetime)
        try:
            try:
                claims = verify(allow_fetch=False)
            except JwksFetchNeeded:
                claims = await run_in_threadpool(verify, allow_fetch=True)
        except CdsJwtError as exc:
            log.warning("CDS request to %s refused: %s", request.url.path, exc)
            raise _unauthorized() from None
        issuer: str = claims["iss"]
        return issuer


def _unauthorized() -> HTTPException:
    return HTTPException(status_code=401, headers={"WWW-Authenticate": "Bearer"})
