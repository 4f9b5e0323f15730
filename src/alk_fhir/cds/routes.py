"""The CDS Hooks 2.0 endpoints: discovery, service calls, feedback.

``api`` mounts this router with the CDS client JWT check (``alk_fhir.auth.CdsClientAuth``) as a
router dependency, so every call, discovery included ("Trusting CDS Clients": "for every single
CDS Service call, whether that be a Discovery call, a single CDS Service invocation, …") is
authenticated before anything here runs.

A call does only per-patient work: the plan, its FHIRPath and the card texts were compiled at
start-up (``state.build_cds_state``). Status codes: 200 with cards (``{"cards": []}`` when nothing
applies), 400 malformed request, 404 unknown service, 412 needed data cannot be had, 413/415 for
bodies that are too large or not JSON; never a 500 for anything a caller sends.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from alk_fhir.apply import run
from alk_fhir.cds.cards import CardOptions, action_cards
from alk_fhir.cds.discovery import SERVICES_BY_ID, Service, discovery_document
from alk_fhir.cds.errors import CdsError, error_response, json_response
from alk_fhir.cds.feedback import check_feedback
from alk_fhir.cds.openapi import (
    CDS_RESPONSE,
    DISCOVERY_RESPONSE,
    FEEDBACK_REQUEST,
    HOOK_REQUEST,
    SERVICE_IDS,
    json_body,
    responses,
)
from alk_fhir.cds.prefetch import Resolved, needs_network, resolve
from alk_fhir.cds.request import HookRequest, parse_hook_request, selected_orders
from alk_fhir.cds.state import CdsState, cds_state
from alk_fhir.cds.text import choose_language
from alk_fhir.context import compile_facts
from alk_fhir.fhir import body as fhir_body
from alk_fhir.shown import record_shown  # queues the cards for the store; no I/O here

log = logging.getLogger("alk_fhir.cds")
DATA_ISSUES_EXTENSION = "org.alk-fhir.data-issues"
SERVICES_BY_ID_HOOK = {s.hook: s for s in SERVICES_BY_ID.values()}
_SERVICE_PARAM = [{"name": "service_id", "in": "path", "required": True,
                   "schema": {"type": "string", "enum": SERVICE_IDS}}]


@asynccontextmanager
async def _lifespan(app: Any) -> AsyncIterator[None]:
    cds_state(app)  # compiles the card catalog; a broken plan stops start-up here
    yield


router = APIRouter(tags=["cds-hooks"], lifespan=_lifespan)


async def read_json(request: Request) -> Any:
    """The call's body through the one reader (``alk_fhir.fhir.read_json``: Content-Length checked
    before reading, streamed with the cap, depth guard), its refusals as CDS error bodies."""
    try:
        return await fhir_body.read_json(request, send="application/json")
    except fhir_body.BodyError as exc:
        raise CdsError(exc.status, exc.code, exc.diagnostics) from None


def service_of(request: Request) -> Service:
    service_id = str(request.path_params.get("service_id", ""))
    service = SERVICES_BY_ID.get(service_id)
    if service is None:
        raise CdsError(404, "not-found", f"no CDS service {service_id!r}; see GET /cds-services")
    return service


@router.get("/cds-services", response_class=Response, responses=responses(DISCOVERY_RESPONSE, 401),
            summary="CDS Hooks discovery")
def discovery(request: Request) -> Response:
    return json_response(discovery_document(choose_language(request.headers.get("accept-language"))))


def _practitioner(hook: HookRequest, resolved: Resolved) -> dict[str, Any]:
    """The user as a reference, with the name from the ``user`` prefetch when there is one (a name we
    cannot read is left out: the reference alone is enough)."""
    ref: dict[str, Any] = {"reference": hook.user_reference}
    for res in resolved.resources:
        if not isinstance(res, dict) or res.get("resourceType") != hook.user_type or res.get("id") != hook.user_id:
            continue
        names = res.get("name")
        name = next((n for n in names if isinstance(n, dict)), None) if isinstance(names, list) else None
        if name is None:
            continue
        given = name.get("given")
        parts = [*(given if isinstance(given, list) else []), name.get("family")]
        text = name.get("text") or " ".join(p for p in parts if isinstance(p, str))
        if isinstance(text, str) and text.strip():
            ref["display"] = text.strip()
    return ref


def _check_patient(hook: HookRequest, resolved: Resolved) -> None:
    for res in resolved.resources:
        if isinstance(res, dict) and res.get("resourceType") == "Patient" and res.get("id") not in (
                None, hook.patient_id):
            raise CdsError(400, "invalid", "prefetch holds a Patient other than context.patientId", "prefetch")


@functools.cache
def _template_types(hook: str) -> frozenset[str]:
    """The resource types a service's prefetch asks for (``Type?…`` and ``Type/{{…}}``)."""
    return frozenset(re.split(r"[?/]", t, maxsplit=1)[0] for t in SERVICES_BY_ID_HOOK[hook].prefetch.values())


def _unread(state: CdsState, service: Service, resolved: Resolved) -> list[dict[str, Any]]:
    """The trace of what was left out (issue 18): resource types the call carried that neither a data
    requirement of the facts Library reads nor a prefetch template asked for (the user, included
    performers), with their counts, as an information issue; nothing when there are none."""
    wanted = set(compile_facts(state.engine.package).requirements.values()) | _template_types(service.hook)
    unread: dict[str, int] = {}
    for res in resolved.resources:
        rtype = res.get("resourceType") if isinstance(res, dict) else None
        if isinstance(rtype, str) and rtype not in wanted:
            unread[rtype] = unread.get(rtype, 0) + 1
    if not unread:
        return []
    listed = ", ".join(f"{t} ({n})" for t, n in sorted(unread.items()))
    return [{"severity": "information", "code": "informational",
             "diagnostics": f"not read by any fact of the guideline, so left out of the advice: {listed}"}]


def answer(state: CdsState, service: Service, hook: HookRequest, resolved: Resolved, lang: str) -> dict[str, Any]:
    if not state.catalog.actions:
        raise CdsError(503, "not-found", "the guideline PlanDefinition is not loaded on this server")
    _check_patient(hook, resolved)
    practitioner = _practitioner(hook, resolved)
    try:
        result = run(state.engine, resolved.resources, state.today(), hook=service.hook, explain=False,
                     practitioner=practitioner, draft_orders=selected_orders(hook), patient_id=hook.patient_id)
    except Exception as exc:  # a defect must not become a 500 for the EHR; the log keeps it
        log.exception("CDS %s: the engine failed on this record", service.id, exc_info=exc)
        raise CdsError(422, "processing", "the patient data could not be evaluated") from None
    built = action_cards(result, state.catalog, CardOptions(
        lang=lang, hook_instance=hook.hook_instance, launch_url=state.settings.app_launch_url))
    # remembered overrides: a card snoozed for this patient stays away while the finding behind it holds
    cards = state.snoozer.present(built, hook.patient_id, result.context, state.catalog, state.today())
    body: dict[str, Any] = {"cards": cards}
    issues = resolved.issues + result.context.issues + _unread(state, service, resolved)
    if issues:
        body["extension"] = {DATA_ISSUES_EXTENSION: {"resourceType": "OperationOutcome", "issue": issues}}
    return body


@router.post("/cds-services/{service_id}", response_class=Response,
             openapi_extra={**json_body(HOOK_REQUEST), "parameters": _SERVICE_PARAM},
             responses=responses(CDS_RESPONSE, 400, 401, 404, 412, 413, 415, 422, 503), summary="Call a CDS service")
async def call_service(request: Request) -> Response:
    try:
        state = cds_state(request.app)
        service = service_of(request)
        hook = parse_hook_request(await read_json(request), service)
        lang = choose_language(request.headers.get("accept-language"))
        if hook.user_type not in service.user_types:
            return json_response({"cards": []})  # guidance for professionals only (usageRequirements)
        if needs_network(hook, service):
            resolved = await run_in_threadpool(resolve, hook, service, state.open_source)
        else:  # everything came in the prefetch: no thread hop on the hot path (unless the body was big)
            resolved = await fhir_body.run_body_work(request, resolve, hook, service, state.open_source)
        body = await fhir_body.run_body_work(request, answer, state, service, hook, resolved, lang)
        record_shown(request.app, service.id, hook.hook_instance, body["cards"])  # learning loop (issue 13)
        return json_response(body)
    except CdsError as exc:
        return error_response(exc)


@router.post("/cds-services/{service_id}/feedback", response_class=Response,
             openapi_extra={**json_body(FEEDBACK_REQUEST), "parameters": _SERVICE_PARAM},
             responses=responses(None, 400, 401, 404, 413, 415, 503), summary="CDS Hooks feedback")
async def feedback(request: Request) -> Response:
    try:
        state = cds_state(request.app)
        service = service_of(request)
        entries = await fhir_body.run_body_work(request, check_feedback, await read_json(request))
        try:
            # the snooze first: a retry after a failure below snoozes again (same row) and stores once
            await run_in_threadpool(state.snoozer.on_feedback, entries, state.today())
            await run_in_threadpool(state.feedback.save_feedback_items, service.id, entries)
        except Exception as exc:  # the store is down: say so, keep the stack trace in the log
            log.exception("CDS %s: feedback not stored", service.id, exc_info=exc)
            raise CdsError(503, "transient", "feedback could not be stored; try again later") from None
        return Response(status_code=200)
    except CdsError as exc:
        return error_response(exc)
