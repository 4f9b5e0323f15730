"""The client assertion a partner signs to obtain an access token (``private_key_jwt``).

SMART App Launch 2.x, "Client Authentication: Asymmetric": header ``alg`` (RS384/ES384), ``kid``,
``typ`` = JWT, optional ``jku`` that SHALL match the JWKS URL registered for the client; claims
``iss`` = ``sub`` = ``client_id``, ``aud`` = the token URL, ``exp`` no more than five minutes ahead,
``jti`` never seen before for that ``iss`` (RFC 7523 §3 for the rest). Key resolution follows the
spec's algorithm: allow-listed ``jku`` or the registered JWKS (URL or inline), then the single key
with that ``kid`` and a ``kty`` fitting ``alg``.
"""

from __future__ import annotations

import math
import time
from typing import Any

import jwt

from alk_fhir.auth.claims import numeric_date_problem
from alk_fhir.auth.jwks import ALGORITHM_KEYS, JwksCache, JwksError, select_key
from alk_fhir.auth.partners import Partner, PartnerRegistry
from alk_fhir.auth.replay import JtiCache

MAX_ASSERTION_LIFETIME = 300


class ClientAuthError(Exception):
    """The assertion does not authenticate a client: answered as ``invalid_client``."""

    def __init__(self, reason: str, claimed_client_id: str | None = None) -> None:
        super().__init__(reason)
        self.claimed_client_id = claimed_client_id


def verify_client_assertion(assertion: str, *, token_url: str, partners: PartnerRegistry, jwks: JwksCache,
                            replay: JtiCache, leeway: int = 60, client_id: str | None = None) -> Partner:
    """The registered partner the assertion authenticates; raises ClientAuthError with the reason."""
    try:
        header = jwt.get_unverified_header(assertion)
        unverified = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise ClientAuthError(f"client_assertion is not a JWT: {exc}") from exc
    iss = unverified.get("iss")
    claimed = iss if isinstance(iss, str) else None
    alg = header.get("alg")
    if alg not in ALGORITHM_KEYS:
        raise ClientAuthError(f"alg {alg!r} not accepted (only {', '.join(ALGORITHM_KEYS)})", claimed)
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise ClientAuthError("kid header missing", claimed)
    problem = numeric_date_problem(unverified)
    if problem:
        raise ClientAuthError(problem, claimed)
    partner = partners.get(claimed) if claimed else None
    if partner is None:
        raise ClientAuthError(f"unknown client {claimed!r}", claimed)
    if client_id is not None and client_id != partner.client_id:
        raise ClientAuthError(f"client_id {client_id!r} does not match the assertion's iss", claimed)
    jku = header.get("jku")
    if jku is not None and jku != partner.jwks_url:
        raise ClientAuthError(f"jku {jku!r} is not the JWKS URL registered for {claimed}", claimed)
    key = _key(partner, kid, alg, jwks)
    try:
        claims: dict[str, Any] = jwt.decode(
            assertion, key, algorithms=[alg], audience=token_url, issuer=partner.client_id,
            subject=partner.client_id, leeway=leeway,
            options={"require": ["iss", "sub", "aud", "exp", "jti"]})
    except jwt.PyJWTError as exc:
        raise ClientAuthError(f"{exc.__class__.__name__}: {exc}", claimed) from exc
    exp = math.ceil(claims["exp"])
    if exp > time.time() + MAX_ASSERTION_LIFETIME + leeway:
        raise ClientAuthError("exp is more than five minutes in the future", claimed)
    jti = claims["jti"]
    if not isinstance(jti, str) or not jti:
        raise ClientAuthError("jti must be a non-empty string", claimed)
    if not replay.remember(f"smart|{partner.client_id}|{jti}", exp + leeway):
        raise ClientAuthError(f"assertion jti {jti!r} already used", claimed)
    return partner


def _key(partner: Partner, kid: str, alg: str, jwks: JwksCache) -> jwt.PyJWK:
    if partner.jwks is not None:
        key = select_key(partner.jwks, kid, alg)
        if key is None:
            raise ClientAuthError(f"no single {alg} key with kid {kid!r} registered for {partner.client_id}",
                                  partner.client_id)
        return key
    assert partner.jwks_url is not None  # partners.py guarantees one of the two
    try:
        return jwks.key(partner.jwks_url, kid, alg)
    except JwksError as exc:
        raise ClientAuthError(str(exc), partner.client_id) from exc
