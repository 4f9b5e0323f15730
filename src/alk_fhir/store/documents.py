"""Document Bundles: one logical resource per owner and document identifier, a new version per changed content.

FHIR R4 versioning (http.html#versioning, resource.html#Meta): every stored version gets
``meta.versionId`` (1, 2, …) and ``meta.lastUpdated``; ``_history`` lists versions newest first.
The logical id is a UUID derived from the owner and Bundle.identifier (:func:`logical_id`), so the
same document has the same id in every store and two concurrent first writes cannot create two
resources (documents stored before migration 0004 keep the id they had, derived from the identifier
alone: the store finds a document by owner and identifier, never by recomputing its id). Sending the same content
again (ignoring ``id``, ``meta.versionId`` and ``meta.lastUpdated``, which the sender may or may
not have filled from an earlier response) stores nothing and answers with the current version.

A document belongs to the organisation that stored its first version (its ``owner``): only that
organisation adds versions. Another organisation posting the same ``Bundle.identifier`` stores its
own, separate document (an identifier is unique within its system *for its assigner*, R4
datatypes.html#Identifier), never a version of the owner's: before issue 25 such a post became the
owner's current version (the owner lost sight of its document, its recipients read the other's
content), and refusing it instead (409) told the poster that the identifier exists. The result names
the other owners of the identifier (:attr:`PutResult.same_identifier_owners`) for the audit only.

Each version records who may see it (its author organisation and its recipients) and the patient
identifiers it is about, so the access rules and the searches are one SQL query each. Organisation
strings are opaque to the store (the callers use ``system|value`` of the organisation identifier),
and so is the document identifier: the caller reads it from the Bundle
(``alk_fhir.fhir.document_identifier``) and passes it in, so the store imports nothing of FHIR.
"""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, exists, select
from sqlalchemy.orm import Session

from alk_fhir.codesyntax import malformed_codes
from alk_fhir.store.clock import as_utc, fhir_instant, to_millis, utc_now
from alk_fhir.store.db import InvalidRecord, insert_ignore
from alk_fhir.store.models import TOKEN_MAX, Document, DocumentOrg, DocumentPatient, DocumentVersion

# uuid5 namespace for logical ids: fixed forever, or documents would change id between releases.
ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://alk-fhir.org/fhir/Bundle")
AUTHOR = "author"
RECIPIENT = "recipient"


@dataclass(frozen=True)
class StoredDocument:
    id: str
    version_id: int
    last_updated: datetime
    resource: dict[str, Any]
    author_org: str
    recipients: tuple[str, ...]
    patient_identifiers: tuple[str, ...]  # "system|value"


@dataclass(frozen=True)
class PutResult:
    id: str
    version_id: int
    created: bool  # False: the content equals the current version, nothing was written
    document: StoredDocument
    # When this put made a new document: the other organisations that keep a document with the same
    # identifier (for the audit: a caller must not learn them). Empty otherwise.
    same_identifier_owners: tuple[str, ...] = ()


def _token(raw: str, what: str) -> tuple[str, str]:
    """Split ``system|value`` (system may be empty); FHIR token syntax, search.html#token."""
    if not isinstance(raw, str) or "|" not in raw:
        raise InvalidRecord(f"{what} must be 'system|value', got {raw!r}")
    system, value = raw.split("|", 1)
    _check_len(system, what)
    _check_len(value, what)
    if not value:
        raise InvalidRecord(f"{what} {raw!r} has no value")
    return system, value


def _check_len(text: str, what: str) -> None:
    if len(text) > TOKEN_MAX:
        raise InvalidRecord(f"{what} is longer than {TOKEN_MAX} characters")


def _identifier(identifier: tuple[str, str]) -> tuple[str, str]:
    """The document identifier (system, value) the caller read from Bundle.identifier (R4 bdl-9
    requires both; ``alk_fhir.fhir.document_identifier`` reads it): both non-empty, within the columns."""
    system, value = identifier if isinstance(identifier, tuple) and len(identifier) == 2 else (None, None)
    if not isinstance(system, str) or not system or not isinstance(value, str) or not value:
        raise InvalidRecord("the document identifier must have a system and a value")
    _check_len(system, "Bundle.identifier.system")
    _check_len(value, "Bundle.identifier.value")
    return system, value


def logical_id(owner: str, system: str, value: str) -> str:
    """The id of a new document: uuid5 of its owner and identifier, as a JSON array (no separator
    that an organisation string or an identifier could contain makes two triples collide)."""
    return str(uuid.uuid5(ID_NAMESPACE, json.dumps([owner, system, value], ensure_ascii=False)))


def content_hash(bundle: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON, leaving out what the server assigns (id, versionId, lastUpdated).
    InvalidRecord (a 4xx for the caller) for what has no canonical JSON in UTF-8: a lone surrogate or
    a NaN (the body reader refuses both; a store caller that did not use it gets a refusal, not a crash)."""
    body = {k: v for k, v in bundle.items() if k != "id"}
    meta = body.get("meta")
    if isinstance(meta, dict):
        meta = {k: v for k, v in meta.items() if k not in ("versionId", "lastUpdated")}
        if meta:
            body["meta"] = meta
        else:
            del body["meta"]
    try:
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                               allow_nan=False).encode("utf-8")
    except (UnicodeEncodeError, ValueError) as exc:  # a lone surrogate, NaN, an integer past int()'s limit
        raise InvalidRecord(f"the document cannot be stored: {exc}") from None
    return hashlib.sha256(canonical).hexdigest()


def _stamped(bundle: dict[str, Any], doc_id: str, version: int, when: datetime) -> dict[str, Any]:
    resource = copy.deepcopy(bundle)
    resource["id"] = doc_id
    meta = resource.get("meta")
    kept: dict[str, Any] = meta if isinstance(meta, dict) else {}
    resource["meta"] = {**kept, "versionId": str(version), "lastUpdated": fhir_instant(when)}
    # Keep resourceType first, as FHIR JSON customarily has it.
    return {"resourceType": resource.pop("resourceType"), **resource}


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _to_stored(row: DocumentVersion) -> StoredDocument:
    return StoredDocument(
        id=row.document_id,
        version_id=row.version_id,
        last_updated=as_utc(row.last_updated),
        resource=row.resource,
        author_org=row.author_org,
        recipients=tuple(sorted(o.org for o in row.orgs if o.role == RECIPIENT)),
        patient_identifiers=tuple(sorted(f"{p.system}|{p.value}" for p in row.patients)),
    )


def put_document(
    session: Session,
    bundle: dict[str, Any],
    *,
    identifier: tuple[str, str],
    author_org: str,
    recipients: Sequence[str],
    patient_identifiers: Sequence[str],
    now: datetime | None = None,
) -> PutResult:
    """Store ``bundle`` as the next version of the document ``identifier`` names (its
    Bundle.identifier system and value, read by the caller), unless its content is unchanged.

    Ownership: the document is the one ``author_org`` keeps under that identifier (it is created when
    there is none); another organisation's document with the same identifier is never touched.

    Concurrency: the document row is created with INSERT … ON CONFLICT DO NOTHING and then locked
    (SELECT … FOR UPDATE on PostgreSQL; on SQLite the write transaction already holds the database
    lock), so concurrent writers of one document queue and each sees the others' versions.
    """
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise InvalidRecord("not a Bundle resource")
    for code_system, _ in malformed_codes(bundle):  # free text in a code (issue 22): never stored
        raise InvalidRecord(f"a code of {code_system} does not have that code system's syntax")
    system, value = _identifier(identifier)
    if not isinstance(author_org, str) or not author_org:
        raise InvalidRecord("author_org is required")
    _check_len(author_org, "author_org")
    for org in recipients:
        if not isinstance(org, str) or not org:
            raise InvalidRecord(f"recipient {org!r} is not an organisation")
        _check_len(org, "recipient")
    patients = [_token(p, "patient identifier") for p in _unique(patient_identifiers)]
    when = to_millis(as_utc(now or utc_now()))
    digest = content_hash(bundle)

    insert_ignore(session, Document, {
        "id": logical_id(author_org, system, value), "owner": author_org, "identifier_system": system,
        "identifier_value": value, "current_version": 0, "created_at": when, "updated_at": when,
    })
    doc = session.execute(select(Document).where(
        Document.owner == author_org, Document.identifier_system == system, Document.identifier_value == value,
    ).with_for_update()).scalar_one()
    doc_id = doc.id
    if doc.current_version:
        latest = session.execute(select(DocumentVersion).where(
            DocumentVersion.document_id == doc_id,
            DocumentVersion.version_id == doc.current_version)).scalar_one()
        if latest.content_hash == digest:
            return PutResult(doc_id, latest.version_id, False, _to_stored(latest))

    version = doc.current_version + 1
    row = DocumentVersion(
        document_id=doc_id, version_id=version, content_hash=digest,
        resource=_stamped(bundle, doc_id, version, when), last_updated=when, author_org=author_org,
    )
    row.orgs = [DocumentOrg(org=author_org, role=AUTHOR)]
    row.orgs += [DocumentOrg(org=org, role=RECIPIENT) for org in _unique(recipients)]
    row.patients = [DocumentPatient(system=s, value=v) for s, v in patients]
    session.add(row)
    doc.current_version = version
    doc.updated_at = when
    session.flush()
    others = _other_owners(session, author_org, system, value) if version == 1 else ()
    return PutResult(doc_id, version, True, _to_stored(row), others)


def _other_owners(session: Session, owner: str, system: str, value: str) -> tuple[str, ...]:
    """The organisations other than ``owner`` that keep a document with this identifier."""
    query = select(Document.owner).where(Document.identifier_system == system, Document.identifier_value == value,
                                         Document.owner != owner).order_by(Document.owner)
    return tuple(session.execute(query).scalars())


def find_document(session: Session, owner: str, identifier: tuple[str, str]) -> StoredDocument | None:
    """The current version of the document ``owner`` keeps under ``identifier``; None when it keeps
    none (whatever other organisations keep under the same identifier)."""
    system, value = _identifier(identifier)
    query = _latest().where(Document.owner == owner, Document.identifier_system == system,
                            Document.identifier_value == value)
    row = session.execute(query).scalar_one_or_none()
    return _to_stored(row) if row else None


def _visible(query: Select[Any], org: str | None) -> Select[Any]:
    if org is None:
        return query
    return query.where(exists().where(DocumentOrg.version_pk == DocumentVersion.pk, DocumentOrg.org == org))


def _latest() -> Select[Any]:
    return select(DocumentVersion).join(Document, (Document.id == DocumentVersion.document_id)
                                        & (Document.current_version == DocumentVersion.version_id))


def _version_number(version: int | str | None) -> int | None:
    if isinstance(version, str):
        return int(version) if version.isdigit() else -1
    return version


def get_document(session: Session, doc_id: str, version: int | str | None = None, *,
                 visible_to: str | None = None) -> StoredDocument | None:
    """The current version, or the given one (``_history/{vid}``); None when absent or not visible."""
    number = _version_number(version)
    if number is None:
        query = _latest().where(DocumentVersion.document_id == doc_id)
    else:
        query = select(DocumentVersion).where(
            DocumentVersion.document_id == doc_id, DocumentVersion.version_id == number)
    row = session.execute(_visible(query, visible_to)).scalar_one_or_none()
    return _to_stored(row) if row else None


def history(session: Session, doc_id: str, *, visible_to: str | None = None) -> list[StoredDocument]:
    """All versions, newest first (R4 http.html#history); empty when unknown or nothing visible."""
    query = select(DocumentVersion).where(DocumentVersion.document_id == doc_id)
    query = _visible(query, visible_to).order_by(DocumentVersion.version_id.desc())
    return [_to_stored(r) for r in session.execute(query).scalars()]


def search_by_identifier(session: Session, system: str | None, value: str, *,
                         visible_to: str | None = None) -> list[StoredDocument]:
    """``Bundle?identifier=[system]|value``; system None matches any system (token search)."""
    query = _latest().where(Document.identifier_value == value)
    if system is not None:
        query = query.where(Document.identifier_system == system)
    query = _visible(query, visible_to).order_by(DocumentVersion.last_updated.desc(), Document.id)
    return [_to_stored(r) for r in session.execute(query).scalars()]


def search_by_patient_identifier(session: Session, system: str | None, value: str, *,
                                 visible_to: str | None = None) -> list[StoredDocument]:
    """``Bundle?composition.patient.identifier=[system]|value`` over current versions only."""
    match = exists().where(DocumentPatient.version_pk == DocumentVersion.pk, DocumentPatient.value == value)
    if system is not None:
        match = match.where(DocumentPatient.system == system)
    query = _visible(_latest().where(match), visible_to)
    query = query.order_by(DocumentVersion.last_updated.desc(), Document.id)
    return [_to_stored(r) for r in session.execute(query).scalars()]
