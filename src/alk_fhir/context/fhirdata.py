"""Small readers for FHIR JSON (dicts) that every fact needs: codings, dates, references.

The engine works on plain FHIR JSON, not on parsed models: building pydantic models for a 50-resource
prefetch would cost more than the whole rule evaluation (see benchmarks/apply.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

JSON = dict[str, Any]


def as_dict(value: Any) -> JSON:
    """``value`` when it is a JSON object, else ``{}``: the rules read records they did not validate."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """``value`` when it is a JSON array, else ``[]``."""
    return value if isinstance(value, list) else []


def _well_formed(coding: Any) -> bool:
    return isinstance(coding, dict) and all(isinstance(coding.get(k, ""), str) for k in ("system", "code"))


def codings(concept: Any) -> list[JSON]:
    """The codings of a CodeableConcept (or a list of them); tolerant of malformed input: a coding
    whose system or code is not a string is left out."""
    if isinstance(concept, list):
        return [c for item in concept for c in codings(item)]
    if not isinstance(concept, dict):
        return []
    return [c for c in as_list(concept.get("coding")) if _well_formed(c)]


def has_code(concept: Any, system: str, code: str) -> bool:
    return any(c.get("system") == system and c.get("code") == code for c in codings(concept))


def code_of(concept: Any, system: str) -> str | None:
    for c in codings(concept):
        if c.get("system") == system and isinstance(c.get("code"), str):
            return str(c["code"])
    return None


def parse_date(value: Any) -> date | None:
    """The calendar date of a FHIR date/dateTime/instant (partial dates take their first day)."""
    if not isinstance(value, str) or len(value) < 4:
        return None
    try:
        if len(value) == 4:
            return date(int(value), 1, 1)
        if len(value) == 7:
            return date(int(value[:4]), int(value[5:7]), 1)
        if len(value) == 10:
            return date.fromisoformat(value)
        return datetime.fromisoformat(value.replace("Z", "+00:00")).date()
    except ValueError:
        return None


def months_between(earlier: date, later: date) -> int:
    months = (later.year - earlier.year) * 12 + later.month - earlier.month
    return months - 1 if later.day < earlier.day else months


def reference_key(ref: Any) -> str | None:
    """``Type/id`` of a literal reference (absolute URLs and history suffixes reduced)."""
    if not isinstance(ref, dict) or not isinstance(ref.get("reference"), str):
        return None
    if ref["reference"].startswith(("urn:uuid:", "urn:oid:")):  # a Bundle entry's fullUrl (bundle.html#references)
        return str(ref["reference"])
    parts = ref["reference"].split("/_history/")[0].rstrip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) >= 2 else None


def resource_key(res: JSON) -> str:
    return f"{res.get('resourceType')}/{res.get('id')}"


def reference_to(res: JSON, display: str | None = None) -> JSON:
    ref: JSON = {"reference": resource_key(res)}
    if display:
        ref["display"] = display
    return ref


def walk_answers(items: Any) -> Iterator[tuple[str, JSON]]:
    """(linkId, answer) for every answer in a QuestionnaireResponse, nested items included."""
    if not isinstance(items, list):
        return
    for item in items:
        if not isinstance(item, dict):
            continue
        link = str(item.get("linkId", ""))
        for answer in as_list(item.get("answer")):
            if isinstance(answer, dict):
                yield link, answer
                yield from walk_answers(answer.get("item"))
        yield from walk_answers(item.get("item"))


def effective_date(res: JSON) -> date | None:
    """The clinically relevant date of an event-like resource."""
    for key in ("performedDateTime", "effectiveDateTime", "occurrenceDateTime", "authored", "issued",
                "recordedDate", "onsetDateTime", "dateAsserted"):
        found = parse_date(res.get(key))
        if found:
            return found
    for key in ("performedPeriod", "effectivePeriod", "period", "onsetPeriod"):
        period = res.get(key)
        if isinstance(period, dict):
            found = parse_date(period.get("end")) or parse_date(period.get("start"))
            if found:
                return found
    return None
