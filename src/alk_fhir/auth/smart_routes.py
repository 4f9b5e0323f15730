"""SMART Backend Services endpoints: discovery and the token endpoint.

- ``GET /.well-known/smart-configuration`` (and under the FHIR base ``/fhir``, where SMART says a
  client looks): SMART App Launch 2.x "Conformance" metadata for a backend-only server —
  ``token_endpoint``, ``grant_types_supported`` = client_credentials,
  ``token_endpoint_auth_methods_supported`` = private_key_jwt, ES384/RS384, our two ``system/``
  scopes and the ``client-confidential-asymmetric`` capability. There is no authorization endpoint
  (no user-facing launch), hence no ``authorization_endpoint`` and no PKCE methods.
- ``POST /auth/token``: client_credentials grant with a JWT client assertion ("Backend Services",
  "Obtain access token"); errors are RFC 6749 §5.2 JSON bodies; ``invalid_client`` answers 401 and,
  like a refused CDS JWT, does not say which check failed. Every request, granted or not, is audited.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from alk_fhir.auth.assertion import ClientAuthError, verify_client_assertion
from alk_fhir.auth.audit import Outcome, audit_event
from alk_fhir.auth.jwks import ALGORITHM_KEYS
from alk_fhir.auth.partners import SUPPORTED_SCOPES, Partner
from alk_fhir.auth.state import AuthState, auth_state
from alk_fhir.fhir import BodyError, read_body

TOKEN_PATH = "/auth/token"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_FORM_BYTES = 64 * 1024
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@asynccontextmanager
async def _lifespan(app: Any) -> AsyncIterator[None]:
    auth_state(app)  # a broken partners or key file stops start-up here
    yield


router = APIRouter(tags=["auth"], lifespan=_lifespan)


def smart_configuration(base_url: str) -> dict[str, Any]:
    return {
        "token_endpoint": base_url.rstrip("/") + TOKEN_PATH,
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": list(ALGORITHM_KEYS),
        "scopes_supported": list(SUPPORTED_SCOPES),
        "capabilities": ["client-confidential-asymmetric", "permission-v1"],
    }


@router.get("/.well-known/smart-configuration")
@router.get("/fhir/.well-known/smart-configuration", include_in_schema=False)
def get_smart_configuration(request: Request) -> JSONResponse:
    return JSONResponse(smart_configuration(auth_state(request.app).settings.base_url))


class OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400, client_id: str | None = None,
                 partner: Partner | None = None) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.client_id = client_id
        self.partner = partner


def _form(body: bytes | bytearray | None, content_type: str) -> dict[str, str]:
    """The form parameters; ``body`` is None when the request was larger than MAX_FORM_BYTES."""
    if content_type.split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "the token request must be application/x-www-form-urlencoded")
    if body is None:
        raise OAuthError("invalid_request", "token request too large")
    try:
        parsed = parse_qs(body.decode("ascii"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError as exc:
        raise OAuthError("invalid_request", "the token request body is not URL-encoded ASCII") from exc
    repeated = sorted(k for k, v in parsed.items() if len(v) > 1)
    if repeated:  # RFC 6749 §3.2: request parameters MUST NOT be included more than once
        raise OAuthError("invalid_request", f"parameter repeated: {', '.join(repeated)}")
    return {k: v[0] for k, v in parsed.items()}


def _grant(state: AuthState, form: dict[str, str]) -> tuple[Partner, dict[str, Any]]:
    grant_type = form.get("grant_type")
    if not grant_type:
        raise OAuthError("invalid_request", "grant_type is required")
    if grant_type != "client_credentials":
        raise OAuthError("unsupported_grant_type", "only grant_type=client_credentials is supported")
    if form.get("client_assertion_type") != JWT_BEARER:
        raise OAuthError("invalid_request", f"client_assertion_type must be {JWT_BEARER}")
    assertion = form.get("client_assertion")
    if not assertion:
        raise OAuthError("invalid_request", "client_assertion is required")
    requested = form.get("scope", "").split()
    if not requested:
        raise OAuthError("invalid_request", "scope is required")
    settings = state.settings
    try:
        partner = verify_client_assertion(
            assertion, token_url=settings.base_url.rstrip("/") + TOKEN_PATH, partners=state.partners,
            jwks=state.jwks, replay=state.replay, leeway=settings.auth_clock_skew,
            client_id=form.get("client_id"))
    except ClientAuthError as exc:
        raise OAuthError("invalid_client", "client authentication failed", 401,
                         client_id=exc.claimed_client_id) from exc
    refused = sorted(set(requested) - partner.scopes)
    if refused:
        raise OAuthError("invalid_scope", f"scope not granted to this client: {' '.join(refused)}",
                         client_id=partner.client_id, partner=partner)
    issued = state.tokens.issue(partner.client_id, partner.organization_system, partner.organization_value,
                                requested)
    return partner, {"access_token": issued.access_token, "token_type": "bearer",
                     "expires_in": issued.expires_in, "scope": issued.scope}


def _audit(state: AuthState, request: Request, outcome: Outcome, client_id: str | None,
           partner: Partner | None, description: str | None) -> None:
    state.audit.record(audit_event(
        interaction="login", outcome=outcome, observer=state.settings.base_url, client_id=client_id,
        organization=(partner.organization_system, partner.organization_value) if partner else None,
        agent_name=partner.name if partner else None,
        address=request.client.host if request.client else None, description=description))


def _token_response(state: AuthState, request: Request, body: bytes | bytearray | None) -> JSONResponse:
    try:
        partner, granted = _grant(state, _form(body, request.headers.get("content-type", "")))
    except OAuthError as exc:
        reason = exc.__cause__ if exc.error == "invalid_client" else None
        _audit(state, request, "4", exc.client_id, exc.partner,
               f"{exc.error}: {reason or exc.description}")
        return JSONResponse({"error": exc.error, "error_description": exc.description},
                            status_code=exc.status, headers=_NO_STORE)
    _audit(state, request, "0", partner.client_id, partner, f"granted {granted['scope']}")
    return JSONResponse(granted, headers=_NO_STORE)


@router.post(TOKEN_PATH)
async def token(request: Request) -> JSONResponse:
    state = auth_state(request.app)
    body: bytearray | None
    try:  # the one body reader: Content-Length checked before reading, the rest streamed with the cap
        body = await read_body(request, MAX_FORM_BYTES)
    except BodyError:
        body = None  # _form refuses it (RFC 6749 error body), and the refusal is audited
    # Verifying the assertion may fetch a JWKS (blocking): keep it off the event loop.
    return await run_in_threadpool(_token_response, state, request, body)
