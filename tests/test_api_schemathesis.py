"""Property-based fuzzing of every non-CDS endpoint from the OpenAPI description (schemathesis):
schema-valid and schema-breaking requests to the knowledge repository, $validate, $apply, the case
overview exchange, the token endpoint and the app's render endpoint, and not one 5xx.

The CDS endpoints have their own, larger run (test_cds_schemathesis.py). Partner-protected
endpoints answer 401 here (no token): what is fuzzed is everything in front of the token check and
the parsing of what the unprotected ones accept."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
import schemathesis
from schemathesis.checks import not_a_server_error

from fixtures.fuzz import fuzz_operations
from test_cds_examples import cds_app

REQUESTS = 600


def test_fuzzed_requests_to_the_fhir_faces_never_get_a_server_error(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    app = cds_app(tmp_path)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [op.ok() for op in schema.get_all_operations() if not op.ok().path.startswith("/cds-services")]
    labels = {op.label for op in operations}
    assert {"POST /fhir/$validate", "POST /fhir/PlanDefinition/$apply", "POST /fhir/Bundle",
            "GET /fhir/{resource_type}/{resource_id}", "POST /app/api/render-overview"} <= labels, labels
    with caplog.at_level(logging.ERROR, logger="alk_fhir"):
        statuses = fuzz_operations(operations, REQUESTS, [not_a_server_error])
    assert sum(statuses.values()) >= REQUESTS, statuses
    assert not [s for s in statuses if s >= 500], statuses
    assert statuses[200] > 0 and statuses[400] > 0 and statuses[401] > 0, statuses
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


HOSTILE_BODIES = {
    "an integer of 5,000 digits": {"resourceType": "Parameters",
                                   "parameter": [{"name": "n", "valueInteger": 10 ** 4999}]},
    "a lone surrogate": {"resourceType": "Patient", "id": "p", "name": [{"text": "ab\ud800"}]},
    "a key with a lone surrogate": {"resourceType": "Patient", "\udc00": 1},
    "a scalar flood": ["ab"] * 1_000_000,
}
HUGE_HEADERS = {"Authorization": "Bearer " + "a" * 1_000_000, "X-Flood": "b" * 1_000_000}
PATH_VALUES = {"resource_type": "Patient", "plan_id": "alk-guideline", "service_id": "alk-patient-view",
               "resource_id": "p", "version_id": "1", "doc_id": "x"}


def test_hostile_bodies_and_huge_headers_on_every_operation_that_takes_a_body(tmp_path: Path,
                                                                              caplog: pytest.LogCaptureFixture) -> None:
    """Issue 25: huge numbers, lone surrogates and scalar floods in the body (NaN: the client will not
    write it; tests/test_security_body.py sends it raw), and megabyte headers
    (which reach the app here: the ASGI transport has no HTTP parser; ``alk-fhir serve`` refuses them
    earlier, tests/test_security_http.py), on every POST of the OpenAPI description, CDS included:
    4xx every time, never a 5xx, nothing logged as an error."""
    app = cds_app(tmp_path)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [op.ok() for op in schema.get_all_operations() if op.ok().method.upper() == "POST"]
    assert len(operations) >= 8, [op.label for op in operations]
    seen = []
    with caplog.at_level(logging.ERROR, logger="alk_fhir"):
        for op in operations:
            params = {p.name: PATH_VALUES[p.name] for p in op.path_parameters}
            for name, body in HOSTILE_BODIES.items():
                for headers in ({}, HUGE_HEADERS):
                    case = op.Case(path_parameters=params, body=body, media_type="application/json",
                                   headers=dict(headers))
                    limit = sys.get_int_max_str_digits()
                    sys.set_int_max_str_digits(0)  # so that the client can write the 5,000 digits; the
                    try:  # reader's own bound (fhir.body.MAX_INT_DIGITS) was fixed when it was imported
                        response = case.call()
                    finally:
                        sys.set_int_max_str_digits(limit)
                    case.validate_response(response, checks=[not_a_server_error])
                    assert 400 <= response.status_code < 500, (op.label, name, response.status_code)
                    seen.append(response.status_code)
    assert {400, 413} <= set(seen), sorted(set(seen))
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
