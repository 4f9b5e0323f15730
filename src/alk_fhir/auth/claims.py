"""JWT NumericDate claims (``exp``, ``iat``, ``nbf``) must be numbers a calendar and a database can hold.

RFC 7519 §2 defines a NumericDate as seconds since the epoch; nothing in JSON bounds it, so a signed
token may carry ``exp`` = 10¹⁹ (past the 64-bit column of the replay table) or ``1e400`` (infinity
once decoded). Such a token is simply not acceptable: refusing it here, before any arithmetic or
database write, keeps it a 401 and never a 500.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

NUMERIC_DATE_CLAIMS = ("exp", "iat", "nbf")
MAX_NUMERIC_DATE = 253_402_300_799  # 9999-12-31T23:59:59Z: the last second an R4 instant can express


def numeric_date_problem(claims: Mapping[str, Any]) -> str | None:
    """Why a NumericDate claim of ``claims`` is unusable (not a finite number in 0…year 9999), or None."""
    for name in NUMERIC_DATE_CLAIMS:
        if name not in claims:
            continue
        value = claims[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{name} is not a number"
        if not math.isfinite(value) or not 0 <= value <= MAX_NUMERIC_DATE:
            return f"{name} is out of range"
    return None
