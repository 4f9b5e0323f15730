"""A test EHR for the clinician app: SMART App Launch 2.0 authorization server + FHIR R4 server.

Written for the tests, on 127.0.0.1 only. It is strict where a real EHR must be, so that a passing
end-to-end test means the app does the protocol right:
- discovery: ``[iss]/.well-known/smart-configuration`` (SMART 2.0 §Discovery), S256 only;
- ``/auth/authorize``: registered client id and redirect URI, ``aud`` = the FHIR base, a known
  ``launch`` for EHR launch (``launch/patient`` for standalone), PKCE ``code_challenge_method=S256``
  required; ``deny`` makes it answer ``error=access_denied`` to the redirect URI (RFC 6749 §4.1.2.1);
- ``/auth/token``: single-use code, same redirect URI and client id, ``code_verifier`` checked against
  the challenge (RFC 7636 §4.6); answers ``patient``, ``appContext``, ``scope``, ``id_token``
  (with ``fhirUser``) and ``expires_in``;
- FHIR: Bearer token required (401 otherwise, also once expired), patient compartment only,
  SMART v2 scopes (``.rs`` read/search, ``.c`` create); ``Type?patient=``, ``Bundle?type=document&
  composition.patient=``, ``POST QuestionnaireResponse``; CORS for the app's origin.
The tests below check that strictness, so the browser test cannot pass against a lax fake.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import jwt
import pytest
import requests
import uvicorn
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, RedirectResponse, Response

CLIENT_ID = "alk-fhir-app"
ID_TOKEN_SECRET = "test-ehr-id-token-secret-not-for-production"
READ_SCOPES = ("patient/*.rs", "patient/*.read", "user/*.rs", "user/*.read")


def fhir_json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status_code=status, media_type="application/fhir+json", headers=headers)


def outcome(status: int, code: str, text: str) -> Response:
    body = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": text}]}
    headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if status == 401 else None
    return fhir_json(body, status, headers)


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode("ascii")


@dataclass
class Grant:
    patient: str
    scope: str
    app_context: str | None
    redirect_uri: str
    challenge: str
    expires: float


@dataclass
class Token:
    patient: str
    scope: set[str]
    expires: float


@dataclass
class TestEhr:
    """State and behaviour of the fake EHR; ``app`` is its ASGI application."""

    redirect_uri: str
    app_origin: str
    default_patient: str = ""
    token_lifetime: int = 3600
    deny: bool = False
    base: str = ""  # set when served: http://127.0.0.1:PORT
    resources: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    launches: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    tokens: dict[str, Token] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    __test__ = False  # not a pytest test class

    @property
    def iss(self) -> str:
        return f"{self.base}/fhir"

    def load(self, resources: list[dict[str, Any]]) -> None:
        for res in resources:
            self.resources[(res["resourceType"], res["id"])] = copy.deepcopy(res)

    def new_launch(self, patient: str, app_context: str | None = None) -> str:
        launch = secrets.token_urlsafe(12)
        self.launches[launch] = (patient, app_context)
        return launch

    def expire_tokens(self) -> None:
        with self.lock:
            for tok in self.tokens.values():
                tok.expires = 0

    def of_type(self, rtype: str) -> list[dict[str, Any]]:
        return [r for (t, _), r in sorted(self.resources.items()) if t == rtype]

    # --- authorization -------------------------------------------------------------------------
    def authorize(self, params: dict[str, str]) -> Response:
        self.log.append("authorize " + " ".join(sorted(params)))
        if params.get("client_id") != CLIENT_ID:
            return Response(f"unknown client_id {params.get('client_id')!r}", status_code=400)
        if params.get("redirect_uri") != self.redirect_uri:
            return Response(f"redirect_uri {params.get('redirect_uri')!r} is not registered", status_code=400)
        state = params.get("state", "")

        def refuse(error: str, text: str) -> Response:
            query = urlencode({"error": error, "error_description": text, "state": state})
            return RedirectResponse(f"{self.redirect_uri}?{query}", status_code=302)

        if params.get("response_type") != "code":
            return refuse("unsupported_response_type", "response_type must be code")
        if params.get("aud") != self.iss:
            return refuse("invalid_request", f"aud must be {self.iss}")
        if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
            return refuse("invalid_request", "PKCE with S256 is required")
        scopes = set(params.get("scope", "").split())
        if "launch" in params:
            found = self.launches.get(params["launch"])
            if found is None or "launch" not in scopes:
                return refuse("invalid_request", "unknown launch or no launch scope")
            patient, app_context = found
        elif "launch/patient" in scopes and self.default_patient:
            patient, app_context = self.default_patient, None  # the "patient picker" chose this one
        else:
            return refuse("invalid_scope", "no launch context")
        if self.deny:
            return refuse("access_denied", "the user declined to authorize the app")
        code = secrets.token_urlsafe(24)
        self.grants[code] = Grant(patient, " ".join(sorted(scopes)), app_context, self.redirect_uri,
                                  params["code_challenge"], time.time() + 60)
        return RedirectResponse(f"{self.redirect_uri}?{urlencode({'code': code, 'state': state})}", status_code=302)

    def token(self, form: dict[str, str]) -> Response:
        self.log.append("token " + " ".join(sorted(form)))

        def error(kind: str, text: str) -> Response:
            return JSONResponse({"error": kind, "error_description": text}, status_code=400)

        if form.get("grant_type") != "authorization_code":
            return error("unsupported_grant_type", "authorization_code only")
        grant = self.grants.pop(form.get("code", ""), None)
        if grant is None or grant.expires < time.time():
            return error("invalid_grant", "unknown, used or expired code")
        if form.get("redirect_uri") != grant.redirect_uri or form.get("client_id") != CLIENT_ID:
            return error("invalid_grant", "redirect_uri or client_id differs from the authorization request")
        if s256(form.get("code_verifier", "")) != grant.challenge:
            return error("invalid_grant", "code_verifier does not match the code_challenge")
        access = secrets.token_urlsafe(32)
        granted = set(grant.scope.split())
        with self.lock:
            self.tokens[access] = Token(grant.patient, granted, time.time() + self.token_lifetime)
        body: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "expires_in": self.token_lifetime,
                                "scope": grant.scope, "patient": grant.patient, "need_patient_banner": True}
        if grant.app_context is not None:
            body["appContext"] = grant.app_context
        if "openid" in granted:
            now = int(time.time())
            body["id_token"] = jwt.encode({"iss": self.iss, "sub": "prac-gp-jansen", "aud": CLIENT_ID, "iat": now,
                                           "exp": now + 300, "fhirUser": f"{self.iss}/Practitioner/prac-gp-jansen"},
                                          ID_TOKEN_SECRET, algorithm="HS256")
        return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    # --- FHIR ----------------------------------------------------------------------------------
    def bearer(self, request: Request) -> Token | Response:
        auth = request.headers.get("authorization", "")
        tok = self.tokens.get(auth[7:]) if auth.startswith("Bearer ") else None
        if tok is None:
            return outcome(401, "login", "a Bearer access token is required")
        if tok.expires < time.time():
            return outcome(401, "expired", "the access token has expired")
        return tok

    @staticmethod
    def may(tok: Token, rtype: str, action: str) -> bool:
        if action == "c":
            return any(s in tok.scope for s in (f"patient/{rtype}.c", "patient/*.c", f"patient/{rtype}.cruds"))
        return any(s in tok.scope for s in READ_SCOPES) or f"patient/{rtype}.rs" in tok.scope

    def in_compartment(self, res: dict[str, Any], patient: str) -> bool:
        if res["resourceType"] == "Patient":
            return bool(res["id"] == patient)
        if res["resourceType"] == "Bundle":
            first = ((res.get("entry") or [{}])[0]).get("resource") or {}
            return bool((first.get("subject") or {}).get("reference") == f"Patient/{patient}")
        refs = [res.get(k) for k in ("subject", "patient", "for", "beneficiary")]
        return any(isinstance(r, dict) and r.get("reference") == f"Patient/{patient}" for r in refs) or (
            res["resourceType"] in ("Medication", "Practitioner", "Organization"))

    def read(self, request: Request, rtype: str, rid: str) -> Response:
        tok = self.bearer(request)
        if isinstance(tok, Response):
            return tok
        res = self.resources.get((rtype, rid))
        if res is None or not self.in_compartment(res, tok.patient):
            return outcome(404, "not-found", f"{rtype}/{rid} not found")
        if not self.may(tok, rtype, "r"):
            return outcome(403, "forbidden", f"scope does not allow reading {rtype}")
        return fhir_json(res)

    def search(self, request: Request, rtype: str) -> Response:
        tok = self.bearer(request)
        if isinstance(tok, Response):
            return tok
        if not self.may(tok, rtype, "r"):
            return outcome(403, "forbidden", f"scope does not allow searching {rtype}")
        params = dict(request.query_params)
        self.log.append(f"search {rtype} {urlencode(sorted(params.items()))}")
        if rtype == "Bundle":
            wanted = params.get("composition.patient", "")
            if params.get("type") != "document" or not wanted:
                return outcome(400, "not-supported", "Bundle search needs type=document&composition.patient")
            found = [b for b in self.of_type("Bundle") if self.in_compartment(b, wanted.removeprefix("Patient/"))]
        else:
            wanted = params.get("patient", "").removeprefix("Patient/")
            if not wanted:
                return outcome(400, "not-supported", "searches need patient=")
            found = [r for r in self.of_type(rtype) if self.in_compartment(r, wanted)]
            if "status" in params:
                found = [r for r in found if r.get("status") == params["status"]]
            if "clinical-status" in params:
                found = [r for r in found if params["clinical-status"] in
                         [c.get("code") for c in (r.get("clinicalStatus") or {}).get("coding", [])]]
        found = [r for r in found if self.in_compartment(r, tok.patient)]
        bundle = {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "searchset", "total": len(found),
                  "link": [{"relation": "self", "url": str(request.url)}],
                  "entry": [{"fullUrl": f"{self.iss}/{r['resourceType']}/{r['id']}", "resource": r,
                             "search": {"mode": "match"}} for r in found]}
        return fhir_json(bundle)

    async def create(self, request: Request, rtype: str) -> Response:
        tok = self.bearer(request)
        if isinstance(tok, Response):
            return tok
        if not self.may(tok, rtype, "c"):
            return outcome(403, "forbidden", f"scope does not allow creating {rtype}")
        try:
            res = json.loads(await request.body())
        except ValueError:
            return outcome(400, "structure", "body is not JSON")
        if not isinstance(res, dict) or res.get("resourceType") != rtype:
            return outcome(400, "invalid", f"body must be a {rtype}")
        if not self.in_compartment({**res, "id": "new"}, tok.patient):
            return outcome(403, "forbidden", "a patient-scoped token may only write for its patient")
        res["id"] = str(uuid.uuid4())
        res["meta"] = {"versionId": "1", "lastUpdated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self.resources[(rtype, res["id"])] = res
        self.log.append(f"create {rtype}/{res['id']}")
        return fhir_json(res, 201, {"Location": f"{self.iss}/{rtype}/{res['id']}/_history/1"})

    def smart_configuration(self) -> dict[str, Any]:
        return {
            "issuer": self.iss,
            "authorization_endpoint": f"{self.base}/auth/authorize",
            "token_endpoint": f"{self.base}/auth/token",
            "token_endpoint_auth_methods_supported": ["none"],
            "grant_types_supported": ["authorization_code"],
            "scopes_supported": ["openid", "fhirUser", "launch", "launch/patient", "patient/*.rs",
                                 "patient/QuestionnaireResponse.c"],
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "capabilities": ["launch-ehr", "launch-standalone", "client-public", "context-ehr-patient",
                             "context-standalone-patient", "permission-patient", "permission-v2", "sso-openid-connect"],
        }

    def asgi(self) -> FastAPI:
        app = FastAPI()
        app.add_middleware(CORSMiddleware, allow_origins=[self.app_origin], allow_methods=["GET", "POST"],
                           allow_headers=["*"], expose_headers=["Location"])

        @app.get("/fhir/.well-known/smart-configuration")
        def well_known() -> JSONResponse:
            return JSONResponse(self.smart_configuration())

        @app.get("/fhir/metadata")
        def metadata() -> Response:
            return fhir_json({"resourceType": "CapabilityStatement", "status": "active", "date": "2026-01-01",
                              "kind": "instance", "fhirVersion": "4.0.1", "format": ["json"],
                              "rest": [{"mode": "server"}]})

        @app.get("/auth/authorize")
        def authorize(request: Request) -> Response:
            return self.authorize(dict(request.query_params))

        @app.post("/auth/token")
        async def token(request: Request) -> Response:
            form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
            return self.token(form)

        @app.get("/fhir/{rtype}/{rid}")
        def read(request: Request, rtype: str, rid: str) -> Response:
            return self.read(request, rtype, rid)

        @app.get("/fhir/{rtype}")
        def search(request: Request, rtype: str) -> Response:
            return self.search(request, rtype)

        @app.post("/fhir/{rtype}")
        async def create(request: Request, rtype: str) -> Response:
            return await self.create(request, rtype)

        return app


@dataclass
class Served:
    base: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def serve(app: Any) -> Served:
    """Run an ASGI app with uvicorn on a free 127.0.0.1 port in a thread; returns once it answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.05)
    return Served(f"http://127.0.0.1:{port}", server, thread)


def start_ehr(ehr: TestEhr) -> Served:
    served = serve(ehr.asgi())
    ehr.base = served.base
    return served


# --- tests of the test EHR itself -------------------------------------------------------------------

REDIRECT = "http://127.0.0.1:1/app/index.html"


@pytest.fixture()
def ehr() -> Iterator[TestEhr]:
    fake = TestEhr(redirect_uri=REDIRECT, app_origin="http://127.0.0.1:1", default_patient="p1")
    fake.load([{"resourceType": "Patient", "id": "p1"}, {"resourceType": "Patient", "id": "p2"}])
    fake.load([{"resourceType": "Condition", "id": f"c{n}", "subject": {"reference": f"Patient/p{n}"},
                "code": {"text": "x"}} for n in (1, 2)])
    served = start_ehr(fake)
    try:
        yield fake
    finally:
        served.stop()


def _authorize(ehr: TestEhr, verifier: str, **extra: str) -> requests.Response:
    params = {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT, "aud": ehr.iss,
              "state": "st", "scope": "openid fhirUser launch patient/*.rs patient/QuestionnaireResponse.c",
              "code_challenge": s256(verifier), "code_challenge_method": "S256",
              "launch": ehr.new_launch("p1", '{"questionnaire":"q"}')}
    params.update(extra)
    return requests.get(f"{ehr.base}/auth/authorize", params={k: v for k, v in params.items() if v},
                        allow_redirects=False, timeout=10)


def _redirect_params(resp: requests.Response) -> dict[str, str]:
    assert resp.status_code == 302, resp.text
    location = resp.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlparse(location).query).items()}


def _token(ehr: TestEhr, code: str, verifier: str) -> requests.Response:
    return requests.post(f"{ehr.base}/auth/token", data={"grant_type": "authorization_code", "code": code,
                                                         "redirect_uri": REDIRECT, "client_id": CLIENT_ID,
                                                         "code_verifier": verifier}, timeout=10)


def test_ehr_launch_with_pkce_gives_patient_context_and_app_context(ehr: TestEhr) -> None:
    verifier = secrets.token_urlsafe(40)
    got = _redirect_params(_authorize(ehr, verifier))
    assert got["state"] == "st"
    token = _token(ehr, got["code"], verifier)
    assert token.status_code == 200
    body = token.json()
    assert body["patient"] == "p1" and body["appContext"] == '{"questionnaire":"q"}'
    claims = jwt.decode(body["id_token"], ID_TOKEN_SECRET, algorithms=["HS256"], audience=CLIENT_ID)
    assert claims["fhirUser"].endswith("/Practitioner/prac-gp-jansen")
    # the code is single-use
    assert _token(ehr, got["code"], verifier).json()["error"] == "invalid_grant"


def test_ehr_refuses_a_wrong_code_verifier(ehr: TestEhr) -> None:
    got = _redirect_params(_authorize(ehr, "the-right-verifier-0123456789012345678901234"))
    refused = _token(ehr, got["code"], "another-verifier-0123456789012345678901234567")
    assert refused.status_code == 400 and "code_verifier" in refused.json()["error_description"]


@pytest.mark.parametrize(("override", "error"), [
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"code_challenge": ""}, "invalid_request"),
    ({"aud": "http://elsewhere.example/fhir"}, "invalid_request"),
    ({"launch": "unknown-launch"}, "invalid_request"),
])
def test_ehr_refuses_authorization_requests_a_real_ehr_refuses(ehr: TestEhr, override: dict[str, str],
                                                               error: str) -> None:
    got = _redirect_params(_authorize(ehr, "v" * 43, **override))
    assert got["error"] == error and got["state"] == "st"


def test_ehr_denial_and_unregistered_clients(ehr: TestEhr) -> None:
    ehr.deny = True
    assert _redirect_params(_authorize(ehr, "v" * 43))["error"] == "access_denied"
    assert _authorize(ehr, "v" * 43, client_id="someone-else").status_code == 400
    assert _authorize(ehr, "v" * 43, redirect_uri="http://evil.example/cb").status_code == 400


def test_ehr_fhir_api_needs_a_live_token_and_keeps_to_the_patient(ehr: TestEhr) -> None:
    verifier = "w" * 43
    code = _redirect_params(_authorize(ehr, verifier))["code"]
    access = _token(ehr, code, verifier).json()["access_token"]
    auth = {"Authorization": f"Bearer {access}"}
    assert requests.get(f"{ehr.iss}/Condition?patient=p1", timeout=10).status_code == 401
    found = requests.get(f"{ehr.iss}/Condition?patient=p1", headers=auth, timeout=10).json()
    assert [e["resource"]["id"] for e in found["entry"]] == ["c1"]
    assert requests.get(f"{ehr.iss}/Condition?patient=p2", headers=auth, timeout=10).json()["total"] == 0
    assert requests.get(f"{ehr.iss}/Patient/p2", headers=auth, timeout=10).status_code == 404
    qr = {"resourceType": "QuestionnaireResponse", "status": "completed", "subject": {"reference": "Patient/p1"}}
    created = requests.post(f"{ehr.iss}/QuestionnaireResponse", json=qr, headers=auth, timeout=10)
    assert created.status_code == 201 and created.headers["location"].startswith(f"{ehr.iss}/QuestionnaireResponse/")
    other = {**qr, "subject": {"reference": "Patient/p2"}}
    assert requests.post(f"{ehr.iss}/QuestionnaireResponse", json=other, headers=auth, timeout=10).status_code == 403
    ehr.expire_tokens()
    expired = requests.get(f"{ehr.iss}/Patient/p1", headers=auth, timeout=10)
    assert expired.status_code == 401 and expired.json()["issue"][0]["code"] == "expired"
