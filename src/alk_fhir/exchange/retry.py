"""Retrying one HTTP exchange: which failures are worth another try, and how long to wait.

Retried: no answer at all (connection refused or reset, connect or read timeout) and the statuses
that say "not now" rather than "not this": 408, 429, 502, 503, 504 (RFC 9110 §15.5.9, §15.6.3-5,
RFC 6585 §4). ``Retry-After`` (RFC 9110 §10.2.3: delay-seconds or an HTTP-date) is honoured: we
never come back sooner than the server asked.

500 is *not* retried by default. A FHIR server answers 500 when processing this particular request
failed (HAPI and Firely both map unexpected exceptions in storage or validation to 500), which
usually happens again for the same payload; retrying it only multiplies load on a server that is
already in trouble and delays the clear error the sender needs. A deployment that knows its
server answers 500 for transient trouble can pass ``statuses`` including 500 — sending stays safe
because document creation is conditional.

The caller supplies one attempt as a function, so each attempt can be rebuilt (a fresh bearer
token, a fresh one-time client assertion); whether a non-idempotent request may be retried at all
is the caller's decision.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import requests

from alk_fhir.exchange.errors import ExchangeError, error_from_response

log = logging.getLogger("alk_fhir.exchange")

DEFAULT_STATUSES = frozenset({408, 429, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """``retries`` more attempts after the first, exponential backoff with jitter, one time budget."""

    retries: int = 5
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_total: float = 120.0
    statuses: frozenset[int] = field(default=DEFAULT_STATUSES)

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff < 0 or self.max_backoff < 0 or self.max_total < 0:
            raise ValueError("retries, backoff, max_backoff and max_total must not be negative")


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value; ``None`` when absent or unreadable."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def backoff_delay(policy: RetryPolicy, attempt: int, rng: random.Random | None = None) -> float:
    """Delay before retry number ``attempt`` (0-based): half fixed, half random ("equal jitter").

    The random half spreads senders that failed together; the fixed half keeps the wait growing.
    """
    ceiling = min(policy.max_backoff, policy.backoff * (2.0 ** attempt))
    uniform = rng.uniform if rng is not None else random.uniform
    return ceiling / 2 + uniform(0, ceiling / 2)


def call_with_retries(
    attempt_fn: Callable[[], requests.Response],
    method: str,
    url: str,
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> requests.Response:
    """Run ``attempt_fn`` until it gives a response worth returning, or raise ``ExchangeError``.

    Any response whose status is not in ``policy.statuses`` is returned, errors included: the
    caller decides what a 4xx means. When retries or the time budget run out, the last failure
    is raised (with the server's OperationOutcome when it sent one).
    """
    deadline = clock() + policy.max_total
    attempt = 0
    while True:
        response: requests.Response | None = None
        try:
            response = attempt_fn()
        except (requests.ConnectionError, requests.Timeout) as exc:
            failure = f"{type(exc).__name__}: {_short(exc)}"
            wait = backoff_delay(policy, attempt)
            cause: Exception | None = exc
        else:
            if response.status_code not in policy.statuses:
                return response
            failure = f"HTTP {response.status_code}"
            asked = retry_after_seconds(response.headers.get("Retry-After"))
            wait = asked if asked is not None else backoff_delay(policy, attempt)
            cause = None
        remaining = deadline - clock()
        if attempt >= policy.retries or wait > remaining:
            note = (f"gave up after {attempt + 1} attempt(s)" if attempt >= policy.retries
                    else f"next retry in {wait:.1f} s would exceed the {policy.max_total:.0f} s time budget")
            if response is not None:
                raise error_from_response(method, url, response, note)
            raise ExchangeError(method, url, None, f"{failure} ({note})") from cause
        if response is not None:
            response.close()
        attempt += 1
        log.warning("%s %s: %s; retry %d/%d in %.2f s", method, url, failure, attempt, policy.retries, wait)
        sleep(wait)


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text[:200] + "…" if len(text) > 200 else text
