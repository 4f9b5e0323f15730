"""Property-based fuzzing of every non-CDS endpoint from the OpenAPI description (schemathesis):
schema-valid and schema-breaking requests to the knowledge repository, $validate, $apply, the case
overview exchange, the token endpoint and the app's render endpoint, and not one 5xx.

The CDS endpoints have their own, larger run (test_cds_schemathesis.py). Partner-protected
endpoints answer 401 here (no token): what is fuzzed is everything in front of the token check and
the parsing of what the unprotected ones accept."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

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
    strategy = st.one_of(*(op.as_strategy(generation_mode=mode)
                           for op in operations for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)))
    statuses: Counter[int] = Counter()

    @settings(max_examples=REQUESTS, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def fuzz(case: Any) -> None:
        response = case.call()
        statuses[response.status_code] += 1
        case.validate_response(response, checks=[not_a_server_error])

    with caplog.at_level(logging.ERROR, logger="alk_fhir"):
        fuzz()
    assert sum(statuses.values()) >= REQUESTS, statuses
    assert not [s for s in statuses if s >= 500], statuses
    assert statuses[200] > 0 and statuses[400] > 0 and statuses[401] > 0, statuses
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
