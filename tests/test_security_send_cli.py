"""``alk-fhir overview send`` gives up at once on an answer that says "not this" (issue 25).

A 4xx (the receiver refusing a document that is not the sender's, not covered by consent, not valid)
or a 500 (the receiver failing on this very payload) comes back the same on every try: the sender
stops after one attempt and exits 1 (nothing stored); only "not now" answers
(408, 429, 502-504) and no answer at all are retried (exchange/retry.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from alk_fhir.fhir import operation_outcome
from test_exchange_fake import Failure, FakeFhirServer
from test_overview_send_cli import send


@pytest.fixture
def fake() -> Iterator[FakeFhirServer]:
    server = FakeFhirServer()
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("status", [400, 403, 409, 413, 422, 431, 500])
def test_a_refusal_is_not_retried(fake: FakeFhirServer, tmp_path: Path, status: int) -> None:
    body = operation_outcome("error", "conflict", "Bundle.identifier names a document that another organisation keeps")
    fake.state.fail("POST", "/fhir/Bundle", *[Failure("status", status, body=body)] * 3)
    code, out = send(fake, tmp_path)
    assert code == 1, out
    assert len(fake.state.hits_for("POST", "/fhir/Bundle")) == 1
    assert fake.state.documents == {}


def test_a_busy_answer_is_retried(fake: FakeFhirServer, tmp_path: Path) -> None:
    fake.state.fail("POST", "/fhir/Bundle", Failure("status", 503, retry_after="0"))
    code, out = send(fake, tmp_path)
    assert code == 0 and "stored as version 1" in out
    assert len(fake.state.hits_for("POST", "/fhir/Bundle")) == 2
