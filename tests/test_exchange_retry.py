"""The retry loop on its own: which failures it retries, how long it waits, when it stops."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import requests

from alk_fhir.exchange import ExchangeError, RetryPolicy
from alk_fhir.exchange.retry import backoff_delay, call_with_retries, retry_after_seconds


def response(status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r.headers.update(headers or {})
    r._content = body
    r._content_consumed = True  # type: ignore[attr-defined]
    return r


def script(*outcomes: requests.Response | Exception) -> tuple[Callable[[], requests.Response], list[int]]:
    calls: list[int] = []

    def attempt() -> requests.Response:
        calls.append(1)
        outcome = outcomes[len(calls) - 1]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return attempt, calls


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def run(attempt: Callable[[], requests.Response], policy: RetryPolicy, t: FakeTime) -> requests.Response:
    return call_with_retries(attempt, "POST", "http://h/fhir/Bundle", policy, sleep=t.sleep, clock=t.clock)


def test_retry_after_seconds_and_http_date() -> None:
    now = datetime(2025, 3, 1, 10, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Sat, 01 Mar 2025 10:00:30 GMT", now) == 30.0
    assert retry_after_seconds("Sat, 01 Mar 2025 09:59:00 GMT", now) == 0.0  # in the past: at once
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("-3") is None


def test_backoff_grows_with_jitter_within_bounds() -> None:
    policy = RetryPolicy(backoff=1.0, max_backoff=8.0)
    rng = random.Random(1)
    for attempt, ceiling in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (6, 8.0)]:
        delays = [backoff_delay(policy, attempt, rng) for _ in range(200)]
        assert min(delays) >= ceiling / 2 and max(delays) <= ceiling
        assert len(set(delays)) > 100  # jittered, not constant


def test_waits_exactly_what_retry_after_asks() -> None:
    attempt, calls = script(response(503, {"Retry-After": "4"}), response(429, {"Retry-After": "2"}),
                            response(201))
    t = FakeTime()
    assert run(attempt, RetryPolicy(retries=5), t).status_code == 201
    assert t.sleeps == [4.0, 2.0]
    assert len(calls) == 3


@pytest.mark.parametrize("exc", [requests.ConnectionError("refused"), requests.ReadTimeout("slow"),
                                 requests.ConnectTimeout("no route")])
def test_transport_failures_are_retried(exc: Exception) -> None:
    attempt, calls = script(exc, response(200))
    t = FakeTime()
    assert run(attempt, RetryPolicy(retries=1, backoff=0.5), t).status_code == 200
    assert len(calls) == 2
    assert len(t.sleeps) == 1 and 0.25 <= t.sleeps[0] <= 0.5


@pytest.mark.parametrize("status", [400, 401, 404, 409, 412, 422, 500])
def test_final_statuses_are_returned_at_once(status: int) -> None:
    attempt, calls = script(response(status))
    t = FakeTime()
    assert run(attempt, RetryPolicy(), t).status_code == status
    assert t.sleeps == [] and len(calls) == 1


def test_500_can_be_opted_in() -> None:
    attempt, calls = script(response(500), response(201))
    t = FakeTime()
    assert run(attempt, RetryPolicy(statuses=frozenset({500, 503})), t).status_code == 201
    assert len(calls) == 2


def test_time_budget_bounds_the_total_wait() -> None:
    attempt, calls = script(*[response(503, {"Retry-After": "10"}) for _ in range(10)])
    t = FakeTime()
    with pytest.raises(ExchangeError) as info:
        run(attempt, RetryPolicy(retries=9, max_total=25.0), t)
    assert t.sleeps == [10.0, 10.0]  # a third wait would end after 30 s
    assert len(calls) == 3
    assert info.value.status == 503 and "time budget" in str(info.value)


def test_no_answer_at_all_is_an_error_without_status() -> None:
    attempt, calls = script(*[requests.ConnectionError("refused") for _ in range(3)])
    t = FakeTime()
    with pytest.raises(ExchangeError) as info:
        run(attempt, RetryPolicy(retries=2, backoff=0.1), t)
    assert info.value.status is None
    assert "ConnectionError: refused" in info.value.diagnostics
    assert "gave up after 3 attempt(s)" in info.value.diagnostics
    assert isinstance(info.value.__cause__, requests.ConnectionError)
    assert len(calls) == 3


def test_negative_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(retries=-1)
