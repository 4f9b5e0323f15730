"""Seen JWT ids, for replay protection of CDS client JWTs and SMART client assertions.

CDS Hooks 2.0 ("Trusting CDS Clients") and SMART Backend Services both require the receiver to
reject a ``jti`` it has already seen until the token expires. Uniqueness is the primary key, so
two workers receiving the same token at the same moment cannot both accept it. Keys are stored as
SHA-256 digests: fixed length whatever the caller puts in them (e.g. ``iss|jti``).
"""

from __future__ import annotations

import hashlib
import time
from functools import lru_cache
from typing import Any

from sqlalchemy import Dialect, Engine, bindparam, delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from alk_fhir.store.db import DriverStatement, InvalidRecord, run_driver_write
from alk_fhir.store.models import SeenJti

PURGE_INTERVAL = 60  # seconds between sweeps of expired ids: housekeeping, not correctness
MAX_EXPIRES_AT = 2**63 - 1  # BigInteger


def remember_jti(engine: Engine, key: str, expires_at: int, *, now: int | None = None,
                 purge: bool = True) -> bool:
    """True the first time ``key`` is seen (or after its earlier entry expired); False on a replay.

    One statement decides: INSERT … ON CONFLICT DO UPDATE … WHERE the stored entry has expired,
    RETURNING the key — a row comes back for a new or expired key, none for a live one. Sweeping
    other expired entries (``purge``) is only housekeeping, so the caller does it now and then
    rather than on every token (it cost a second statement on the CDS hot path). Both run on the
    driver's cursor (``db.run_driver_write``): this is on every CDS call.
    """
    if not isinstance(key, str) or not key:
        raise InvalidRecord("jti key is required")
    if isinstance(expires_at, bool) or not isinstance(expires_at, int) or not 0 <= expires_at <= MAX_EXPIRES_AT:
        # The column is a signed 64-bit integer: say so here rather than as an OverflowError
        # (SQLite) or NumericValueOutOfRange (PostgreSQL) in the middle of a request.
        raise InvalidRecord(f"jti expiry must be an integer in 0..{MAX_EXPIRES_AT}, got {expires_at!r}")
    current = int(time.time()) if now is None else now
    upsert, sweep = _statements(engine.dialect)
    # surrogatepass: a validly signed token may carry a jti with a lone surrogate ("\ud800" parses as
    # JSON); it must be remembered like any other, not end the request in a UnicodeEncodeError.
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()

    def work(cursor: Any) -> bool:
        if purge:
            sweep.run(cursor, {"now": current})
        return upsert.run(cursor, {"key_hash": digest, "expires_at": expires_at, "now": current}).fetchone() is not None
    return run_driver_write(engine, work)


@lru_cache(maxsize=8)
def _statements(dialect: Dialect) -> tuple[DriverStatement, DriverStatement]:
    """The upsert and the sweep, compiled once per dialect (and its driver's parameter style)."""
    return (DriverStatement(dialect, _upsert(dialect.name)),
            DriverStatement(dialect, delete(SeenJti).where(SeenJti.expires_at <= bindparam("now"))))


@lru_cache(maxsize=4)
def _upsert(dialect: str) -> Any:
    """Built once per dialect with bound parameters: building it per call cost ~0.4 ms of Python."""
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(SeenJti).values(key_hash=bindparam("key_hash"), expires_at=bindparam("expires_at"))
    return statement.on_conflict_do_update(
        index_elements=[SeenJti.key_hash], set_={"expires_at": statement.excluded.expires_at},
        where=SeenJti.expires_at <= bindparam("now")).returning(SeenJti.key_hash)
