"""The learning loop's data (issue 13): cards shown by CDS calls, feedback per card, document versions.

- :func:`save_shown_cards`: what CDS calls showed (``alk_fhir.shown`` hands the rows over, off the
  hot path): service, card uuid, guideline section, plan action, month; nothing about a patient or
  a user. A card already recorded (a call retried with the same hookInstance) is left as it is.
- :func:`shown_counts`: how often each (month, section, action) was shown.
- :func:`feedback_facts`: every stored CDS Hooks feedback entry reduced to what a report may use:
  the month of its ``outcomeTimestamp`` (UTC), the outcome, the section and action of its card (None
  when the card was not recorded as shown), the override reason's Coding (ours, or ``other``) and
  whether a comment was written, never the comment itself (the store does not keep it:
  ``feedback.minimal``).
- :func:`document_versions`: every stored document version, oldest first, for the case register.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from alk_fhir.store.clock import as_utc
from alk_fhir.store.db import InvalidRecord
from alk_fhir.store.models import ID_MAX, SECTION_MAX, TOKEN_MAX, CdsCardShown, CdsFeedback, DocumentVersion

MONTH = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")
SHOWN_COLUMNS = ("service_id", "card", "section", "action_id", "month")


@dataclass(frozen=True)
class ShownCount:
    month: str
    section: str | None
    action_id: str | None
    count: int


@dataclass(frozen=True)
class FeedbackFact:
    month: str
    outcome: str  # "accepted" | "overridden"
    section: str | None
    action_id: str | None
    reason_system: str | None
    reason_code: str | None
    commented: bool


@dataclass(frozen=True)
class DocumentVersionRecord:
    document_id: str
    version_id: int
    last_updated: datetime
    resource: dict[str, Any]


def check_month(value: str, what: str = "month") -> str:
    """``YYYY-MM`` or InvalidRecord naming ``what``."""
    if not isinstance(value, str) or not MONTH.match(value):
        raise InvalidRecord(f"{what} must be a month as YYYY-MM, got {value!r}")
    return value


def _shown_row(row: Mapping[str, str | None]) -> dict[str, str | None]:
    out = {name: row.get(name) for name in SHOWN_COLUMNS}
    for name, limit, required in (("service_id", TOKEN_MAX, True), ("card", TOKEN_MAX, True),
                                  ("section", SECTION_MAX, False), ("action_id", ID_MAX, False)):
        value = out[name]
        if value is None and not required:
            continue
        if not isinstance(value, str) or not value or len(value) > limit:
            raise InvalidRecord(f"shown card: {name} must be a string of 1 to {limit} characters")
    check_month(str(out["month"]), "shown card: month")
    return out


def save_shown_cards(session: Session, rows: Sequence[Mapping[str, str | None]]) -> None:
    """Insert the rows (keys ``service_id``, ``card``, ``section``, ``action_id``, ``month``) with one
    prebuilt statement run as executemany (building a many-row VALUES per batch cost more Python time
    than the insert itself, and this runs beside the CDS hot path). A card already there is skipped."""
    checked = [_shown_row(r) for r in rows]
    if checked:
        connection = session.connection()
        connection.execute(_insert_shown(connection.dialect.name), checked)


@lru_cache(maxsize=4)
def _insert_shown(dialect: str) -> Any:
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    return insert(CdsCardShown).on_conflict_do_nothing(index_elements=[CdsCardShown.service_id, CdsCardShown.card])


def shown_counts(session: Session, *, since: str | None = None) -> list[ShownCount]:
    """Cards shown per (month, section, action), months from ``since`` (YYYY-MM) on."""
    query = select(CdsCardShown.month, CdsCardShown.section, CdsCardShown.action_id, func.count())
    if since is not None:
        query = query.where(CdsCardShown.month >= check_month(since, "since"))
    query = query.group_by(CdsCardShown.month, CdsCardShown.section, CdsCardShown.action_id)
    return [ShownCount(month, section, action, int(count)) for month, section, action, count in session.execute(query)]


def feedback_month(outcome_timestamp: str, received_at: datetime) -> str:
    """The UTC month of the feedback's ``outcomeTimestamp``; of its arrival when that cannot be read."""
    try:
        when = as_utc(datetime.fromisoformat(outcome_timestamp))
    except (TypeError, ValueError):
        when = as_utc(received_at)
    return f"{when.year:04d}-{when.month:02d}"


def _reason(item: Any) -> tuple[str | None, str | None, bool]:
    override = item.get("overrideReason") if isinstance(item, dict) else None
    if not isinstance(override, dict):
        return None, None, False
    reason = override.get("reason")
    system = reason.get("system") if isinstance(reason, dict) else None
    code = reason.get("code") if isinstance(reason, dict) else None
    comment = override.get("userComment")
    commented = override.get("commented") is True or (isinstance(comment, str) and bool(comment.strip()))
    return system if isinstance(system, str) else None, code if isinstance(code, str) else None, commented


def feedback_facts(session: Session, *, since: str | None = None) -> list[FeedbackFact]:
    """Every feedback entry (months from ``since`` on) with the section and action of its card."""
    if since is not None:
        check_month(since, "since")
    shown = and_(CdsCardShown.service_id == CdsFeedback.service_id, CdsCardShown.card == CdsFeedback.card)
    query = (select(CdsFeedback.outcome, CdsFeedback.outcome_timestamp, CdsFeedback.received_at, CdsFeedback.item,
                    CdsCardShown.section, CdsCardShown.action_id)
             .outerjoin(CdsCardShown, shown).order_by(CdsFeedback.id))
    facts = []
    for outcome, stamp, received, item, section, action in session.execute(query).yield_per(500):
        month = feedback_month(stamp, received)
        if since is not None and month < since:
            continue
        system, code, commented = _reason(item)
        facts.append(FeedbackFact(month, outcome, section, action, system, code, commented))
    return facts


def document_versions(session: Session) -> Iterator[DocumentVersionRecord]:
    """Every stored document version, by document and version (the session must stay open while
    iterating)."""
    query = (select(DocumentVersion.document_id, DocumentVersion.version_id, DocumentVersion.last_updated,
                    DocumentVersion.resource)
             .order_by(DocumentVersion.document_id, DocumentVersion.version_id))
    for doc_id, version, updated, resource in session.execute(query).yield_per(50):
        yield DocumentVersionRecord(doc_id, int(version), as_utc(updated), resource)
