"""OperationOutcome responses: the one error shape of every ``/fhir`` endpoint."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

FHIR_JSON = "application/fhir+json"


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


def operation_outcome(severity: str, code: str, diagnostics: str,
                      expression: str | None = None) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


class FHIRResponse(Response):
    media_type = FHIR_JSON

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def fhir_response(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> FHIRResponse:
    return FHIRResponse(content=content, status_code=status, headers=headers)


def _error_code(status: int) -> str:
    return {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported",
            409: "conflict", 412: "conflict", 413: "too-long", 415: "not-supported", 422: "processing",
            429: "throttled"}.get(status, "exception")


async def fhir_error_handler(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, FHIRError)
    body = exc.outcome or operation_outcome("error", exc.code, exc.diagnostics, exc.expression)
    return fhir_response(body, exc.status)


async def http_error_handler(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    return fhir_response(operation_outcome("error", _error_code(exc.status_code), str(exc.detail)),
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


async def read_json_body(request: Request, limit: int = 20 * 1024 * 1024) -> Any:
    """The request body as JSON, or a 400/413/415 OperationOutcome naming what is wrong."""
    ctype = request.headers.get("content-type", "application/fhir+json").split(";")[0].strip().lower()
    if ctype not in ("application/fhir+json", "application/json", "application/json+fhir", ""):
        raise FHIRError(415, "not-supported", f"unsupported Content-Type {ctype}; send application/fhir+json")
    raw = await request.body()
    if len(raw) > limit:
        raise FHIRError(413, "too-long", f"request body larger than {limit} bytes")
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FHIRError(400, "structure", f"request body is not JSON: {exc}") from exc
    except RecursionError:
        raise _too_deep() from None
    if not _shallow_enough(body):
        raise _too_deep()
    return body


def _too_deep() -> FHIRError:
    return FHIRError(400, "structure", f"request body nests deeper than {MAX_DEPTH} levels: not a FHIR resource "
                     "we accept (the recursive walks of validation, rules and rendering stop there)")


MAX_DEPTH = 128  # a Bundle of QuestionnaireResponses with ten levels of nested items stays under 60


def _shallow_enough(node: Any) -> bool:
    stack = [(node, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            return False
        if type(item) is dict:
            stack.extend((v, depth + 1) for v in item.values() if type(v) is dict or type(v) is list)
        elif type(item) is list:
            stack.extend((v, depth + 1) for v in item if type(v) is dict or type(v) is list)
    return True
