"""CDS Hooks 2.0 feedback (https://cds-hooks.hl7.org/2.0/#feedback).

A Feedback entry has ``card`` (the card's uuid), ``outcome`` (``accepted`` | ``overridden``),
``outcomeTimestamp`` (ISO 8601), and optionally ``acceptedSuggestions`` (``[{"id": …}]``, when
accepted) and ``overrideReason`` (``{"reason": Coding, "userComment": …}``, when overridden). The
entry is kept as received; the fields we filter on are also columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from alk_fhir.store.clock import as_utc, utc_now
from alk_fhir.store.db import InvalidRecord
from alk_fhir.store.models import TOKEN_MAX, CdsFeedback

OUTCOMES = ("accepted", "overridden")


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


def save_feedback(session: Session, service_id: str, item: dict[str, Any], *,
                  now: datetime | None = None) -> int:
    """Store one Feedback entry; returns its row id."""
    _check(service_id, item)
    row = CdsFeedback(
        service_id=service_id, card=item["card"], outcome=item["outcome"],
        outcome_timestamp=item["outcomeTimestamp"], item=item, received_at=as_utc(now or utc_now()),
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


