"""Property-based fuzzing of the CDS endpoints from their OpenAPI description (schemathesis): at least
1,000 generated requests, schema-valid and schema-breaking, and not one 5xx. Each answer must also
have a documented status code and content type, and a 200 must match the documented response.

The FHIR server reader is replaced by one that refuses: generated ``fhirServer`` URLs are never
contacted (no network in tests), which turns any missing prefetch key into the 412 path."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from alk_fhir.cds.prefetch import FetchError
from fixtures.fuzz import fuzz_operations
from test_cds_examples import cds_app

REQUESTS = 1050  # the issue asks for at least 1,000; generation dominates the run time
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


class Refusing:
    def get(self, url: str) -> Any:
        raise FetchError("no network in tests")


def test_fuzzed_requests_never_get_a_server_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    app = cds_app(tmp_path)
    app.state.cds.open_source = lambda base, token: Refusing()
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [op.ok() for op in schema.get_all_operations() if op.ok().path.startswith("/cds-services")]
    assert sorted(op.label for op in operations) == [
        "GET /cds-services", "POST /cds-services/{service_id}", "POST /cds-services/{service_id}/feedback"]
    with caplog.at_level(logging.ERROR, logger="alk_fhir"):
        statuses = fuzz_operations(operations, REQUESTS, CHECKS)
    assert sum(statuses.values()) >= 1000, statuses
    assert not [s for s in statuses if s >= 500], statuses
    assert statuses[200] > 0 and statuses[400] > 0, statuses  # both well-formed and broken calls were made
    # Nothing the fuzzer sent reached the engine's last-resort guard (422) or the unexpected-error log.
    assert statuses[422] == 0, statuses
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
