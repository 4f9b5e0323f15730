"""FHIR R4 AuditEvents (auditevent.html), kept as received plus the columns we search on.

Columns follow the AuditEvent search parameters we expose: ``date`` (recorded), ``subtype``,
``action``, ``outcome``, ``agent`` (the requestor agent's who: identifier ``system|value`` or
reference) and ``entity`` (the first entity's what: reference or identifier ``system|value``).
"""

from __future__ import annotations

import copy
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from alk_fhir.store.clock import as_utc, fhir_instant, parse_instant, utc_now
from alk_fhir.store.db import InvalidRecord, insert_ignore
from alk_fhir.store.models import ID_MAX, TOKEN_MAX, AuditEventRow


def _ref_or_identifier(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("reference"), str):
        return str(value["reference"])[:TOKEN_MAX]
    ident = value.get("identifier")
    if isinstance(ident, dict) and isinstance(ident.get("value"), str):
        return f"{ident.get('system') or ''}|{ident['value']}"[:TOKEN_MAX]
    return None


def _agent(event: dict[str, Any]) -> str | None:
    agents = [a for a in event.get("agent") or [] if isinstance(a, dict)]
    chosen = next((a for a in agents if a.get("requestor") is True), agents[0] if agents else None)
    return _ref_or_identifier(chosen.get("who")) if chosen else None


def _entity(event: dict[str, Any]) -> str | None:
    entities = [e for e in event.get("entity") or [] if isinstance(e, dict)]
    return _ref_or_identifier(entities[0].get("what")) if entities else None


def _subtype(event: dict[str, Any]) -> str | None:
    subtypes = event.get("subtype") or []
    first = subtypes[0] if isinstance(subtypes, list) and subtypes else None
    code = first.get("code") if isinstance(first, dict) else None
    return code[:TOKEN_MAX] if isinstance(code, str) else None


def _short(event: dict[str, Any], key: str) -> str | None:
    value = event.get(key)
    return value[:4] if isinstance(value, str) else None


def record_audit(session: Session, event: dict[str, Any]) -> str:
    """Store an AuditEvent; gives it an id (and ``recorded`` = now) when missing. Returns the id.

    Recording an event with an id already stored changes nothing, so a retried write is harmless.
    """
    if not isinstance(event, dict) or event.get("resourceType") != "AuditEvent":
        raise InvalidRecord("not an AuditEvent resource")
    resource = copy.deepcopy(event)
    event_id = resource.setdefault("id", str(uuid.uuid4()))
    if not isinstance(event_id, str) or not event_id or len(event_id) > ID_MAX:
        raise InvalidRecord(f"AuditEvent.id {event_id!r} is not a FHIR id")
    recorded_raw = resource.setdefault("recorded", fhir_instant(utc_now()))
    try:
        recorded = parse_instant(recorded_raw) if isinstance(recorded_raw, str) else None
    except ValueError:
        recorded = None
    if recorded is None:
        raise InvalidRecord(f"AuditEvent.recorded {recorded_raw!r} is not a FHIR instant")
    insert_ignore(session, AuditEventRow, {
        "id": event_id, "recorded": recorded, "subtype": _subtype(resource),
        "action": _short(resource, "action"), "outcome": _short(resource, "outcome"),
        "agent": _storable(_agent(resource)), "entity": _storable(_entity(resource)), "resource": resource,
    })
    return event_id


def _storable(text: str | None) -> str | None:
    """A refused request is audited with what it named, which may hold a NUL byte: PostgreSQL text
    columns cannot store one (the JSON column keeps it escaped as \\u0000), so the indexed copy
    shows U+FFFD in its place rather than losing the audit record."""
    return text.replace("\x00", "\ufffd") if text else text


def list_audit(
    session: Session,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    subtype: str | None = None,
    action: str | None = None,
    outcome: str | None = None,
    agent: str | None = None,
    entity: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """AuditEvents newest first; ``since`` inclusive, ``until`` exclusive; filters match exactly."""
    query = select(AuditEventRow)
    if since is not None:
        query = query.where(AuditEventRow.recorded >= as_utc(since))
    if until is not None:
        query = query.where(AuditEventRow.recorded < as_utc(until))
    for column, wanted in ((AuditEventRow.subtype, subtype), (AuditEventRow.action, action),
                           (AuditEventRow.outcome, outcome), (AuditEventRow.agent, agent),
                           (AuditEventRow.entity, entity)):
        if wanted is not None:
            query = query.where(column == wanted)
    query = query.order_by(AuditEventRow.recorded.desc(), AuditEventRow.id).limit(max(0, limit))
    return [row.resource for row in session.execute(query).scalars()]
