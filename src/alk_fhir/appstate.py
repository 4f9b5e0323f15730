"""Per-app state built on first use: one pattern for every face that hangs its state on ``app.state``.

Start-up normally builds it (lifespan); a test or a second app factory may reach a handler first, so
the first caller builds it under a lock and every later one reads it without locking.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
_lock = threading.Lock()


def state_of(app: Any, name: str, kind: type[T], build: Callable[[Any], T]) -> T:
    """``app.state.<name>`` when it is a ``kind``; otherwise ``build(app)``, which stores it there."""
    existing = getattr(app.state, name, None)
    if isinstance(existing, kind):
        return existing
    with _lock:
        existing = getattr(app.state, name, None)
        if isinstance(existing, kind):
            return existing
        return build(app)
