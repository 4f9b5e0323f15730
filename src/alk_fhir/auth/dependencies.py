"""Guarding patient-data endpoints: ``RequirePartner(scope)`` turns a Bearer token into a Principal.

Resource-server side of SMART Backend Services ("Access FHIR API": the server SHALL validate the
token, its expiry and that its scope covers the request). Status codes follow RFC 6750 §3.1: no or
an invalid token → 401 with ``WWW-Authenticate: Bearer`` (``error="invalid_token"`` when one was
sent), a valid token without the scope → 403 ``insufficient_scope``. Every refusal here is audited;
the endpoint audits what it then does (``audit_access``), because only it knows the document.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal, NoReturn

from fastapi import HTTPException, Request
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase
from fastapi.security.utils import get_authorization_scheme_param

from alk_fhir.auth.audit import Interaction, Outcome, audit_event
from alk_fhir.auth.state import auth_state
from alk_fhir.auth.tokens import InvalidAccessToken

log = logging.getLogger("alk_fhir.auth")
REALM = "alk-fhir"


@dataclass(frozen=True)
class Principal:
    client_id: str
    organization_system: str
    organization_value: str
    scopes: frozenset[str]

    @property
    def organization(self) -> tuple[str, str]:
        return (self.organization_system, self.organization_value)


def audit_access(request: Request, principal: Principal | None, *, interaction: Interaction,
                 outcome: Outcome, entity_reference: str | None = None,
                 entity_identifier: tuple[str, str] | None = None, description: str | None = None) -> None:
    """Record one access to patient data in the app's audit sink (allowed: outcome "0")."""
    state = auth_state(request.app)
    query = request.url.query if interaction == "search" and request.url.query else None
    state.audit.record(audit_event(
        interaction=interaction, outcome=outcome, observer=state.settings.base_url,
        client_id=principal.client_id if principal else None,
        organization=principal.organization if principal else None,
        address=request.client.host if request.client else None, entity_reference=entity_reference,
        entity_identifier=entity_identifier, query=query, description=description))


def interaction_of(request: Request) -> Interaction:
    """read / create / search from the HTTP request, for auditing a refusal before the endpoint runs."""
    if request.method in ("POST", "PUT"):
        return "create"
    return "read" if request.path_params else "search"


class RequirePartner(SecurityBase):
    """FastAPI dependency: the authenticated partner holding ``scope``, e.g.
    ``principal: Annotated[Principal, Depends(RequirePartner(SCOPE_READ))]``."""

    def __init__(self, scope: str, *, interaction: Literal["read", "create", "search"] | None = None) -> None:
        self.scope = scope
        self.interaction: Interaction | None = interaction
        self.model = HTTPBearerModel(bearerFormat="JWT",
                                     description="SMART Backend Services access token")
        self.scheme_name = "SmartBackendServices"

    def __call__(self, request: Request) -> Principal:
        state = auth_state(request.app)
        scheme, token = get_authorization_scheme_param(request.headers.get("Authorization"))
        if scheme.lower() != "bearer" or not token:
            self._refuse(request, None, 401, "no bearer token", f'Bearer realm="{REALM}"')
        try:
            claims = state.tokens.verify(token)
        except InvalidAccessToken as exc:
            log.info("access token refused on %s: %s", request.url.path, exc)
            self._refuse(request, None, 401, f"invalid access token: {exc}",
                         f'Bearer realm="{REALM}", error="invalid_token"')
        principal = Principal(claims.client_id, claims.organization_system, claims.organization_value,
                              claims.scopes)
        if self.scope not in principal.scopes:
            self._refuse(request, principal, 403, f"scope {self.scope} not granted",
                         f'Bearer realm="{REALM}", error="insufficient_scope", scope="{self.scope}"')
        return principal

    def _refuse(self, request: Request, principal: Principal | None, status: int, reason: str,
                challenge: str) -> NoReturn:
        audit_access(request, principal, interaction=self.interaction or interaction_of(request),
                     outcome="4", description=reason)
        detail = "insufficient scope" if status == 403 else "authentication required"
        raise HTTPException(status_code=status, detail=detail, headers={"WWW-Authenticate": challenge})
