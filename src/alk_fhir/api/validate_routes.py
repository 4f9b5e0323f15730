"""``[base]/fhir/[type]/$validate`` (R4 OperationDefinition Resource-validate), type level.

The body is the resource itself or a Parameters resource with ``resource``, optional ``mode`` and
``profile``; ``profile`` may also be a query parameter. The answer is 200 with an OperationOutcome
whether or not the resource is valid — "a 4xx or 5xx error means that the validation itself could
not be performed" (operation definition comment): unreadable input, a resource of another type
than the URL says, an unknown profile ("the server SHALL return an error"), or a ``mode`` that
needs a stored instance (``update``/``delete``; this server validates content only).

The Validator is built once when the app is created (``install``) and kept on
``app.state.validator``; other faces that store documents call ``require_valid_document``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from starlette.concurrency import run_in_threadpool

from alk_fhir.api.outcome import FHIRError, FHIRResponse, fhir_response, read_json_body
from alk_fhir.knowledge import Package, corepkg
from alk_fhir.validation import UnknownProfile, Validator, build_validator, has_errors

router = APIRouter(tags=["validation"])
OPERATION = {"name": "validate", "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate"}
_PARAMS = {"resource", "mode", "profile"}


_built: dict[tuple[int, Path], tuple[Package, Validator]] = {}


def install(app: FastAPI) -> APIRouter:
    """Build the Validator for the app's package, announce $validate in the CapabilityStatement.

    Apps created for the same loaded Package (tests, several app factories in one process) share one
    compiled Validator: compiling takes about a second and the result depends only on the package."""
    package: Package = app.state.package
    core = corepkg.require(app.state.settings.package_cache)
    key = (id(package), core)
    found = _built.get(key)
    if found is None or found[0] is not package:
        found = (package, build_validator(package, core))
        if len(_built) >= 4:
            _built.clear()
        _built[key] = found
    app.state.validator = found[1]
    app.state.capability_operations.append(dict(OPERATION))
    return router


def validator_of(request: Request) -> Validator:
    validator: Validator = request.app.state.validator
    return validator


def _inputs(body: Any, resource_type: str, profile: str | None, mode: str | None) -> tuple[Any, str | None, str | None]:
    if isinstance(body, dict) and body.get("resourceType") == "Parameters" and resource_type != "Parameters":
        resource: Any = None
        for i, param in enumerate(body.get("parameter") or []):
            name = param.get("name") if isinstance(param, dict) else None
            where = f"Parameters.parameter[{i}]"
            if name not in _PARAMS:
                raise FHIRError(400, "not-supported", f"unknown parameter {name!r} for $validate", where)
            if name == "resource":
                resource = param.get("resource")
            else:
                value = next((v for k, v in param.items() if k.startswith("value")), None)
                if not isinstance(value, str):
                    raise FHIRError(400, "invalid", f"parameter {name!r} needs a string value", where)
                if name == "mode":
                    mode = value
                else:
                    profile = value
        return resource, profile, mode
    return body, profile, mode


@router.post("/fhir/$validate", response_class=FHIRResponse)
async def validate_any(request: Request, profile: str | None = None, mode: str | None = None) -> FHIRResponse:
    """Any resource, its type read from the content: for tools that validate files of mixed types."""
    return await _validate(request, None, profile, mode)


@router.post("/fhir/{resource_type}/$validate", response_class=FHIRResponse)
async def validate_operation(request: Request, resource_type: str, profile: str | None = None,
                             mode: str | None = None) -> FHIRResponse:
    """Resource-type level $validate (R4 resource-operation-validate)."""
    return await _validate(request, resource_type, profile, mode)


async def _validate(request: Request, resource_type: str | None, profile: str | None,
                    mode: str | None) -> FHIRResponse:
    validator = validator_of(request)
    if resource_type is not None and resource_type not in validator.defs.resource_types:
        raise FHIRError(404, "not-supported", f"{resource_type} is not an R4 resource type")
    body = await read_json_body(request)
    resource, profile, mode = _inputs(body, resource_type or "", profile, mode)
    if mode not in (None, "create"):
        raise FHIRError(400, "not-supported", f"mode {mode!r} needs a stored instance; this server validates "
                        "content at type level only (no mode, or 'create')")
    if not isinstance(resource, dict):
        raise FHIRError(400, "required", "no resource to validate: send it as the body or as parameter 'resource'")
    if resource_type is not None and resource.get("resourceType") != resource_type:
        raise FHIRError(400, "invalid", f"the resource is a {resource.get('resourceType')!r}, but this is "
                        f"{resource_type}/$validate", "resourceType")
    try:
        outcome = await run_in_threadpool(validator.validate, resource, profile)
    except UnknownProfile as exc:
        raise FHIRError(400, "not-supported", f"cannot validate against profile {profile}: {exc}") from exc
    return fhir_response(outcome)


def require_valid_document(request: Request, bundle: Any) -> dict[str, Any]:
    """For a face that stores or forwards a case-overview document: the OperationOutcome when the
    document is valid (warnings allowed); otherwise a 422 FHIRError carrying that outcome."""
    outcome = validator_of(request).validate_document(bundle)
    if has_errors(outcome):
        raise FHIRError(422, "processing", "the document does not conform to the case-overview profiles",
                        outcome=outcome)
    return outcome
