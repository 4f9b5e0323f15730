"""``GET /``: where a newcomer lands. A person with a browser gets a page saying what the service is
and where its parts are; a FHIR client gets an OperationOutcome pointing at the CapabilityStatement
(``/`` is not the FHIR base: that is ``/fhir``).

Negotiated on ``Accept`` (or FHIR's ``_format``): JSON only when the client prefers it to HTML, so
browsers and ``curl`` (``*/*``) get the page.
"""

from __future__ import annotations

import html

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from alk_fhir import __version__
from alk_fhir.api.outcome import fhir_response
from alk_fhir.fhir import operation_outcome

router = APIRouter(include_in_schema=False)

_HTML_TYPES = ("text/html", "application/xhtml+xml")
_JSON_TYPES = ("application/fhir+json", "application/json+fhir", "application/json")

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>alk-fhir</title>
<style>body{{font-family:system-ui,sans-serif;max-width:46em;margin:3em auto;padding:0 1em;line-height:1.5}}
code{{background:#f3f3f3;padding:0 .2em}} dt{{font-weight:600;margin-top:.8em}} dd{{margin-left:1.2em}}</style>
</head><body><main>
<h1>alk-fhir {version}</h1>
<p>The Dutch NALK guideline on persistent physical symptoms (<i>Handreiking hardnekkige ALK</i>) as
standard FHIR R4: a CDS Hooks 2.0 service, <code>PlanDefinition/$apply</code>, validation against the
guideline's profiles, and the shared case overview exchanged between GP and GGz.</p>
{demo}<dl>
<dt><a href="/app/">/app/</a></dt>
<dd>the clinician app (SMART on FHIR: launch it from an EHR, or standalone)</dd>
<dt><a href="/docs">/docs</a></dt>
<dd>the HTTP API, described and testable (OpenAPI)</dd>
<dt><a href="/cds-services">/cds-services</a></dt>
<dd>CDS Hooks discovery: <code>patient-view</code>, <code>order-select</code>, <code>order-sign</code>{cds_note}</dd>
<dt><a href="/fhir/metadata">/fhir/metadata</a></dt>
<dd>the CapabilityStatement of the FHIR endpoints under <code>{base}/fhir</code> (the guideline package,
<code>$validate</code>, <code>$apply</code>, case overviews)</dd>
</dl>
</main></body></html>
"""


DEMO = """<p class="demo"><strong>Start here: <a href="/demo/">/demo/</a></strong> — example patients in a
demo EHR: open one in the clinician app (SMART launch) or see the CDS cards an EHR would show.
<span lang="nl">Begin hier: voorbeeldpatiënten in een demo-EPD.</span></p>
"""


def _quality(accept: str, types: tuple[str, ...]) -> float:
    """The highest q the Accept header gives any of ``types`` (ranges like ``text/*`` and ``*/*`` count)."""
    best = 0.0
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.lower()
        major = media.split("/")[0]
        if media in types or media == "*/*" or (media.endswith("/*") and any(t.startswith(major + "/") for t in types)):
            best = max(best, q if media in types else q - 0.001)  # an exact type beats a wildcard at equal q
    return best


def wants_fhir(request: Request) -> bool:
    fmt = request.query_params.get("_format")
    if fmt is not None:
        return "json" in fmt.lower()
    accept = request.headers.get("accept", "")
    return bool(accept) and _quality(accept, _JSON_TYPES) > _quality(accept, _HTML_TYPES)


@router.api_route("/", methods=["GET", "HEAD"])
def home(request: Request) -> Response:
    settings = request.app.state.settings
    base = str(settings.base_url).rstrip("/")
    if wants_fhir(request):
        outcome = operation_outcome(
            "information", "informational",
            f"This is the alk-fhir service, not a FHIR endpoint. The FHIR base is {base}/fhir; its "
            f"CapabilityStatement is {base}/fhir/metadata. CDS Hooks discovery: {base}/cds-services.")
        return fhir_response(outcome, headers={"Link": f'<{base}/fhir/metadata>; rel="describedby"'})
    cds_note = (" (each call carries the EHR's signed JWT)" if settings.cds_auth == "jwt"
                else " (client JWTs are off on this instance: development only)")
    return HTMLResponse(PAGE.format(version=html.escape(__version__), base=html.escape(base),
                                    cds_note=html.escape(cds_note), demo=DEMO if settings.demo else ""))
