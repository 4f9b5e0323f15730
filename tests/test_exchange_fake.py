"""A small FHIR R4 server for the exchange tests, on 127.0.0.1 in a thread (no tests in this file).

It implements just enough of a partner server to test the client against real HTTP:
conditional create of document Bundles (``If-None-Exist: identifier=...``), search by
``identifier`` and ``composition.patient.identifier`` with paging, read, history, bearer-token
checks, a SMART Backend Services token endpoint that verifies the client assertion with PyJWT,
and failures on demand: a status (with ``Retry-After``), a connection reset, a slow answer, and
a crash that stops the server after storing and restarts it on the same port. Its state lives
outside the socket server, so it survives a restart like a database would.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

DOC_SYSTEM = "https://alk-fhir.org/fhir/NamingSystem/case-overview"
BSN = "http://fhir.nl/fhir/NamingSystem/bsn"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class Hit:
    method: str
    path: str
    at: float
    authorization: str | None
    headers: dict[str, str]
    status: int | None = None


@dataclass
class Failure:
    kind: str  # "status" | "reset" | "slow" | "crash"
    status: int = 503
    retry_after: str | None = None
    body: dict[str, Any] | None = None
    delay: float = 0.0


@dataclass
class RegisteredClient:
    public_key: Any
    alg: str
    kid: str
    scopes: tuple[str, ...] = ("system/Bundle.write", "system/Bundle.read")


@dataclass
class FakeState:
    lock: threading.RLock = field(default_factory=threading.RLock)
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    failures: list[tuple[str, str, Failure]] = field(default_factory=list)
    clients: dict[str, RegisteredClient] = field(default_factory=dict)
    tokens: dict[str, float] = field(default_factory=dict)
    token_requests: list[dict[str, Any]] = field(default_factory=list)
    seen_jti: set[str] = field(default_factory=set)
    require_auth: bool = False
    token_lifetime: int = 300
    page_size: int = 10
    signing_algs: tuple[str, ...] = ("ES384", "RS384")
    foreign_next: str | None = None
    restarts: list[float] = field(default_factory=list)

    def fail(self, method: str, path: str, *failures: Failure) -> None:
        with self.lock:
            self.failures.extend((method, path, f) for f in failures)

    def take_failure(self, method: str, path: str) -> Failure | None:
        with self.lock:
            for i, (m, p, failure) in enumerate(self.failures):
                if m == method and path == p:
                    del self.failures[i]
                    return failure
        return None

    def hits_for(self, method: str, path: str) -> list[Hit]:
        return [h for h in self.hits if h.method == method and urlsplit(h.path).path == path]


class _HTTPServer(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True
    fake: FakeFhirServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Connections the tests break on purpose are not errors worth printing."""


class FakeFhirServer:
    def __init__(self, state: FakeState | None = None) -> None:
        self.state = state or FakeState()
        self.port = 0
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base(self) -> str:
        return f"{self.origin}/fhir"

    @property
    def token_url(self) -> str:
        return f"{self.origin}/auth/token"

    def start(self) -> None:
        httpd = _HTTPServer(("127.0.0.1", self.port), _Handler)
        httpd.fake = self
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def crash_and_restart(self, down_for: float) -> None:
        """Stop listening now (from a handler thread), listen again on the same port later."""
        self.stop()

        def later() -> None:
            time.sleep(down_for)
            self.start()
            self.state.restarts.append(time.monotonic())

        threading.Thread(target=later, daemon=True).start()

    def register_client(self, client_id: str, public_key: Any, alg: str, kid: str) -> None:
        self.state.clients[client_id] = RegisteredClient(public_key, alg, kid)


def _outcome(code: str, diagnostics: str, expression: str | None = None) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": "error", "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def _split_token(text: str) -> tuple[str, str]:
    parts = re.split(r"(?<!\\)\|", text, maxsplit=1)
    if len(parts) != 2:
        return "", text
    def unescape(s: str) -> str:
        return re.sub(r"\\(.)", r"\1", s)
    return unescape(parts[0]), unescape(parts[1])


Response = tuple[int, dict[str, str], Any]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        fake = self.server.fake
        state = fake.state
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = urlsplit(self.path).path
        hit = Hit(method, self.path, time.monotonic(), self.headers.get("Authorization"),
                  {k: v for k, v in self.headers.items()})
        with state.lock:
            state.hits.append(hit)
        failure = state.take_failure(method, path)
        if failure and failure.kind == "status":
            headers = {"Retry-After": failure.retry_after} if failure.retry_after is not None else {}
            hit.status = failure.status
            self._send(failure.status, headers, failure.body or _outcome("transient", "try again later"))
            return
        if failure and failure.kind == "reset":
            self._reset()
            return
        status, headers, payload = self._route(method, path, body)
        hit.status = status
        if failure and failure.kind == "slow":
            time.sleep(failure.delay)
        if failure and failure.kind == "crash":
            fake.crash_and_restart(failure.delay)
            self._reset()
            return
        self._send(status, headers, payload)

    def _reset(self) -> None:
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()

    def _send(self, status: int, headers: dict[str, str], payload: Any) -> None:
        data = json.dumps(payload).encode("utf-8") if payload is not None else b""
        try:
            self.send_response(status)
            self.send_header("Content-Type", headers.pop("Content-Type", "application/fhir+json"))
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    # -- routes ---------------------------------------------------------------------------------

    def _route(self, method: str, path: str, body: bytes) -> Response:
        fake = self.server.fake
        query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        if path == "/fhir/.well-known/smart-configuration" and method == "GET":
            return 200, {"Content-Type": "application/json"}, {
                "token_endpoint": fake.token_url,
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
                "token_endpoint_auth_signing_alg_values_supported": list(fake.state.signing_algs),
                "grant_types_supported": ["client_credentials"],
                "scopes_supported": ["system/Bundle.write", "system/Bundle.read"],
                "capabilities": ["client-confidential-asymmetric"],
            }
        if path == "/auth/token" and method == "POST":
            return self._token(body)
        if not path.startswith("/fhir/"):
            return 404, {}, _outcome("not-found", f"no route {path}")
        if fake.state.require_auth:
            denied = self._check_bearer()
            if denied:
                return denied
        parts = path[len("/fhir/"):].strip("/").split("/")
        if parts == ["Bundle"] and method == "POST":
            return self._conditional_create(body)
        if parts == ["Bundle"] and method == "GET":
            return self._search(query)
        if len(parts) == 2 and parts[0] == "Bundle" and method == "GET":
            doc = fake.state.documents.get(parts[1])
            return (200, {}, doc) if doc else (404, {}, _outcome("not-found", f"Bundle/{parts[1]} not found"))
        if len(parts) == 3 and parts[0] == "Bundle" and parts[2] == "_history" and method == "GET":
            doc = fake.state.documents.get(parts[1])
            if not doc:
                return 404, {}, _outcome("not-found", f"Bundle/{parts[1]} not found")
            return 200, {}, {"resourceType": "Bundle", "type": "history", "total": 1,
                             "entry": [{"fullUrl": f"{fake.base}/Bundle/{parts[1]}", "resource": doc,
                                        "request": {"method": "POST", "url": "Bundle"},
                                        "response": {"status": "201"}}]}
        return 404, {}, _outcome("not-supported", f"{method} {path} is not supported here")

    def _check_bearer(self) -> Response | None:
        auth = self.headers.get("Authorization") or ""
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
        expiry = self.server.fake.state.tokens.get(token)
        if expiry is None or expiry < time.monotonic():
            return 401, {"WWW-Authenticate": 'Bearer error="invalid_token"'}, _outcome(
                "login", "missing, unknown or expired access token")
        return None

    def _conditional_create(self, body: bytes) -> Response:
        fake = self.server.fake
        state = fake.state
        try:
            bundle = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return 400, {}, _outcome("structure", f"body is not JSON: {exc}")
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            return 400, {}, _outcome("invalid", "expected a Bundle", "Bundle")
        if bundle.get("type") == "document" and not bundle.get("timestamp"):
            return 422, {}, _outcome("invariant", "bdl-10: A document must have a date", "Bundle.timestamp")
        condition = self.headers.get("If-None-Exist")
        if not condition:
            return 400, {}, _outcome("required", "this server only accepts conditional creates of Bundles")
        wanted = parse_qs(condition).get("identifier", [""])[0]
        system, value = _split_token(wanted)
        with state.lock:
            matches = [d for d in state.documents.values()
                       if (d.get("identifier") or {}).get("system") == system
                       and (d.get("identifier") or {}).get("value") == value]
            if len(matches) > 1:
                return 412, {}, _outcome("conflict", f"{len(matches)} Bundles match {condition}")
            if matches:
                doc = matches[0]
                vid = doc["meta"]["versionId"]
                return 200, {"Location": f"{fake.base}/Bundle/{doc['id']}/_history/{vid}",
                             "ETag": f'W/"{vid}"'}, doc
            rid = str(uuid.uuid4())
            stored = dict(bundle, id=rid, meta={"versionId": "1",
                                                "lastUpdated": datetime.now(UTC).isoformat()})
            state.documents[rid] = stored
        return 201, {"Location": f"{fake.base}/Bundle/{rid}/_history/1", "ETag": 'W/"1"'}, stored

    def _search(self, query: dict[str, str]) -> Response:
        fake = self.server.fake
        state = fake.state
        docs = list(state.documents.values())
        if "identifier" in query:
            system, value = _split_token(query["identifier"])
            docs = [d for d in docs if d.get("identifier") == {"system": system, "value": value}]
        if "composition.patient.identifier" in query:
            system, value = _split_token(query["composition.patient.identifier"])
            docs = [d for d in docs if _patient_matches(d, system, value)]
        offset = int(query.get("_getpagesoffset", "0"))
        page = docs[offset:offset + state.page_size]
        bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": len(docs),
                                  "link": [], "entry": []}
        for doc in page:
            bundle["entry"].append({"fullUrl": f"{fake.base}/Bundle/{doc['id']}", "resource": doc,
                                    "search": {"mode": "match"}})
        if page:
            bundle["entry"].append({"fullUrl": f"{fake.base}/OperationOutcome/note",
                                    "resource": _outcome("informational", "page served"),
                                    "search": {"mode": "outcome"}})
        if offset + state.page_size < len(docs):
            rest = {k: v for k, v in query.items() if k != "_getpagesoffset"}
            rest["_getpagesoffset"] = str(offset + state.page_size)
            origin = state.foreign_next or fake.origin
            bundle["link"].append({"relation": "next", "url": f"{origin}/fhir/Bundle?{urlencode(rest)}"})
        return 200, {}, bundle

    def _token(self, body: bytes) -> Response:
        fake = self.server.fake
        state = fake.state
        json_type = {"Content-Type": "application/json"}
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8")).items()}

        def error(code: str, description: str, status: int = 400) -> Response:
            return status, dict(json_type), {"error": code, "error_description": description}

        if form.get("grant_type") != "client_credentials":
            return error("unsupported_grant_type", "only client_credentials")
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            return error("invalid_request", "client_assertion_type must be jwt-bearer")
        assertion = form.get("client_assertion", "")
        try:
            header = jwt.get_unverified_header(assertion)
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            return error("invalid_client", f"unreadable assertion: {exc}")
        client = state.clients.get(str(unverified.get("iss")))
        if client is None:
            return error("invalid_client", "unknown client")
        if header.get("alg") != client.alg or header.get("kid") != client.kid or header.get("typ") != "JWT":
            return error("invalid_client", "alg, kid or typ do not match the registration")
        try:
            claims = jwt.decode(assertion, client.public_key, algorithms=[client.alg],
                                audience=fake.token_url, issuer=unverified["iss"],
                                options={"require": ["iss", "sub", "aud", "exp", "jti"]})
        except jwt.PyJWTError as exc:
            return error("invalid_client", f"assertion rejected: {exc}")
        if claims["sub"] != claims["iss"]:
            return error("invalid_client", "sub must equal iss")
        if claims["exp"] > time.time() + 305:
            return error("invalid_client", "exp more than five minutes ahead")
        with state.lock:
            if claims["jti"] in state.seen_jti:
                return error("invalid_client", "jti replayed")
            state.seen_jti.add(claims["jti"])
            scopes = form.get("scope", "").split()
            if not scopes or any(s not in client.scopes for s in scopes):
                return error("invalid_scope", f"not allowed: {form.get('scope')}")
            token = secrets.token_urlsafe(24)
            state.tokens[token] = time.monotonic() + state.token_lifetime
            state.token_requests.append({"header": header, "claims": claims, "scope": scopes,
                                         "token": token})
        return 200, dict(json_type), {"access_token": token, "token_type": "bearer",
                                      "expires_in": state.token_lifetime, "scope": " ".join(scopes)}


def _patient_matches(doc: dict[str, Any], system: str, value: str) -> bool:
    entries = doc.get("entry") or []
    if not entries:
        return False
    subject = ((entries[0].get("resource") or {}).get("subject") or {}).get("reference")
    for entry in entries:
        resource = entry.get("resource") or {}
        if entry.get("fullUrl") == subject and resource.get("resourceType") == "Patient":
            return any(i.get("system") == system and i.get("value") == value
                       for i in resource.get("identifier") or [])
    return False


# -- test data ------------------------------------------------------------------------------------

def make_document(value: str, bsn: str, *, timestamp: bool = True) -> dict[str, Any]:
    """A minimal FHIR document Bundle: Composition first, its Patient with a BSN."""
    patient_url = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'patient-' + bsn)}"
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "identifier": {"system": DOC_SYSTEM, "value": value},
        "type": "document",
        "entry": [
            {"fullUrl": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'composition-' + value)}",
             "resource": {"resourceType": "Composition", "status": "final",
                          "identifier": {"system": DOC_SYSTEM, "value": value + "-composition"},
                          "type": {"coding": [{"system": "http://loinc.org", "code": "18776-5",
                                               "display": "Plan of care note"}]},
                          "subject": {"reference": patient_url}, "date": "2025-03-01T10:00:00+01:00",
                          "author": [{"display": "Huisartsenpraktijk De Linde"}],
                          "title": "Gedeeld casusoverzicht ALK"}},
            {"fullUrl": patient_url,
             "resource": {"resourceType": "Patient", "identifier": [{"system": BSN, "value": bsn}]}},
        ],
    }
    if timestamp:
        bundle["timestamp"] = "2025-03-01T10:00:00+01:00"
    return bundle


def es384_key() -> tuple[bytes, Any]:
    key = ec.generate_private_key(ec.SECP384R1())
    return _pem(key), key.public_key()


def rs384_key() -> tuple[bytes, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return _pem(key), key.public_key()


def _pem(key: Any) -> bytes:
    pem: bytes = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption())
    return pem
