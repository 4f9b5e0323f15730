"""The learning loop on the service (issue 13): the feedback report, and recording the cards shown.

- ``GET /report/feedback?since=YYYY-MM&format=html|csv|json`` (default ``json``): the report of
  ``alk_fhir.report`` over this server's store. It holds counts per month, guideline section and
  plan action only (no patient, professional or organisation), yet it says how a service is used, so
  it is not public: a SMART Backend Services access token with scope ``system/alk-report.read``
  (``SCOPE_REPORT``; register the working group's client with it in ``ALK_FHIR_PARTNERS_FILE``).
  401/403 as for the overview endpoints (``RequirePartner``), every access audited; a bad
  ``since`` or ``format`` is a 400 OperationOutcome.
- :func:`install` wires ``app.state.cds_shown``: the recorder (``alk_fhir.shown``) to which the CDS
  router hands each answer's cards, writing them to the store off the hot path, and which maps a
  card's uuid back to its plan action with the card builder's own uuid rule.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from alk_fhir.api.outcome import FHIRError
from alk_fhir.auth import SCOPE_REPORT, Principal, RequirePartner, audit_access
from alk_fhir.cds import Catalog, cds_state
from alk_fhir.cds.cards import _NAMESPACE, UUID_SALT, CardOptions, _uuid
from alk_fhir.fhir import uuid5_from_sha1
from alk_fhir.knowledge import CONCEPTS_SYSTEM
from alk_fhir.report import FORMATS, MEDIA_TYPES, FeedbackReport, Labels, build_report, render
from alk_fhir.shown import ShownRecorder
from alk_fhir.store import InvalidRecord, Store
from alk_fhir.store.learning import check_month


@asynccontextmanager
async def _lifespan(app: Any) -> AsyncIterator[None]:
    yield
    recorder = getattr(app.state, "cds_shown", None)
    if isinstance(recorder, ShownRecorder):  # write what is queued before the process ends
        await run_in_threadpool(recorder.close)


router = APIRouter(tags=["report"], lifespan=_lifespan)
Reporter = Annotated[Principal, Depends(RequirePartner(SCOPE_REPORT, interaction="read"))]


def report_labels(catalog: Catalog) -> Labels:
    """Titles of the sections, actions and override reasons, from the compiled card catalog."""
    sections: dict[str, Mapping[str, str]] = {}
    actions: dict[str, Mapping[str, str]] = {}
    for info in catalog.actions.values():
        actions[info.id] = info.title
        topic_nl, topic_en = info.topic.get("nl", {}), info.topic.get("en", {})
        if topic_nl.get("code") and topic_nl.get("display"):
            sections.setdefault(topic_nl["code"], {"nl": topic_nl["display"],
                                                   "en": topic_en.get("display") or topic_nl["display"]})
    return Labels(sections=sections, actions=actions, reasons=dict(catalog.override_reasons),
                  reason_system=CONCEPTS_SYSTEM)


def _uuids_fast(hook_instance: str, action_ids: Iterable[str]) -> dict[str, str]:
    """The card uuids of a call, as ``cds.cards`` makes them (RFC 9562 uuid5 of ``salt|hookInstance|actionId``
    in its namespace), hashing the shared prefix once: a tenth of the cost of ``uuid.uuid5`` per action,
    and this runs for every CDS call (in the recorder's thread, beside the hot path)."""
    prefix = hashlib.sha1(_NAMESPACE.bytes + f"{UUID_SALT}|{hook_instance}|".encode(), usedforsecurity=False)
    found = {}
    for action_id in action_ids:
        digest = prefix.copy()
        digest.update(action_id.encode())
        found[uuid5_from_sha1(digest.digest())] = action_id
    return found


def _uuids_exact(hook_instance: str, action_ids: Iterable[str]) -> dict[str, str]:
    options = CardOptions(lang="nl", hook_instance=hook_instance)
    return {_uuid(options, action_id): action_id for action_id in action_ids}


def actions_by_card(app: Any) -> Callable[[str, Iterable[str | None]], dict[str, str]]:
    """``(hookInstance, sections) -> {card uuid: action id}``: the card builder's uuid rule run over the
    actions of the sections the call's cards cite (all actions for a card without a section). The fast
    rule is checked against the card builder's own once; should they ever differ, the builder's is used."""
    by_section: dict[str | None, list[str]] = {}
    rule: list[Callable[[str, Iterable[str]], dict[str, str]]] = []

    def actions_of(hook_instance: str, sections: Iterable[str | None]) -> dict[str, str]:
        catalog = cds_state(app).catalog
        if not rule:
            for action_id, info in catalog.actions.items():
                by_section.setdefault(info.topic.get("nl", {}).get("code"), []).append(action_id)
            probe = str(uuid.uuid4())
            same = _uuids_fast(probe, catalog.actions) == _uuids_exact(probe, catalog.actions)
            rule.append(_uuids_fast if same else _uuids_exact)
        wanted = set(sections)
        candidates = catalog.actions if None in wanted else [a for s in wanted for a in by_section.get(s, [])]
        return rule[0](hook_instance, candidates)

    return actions_of


def install(app: FastAPI) -> APIRouter:
    """Record the cards CDS calls show in the app's store, and serve the report."""
    if getattr(app.state, "cds_shown", None) is None:
        app.state.cds_shown = ShownRecorder(app.state.store, actions_by_card(app))
    return router


def feedback_report(store: Store, catalog: Catalog, since: str | None) -> FeedbackReport:
    """The report over ``store`` (``since`` a checked YYYY-MM or None); the one composition api and cli share."""
    return build_report(store.shown_counts(since=since), store.feedback_facts(since=since), report_labels(catalog),
                        since=since)


@router.get("/report/feedback", response_class=Response, summary="CDS feedback report (learning loop)",
            responses={200: {"content": {"text/html": {}, "text/csv": {}, "application/json": {}}},
                       400: {"description": "bad since or format (OperationOutcome)"},
                       401: {"description": "no or an invalid access token"},
                       403: {"description": f"token without scope {SCOPE_REPORT}"}})
async def feedback(request: Request, principal: Reporter,
                   since: Annotated[str | None, Query(description="first month, YYYY-MM")] = None,
                   format: Annotated[str, Query(description="html, csv or json")] = "json") -> Response:
    if format not in FORMATS:
        raise FHIRError(400, "invalid", f"format must be one of {', '.join(FORMATS)}, got {format!r}", "format")
    try:
        checked = check_month(since, "since") if since is not None else None
    except InvalidRecord as exc:
        raise FHIRError(400, "invalid", str(exc), "since") from None
    store: Store = request.app.state.store
    report = await run_in_threadpool(feedback_report, store, cds_state(request.app).catalog, checked)
    audit_access(request, principal, interaction="read", outcome="0",
                 description=f"feedback report, since {checked or 'the start'}, {format}")
    return Response(render(report, format), media_type=MEDIA_TYPES[format])
