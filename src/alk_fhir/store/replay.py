"""Seen JWT ids, for replay protection of CDS client JWTs and SMART client assertions.

CDS Hooks 2.0 ("Trusting CDS Clients") and SMART Backend Services both require the receiver to
reject a ``jti`` it has already seen until the token expires. Uniqueness is the primary key, so
two workers receiving the same token at the same moment cannot both accept it. Keys are stored as
SHA-256 digests: fixed length whatever the caller puts in them (e.g. ``iss|jti``).
"""

from __future__ import annotations

import hashlib
import time

from sqlalchemy import delete
from sqlalchemy.orm import Session

from alk_fhir.store.db import InvalidRecord, insert_ignore
from alk_fhir.store.models import SeenJti


def remember_jti(session: Session, key: str, expires_at: int, *, now: int | None = None) -> bool:
    """True the first time ``key`` is seen (or after its earlier entry expired); False on a replay.

    Expired entries are purged in the same transaction.
    """
    if not isinstance(key, str) or not key:
        raise InvalidRecord("jti key is required")
    current = int(time.time()) if now is None else now
    session.execute(delete(SeenJti).where(SeenJti.expires_at <= current))
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    return insert_ignore(session, SeenJti, {"key_hash": digest, "expires_at": int(expires_at)})
