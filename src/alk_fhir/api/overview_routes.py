"""The receiving end of the overview exchange: ``[base]/fhir/Bundle`` for case-overview documents.

FHIR R4 RESTful API (http.html), for one resource type and one kind of Bundle:

- ``POST /fhir/Bundle`` — the document is validated against our profiles (422 + OperationOutcome
  when it does not conform) and stored as a new version of the logical Bundle the writer keeps under
  its ``Bundle.identifier``; the same content again creates nothing (200 with the current version).
  ``201 Created`` when the logical resource is new, ``200 OK`` otherwise; ``Location`` names the
  version (``…/_history/{vid}``), ``ETag`` is ``W/"{vid}"`` (http.html#versioning). A sender's
  ``If-None-Exist: identifier=system|value`` (conditional create, http.html#ccreate) must name the
  document's own identifier; the guarantee it asks for — a retry never makes a second resource — is
  what the identifier-keyed store gives, and an unchanged retry never makes a second version either.
  The condition is judged over the documents the writer keeps (a search as the writer sees nothing of
  another organisation's document with that identifier).
  ``Prefer: return=minimal`` / ``return=OperationOutcome`` are honoured (http.html#ops); the outcome
  codes a stored version (``MSG_CREATED``/``MSG_UPDATED``), so a sender can tell it from "already there".
- ``GET /fhir/Bundle/{id}``, ``GET /fhir/Bundle/{id}/_history``, ``GET /fhir/Bundle/{id}/_history/{vid}``
  (read, history-instance, vread).
- ``GET /fhir/Bundle?identifier=[system]|value`` and ``?composition.patient.identifier=[system]|value``
  (the standard Bundle search parameter ``composition`` chained to Composition ``patient``, then
  ``identifier``; token syntax and escaping of search.html#token / #escaping).

Access (patient data is never open): a SMART Backend Services access token with
``system/Bundle.write`` to create, ``system/Bundle.read`` to read; a partner writes only documents
whose custodian (or, without one, an author) is its own organisation, adds versions only to documents
whose first version it stored, and reads only documents it wrote or that are addressed to it. A document
is (owner, identifier): a partner posting an identifier another organisation's document has gets its own
new document (201, exactly as for an identifier nobody uses), never a version of the other's, so a create
tells it nothing about documents it is not a party to; the AuditEvent marks it (outcome 4) and names the
other owner. There is no update (PUT) interaction: ``PUT /fhir/Bundle/{id}`` is 405 for every id.
"Addressed to it" is the consent rule of ``overview.consent`` (status, period, parties, nested deny),
applied twice: when a version is stored (the organisations the writer may share it with that day are
recorded with it; a new document that no Consent in force lets the writer share is refused, 403) and on
every read, to the document's current version on the day of the read: once a period has ended, or a newer
version withdraws the consent, the former recipient reads no version at all. A document it may not read
answers 404 exactly as an unknown one does, so ids cannot be probed.
Every access, allowed or refused, is recorded as an AuditEvent.
"""

from __future__ import annotations

import re
import uuid
from datetime import date
from email.utils import format_datetime
from typing import Annotated, Any, NoReturn
from urllib.parse import unquote

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from alk_fhir.api.outcome import FHIRError, FHIRResponse, fhir_response, operation_outcome, read_json_body
from alk_fhir.api.validate_routes import require_valid_document
from alk_fhir.auth import SCOPE_READ, SCOPE_WRITE, Principal, RequirePartner, audit_access, may_read, may_write
from alk_fhir.auth.audit import Interaction
from alk_fhir.fhir import FHIR_ID, document_identifier
from alk_fhir.knowledge import Package
from alk_fhir.overview import (
    DOCUMENT_PROFILE,
    DocumentError,
    author_orgs,
    composition_of,
    custodian_orgs,
    document_context,
    patient_identifiers,
    sharing_parties,
)
from alk_fhir.store import InvalidRecord, PutResult, Store, StoredDocument, open_store
from alk_fhir.store.clock import fhir_instant

router = APIRouter(tags=["overview"])
Writer = Annotated[Principal, Depends(RequirePartner(SCOPE_WRITE))]
Reader = Annotated[Principal, Depends(RequirePartner(SCOPE_READ))]
SEARCH_PARAMS = ("identifier", "composition.patient.identifier")
IGNORED_PARAMS = ("_format", "_count")

CAPABILITY: dict[str, Any] = {
    "type": "Bundle",
    "supportedProfile": [DOCUMENT_PROFILE],
    "documentation": "Case-overview documents (FHIR documents); SMART Backend Services token required: "
                     "system/Bundle.write to create, system/Bundle.read to read.",
    "interaction": [{"code": "create"}, {"code": "read"}, {"code": "vread"}, {"code": "history-instance"},
                    {"code": "search-type"}],
    "versioning": "versioned",
    "readHistory": True,
    "updateCreate": False,
    "conditionalCreate": True,
    "searchParam": [
        {"name": "identifier", "type": "token",
         "definition": "http://hl7.org/fhir/SearchParameter/Bundle-identifier"},
        {"name": "composition", "type": "reference",
         "definition": "http://hl7.org/fhir/SearchParameter/Bundle-composition",
         "documentation": "chained as composition.patient.identifier=[system]|value"},
    ],
}


def install(app: FastAPI) -> APIRouter:
    """Use the app's store (opened once at creation; opened here if no other face did) and the
    app's validator, and announce Bundle in the CapabilityStatement."""
    if getattr(app.state, "store", None) is None:
        app.state.store = open_store(app.state.settings.database_url)
    if getattr(app.state, "validator", None) is None:
        raise RuntimeError("overview routes need app.state.validator: install the validation routes first")
    app.state.capability_extra.append(CAPABILITY)
    return router


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _base(request: Request) -> str:
    return str(request.app.state.settings.base_url).rstrip("/") + "/fhir"


def _org(principal: Principal) -> str:
    return f"{principal.organization_system}|{principal.organization_value}"


def _pair(org: str) -> tuple[str, str]:
    system, _, value = org.partition("|")
    return system, value


def _refuse(request: Request, principal: Principal | None, interaction: Interaction, status: int, code: str,
            text: str, *, entity: str | None = None, identifier: tuple[str, str] | None = None,
            outcome: dict[str, Any] | None = None, audit_text: str | None = None) -> NoReturn:
    """Audit a refusal (``audit_text`` when the log may say more than the caller is told), then answer it."""
    audit_access(request, principal, interaction=interaction, outcome="4", entity_reference=entity,
                 entity_identifier=identifier, description=audit_text or text)
    raise FHIRError(status, code, text, outcome=outcome)


def _headers(request: Request, doc: StoredDocument) -> dict[str, str]:
    return {"ETag": f'W/"{doc.version_id}"', "Last-Modified": format_datetime(doc.last_updated, usegmt=True),
            "Location": f"{_base(request)}/Bundle/{doc.id}/_history/{doc.version_id}"}


def _today(request: Request) -> date:
    """The day consent periods are judged on (``app.state.today``, a callable, pins it in tests)."""
    clock = getattr(request.app.state, "today", None)
    return clock() if callable(clock) else date.today()


def _parties_now(request: Request, current: StoredDocument) -> set[str]:
    """Who the current version's Consents let its writer share it with today (the consent rule)."""
    try:
        ctx = document_context(current.resource, request.app.state.package)
    except DocumentError:
        return set()
    return {f"{s}|{v}" for s, v in sharing_parties(ctx, writer=current.author_org, today=_today(request))}


def _addressed(principal: Principal, doc: StoredDocument) -> bool:
    """Written by the partner or recorded as a recipient when the version was stored."""
    return may_read(principal, [_pair(doc.author_org)], [_pair(r) for r in doc.recipients])


def _visible(principal: Principal, doc: StoredDocument, parties_now: set[str] | None) -> bool:
    """Its writer reads a version always; a recipient of it only while the current version's
    Consents, judged today, still let the writer share with it (``parties_now``, from
    :func:`_parties_now`; None when the partner wrote the document and it was not needed)."""
    if not _addressed(principal, doc):
        return False
    return doc.author_org == _org(principal) or (parties_now is not None and _org(principal) in parties_now)


def _parties_if_needed(request: Request, principal: Principal, found: list[StoredDocument],
                       current: StoredDocument | None) -> set[str] | None:
    """:func:`_parties_now` of ``current``, computed only when a version in ``found`` was written by
    another organisation (building the document's context is the costly part of a read)."""
    if current is None or all(d.author_org == _org(principal) for d in found):
        return None
    return _parties_now(request, current)


# --- create ----------------------------------------------------------------------------------------

@router.post("/fhir/Bundle", response_class=FHIRResponse)
async def create_bundle(request: Request, principal: Writer) -> Response:
    try:
        body = await read_json_body(request)
    except FHIRError as exc:
        _refuse(request, principal, "create", exc.status, exc.code, exc.diagnostics)
    return await run_in_threadpool(_create, request, principal, body)


def _if_none_exist(request: Request, own: tuple[str, str]) -> str | None:
    """None when the header is absent or names the document's identifier, else why it is refused."""
    header = request.headers.get("If-None-Exist")
    if header is None:
        return None
    name, _, value = header.partition("=")
    if name.strip() != "identifier":
        return "If-None-Exist supports only identifier=system|value (the document's own identifier)"
    system, code = parse_token(unquote(value.strip()))
    if code != own[1] or system not in (None, own[0]):
        return "If-None-Exist must name the document's own Bundle.identifier"
    return None


def _create(request: Request, principal: Principal, body: Any) -> Response:
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        _refuse(request, principal, "create", 400, "invalid", "the body must be a case-overview document: "
                "a Bundle of type 'document'")
    try:
        identifier: tuple[str, str] | None = document_identifier(body)
    except ValueError:
        identifier = None  # validation below names what is missing
    try:
        require_valid_document(request, body)
    except FHIRError as exc:
        _refuse(request, principal, "create", exc.status, exc.code, exc.diagnostics, identifier=identifier,
                outcome=exc.outcome)
    package: Package = request.app.state.package
    try:
        composition = composition_of(body)
        ctx = document_context(body, package)
    except DocumentError as exc:
        _refuse(request, principal, "create", 422, "processing", str(exc), identifier=identifier)
    if identifier is None:  # bdl-9 and the document profile require it: only a profile without them gets here
        _refuse(request, principal, "create", 422, "required",
                "Bundle.identifier with a system and a value is required: it names the document across versions")
    problem = _if_none_exist(request, identifier)
    if problem:
        _refuse(request, principal, "create", 400, "not-supported", problem, identifier=identifier)
    authors = author_orgs(ctx, composition)
    if composition.get("custodian") is not None:
        custodians = custodian_orgs(ctx, composition)
        allowed = any(may_write(principal, authors, c) for c in custodians)
        reason = ("the document's custodian is not your organisation" if custodians else
                  "the document's custodian has no URA or AGB identifier to compare")
    else:
        allowed = may_write(principal, authors, None)
        reason = "none of the document's authors is your organisation"
    if not allowed:
        _refuse(request, principal, "create", 403, "forbidden", reason, identifier=identifier)
    patients = patient_identifiers(ctx, composition)
    if not patients:
        _refuse(request, principal, "create", 422, "required", "the document's subject has no identifier "
                "(BSN): documents are found by the patient's identifier", identifier=identifier)
    today = _today(request)
    recipients = [f"{s}|{v}" for s, v in sharing_parties(ctx, writer=_org(principal), today=today)]
    if not recipients and _store(request).find_document(_org(principal), identifier) is None:
        # A later version may withdraw the consent (that is how a recipient is cut off); a first one
        # that no Consent in force lets the writer share would be sharing without consent.
        _refuse(request, principal, "create", 403, "forbidden",
                f"no exchange Consent of the patient in force on {today.isoformat()} lets your organisation share "
                "this document (status active, provision.period, a recipient; Handreiking §4.3): nothing stored",
                identifier=identifier)
    try:
        result = _store(request).put_document(body, identifier=identifier, author_org=_org(principal),
                                              recipients=recipients, patient_identifiers=patients)
    except InvalidRecord as exc:
        _refuse(request, principal, "create", 422, "processing", str(exc), identifier=identifier)
    doc = result.document
    created = result.created and result.version_id == 1
    description = (f"stored version {doc.version_id}" if result.created
                   else f"unchanged: version {doc.version_id} kept, nothing stored")
    if result.same_identifier_owners:  # the caller is answered as for a new identifier; the log tells
        description = (f"{description} as a separate document: Bundle.identifier is also that of the "
                       f"document(s) kept by {', '.join(result.same_identifier_owners)}, which stay untouched "
                       "(answered 201 as for any new document)")
    audit_access(request, principal, interaction="create", outcome="4" if result.same_identifier_owners else "0",
                 entity_reference=f"Bundle/{doc.id}/_history/{doc.version_id}", entity_identifier=identifier,
                 description=description)
    status = 201 if created else 200
    prefer = request.headers.get("Prefer", "").replace(" ", "").lower()
    headers = _headers(request, doc)
    if "return=minimal" in prefer:
        return Response(status_code=status, headers=headers)
    if "return=operationoutcome" in prefer:
        return fhir_response(_put_outcome(result), status, headers)
    return fhir_response(doc.resource, status, headers)


def _put_outcome(result: PutResult) -> dict[str, Any]:
    """What a create did, for ``Prefer: return=OperationOutcome``: coded so that a client tells "stored
    as version N" from "already there as version N" without parsing text (R4 operation-outcome
    ``MSG_CREATED`` for a new document, ``MSG_UPDATED`` for a new version; no code when unchanged)."""
    version = result.version_id
    if not result.created:
        return operation_outcome("information", "informational",
                                 f"already there as version {version}: the same content is stored, nothing new")
    if version == 1:
        return operation_outcome("information", "informational", "stored as version 1",
                                 details=("MSG_CREATED", "New resource created"))
    return operation_outcome("information", "informational", f"stored as version {version}",
                             details=("MSG_UPDATED", "existing resource updated"))


# --- read, vread, history --------------------------------------------------------------------------

def _readable(request: Request, principal: Principal, interaction: Interaction,
              found: list[StoredDocument], what: str, current: StoredDocument | None) -> list[StoredDocument]:
    """The versions the partner may see (``current``: the document's current version, whose Consents
    decide for every version). A document it may not see answers exactly like one that does not
    exist (404, same text): a 403 would tell it that the id exists. The audit keeps the difference."""
    parties = _parties_if_needed(request, principal, found, current)
    visible = [d for d in found if _visible(principal, d, parties)]
    if not visible:
        reason = ("not found" if not found else
                  "refused: addressed to the caller's organisation, but no Consent of the current version "
                  "covers it today (answered 404)" if any(_addressed(principal, d) for d in found) else
                  "refused: neither written by nor addressed to the caller's organisation (answered 404)")
        _refuse(request, principal, interaction, 404, "not-found", f"{what} not found", entity=what,
                audit_text=f"{what} {reason}")
    return visible


_VERSION = re.compile(r"[1-9][0-9]{0,8}")  # our version ids count up from 1


def _known_shape(request: Request, principal: Principal, doc_id: str, version_id: str | None = None) -> None:
    """An id that is no FHIR id (or a version that is no version number we give) names nothing here:
    404 before it reaches the store (a NUL byte or a 30-digit number is not something a database
    column should be asked about). The audit names the request, not the unusable id."""
    if not FHIR_ID.fullmatch(doc_id) or (version_id is not None and not _VERSION.fullmatch(version_id)):
        _refuse(request, principal, "read", 404, "not-found", "no such Bundle: not a valid id or version id",
                entity="Bundle/(invalid id)")


@router.get("/fhir/Bundle/{doc_id}", response_class=FHIRResponse)
def read_bundle(request: Request, doc_id: str, principal: Reader) -> FHIRResponse:
    _known_shape(request, principal, doc_id)
    found = _store(request).get_document(doc_id)
    doc = _readable(request, principal, "read", [found] if found else [], f"Bundle/{doc_id}", found)[0]
    audit_access(request, principal, interaction="read", outcome="0",
                 entity_reference=f"Bundle/{doc.id}/_history/{doc.version_id}")
    return fhir_response(doc.resource, headers=_headers(request, doc))


@router.get("/fhir/Bundle/{doc_id}/_history", response_class=FHIRResponse)
def history_bundle(request: Request, doc_id: str, principal: Reader) -> FHIRResponse:
    _known_shape(request, principal, doc_id)
    every = _store(request).history(doc_id)  # newest first: every[0] is the current version
    versions = _readable(request, principal, "read", every, f"Bundle/{doc_id}", every[0] if every else None)
    audit_access(request, principal, interaction="read", outcome="0", entity_reference=f"Bundle/{doc_id}",
                 description=f"history: {len(versions)} version(s)")
    base = _base(request)
    entries = [{
        "fullUrl": f"{base}/Bundle/{d.id}",
        "resource": d.resource,
        "request": {"method": "POST" if d.version_id == 1 else "PUT",
                    "url": "Bundle" if d.version_id == 1 else f"Bundle/{d.id}"},
        "response": {"status": "201 Created" if d.version_id == 1 else "200 OK", "etag": f'W/"{d.version_id}"',
                     "lastModified": fhir_instant(d.last_updated)},
    } for d in versions]
    return fhir_response({"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "history",
                          "total": len(entries), "link": [{"relation": "self", "url": str(request.url)}],
                          "entry": entries})


@router.get("/fhir/Bundle/{doc_id}/_history/{version_id}", response_class=FHIRResponse)
def vread_bundle(request: Request, doc_id: str, version_id: str, principal: Reader) -> FHIRResponse:
    _known_shape(request, principal, doc_id, version_id)
    found = _store(request).get_document(doc_id, version_id)
    what = f"Bundle/{doc_id}/_history/{version_id}"
    current = _store(request).get_document(doc_id) if found else None
    doc = _readable(request, principal, "read", [found] if found else [], what, current)[0]
    audit_access(request, principal, interaction="read", outcome="0", entity_reference=what)
    return fhir_response(doc.resource, headers=_headers(request, doc))


# --- search ----------------------------------------------------------------------------------------

def parse_token(raw: str) -> tuple[str | None, str]:
    """``[system]|value`` with ``\\|`` escapes (search.html#escaping): (None, value) without a bar."""
    parts: list[str] = []
    current, escaped = "", False
    for char in raw:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "|" and not parts:
            parts.append(current)
            current = ""
        else:
            current += char
    if not parts:
        return None, current
    return parts[0], current


@router.get("/fhir/Bundle", response_class=FHIRResponse)
def search_bundles(request: Request, principal: Reader) -> FHIRResponse:
    params = request.query_params
    unknown = sorted(set(params) - set(SEARCH_PARAMS) - set(IGNORED_PARAMS))
    if unknown:
        _refuse(request, principal, "search", 400, "not-supported",
                f"unsupported search parameter(s): {', '.join(unknown)} (supported: {', '.join(SEARCH_PARAMS)})")
    given = {name: params.getlist(name) for name in SEARCH_PARAMS if name in params}
    if not given:
        _refuse(request, principal, "search", 400, "required",
                f"give one of the search parameters {', '.join(SEARCH_PARAMS)}: documents are not listed wholesale")
    store, org = _store(request), _org(principal)
    matches: dict[str, StoredDocument] | None = None
    for name, values in given.items():
        for raw in values:
            system, value = parse_token(raw)
            if not value:
                _refuse(request, principal, "search", 400, "invalid", f"{name}: a value is required ([system]|value)")
            if "\x00" in raw or len(raw) > 2048:
                _refuse(request, principal, "search", 400, "invalid",
                        f"{name}: not a token a FHIR identifier can hold (control character or too long)")
            found = (store.search_by_identifier(system, value, visible_to=org) if name == "identifier"
                     else store.search_by_patient_identifier(system, value, visible_to=org))
            these = {d.id: d for d in found}
            matches = these if matches is None else {k: v for k, v in matches.items() if k in these}
    results = [d for d in (matches or {}).values()  # current versions: each decides for itself
               if _visible(principal, d, _parties_if_needed(request, principal, [d], d))]
    audit_access(request, principal, interaction="search", outcome="0",
                 description=f"{len(results)} document(s) found")
    base = _base(request)
    searchset: dict[str, Any] = {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "searchset",
                                 "total": len(results), "link": [{"relation": "self", "url": str(request.url)}]}
    if results:  # FHIR JSON: no empty arrays
        searchset["entry"] = [{"fullUrl": f"{base}/Bundle/{d.id}", "resource": d.resource,
                               "search": {"mode": "match"}} for d in results]
    return fhir_response(searchset)
