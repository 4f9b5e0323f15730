"""The SMART clinician app under ``/app/``: static files, its configuration, and overview rendering.

The app itself is static (``alk_fhir/app/web``) plus the browser builds that npm installs
(``alk_fhir/app/vendor``, written by ``scripts/build-app.sh``). Without that build the service still
starts; every app page then answers 503 with a page that says how to install it.

Endpoints:
- ``GET /app/launch.html``: the SMART launch URL (EHR launch with ``iss`` + ``launch``, standalone
  launch without them). ``GET /app/`` / ``/app/index.html``: the redirect URI.
- ``GET /app/config.json``: client id and scopes, from ``ALK_FHIR_APP_CLIENT_ID`` (default
  ``alk-fhir-app``) and ``ALK_FHIR_APP_SCOPE`` (default :data:`DEFAULT_SCOPE`), read into ``Settings``.
- ``POST /app/api/render-overview``: a case-overview document Bundle in, the readable HTML page out
  (``alk_fhir.overview.render_html``). Like ``$apply`` it is a pure transformation: nothing is read
  from or written to a store, so it needs no partner token; the app runs it on a document it read
  from the EHR with its own SMART token.
- ``POST /app/api/safety``: the same Parameters as ``$apply`` (``subject``, ``today``, ``data``) in, a
  Parameters out with one ``fact`` per safety fact that holds for the record (:data:`SAFETY_FACTS`:
  a lasting wish to die, risk medication), each carrying the ``alk-trigger`` extension $apply puts on
  an advice (label nl/en, value, the record's entries behind it). The facts and their labels are the
  Library's (alk-facts, ``alk-fact-presentation``); the app shows them above all advice.
- ``GET /app/guideline.html?lang=nl|en``: the guideline's sections as the package follows them, one
  anchor per section code of CodeSystem ``alk-guideline`` (``#section-2.2``): the section's title,
  what the plan advises there (PlanDefinition actions with that code) and which questions of our
  Questionnaires belong to it. The published Handreiking has no anchors per section, so every
  "Bron" link of the app points here; the page links to the published text.

SMART App Launch 2.0 (https://hl7.org/fhir/smart-app-launch/app-launch.html): a public client (no
secret) with PKCE S256; scopes in the v2 syntax (``patient/*.rs``, ``patient/QuestionnaireResponse.c``).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from alk_fhir.api.outcome import FHIRError, read_json_body
from alk_fhir.config import Settings
from alk_fhir.fhir import run_body_work
from alk_fhir.knowledge.canonical import GUIDELINE_SYSTEM, TRANSLATION_EXT

router = APIRouter(tags=["app"])

APP_DIR = Path(__file__).resolve().parents[1] / "app"
WEB_DIR = APP_DIR / "web"
VENDOR_DIR = APP_DIR / "vendor"
MANIFEST = VENDOR_DIR / "manifest.json"

# Scopes (Settings.app_scope): read what the rules and views need, write only QuestionnaireResponses;
# openid fhirUser names the author of a response. The launch page adds `launch` (EHR launch) or
# `launch/patient` (standalone).
DEFAULT_SCOPE = Settings.app_scope

MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
    ".json": "application/json", ".png": "image/png", ".svg": "image/svg+xml", ".ico": "image/x-icon",
    ".md": "text/plain; charset=utf-8", "": "text/plain; charset=utf-8",
}
# Scripts and styles only from here; the EHR's FHIR server and token endpoint can be anywhere
# (connect-src). The overview is shown in a sandboxed srcdoc iframe (no scripts run there).
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src *; frame-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors *")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the redirect URI carries code and state
}

INSTALL_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>alk-fhir clinician app: not installed</title>
<style>body{{font-family:system-ui,sans-serif;max-width:46em;margin:3em auto;padding:0 1em;line-height:1.5}}
code,pre{{background:#f3f3f3;padding:.1em .3em}}</style></head>
<body><main>
<h1>The clinician app is not installed</h1>
<p>The service is running, but the app's JavaScript dependencies (<code>fhirclient</code> and
<code>lforms</code> from npm) have not been installed, so the SMART app cannot start.</p>
<p>{reason}</p>
<p>Install them from the repository root (needs Node.js 18+ and npm), then reload this page:</p>
<pre>scripts/build-app.sh</pre>
<p>That runs <code>npm ci</code> and <code>npm run build</code> in <code>src/alk_fhir/app</code>.</p>
<p lang="nl">De klinische app is nog niet geïnstalleerd: voer <code>scripts/build-app.sh</code> uit.</p>
</main></body></html>
"""


def build_problem() -> str | None:
    """Why the app cannot be served, or None when the npm build is in place."""
    if not MANIFEST.is_file():
        return f"{MANIFEST} is missing."
    try:
        manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
        files = [f for pkg in manifest["packages"].values() for f in pkg["files"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "vendor/manifest.json is unreadable; rebuild."
    missing = [f for f in files if not (VENDOR_DIR / f).is_file()]
    return f"vendor files missing: {', '.join(missing)}." if missing else None


def app_config(settings: Settings) -> dict[str, Any]:
    return {"clientId": settings.app_client_id, "scope": settings.app_scope, "redirectPath": "index.html"}


def _file_response(path: Path) -> Response:
    media = MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")
    headers = dict(SECURITY_HEADERS)
    headers["Cache-Control"] = "no-store" if path.suffix == ".html" else "no-cache"
    return Response(path.read_bytes(), media_type=media, headers=headers)


def _install_page(problem: str) -> HTMLResponse:
    return HTMLResponse(INSTALL_PAGE.format(reason=html.escape(problem)), status_code=503,
                        headers={"Cache-Control": "no-store", "Retry-After": "300"})


def _resolve(rel: str) -> Path | None:
    """A file inside web/ or vendor/ (``vendor/...``), never outside them."""
    if rel.startswith("vendor/"):
        root, rel = VENDOR_DIR, rel[len("vendor/"):]
    else:
        root = WEB_DIR
    try:
        path = (root / rel).resolve()
    except (OSError, ValueError):
        return None
    if not path.is_relative_to(root.resolve()) or not path.is_file():
        return None
    return path


@router.get("/app", include_in_schema=False)
def app_root() -> RedirectResponse:
    return RedirectResponse("/app/", status_code=308)


@router.get("/app/config.json", include_in_schema=False)
def config(request: Request) -> Response:
    return Response(json.dumps(app_config(request.app.state.settings)), media_type="application/json",
                    headers={"Cache-Control": "no-store", **SECURITY_HEADERS})


@router.post("/app/api/render-overview", response_class=HTMLResponse)
async def render_overview(request: Request) -> Response:
    """The case overview document (Bundle, type document) as the standalone HTML page."""
    from alk_fhir.api.validate_routes import require_valid_document
    from alk_fhir.overview import DocumentError, render_html

    def render(document: Any) -> str:
        require_valid_document(request, document)  # 422 with the OperationOutcome: render only what conforms
        try:
            return render_html(document, request.app.state.package)
        except DocumentError as exc:
            raise FHIRError(422, "invalid", f"not a case-overview document: {exc}") from exc

    page = await run_body_work(request, render, await read_json_body(request))
    return HTMLResponse(page, headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})


# What the results view shows first, before any advice, whenever the record holds it: facts of Library
# alk-facts (their definitions and labels are the Library's; this list only chooses what goes on top).
SAFETY_FACTS = ("wishToDie", "riskMedicationCount")


def _holds(value: Any) -> bool:
    """A yes/no fact that is true or a count above zero (a fact's list, non-empty)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value > 0
    return bool(value) if isinstance(value, list) else False


@router.post("/app/api/safety")
async def safety(request: Request) -> Response:
    """The safety facts that hold for the record, as $apply's triggers name them."""
    # $apply's own parameter reading and trigger wording: one way to do each
    from alk_fhir.api.apply_routes import parse_parameters

    params = parse_parameters(await read_json_body(request))
    return await run_body_work(request, _safety, request, params)


def _safety(request: Request, params: dict[str, Any]) -> Response:
    from alk_fhir.api.apply_routes import _subject_id, _today
    from alk_fhir.apply.engine import _trigger
    from alk_fhir.context import build_context, compile_facts

    data = params.get("data")
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        raise FHIRError(400, "required", "parameter 'data' (a Bundle with the patient's resources) is required")
    package = request.app.state.package
    ctx = build_context(data, package, _today(params.get("today")), patient_id=_subject_id(params.get("subject")))
    if ctx.patient is None:
        raise FHIRError(400, "required", "the data hold no Patient: send parameter 'subject' or a Patient in 'data'")
    program = compile_facts(package)
    found = []
    for name in SAFETY_FACTS:
        fact = program.by_name.get(name)
        if fact is None or not fact.presentation or not _holds(ctx.facts.get(name)):
            continue
        found.append({"name": "fact", "extension": [_trigger(ctx, name, fact.presentation)]})
    body = {"resourceType": "Parameters", "parameter": found}
    return Response(json.dumps(body), media_type="application/fhir+json", headers={"Cache-Control": "no-store"})


GUIDELINE_TEXT = {
    "nl": {"title": "Handreiking hardnekkige ALK: de secties", "contents": "Inhoud",
           "advice": "Wat de app adviseert", "questions": "Vragen in de vragenlijsten",
           "source": "De volledige tekst staat in de gepubliceerde handreiking",
           "intro": "Elke aanbeveling van de app verwijst naar een sectie hieronder. Per sectie staat wat dit "
                    "pakket ermee doet; de tekst van de handreiking zelf staat bij de NALK.",
           "none": "Dit pakket geeft hier geen eigen advies.", "language": "nl"},
    "en": {"title": "Guideline on persistent ALK: the sections", "contents": "Contents",
           "advice": "What the app advises", "questions": "Questions in the questionnaires",
           "source": "The full text is in the published guideline",
           "intro": "Every recommendation of the app refers to a section below. Each section lists what this "
                    "package does with it; the guideline's own text is published by NALK.",
           "none": "This package gives no advice of its own here.", "language": "en"},
}


def translated(obj: dict[str, Any] | None, key: str, language: str) -> str:
    """``obj[key]`` in ``language`` (FHIR translation extension on ``_key``; Dutch is the value)."""
    if not obj:
        return ""
    value = str(obj.get(key) or "")
    if language == "nl":
        return value
    for ext in (obj.get(f"_{key}") or {}).get("extension", []):
        parts = {e.get("url"): e for e in ext.get("extension", [])} if ext.get("url") == TRANSLATION_EXT else {}
        if str(parts.get("lang", {}).get("valueCode", "")).startswith(language):
            return str(parts.get("content", {}).get("valueString") or value)
    return value


def _concept_title(concept: dict[str, Any], language: str) -> str:
    if language != "nl":
        for d in concept.get("designation", []):
            if str(d.get("language", "")).startswith(language):
                return str(d.get("value") or concept.get("display", ""))
    return str(concept.get("display", ""))


def _coded(node: dict[str, Any]) -> set[str]:
    codes = {c.get("code") for c in node.get("code", []) if isinstance(c, dict) and c.get("system") == GUIDELINE_SYSTEM}
    for concept in node.get("code", []):
        if isinstance(concept, dict):
            codes |= {c.get("code") for c in concept.get("coding", []) if c.get("system") == GUIDELINE_SYSTEM}
    return {c for c in codes if isinstance(c, str)}


def guideline_page(package: Any, language: str) -> str:
    """The sections of CodeSystem alk-guideline as one page, an anchor per code."""
    text = GUIDELINE_TEXT[language]
    cs = package.resolve(GUIDELINE_SYSTEM) or {}
    advice: dict[str, list[dict[str, Any]]] = {}
    questions: dict[str, list[tuple[str, str]]] = {}

    def walk_actions(actions: list[dict[str, Any]]) -> None:
        for action in actions:
            for code in _coded(action):
                advice.setdefault(code, []).append(action)
            walk_actions(action.get("action", []))

    for plan in package.of_type("PlanDefinition"):
        walk_actions(plan.get("action", []))

    def walk_items(items: list[dict[str, Any]], form: str) -> None:
        for item in items:
            if item.get("type") not in ("group", "display"):
                for code in _coded(item):
                    questions.setdefault(code, []).append((form, translated(item, "text", language)))
            walk_items(item.get("item", []), form)

    for q in package.of_type("Questionnaire"):
        walk_items(q.get("item", []), translated(q, "title", language))
    esc = html.escape
    published = next((a for p in package.of_type("PlanDefinition") for a in p.get("relatedArtifact", [])
                      if a.get("label") == "H" and a.get("url")), None)
    toc: list[str] = []
    body: list[str] = []

    def section(concept: dict[str, Any], level: int) -> None:
        code = str(concept.get("code", ""))
        anchor = f"section-{code}"
        title = f"§{code} {_concept_title(concept, language)}"
        toc.append(f'<li><a href="#{esc(anchor)}">{esc(title)}</a></li>')
        parts = [f'<section id="{esc(anchor)}" aria-labelledby="{esc(anchor)}-title">',
                 f'<h{level} id="{esc(anchor)}-title">{esc(title)}</h{level}>']
        definition = concept.get("definition")
        if definition:
            parts.append(f"<p>{esc(str(definition))}</p>")
        steps = advice.get(code, [])
        if steps:
            parts.append(f"<h{level + 1}>{esc(text['advice'])}</h{level + 1}><ul>")
            parts += [f"<li><strong>{esc(translated(a, 'title', language))}</strong>"
                      + (f"<br>{esc(translated(a, 'description', language))}" if a.get("description") else "")
                      + "</li>" for a in steps]
            parts.append("</ul>")
        asked = questions.get(code, [])
        if asked:
            parts.append(f"<h{level + 1}>{esc(text['questions'])}</h{level + 1}><ul>")
            parts += [f'<li>{esc(question)} <span class="muted">({esc(form)})</span></li>' for form, question in asked]
            parts.append("</ul>")
        if not steps and not asked and not concept.get("concept"):
            parts.append(f'<p class="muted">{esc(text["none"])}</p>')
        body.append("\n".join(parts))
        for child in concept.get("concept", []):
            section(child, min(level + 1, 4))
        body.append("</section>")

    for concept in cs.get("concept", []):
        section(concept, 2)
    source = (f'<p>{esc(text["source"])}: <a href="{esc(published["url"])}">'
              f'{esc(translated(published, "display", language))}</a>.</p>') if published else ""
    return (
        f'<!doctype html>\n<html lang="{text["language"]}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<title>{esc(text["title"])}</title>\n<link rel="icon" href="data:,">\n'
        '<link rel="stylesheet" href="css/app.css">\n</head>\n<body class="guideline-page">\n'
        f'<header class="top"><p class="brand">{esc(translated(cs, "title", language) or text["title"])}</p></header>\n'
        f'<main id="main" class="guideline">\n<h1>{esc(text["title"])}</h1>\n<p>{esc(text["intro"])}</p>\n{source}\n'
        f'<nav aria-labelledby="toc-title"><h2 id="toc-title">{esc(text["contents"])}</h2>'
        f'<ul>{"".join(toc)}</ul></nav>\n'
        + "\n".join(body) + "\n</main>\n</body>\n</html>\n"
    )


@router.get("/app/guideline.html", include_in_schema=False)
def guideline(request: Request, lang: str = "nl") -> Response:
    """Our rendering of the guideline's sections (CodeSystem alk-guideline), one anchor per code."""
    problem = build_problem()
    if problem:
        return _install_page(problem)
    page = guideline_page(request.app.state.package, "en" if lang == "en" else "nl")
    headers = dict(SECURITY_HEADERS)
    headers["Cache-Control"] = "no-cache"
    return HTMLResponse(page, headers=headers)


@router.get("/app/{rel:path}", include_in_schema=False)
def static(rel: str) -> Response:
    rel = rel or "index.html"
    path = _resolve(rel)
    if path is None:
        raise FHIRError(404, "not-found", f"/app/{rel} not found")
    if path.suffix == ".html":
        problem = build_problem()
        if problem:
            return _install_page(problem)
    return _file_response(path)
