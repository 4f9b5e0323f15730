"""CDS Hooks 2.0 Feedback: ``POST {baseUrl}/cds-services/{id}/feedback``.

The body is ``{"feedback": [Feedback, …]}``; each Feedback has ``card`` (the card's uuid),
``outcome`` (``accepted`` | ``overridden``), ``outcomeTimestamp`` (ISO 8601 date and time in UTC,
RFC 3339 §5.6), ``acceptedSuggestions`` (``[{"id": suggestion uuid}]``, required when accepted)
and optionally ``overrideReason`` (``reason``: a Coding with ``system`` and ``code``, and/or
``userComment``). The whole body is checked first, so a bad entry stores nothing (400); then
every entry is handed to the ``FeedbackSink`` (the store in production, which keeps only what the
report needs: ``store.feedback.minimal``, issue 22).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from alk_fhir.cds.errors import CdsError

MAX_ENTRIES = 1000
MAX_TEXT = 512  # card/suggestion ids and codes; the store's key length
MAX_COMMENT = 4000


class FeedbackSink(Protocol):
    def save_feedback_items(self, service_id: str, items: Sequence[dict[str, Any]]) -> list[int]:
        """Store all ``items`` in one transaction (``alk_fhir.store.Store`` does)."""
        ...


class MemoryFeedbackSink:
    """Feedback kept in the process: for tests and for an app created without a store."""

    def __init__(self) -> None:
        self.items: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def save_feedback_items(self, service_id: str, items: Sequence[dict[str, Any]]) -> list[int]:
        with self._lock:
            first = len(self.items) + 1
            self.items += [(service_id, item) for item in items]
            return list(range(first, len(self.items) + 1))


def _bad(diagnostics: str, where: str) -> CdsError:
    return CdsError(400, "invalid", diagnostics, where)


def _text(value: Any, where: str, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise _bad(f"{where} must be a non-empty string of at most {limit} characters", where)
    return value


def _timestamp(value: Any, where: str) -> None:
    _text(value, where, 64)
    try:
        stamp = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise _bad(f"{where} must be an ISO 8601 date and time, e.g. 2021-12-11T10:05:31Z", where) from exc
    if "T" not in str(value) or stamp.tzinfo is None:
        raise _bad(f"{where} must be a date and time with a UTC offset (RFC 3339 §5.6)", where)


def _override_reason(value: Any, where: str) -> None:
    if not isinstance(value, dict):
        raise _bad(f"{where} must be an object", where)
    reason = value.get("reason")
    comment = value.get("userComment")
    if reason is None and comment is None:
        raise _bad(f"{where} needs a reason (Coding) or a userComment", where)
    if reason is not None:
        if not isinstance(reason, dict):
            raise _bad(f"{where}.reason must be a Coding", f"{where}.reason")
        _text(reason.get("system"), f"{where}.reason.system")
        _text(reason.get("code"), f"{where}.reason.code")
        if "display" in reason:
            _text(reason["display"], f"{where}.reason.display")
    if comment is not None:
        _text(comment, f"{where}.userComment", MAX_COMMENT)


def check_feedback(body: Any) -> list[dict[str, Any]]:
    """The Feedback entries of a valid body; CdsError(400) naming the first problem otherwise."""
    if not isinstance(body, dict) or not isinstance(body.get("feedback"), list) or not body["feedback"]:
        raise _bad("the body must be an object with a non-empty 'feedback' array", "feedback")
    entries: list[dict[str, Any]] = body["feedback"]
    if len(entries) > MAX_ENTRIES:
        raise CdsError(413, "too-long", f"at most {MAX_ENTRIES} feedback entries per request", "feedback")
    for i, item in enumerate(entries):
        where = f"feedback[{i}]"
        if not isinstance(item, dict):
            raise _bad(f"{where} must be an object", where)
        _text(item.get("card"), f"{where}.card")
        outcome = item.get("outcome")
        if outcome not in ("accepted", "overridden"):
            raise _bad(f"{where}.outcome must be 'accepted' or 'overridden'", f"{where}.outcome")
        _timestamp(item.get("outcomeTimestamp"), f"{where}.outcomeTimestamp")
        accepted = item.get("acceptedSuggestions")
        if outcome == "accepted" or accepted is not None:
            if not isinstance(accepted, list) or not accepted:
                raise _bad(f"{where}.acceptedSuggestions is required for an accepted outcome",
                           f"{where}.acceptedSuggestions")
            for j, suggestion in enumerate(accepted):
                if not isinstance(suggestion, dict):
                    raise _bad(f"{where}.acceptedSuggestions[{j}] must be an object",
                               f"{where}.acceptedSuggestions[{j}]")
                _text(suggestion.get("id"), f"{where}.acceptedSuggestions[{j}].id")
        if "overrideReason" in item:
            if outcome != "overridden":
                raise _bad(f"{where}.overrideReason belongs to an overridden outcome", f"{where}.overrideReason")
            _override_reason(item["overrideReason"], f"{where}.overrideReason")
    return entries
