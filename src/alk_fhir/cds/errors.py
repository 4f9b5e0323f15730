"""Error answers of the CDS endpoints: a status code and an OperationOutcome in JSON.

CDS Hooks 2.0 lets a service answer 4xx/5xx; the current CDS Hooks text ("Returning
OperationOutcome") recommends an OperationOutcome body for any non-2xx answer, which also gives
one error shape for the whole server (architecture.md). ``diagnostics`` names what is wrong and
where, never a token or patient data.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from alk_fhir.fhir import dump_json, operation_outcome

JSON_TYPE = "application/json"


class CdsError(Exception):
    def __init__(self, status: int, code: str, diagnostics: str, expression: str | None = None) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.code = code
        self.diagnostics = diagnostics
        self.expression = expression

    def outcome(self) -> dict[str, Any]:
        return operation_outcome("error", self.code, self.diagnostics, self.expression)


def json_response(content: Any, status: int = 200) -> Response:
    return Response(dump_json(content), status_code=status, media_type=JSON_TYPE)


def error_response(exc: CdsError) -> Response:
    return json_response(exc.outcome(), exc.status)
