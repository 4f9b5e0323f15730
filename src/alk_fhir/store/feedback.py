"""CDS Hooks 2.0 feedback (https://cds-hooks.hl7.org/2.0/#feedback).

A Feedback entry has ``card`` (the card's uuid), ``outcome`` (``accepted`` | ``overridden``),
``outcomeTimestamp`` (ISO 8601), and optionally ``acceptedSuggestions`` (``[{"id": …}]``, when
accepted) and ``overrideReason`` (``{"reason": Coding, "userComment": …}``, when overridden).

What is kept is the least the feedback report needs (:func:`minimal`; AVG/GDPR art. 5(1)(c)): the
card's uuid, the outcome, the day of the outcome (UTC; the time of day would help link a card to a
visit in an EHR's logs), the uuids of accepted suggestions, and an override reason's code when it
is one of ours (``alk-concepts``, code syntax); any other reason is kept as ``{"code": "other"}``.
A user comment and any display or foreign code are free text a clinician may have typed a name
into: they are dropped, unless the store's retention keeps text (``Retention.comment_days`` > 0),
and then :func:`retention.purge` strips them after that many days. Whether a comment was written is
kept (``commented``), so the report can still count comments. A card or suggestion id that is not
a UUID is kept as ``not-a-uuid``: a UUID cannot carry a name. ``received_at`` is kept to the day.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from alk_fhir.store.clock import as_utc, utc_now
from alk_fhir.store.db import InvalidRecord
from alk_fhir.store.models import TOKEN_MAX, CdsFeedback

OUTCOMES = ("accepted", "overridden")
OUR_REASONS = "https://alk-fhir.org/fhir/CodeSystem/alk-concepts"  # knowledge.CONCEPTS_SYSTEM (no import: see __init__)
REASON_CODE = re.compile(r"[a-z][a-z0-9-]{0,63}")
OTHER_REASON = "other"
NOT_A_UUID = "not-a-uuid"


@dataclass(frozen=True)
class FeedbackRecord:
    id: int
    service_id: str
    card: str
    outcome: str
    outcome_timestamp: str
    item: dict[str, Any]
    received_at: datetime


def _check(service_id: str, item: dict[str, Any]) -> None:
    if not isinstance(service_id, str) or not service_id or len(service_id) > TOKEN_MAX:
        raise InvalidRecord("service id is missing or too long")
    if not isinstance(item, dict):
        raise InvalidRecord("a feedback entry must be a JSON object")
    card = item.get("card")
    if not isinstance(card, str) or not card or len(card) > TOKEN_MAX:
        raise InvalidRecord("feedback.card (the card's uuid) is required")
    if item.get("outcome") not in OUTCOMES:
        raise InvalidRecord(f"feedback.outcome must be one of {', '.join(OUTCOMES)}")
    stamp = item.get("outcomeTimestamp")
    if not isinstance(stamp, str) or len(stamp) > 64:
        raise InvalidRecord("feedback.outcomeTimestamp is required")
    try:
        datetime.fromisoformat(stamp)
    except ValueError as exc:
        raise InvalidRecord(f"feedback.outcomeTimestamp {stamp!r} is not an ISO 8601 timestamp") from exc
    accepted = item.get("acceptedSuggestions")
    if accepted is not None and not (
            isinstance(accepted, list) and all(isinstance(s, dict) and "id" in s for s in accepted)):
        raise InvalidRecord("feedback.acceptedSuggestions must be a list of {\"id\": …}")
    reason = item.get("overrideReason")
    if reason is not None and not isinstance(reason, dict):
        raise InvalidRecord("feedback.overrideReason must be an object")


def _uuid(value: Any) -> str:
    try:
        return str(uuid.UUID(str(value))) if isinstance(value, str) and len(value) <= 64 else NOT_A_UUID
    except ValueError:
        return NOT_A_UUID


def day(stamp: str) -> str:
    """The UTC day of an ISO 8601 timestamp (``2024-03-01T23:30:00-02:00`` → ``2024-03-02``); a date
    stays as it is."""
    parsed = datetime.fromisoformat(stamp)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC)
    return parsed.date().isoformat()


def start_of_day(when: datetime) -> datetime:
    return as_utc(when).replace(hour=0, minute=0, second=0, microsecond=0)


def _own_reason(reason: Any) -> str | None:
    if not isinstance(reason, dict) or reason.get("system") != OUR_REASONS:
        return None
    code = reason.get("code")
    return code if isinstance(code, str) and REASON_CODE.fullmatch(code) else None


def minimal(item: dict[str, Any], *, keep_text: bool = False) -> dict[str, Any]:
    """The entry reduced to what is kept (see the module docstring); with ``keep_text`` the comment and
    the reason as sent are kept too (retention ``comment_days`` > 0)."""
    stamp = item.get("outcomeTimestamp")
    out: dict[str, Any] = {"card": _uuid(item.get("card")), "outcome": item.get("outcome"),
                           "outcomeTimestamp": day(stamp) if isinstance(stamp, str) else None}
    accepted = item.get("acceptedSuggestions")
    if isinstance(accepted, list):
        out["acceptedSuggestions"] = [{"id": _uuid(s.get("id") if isinstance(s, dict) else None)} for s in accepted]
    override = item.get("overrideReason")
    if isinstance(override, dict):
        kept: dict[str, Any] = {}
        reason = override.get("reason")
        own = _own_reason(reason)
        if own is not None:
            kept["reason"] = {"system": OUR_REASONS, "code": own}
        elif reason is not None:
            kept["reason"] = {"code": OTHER_REASON}
        comment = override.get("userComment")
        if (isinstance(comment, str) and comment.strip()) or override.get("commented") is True:
            kept["commented"] = True
        if keep_text:
            if isinstance(reason, dict):
                kept["reasonAsSent"] = reason
            if isinstance(comment, str):
                kept["userComment"] = comment
        out["overrideReason"] = kept
    return out


def has_text(item: Any) -> bool:
    """Whether a stored entry still holds free text (kept under ``comment_days``)."""
    override = item.get("overrideReason") if isinstance(item, dict) else None
    return isinstance(override, dict) and ("userComment" in override or "reasonAsSent" in override)


def save_feedback(session: Session, service_id: str, item: dict[str, Any], *,
                  now: datetime | None = None, keep_text: bool = False) -> int:
    """Store one Feedback entry, reduced by :func:`minimal`; returns its row id."""
    _check(service_id, item)
    kept = minimal(item, keep_text=keep_text)
    row = CdsFeedback(
        service_id=service_id, card=kept["card"], outcome=kept["outcome"],
        outcome_timestamp=kept["outcomeTimestamp"], item=kept, received_at=start_of_day(now or utc_now()),
    )
    session.add(row)
    session.flush()
    return row.id


def list_feedback(session: Session, service_id: str, *, card: str | None = None,
                  since: datetime | None = None) -> list[FeedbackRecord]:
    """Feedback for one service in the order received, optionally for one card / received since."""
    query = select(CdsFeedback).where(CdsFeedback.service_id == service_id)
    if card is not None:
        query = query.where(CdsFeedback.card == card)
    if since is not None:
        query = query.where(CdsFeedback.received_at >= as_utc(since))
    return [
        FeedbackRecord(r.id, r.service_id, r.card, r.outcome, r.outcome_timestamp, r.item,
                       as_utc(r.received_at))
        for r in session.execute(query.order_by(CdsFeedback.id)).scalars()
    ]


