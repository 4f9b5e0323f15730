"""OperationOutcome responses: the one error shape of every ``/fhir`` endpoint (built by ``alk_fhir.fhir``)."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from alk_fhir.fhir import FHIR_JSON, BodyError, dump_json, issue_code, operation_outcome, read_json

__all__ = ["FHIR_JSON", "FHIRError", "FHIRResponse", "fhir_response", "operation_outcome", "read_json_body"]


class FHIRError(Exception):
    """Raised anywhere below a FHIR endpoint; rendered as an OperationOutcome with ``status``."""

    def __init__(self, status: int, code: str, diagnostics: str, expression: str | None = None,
                 outcome: dict[str, Any] | None = None) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.code = code
        self.diagnostics = diagnostics
        self.expression = expression
        self.outcome = outcome


class FHIRResponse(Response):
    media_type = FHIR_JSON

    def render(self, content: Any) -> bytes:
        return dump_json(content)


def fhir_response(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> FHIRResponse:
    return FHIRResponse(content=content, status_code=status, headers=headers)


async def fhir_error_handler(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, FHIRError)
    body = exc.outcome or operation_outcome("error", exc.code, exc.diagnostics, exc.expression)
    return fhir_response(body, exc.status)


async def http_error_handler(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    return fhir_response(operation_outcome("error", issue_code(exc.status_code), str(exc.detail)),
                         exc.status_code, headers=getattr(exc, "headers", None))


async def validation_error_handler(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()]
    return fhir_response(operation_outcome("error", "invalid", "; ".join(parts) or "invalid request"), 400)


async def unexpected_error_handler(_: Request, exc: Exception) -> Response:
    """Last line: a bug must still answer a FHIR error, never a stack trace."""
    import logging

    logging.getLogger("alk_fhir").exception("unhandled error", exc_info=exc)
    return fhir_response(operation_outcome("error", "exception", "internal error"), 500)


async def read_json_body(request: Request, limit: int | None = None) -> Any:
    """The request body as JSON (``alk_fhir.fhir.read_json``: size checked before reading, streamed
    with the cap, depth guard); its refusals rendered as FHIRError, i.e. a 400/413/415 OperationOutcome."""
    try:
        return await read_json(request, limit=limit, send=FHIR_JSON)
    except BodyError as exc:
        raise FHIRError(exc.status, exc.code, exc.diagnostics) from None
