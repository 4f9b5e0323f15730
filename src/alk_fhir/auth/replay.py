"""Replay protection: a JWT id may be used once while the JWT is still acceptable.

CDS Hooks 2.0 ("Trusting CDS Clients") makes ``jti`` a nonce "to protect against replay attacks";
SMART ("Client Authentication: Asymmetric", Signature Verification) requires the server to check
that a ``jti`` "has not been previously encountered for the given ``iss``" within the assertion
lifetime. Both need the same primitive; the store module provides a database-backed one with the
same protocol so that several workers share what they have seen.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol


class JtiCache(Protocol):
    def remember(self, key: str, expires_at: int) -> bool:
        """Record ``key`` until ``expires_at`` (epoch seconds); False if it was already recorded."""
        ...


class MemoryJtiCache:
    """Per-process TTL set. Only sound for a single worker: each process sees its own replays."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()
        self._next_purge = 0.0

    def remember(self, key: str, expires_at: int) -> bool:
        now = self._clock()
        with self._lock:
            if now >= self._next_purge:
                # Expired ids can no longer be replayed (their JWT fails exp), so forgetting them is safe.
                self._seen = {k: exp for k, exp in self._seen.items() if exp > now}
                self._next_purge = now + 60
            known = self._seen.get(key)
            if known is not None and known > now:
                return False
            self._seen[key] = expires_at
            return True

    def __len__(self) -> int:
        return len(self._seen)
