"""Property-based fuzzing of every non-CDS endpoint from the OpenAPI description (schemathesis):
schema-valid and schema-breaking requests to the knowledge repository, $validate, $apply, the case
overview exchange, the token endpoint and the app's render endpoint, and not one 5xx.

The CDS endpoints have their own, larger run (test_cds_schemathesis.py). Partner-protected
endpoints answer 401 here (no token): what is fuzzed is everything in front of the token check and
the parsing of what the unprotected ones accept."""

from __future__ import annotations

import logging
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
