"""``alk-fhir serve --demo``: a demo EHR over ``examples/patients/`` so that a newcomer sees the
service work in a browser without an EHR of their own.

What it holds (all under ``/demo``, mounted only when the demo is on):
- ``/demo/``: the example patients, one sentence each, with "open in the app" (a SMART EHR launch,
  SMART App Launch 2.0 §EHR launch: ``launch.html?iss=…&launch=…``) and "show the CDS cards";
- ``/demo/cds/{patient}``: an EHR-style view that calls ``patient-view`` and ``order-select`` as an
  EHR does (a CDS Hooks 2.0 request with the prefetch the service's discovery asks for, filled from
  this record, and a signed client JWT when the service requires one), shows the cards (summary,
  indicator, source, detail, suggestions, override reasons), creates an accepted suggestion's
  resources in the record and sends feedback (accepted / overridden with a reason);
- ``/demo/fhir``: FHIR R4 read, search and create for those patients (the app's FHIR server) and
  ``/demo/auth``: SMART authorization (``smart.py``).
Writes stay in memory and are gone on restart. Nothing here is reachable when the demo is off
(``api.app`` mounts this router only then).
"""

from __future__ import annotations

import html
import json
import secrets
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jwt.algorithms import ECAlgorithm

from alk_fhir.auth.jwks import FetchedJwks, Fetcher, JwksError, http_fetch
from alk_fhir.cds.cards import IF_NONE_EXIST
from alk_fhir.cds.discovery import SERVICES_BY_ID
from alk_fhir.config import REPO_ROOT, Settings
from alk_fhir.demo.smart import DEMO_USER, Access, AuthorizeError, DemoAuth, may
from alk_fhir.demo.store import DemoStore, UnsupportedSearch
from alk_fhir.fhir import FHIR_ID, RESOURCE_TYPE, BodyError, dump_json, operation_outcome, read_body, read_json

WEB = Path(__file__).resolve().parent / "web"
EXAMPLES = REPO_ROOT / "examples" / "patients"
SUMMARIES = WEB / "patients.json"
FHIR_JSON = "application/fhir+json"
DEMO_KID = "alk-fhir-demo-ehr"
MEDIA = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".json": "application/json"}
# Drugs offered in the order-select view: ATC codes of ../shared/terminology.md only; paracetamol has no
# ATC code there, so it is ordered by name, as a G-Standaard product without ATC would be.
ORDERABLE: dict[str, dict[str, Any]] = {
    "oxycodon": {"text": "Oxycodon 5 mg capsule", "atc": "N02AA05"},
    "tramadol": {"text": "Tramadol 50 mg capsule", "atc": "N02AX02"},
    "lorazepam": {"text": "Lorazepam 1 mg tablet", "atc": "N05BA06"},
    "zolpidem": {"text": "Zolpidem 10 mg tablet", "atc": "N05CF02"},
    "pregabaline": {"text": "Pregabaline 75 mg capsule", "atc": "N03AX16"},
    "paracetamol": {"text": "Paracetamol 500 mg tablet", "atc": None},
}


class Demo:
    """The demo's state on ``app.state.demo``: the record, the SMART server and the CDS client key."""

    def __init__(self, settings: Settings) -> None:
        self.base = settings.base_url.rstrip("/")
        self.fhir_base = f"{self.base}/demo/fhir"
        self.issuer = f"{self.base}/demo"
        self.jwks_url = f"{self.base}/demo/jwks.json"
        summaries = json.loads(SUMMARIES.read_text(encoding="utf-8"))
        self.store = DemoStore.from_examples(EXAMPLES, summaries)
        self.store.resources[("Practitioner", DEMO_USER)] = {
            "resourceType": "Practitioner", "id": DEMO_USER,
            "name": [{"text": "Dr. H. de Demo, huisarts", "family": "de Demo", "given": ["H."]}]}
        self.auth = DemoAuth(self.fhir_base, settings.app_client_id, f"{self.base}/app/index.html")
        self.key = ec.generate_private_key(ec.SECP384R1())
        public = json.loads(ECAlgorithm.to_jwk(self.key.public_key()))
        self.jwks = {"keys": [{**public, "kid": DEMO_KID, "alg": "ES384", "use": "sig"}]}

    def fetcher(self, fallback: Fetcher = http_fetch) -> Fetcher:
        """The service's JWKS fetcher with this demo's keys answered from memory (no request to itself)."""
        def fetch(url: str) -> FetchedJwks:
            if url == self.jwks_url:
                return FetchedJwks(self.jwks, None)
            if fallback is None:
                raise JwksError(f"no JWKS at {url}")
            return fallback(url)
        return fetch

    def client_jwt(self, service_url: str) -> str:
        """A CDS Hooks 2.0 client JWT ("Trusting CDS Clients"): iss, aud = the service URL, exp, iat, jti."""
        now = int(time.time())
        return jwt.encode({"iss": self.issuer, "aud": service_url, "exp": now + 60, "iat": now,
                           "jti": secrets.token_urlsafe(16)}, self.key, algorithm="ES384",
                          headers={"kid": DEMO_KID, "typ": "JWT"})


def demo_settings(settings: Settings) -> Settings:
    """The settings with this demo's CDS client trusted (its issuer and in-memory JWKS URL)."""
    import dataclasses

    base = settings.base_url.rstrip("/")
    issuers = {**settings.cds_trusted_issuers, f"{base}/demo": f"{base}/demo/jwks.json"}
    return dataclasses.replace(settings, cds_trusted_issuers=issuers)


router = APIRouter(prefix="/demo", include_in_schema=False)


def _demo(request: Request) -> Demo:
    demo: Demo = request.app.state.demo
    return demo


def _fhir(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dump_json(body), status_code=status, media_type=FHIR_JSON, headers=headers)


def _outcome(status: int, code: str, text: str) -> Response:
    headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if status == 401 else None
    return _fhir(operation_outcome("error", code, text), status, headers)


def _lang(request: Request) -> str:
    return "en" if request.query_params.get("lang") == "en" else "nl"


T = {
    "nl": {"title": "Demo-EPD: voorbeeldpatiënten", "intro": (
        "Deze demo speelt het EPD na: de voorbeeldpatiënten uit <code>examples/patients/</code>, met een "
        "SMART-launch van de app en de CDS-kaarten zoals een EPD ze toont. Alles wat u hier vastlegt, blijft "
        "in het geheugen en is na een herstart weg. Het zijn verzonnen patiënten."),
        "app": "Open in de app", "cards": "Toon de CDS-kaarten", "switch": "English", "name": "Patiënt",
        "who": "Wie", "open": "Openen", "home": "Terug naar de startpagina"},
    "en": {"title": "Demo EHR: example patients", "intro": (
        "This demo plays the EHR: the example patients of <code>examples/patients/</code>, with a SMART "
        "launch of the app and the CDS cards as an EHR shows them. Whatever you record here stays in memory "
        "and is gone after a restart. The patients are invented."),
        "app": "Open in the app", "cards": "Show the CDS cards", "switch": "Nederlands", "name": "Patient",
        "who": "Who", "open": "Open", "home": "Back to the start page"},
}

PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><link rel="stylesheet" href="/demo/static/demo.css"></head>
<body><header class="bar"><a href="/">{home}</a><a href="?lang={other}" lang="{other}">{switch}</a></header>
<main><h1>{title}</h1><p>{intro}</p>
<table class="patients"><caption class="visually-hidden">{title}</caption>
<thead><tr><th scope="col">{name}</th><th scope="col">{who}</th><th scope="col">{open}</th></tr></thead>
<tbody>{rows}</tbody></table></main></body></html>
"""


@router.get("/")
def demo_home(request: Request) -> HTMLResponse:
    demo, lang = _demo(request), _lang(request)
    t = T[lang]
    rows = "".join(
        f'<tr><th scope="row">{html.escape(p.name)}</th><td>{html.escape(p.summary.get(lang, ""))}</td>'
        f'<td class="links"><a href="/demo/launch/{html.escape(p.id)}">{t["app"]}'
        f'<span class="visually-hidden">: {html.escape(p.name)}</span></a> '
        f'<a href="/demo/cds/{html.escape(p.id)}?lang={lang}">{t["cards"]}'
        f'<span class="visually-hidden">: {html.escape(p.name)}</span></a></td></tr>'
        for p in demo.store.patients)
    return HTMLResponse(PAGE.format(lang=lang, title=t["title"], intro=t["intro"], home=t["home"], switch=t["switch"],
                                    other="en" if lang == "nl" else "nl", name=t["name"], who=t["who"],
                                    open=t["open"], rows=rows))


@router.get("")
def demo_root() -> RedirectResponse:
    return RedirectResponse("/demo/", status_code=307)


@router.get("/launch/{patient_id}")
def launch(request: Request, patient_id: str) -> Response:
    """The EHR launch (SMART App Launch 2.0): the EHR opens the app's launch URL with iss and launch."""
    demo = _demo(request)
    if demo.store.patient(patient_id) is None:
        return HTMLResponse("<p>Onbekende patiënt / unknown patient</p>", status_code=404)
    # The advice first: the app opens on its results view (appContext), as issue 23 asks.
    launch_token = demo.auth.new_launch(patient_id, json.dumps({"view": "results"}))
    query = urlencode({"iss": demo.fhir_base, "launch": launch_token})
    return RedirectResponse(f"/app/launch.html?{query}", status_code=303)


@router.get("/cds/{patient_id}")
def cds_view(request: Request, patient_id: str) -> Response:
    demo, lang = _demo(request), _lang(request)
    patient = demo.store.patient(patient_id)
    if patient is None:
        return HTMLResponse("<p>Onbekende patiënt / unknown patient</p>", status_code=404)
    page = (WEB / "cds.html").read_text(encoding="utf-8")
    data = {"patient": patient.id, "name": patient.name, "lang": lang,
            "drugs": {k: v["text"] for k, v in ORDERABLE.items()}}
    return HTMLResponse(page.replace("{{lang}}", lang).replace(
        "{{data}}", html.escape(json.dumps(data, ensure_ascii=False), quote=True)))


@router.get("/static/{name}")
def static(name: str) -> Response:
    path = WEB / name
    if name not in {"demo.css", "cds.js"} or not path.is_file():
        return Response(status_code=404)
    return Response(path.read_bytes(), media_type=MEDIA[path.suffix],
                    headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})


@router.get("/jwks.json")
def jwks(request: Request) -> JSONResponse:
    return JSONResponse(_demo(request).jwks)


# --- SMART -----------------------------------------------------------------------------------------
@router.get("/fhir/.well-known/smart-configuration")
def smart_configuration(request: Request) -> JSONResponse:
    demo = _demo(request)
    return JSONResponse(demo.auth.smart_configuration(demo.base))


@router.get("/auth/authorize")
def authorize(request: Request) -> Response:
    demo = _demo(request)
    default = demo.store.patients[0].id if demo.store.patients else ""
    try:
        target = demo.auth.authorize(dict(request.query_params), default)
    except AuthorizeError as exc:
        return HTMLResponse(f"<p>{html.escape(str(exc))}</p>", status_code=400)
    return RedirectResponse(target, status_code=302)


@router.post("/auth/token")
async def token(request: Request) -> JSONResponse:
    try:  # the one body reader (Content-Length checked first, streamed with a cap)
        raw = await read_body(request, 64 * 1024)
        form = {k: v[0] for k, v in parse_qs(raw.decode("ascii"), strict_parsing=False).items()}
    except (BodyError, UnicodeDecodeError):
        return JSONResponse({"error": "invalid_request", "error_description": "not URL-encoded"}, status_code=400)
    status, body = _demo(request).auth.token(form)
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


# --- FHIR ------------------------------------------------------------------------------------------
@router.get("/fhir/metadata")
def metadata(request: Request) -> Response:
    demo = _demo(request)
    return _fhir({"resourceType": "CapabilityStatement", "status": "active", "date": "2026-12-05", "kind": "instance",
                  "fhirVersion": "4.0.1", "format": ["json"], "implementation": {
                      "description": "alk-fhir demo EHR (example patients, in memory)", "url": demo.fhir_base},
                  "rest": [{"mode": "server", "security": {"service": [{"coding": [{
                      "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                      "code": "SMART-on-FHIR"}]}]}}]})


def _granted(demo: Demo, request: Request, rtype: str, action: str, verb: str) -> Access | Response:
    """The request's live access token if its scopes allow ``action`` on ``rtype``, else the 401/403."""
    access = demo.auth.access(request.headers.get("authorization"))
    if access is None:
        return _outcome(401, "login", "a valid Bearer access token is required")
    if not RESOURCE_TYPE.fullmatch(rtype) or not may(access, rtype, action):
        return _outcome(403, "forbidden", f"the token's scopes do not allow {verb} {rtype}")
    return access


@router.get("/fhir/{rtype}/{rid}")
def read(request: Request, rtype: str, rid: str) -> Response:
    demo = _demo(request)
    access = demo.auth.access(request.headers.get("authorization"))
    if access is None:
        return _outcome(401, "login", "a valid Bearer access token is required")
    res = demo.store.read(rtype, rid) if RESOURCE_TYPE.fullmatch(rtype) and FHIR_ID.fullmatch(rid) else None
    if res is None or not demo.store.in_compartment(res, access.patient):
        return _outcome(404, "not-found", f"{rtype}/{rid} not found")
    if not may(access, rtype, "r"):
        return _outcome(403, "forbidden", f"the token's scopes do not allow reading {rtype}")
    return _fhir(res)


@router.get("/fhir/{rtype}")
def search(request: Request, rtype: str) -> Response:
    demo = _demo(request)
    access = _granted(demo, request, rtype, "s", "searching")
    if isinstance(access, Response):
        return access
    try:
        found = demo.store.search(rtype, request.url.query, access.patient)
    except UnsupportedSearch as exc:
        return _outcome(400, "not-supported", str(exc))
    return _fhir({"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "searchset",
                  "total": sum(1 for r in found if r.get("resourceType") == rtype),
                  "link": [{"relation": "self", "url": str(request.url)}],
                  "entry": [{"fullUrl": f"{demo.fhir_base}/{r['resourceType']}/{r['id']}", "resource": r,
                             "search": {"mode": "match" if r.get("resourceType") == rtype else "include"}}
                            for r in found]})


def _create(demo: Demo, res: Any, patient: str, if_none_exist: str | None) -> Response:
    if not isinstance(res, dict):
        return _outcome(400, "structure", "the body must be a FHIR resource (a JSON object)")
    try:
        stored, created = demo.store.create(res, if_none_exist, patient)
    except PermissionError:
        return _outcome(403, "forbidden", "a patient-scoped write may only be for its patient")
    except UnsupportedSearch as exc:
        return _outcome(400, "not-supported", str(exc))
    except ValueError as exc:
        return _outcome(400, "invalid", str(exc))
    location = f"{demo.fhir_base}/{stored['resourceType']}/{stored['id']}/_history/1"
    return _fhir(stored, 201 if created else 200, {"Location": location})


@router.post("/fhir/{rtype}")
async def create(request: Request, rtype: str) -> Response:
    demo = _demo(request)
    access = _granted(demo, request, rtype, "c", "creating")
    if isinstance(access, Response):
        return access
    try:
        res = await read_json(request)
    except BodyError as exc:
        return _outcome(exc.status, exc.code, exc.diagnostics)
    if not isinstance(res, dict) or res.get("resourceType") != rtype:
        return _outcome(400, "invalid", f"the body must be a {rtype}")
    return _create(demo, res, access.patient, request.headers.get("if-none-exist"))


# --- the EHR side of CDS Hooks ---------------------------------------------------------------------
def _fill(template: str, patient: str) -> str | None:
    """A prefetch template with the CDS Hooks 2.0 prefetch tokens of this demo's context filled in;
    None when a token has no value here (the user is a Practitioner, not a PractitionerRole)."""
    values = {"context.patientId": patient, "context.userId": f"Practitioner/{DEMO_USER}",
              "userPractitionerId": DEMO_USER}
    out = template
    while "{{" in out:
        start = out.index("{{")
        end = out.index("}}", start)
        name = out[start + 2:end].strip()
        if name not in values:
            return None
        out = out[:start] + values[name] + out[end + 2:]
    return out


def hook_request(demo: Demo, service_id: str, patient: str, drug: str | None) -> dict[str, Any]:
    """A CDS Hooks 2.0 request as an EHR sends it, prefetch filled from this record."""
    service = SERVICES_BY_ID[service_id]
    prefetch: dict[str, Any] = {}
    for key, template in service.prefetch.items():
        query = _fill(template, patient)
        if query is None:
            continue
        rtype, sep, params = query.partition("?")
        if not sep:
            t, _, rid = rtype.partition("/")
            prefetch[key] = demo.store.read(t, rid)
            continue
        found = demo.store.search(rtype, params, patient)
        prefetch[key] = {"resourceType": "Bundle", "type": "searchset",
                         "entry": [{"fullUrl": f"{demo.fhir_base}/{r['resourceType']}/{r['id']}", "resource": r}
                                   for r in found]}
    context: dict[str, Any] = {"userId": f"Practitioner/{DEMO_USER}", "patientId": patient}
    if service.hook in ("order-select", "order-sign"):
        chosen = ORDERABLE[drug or "oxycodon"]
        concept: dict[str, Any] = {"text": chosen["text"]}
        if chosen["atc"]:
            concept["coding"] = [{"system": "http://www.whocc.no/atc", "code": chosen["atc"],
                                  "display": chosen["text"]}]
        order = {"resourceType": "MedicationRequest", "id": "demo-draft-1", "status": "draft", "intent": "order",
                 "subject": {"reference": f"Patient/{patient}"}, "medicationCodeableConcept": concept,
                 "requester": {"reference": f"Practitioner/{DEMO_USER}"}}
        context["draftOrders"] = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": order}]}
        if service.hook == "order-select":
            context["selections"] = ["MedicationRequest/demo-draft-1"]
    return {"hook": service.hook, "hookInstance": str(uuid.uuid4()), "fhirServer": demo.fhir_base,
            "context": context, "prefetch": prefetch}


@router.get("/api/patients/{patient_id}/hook-request")
def get_hook_request(request: Request, patient_id: str, service: str = "alk-patient-view",
                     drug: str | None = None) -> Response:
    """What the EHR would send for this patient: the request body and, when the service requires
    client JWTs, a fresh one for this call (single use: each jti is accepted once)."""
    demo = _demo(request)
    if demo.store.patient(patient_id) is None or service not in SERVICES_BY_ID or (
            drug is not None and drug not in ORDERABLE):
        return JSONResponse({"error": "unknown patient, service or drug"}, status_code=404)
    url = f"{demo.base}/cds-services/{service}"
    settings: Settings = request.app.state.settings
    body: dict[str, Any] = {"url": f"/cds-services/{service}", "request": hook_request(demo, service, patient_id, drug)}
    body["jwt"] = demo.client_jwt(url) if settings.cds_auth == "jwt" else None
    return JSONResponse(body)


@router.get("/api/cds-jwt")
def get_cds_jwt(request: Request, service: str, feedback: bool = False) -> JSONResponse:
    """A fresh client JWT for one call to ``service`` (or its feedback endpoint), null when the
    service does not require them (ALK_FHIR_CDS_AUTH=off)."""
    demo = _demo(request)
    if service not in SERVICES_BY_ID:
        return JSONResponse({"error": "unknown service"}, status_code=404)
    url = f"{demo.base}/cds-services/{service}" + ("/feedback" if feedback else "")
    settings: Settings = request.app.state.settings
    return JSONResponse({"jwt": demo.client_jwt(url) if settings.cds_auth == "jwt" else None})


@router.post("/api/patients/{patient_id}/accept")
async def accept(request: Request, patient_id: str) -> Response:
    """An accepted suggestion's actions, carried out as the EHR does (CDS Hooks 2.0 "Action": create
    the resource; an ``ifNoneExist`` on it makes the create conditional)."""
    demo = _demo(request)
    if demo.store.patient(patient_id) is None:
        return _outcome(404, "not-found", "unknown patient")
    try:
        actions = await read_json(request, send="application/json")
    except BodyError as exc:
        return _outcome(exc.status, exc.code, exc.diagnostics)
    if not isinstance(actions, list):
        return _outcome(400, "structure", "the body must be the suggestion's actions (a JSON array)")
    made: list[dict[str, Any]] = []
    for index, action in enumerate(actions):
        if not isinstance(action, dict) or action.get("type") != "create":
            return _outcome(400, "not-supported", f"action {index}: only create actions are carried out here")
        res = action.get("resource")
        # conditional create (FHIR R4 http.html#ccreate), as the service asks for it: the Da Vinci CRD
        # ``davinci-crd.if-none-exist`` action extension
        extension = action.get("extension")
        condition = extension.get(IF_NONE_EXIST) if isinstance(extension, dict) else None
        answer = _create(demo, res, patient_id, condition if isinstance(condition, str) else None)
        if answer.status_code >= 400:
            return answer
        made.append(json.loads(bytes(answer.body)))
    return _fhir({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in made]})


def install_demo(app: FastAPI) -> Demo:
    demo = Demo(app.state.settings)
    app.state.demo = demo
    app.include_router(router)
    return demo
