"""Remembered overrides (issue 21): which cards stay away for which patient pseudonym, and until when.

The store keeps what ``alk_fhir.cds.snooze`` decides and nothing more: a keyed pseudonym of the patient
(computed by the caller; never an identifier), the plan action, the override reason's code, a digest
of the finding behind the card and the last day it stays away. One row per (pseudonym, action): a new
override replaces the old. Rows whose period has ended are deleted (retention = the snooze period):
on every write, and by :func:`purge` (``Store.purge_snoozes``) for a deployment that wants a sweep.
Reads run on the driver's cursor (``db.run_driver_read``): the lookup is on every patient-view call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import Dialect, Engine, bindparam, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from alk_fhir.store.db import DriverStatement, InvalidRecord, run_driver_read, run_driver_write
from alk_fhir.store.models import ID_MAX, CdsSnooze

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Snooze:
    action_id: str
    reason: str
    trigger: str
    until: str  # YYYY-MM-DD, the last day the card stays away


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value or len(value) > ID_MAX:
        raise InvalidRecord(f"snooze {name} must be a non-empty string of at most {ID_MAX} characters")
    return value


def _day(value: Any, name: str) -> str:
    if not isinstance(value, str) or not _DAY.match(value):
        raise InvalidRecord(f"snooze {name} must be a date YYYY-MM-DD")
    return value


def save_snooze(engine: Engine, subject: str, snooze: Snooze, today: str) -> None:
    """Keep ``snooze`` for ``subject`` (replacing one for the same action); ended ones are deleted."""
    row = {"subject": _text(subject, "subject"), "action_id": _text(snooze.action_id, "action"),
           "reason": _text(snooze.reason, "reason"), "trigger": _text(snooze.trigger, "trigger"),
           "until": _day(snooze.until, "until")}
    today = _day(today, "today")
    upsert, sweep, _ = _statements(engine.dialect)

    def work(cursor: Any) -> None:
        sweep.run(cursor, {"today": today})
        upsert.run(cursor, row)
    run_driver_write(engine, work)


def snoozes_for(engine: Engine, subject: str, today: str) -> dict[str, Snooze]:
    """The live snoozes of ``subject`` by action id (their last day is today or later)."""
    _, _, lookup = _statements(engine.dialect)

    def work(cursor: Any) -> dict[str, Snooze]:
        rows = lookup.run(cursor, {"subject": subject, "today": today}).fetchall()
        return {r[0]: Snooze(r[0], r[1], r[2], r[3]) for r in rows}
    return run_driver_read(engine, work)


def purge(engine: Engine, today: str) -> None:
    _, sweep, _ = _statements(engine.dialect)
    run_driver_write(engine, lambda cursor: sweep.run(cursor, {"today": _day(today, "today")}))


@lru_cache(maxsize=8)
def _statements(dialect: Dialect) -> tuple[DriverStatement, DriverStatement, DriverStatement]:
    insert = pg_insert if dialect.name == "postgresql" else sqlite_insert
    values: dict[str, Any] = {k: bindparam(k) for k in ("subject", "action_id", "reason", "trigger", "until")}
    statement = insert(CdsSnooze).values(**values)
    upsert = statement.on_conflict_do_update(
        index_elements=[CdsSnooze.subject, CdsSnooze.action_id],
        set_={k: statement.excluded[k] for k in ("reason", "trigger", "until")})
    sweep = delete(CdsSnooze).where(CdsSnooze.until < bindparam("today"))
    lookup = select(CdsSnooze.action_id, CdsSnooze.reason, CdsSnooze.trigger, CdsSnooze.until).where(
        CdsSnooze.subject == bindparam("subject"), CdsSnooze.until >= bindparam("today"))
    return (DriverStatement(dialect, upsert), DriverStatement(dialect, sweep), DriverStatement(dialect, lookup))
