"""The demo EHR's SMART App Launch 2.0 authorization server (EHR launch and standalone launch).

Strict where a real EHR is (so the clinician app is exercised as in practice): the registered client
id and redirect URI, ``aud`` = the demo FHIR base, a known ``launch`` (EHR launch) or
``launch/patient``, PKCE S256 required (RFC 7636 §4.6), single-use codes. Lenient where a demo must
be: the demo user is signed in and approves at once. Secrets (codes, access tokens, the id_token
key) are made at start-up and live only in this process.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import jwt

DEMO_USER = "demo-gp"
CODE_LIFETIME = 60
TOKEN_LIFETIME = 3600


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode("ascii")


@dataclass
class Grant:
    patient: str
    app_context: str | None
    scope: str
    redirect_uri: str
    challenge: str
    expires: float


@dataclass
class Access:
    patient: str
    scopes: frozenset[str]
    expires: float


class AuthorizeError(Exception):
    """Refused before the redirect URI is trusted: answered as a page, never redirected."""


@dataclass
class DemoAuth:
    fhir_base: str
    client_id: str
    redirect_uri: str
    id_token_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    launches: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    tokens: dict[str, Access] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def new_launch(self, patient: str, app_context: str | None = None) -> str:
        """A launch token for an EHR launch; ``app_context`` is handed to the app with the token
        (SMART App Launch 2.0 ``appContext``: here, which view to open)."""
        launch = secrets.token_urlsafe(16)
        with self.lock:
            self.launches[launch] = (patient, app_context)
        return launch

    def authorize(self, params: dict[str, str], default_patient: str) -> str:
        """The redirect (with ``code`` or an RFC 6749 §4.1.2.1 error) for an authorization request."""
        if params.get("client_id") != self.client_id:
            raise AuthorizeError(f"unknown client_id {params.get('client_id')!r}")
        if params.get("redirect_uri") != self.redirect_uri:
            raise AuthorizeError(f"redirect_uri {params.get('redirect_uri')!r} is not registered")
        state = params.get("state", "")

        def refuse(error: str, text: str) -> str:
            return f"{self.redirect_uri}?{urlencode({'error': error, 'error_description': text, 'state': state})}"

        if params.get("response_type") != "code":
            return refuse("unsupported_response_type", "response_type must be code")
        if params.get("aud", "").rstrip("/") != self.fhir_base:
            return refuse("invalid_request", f"aud must be {self.fhir_base}")
        if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
            return refuse("invalid_request", "PKCE with S256 is required")
        scopes = set(params.get("scope", "").split())
        if "launch" in params:
            with self.lock:
                found = self.launches.get(params["launch"])
            if found is None or "launch" not in scopes:
                return refuse("invalid_request", "unknown launch, or no launch scope")
            patient, app_context = found
        elif "launch/patient" in scopes:
            patient, app_context = default_patient, None  # the demo's patient picker: the first patient
        else:
            return refuse("invalid_scope", "launch or launch/patient is required")
        code = secrets.token_urlsafe(24)
        with self.lock:
            self.grants[code] = Grant(patient, app_context, " ".join(sorted(scopes)), self.redirect_uri,
                                      params["code_challenge"], time.time() + CODE_LIFETIME)
        return f"{self.redirect_uri}?{urlencode({'code': code, 'state': state})}"

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        def error(kind: str, text: str) -> tuple[int, dict[str, Any]]:
            return 400, {"error": kind, "error_description": text}

        if form.get("grant_type") != "authorization_code":
            return error("unsupported_grant_type", "authorization_code only")
        with self.lock:
            grant = self.grants.pop(form.get("code", ""), None)
        if grant is None or grant.expires < time.time():
            return error("invalid_grant", "unknown, used or expired code")
        if form.get("redirect_uri") != grant.redirect_uri or form.get("client_id") != self.client_id:
            return error("invalid_grant", "redirect_uri or client_id differs from the authorization request")
        if s256(form.get("code_verifier", "")) != grant.challenge:
            return error("invalid_grant", "code_verifier does not match the code_challenge")
        access = secrets.token_urlsafe(32)
        scopes = frozenset(grant.scope.split())
        with self.lock:
            self.tokens[access] = Access(grant.patient, scopes, time.time() + TOKEN_LIFETIME)
        body: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "expires_in": TOKEN_LIFETIME,
                                "scope": grant.scope, "patient": grant.patient, "need_patient_banner": True}
        if grant.app_context is not None:
            body["appContext"] = grant.app_context
        if "openid" in scopes:
            now = int(time.time())
            body["id_token"] = jwt.encode(
                {"iss": self.fhir_base, "sub": DEMO_USER, "aud": self.client_id, "iat": now, "exp": now + 300,
                 "fhirUser": f"{self.fhir_base}/Practitioner/{DEMO_USER}"}, self.id_token_key, algorithm="HS256")
        return 200, body

    def access(self, authorization: str | None) -> Access | None:
        if not authorization or not authorization.startswith("Bearer "):
            return None
        with self.lock:
            found = self.tokens.get(authorization[7:])
        return found if found is not None and found.expires > time.time() else None

    def smart_configuration(self, base: str) -> dict[str, Any]:
        return {
            "issuer": self.fhir_base,
            "authorization_endpoint": f"{base}/demo/auth/authorize",
            "token_endpoint": f"{base}/demo/auth/token",
            "token_endpoint_auth_methods_supported": ["none"],
            "grant_types_supported": ["authorization_code"],
            "scopes_supported": ["openid", "fhirUser", "launch", "launch/patient", "patient/*.rs", "patient/*.c"],
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "capabilities": ["launch-ehr", "launch-standalone", "client-public", "context-ehr-patient",
                             "context-standalone-patient", "permission-patient", "permission-v2",
                             "sso-openid-connect"],
        }


def may(access: Access, rtype: str, action: str) -> bool:
    """SMART v2 scopes (``patient/Type.rs``, ``patient/*.c``) and v1 (``.read``/``.write``)."""
    for scope in access.scopes:
        level, _, rest = scope.partition("/")
        if level not in ("patient", "user"):
            continue
        target, _, perms = rest.partition(".")
        if target not in ("*", rtype):
            continue
        if perms in ("read", "write", "*"):
            if (action == "c") == (perms != "read") or perms == "*":
                return True
        elif action in perms:
            return True
    return False
