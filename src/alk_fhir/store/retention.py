"""How long the store keeps what it keeps, and the purge that enforces it (issue 22).

The store is an exchange and learning-loop store, not the medical record (that stays in the GP's
and the GGz provider's own systems, under their WGBO retention). So it keeps only what exchange and
the feedback report need, for as long as they need it (AVG/GDPR art. 5(1)(c) data minimisation and
5(1)(e) storage limitation):

- CDS feedback: its card, outcome, day and our override-reason code (``feedback.minimal``), for
  ``feedback_days`` (default 730: two years of monthly reports to compare); free text (a user
  comment, a foreign reason's code or display) only when ``comment_days`` > 0, and then only for
  that many days;
- shown cards: service, card uuid, section, action, month, for ``shown_months`` (default 24);
- document versions: the current version of every document always (that is what a partner reads);
  an older version until it is ``version_days`` old, counted from when it was stored (default 365),
  so a partner can still read the version it was sent while it matters.

:func:`purge` deletes (or, for free text, strips) what is older; ``alk-fhir store purge`` runs it, and
the service runs it at start-up. Every limit is a setting (``ALK_FHIR_RETENTION_*``, README).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any
from typing import cast as typed

from sqlalchemy import CursorResult, Delete, String, and_, cast, delete, func, or_, select, update
from sqlalchemy.orm import Session

from alk_fhir.store.clock import as_utc, utc_now
from alk_fhir.store.feedback import has_text, minimal, start_of_day
from alk_fhir.store.models import CdsCardShown, CdsFeedback, Document, DocumentOrg, DocumentPatient, DocumentVersion


@dataclass(frozen=True)
class Retention:
    feedback_days: int = 730
    shown_months: int = 24
    version_days: int = 365
    comment_days: int = 0  # 0: user comments and foreign reason text are never stored

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"retention {name} must be a whole number >= 0, got {value!r}")


@dataclass(frozen=True)
class PurgeResult:
    feedback: int = 0  # entries deleted
    reduced: int = 0  # entries stored verbatim before issue 22, now reduced to what is kept
    comments: int = 0  # entries whose free text was removed
    shown: int = 0  # shown-card rows deleted
    versions: int = 0  # superseded document versions deleted

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def _month_before(now: datetime, months: int) -> str:
    """``YYYY-MM`` of the month ``months`` before ``now``'s: rows of earlier months go."""
    index = now.year * 12 + now.month - 1 - months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def _deleted(session: Session, statement: Delete) -> int:
    return typed(CursorResult[Any], session.execute(statement)).rowcount or 0


def purge(session: Session, retention: Retention, *, now: datetime | None = None) -> PurgeResult:
    """Delete what the retention no longer allows; reduce feedback stored before issue 22 (verbatim,
    exact times) as new feedback is; strip free text older than ``comment_days``."""
    current = as_utc(now or utc_now())
    feedback = _deleted(session, delete(CdsFeedback).where(
        CdsFeedback.received_at < current - timedelta(days=retention.feedback_days)))
    text_cutoff = current - timedelta(days=retention.comment_days)
    reduced = 0
    legacy = select(CdsFeedback.id, CdsFeedback.item, CdsFeedback.received_at).where(
        func.length(CdsFeedback.outcome_timestamp) > len("YYYY-MM-DD"))
    for row_id, item, received in session.execute(legacy).all():
        kept = minimal(item, keep_text=retention.comment_days > 0 and as_utc(received) > text_cutoff)
        session.execute(update(CdsFeedback).where(CdsFeedback.id == row_id).values(
            item=kept, card=kept["card"], outcome_timestamp=kept["outcomeTimestamp"],
            received_at=start_of_day(received)))
        reduced += 1
    comments = 0
    as_text = cast(CdsFeedback.item, String)  # json -> text on SQLite and PostgreSQL: only rows with text are read
    rows = session.execute(select(CdsFeedback.id, CdsFeedback.item).where(
        CdsFeedback.received_at <= text_cutoff,
        or_(as_text.contains('"userComment"'), as_text.contains('"reasonAsSent"'))))
    for row_id, item in rows.all():
        if has_text(item):
            session.execute(update(CdsFeedback).where(CdsFeedback.id == row_id).values(item=minimal(item)))
            comments += 1
    shown = _deleted(session, delete(CdsCardShown).where(
        CdsCardShown.month < _month_before(current, retention.shown_months)))
    superseded = select(DocumentVersion.pk).join(Document, Document.id == DocumentVersion.document_id).where(and_(
        DocumentVersion.version_id < Document.current_version,
        DocumentVersion.last_updated < current - timedelta(days=retention.version_days)))
    old = [pk for (pk,) in session.execute(superseded)]
    for start in range(0, len(old), 500):  # explicit children first: SQLite may not enforce ON DELETE CASCADE
        chunk = old[start:start + 500]
        session.execute(delete(DocumentOrg).where(DocumentOrg.version_pk.in_(chunk)))
        session.execute(delete(DocumentPatient).where(DocumentPatient.version_pk.in_(chunk)))
        session.execute(delete(DocumentVersion).where(DocumentVersion.pk.in_(chunk)))
    return PurgeResult(feedback=feedback, reduced=reduced, comments=comments, shown=shown, versions=len(old))
