"""UTC time for the store: what goes into the database is always UTC.

SQLite keeps no time zone, so every datetime is converted to UTC before it is written or compared
and marked UTC again when it is read back.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """A naive value is taken to be UTC already (that is how SQLite hands them back)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def to_millis(value: datetime) -> datetime:
    """Cut to whole milliseconds, the precision of the ``instant`` we serve, so column and JSON agree."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def fhir_instant(value: datetime) -> str:
    """FHIR R4 ``instant`` (datatypes.html#instant): seconds required, a zone required; we use ms and Z."""
    return as_utc(value).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_instant(raw: str) -> datetime:
    """Parse a FHIR instant/dateTime with a zone; a missing zone or a bad value raises ValueError."""
    parsed = datetime.fromisoformat(raw)
    if parsed.tzinfo is None:
        raise ValueError(f"{raw!r} has no time zone")
    return as_utc(parsed)
