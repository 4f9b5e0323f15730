"""JSON Schemas of the CDS Hooks 2.0 bodies, for the OpenAPI document (and the clients and fuzzers
that read it). The checks that matter are in request.py/feedback.py; these describe them."""

from __future__ import annotations

from typing import Any

from alk_fhir.cds.discovery import SERVICES
from alk_fhir.fhir import ID_SCHEMA_PATTERN, reference_schema_pattern

SERVICE_IDS = [s.id for s in SERVICES]
_RESOURCE: dict[str, Any] = {"type": "object", "required": ["resourceType"],
                             "properties": {"resourceType": {"type": "string"}}}

HOOK_REQUEST: dict[str, Any] = {
    "type": "object",
    "required": ["hook", "hookInstance", "context"],
    "properties": {
        "hook": {"type": "string", "enum": sorted({s.hook for s in SERVICES})},
        "hookInstance": {"type": "string", "format": "uuid"},
        "fhirServer": {"type": "string", "format": "uri"},
        "fhirAuthorization": {
            "type": "object",
            "required": ["access_token", "token_type", "expires_in", "scope", "subject"],
            "properties": {
                "access_token": {"type": "string"}, "token_type": {"type": "string", "enum": ["Bearer"]},
                "expires_in": {"type": "integer", "minimum": 0}, "scope": {"type": "string"},
                "subject": {"type": "string"}, "patient": {"type": "string"},
            },
        },
        "context": {
            "type": "object",
            "required": ["userId", "patientId"],
            "properties": {
                "userId": {"type": "string",
                           "pattern": reference_schema_pattern(
                               "Practitioner", "PractitionerRole", "Patient", "RelatedPerson")},
                "patientId": {"type": "string", "pattern": ID_SCHEMA_PATTERN},
                "encounterId": {"type": "string", "pattern": ID_SCHEMA_PATTERN},
                "selections": {"type": "array", "items": {"type": "string"}},
                "draftOrders": {**_RESOURCE, "properties": {
                    "resourceType": {"type": "string", "enum": ["Bundle"]},
                    "entry": {"type": "array", "items": {"type": "object", "properties": {"resource": _RESOURCE}}}}},
            },
        },
        "prefetch": {"type": "object", "additionalProperties": {**_RESOURCE, "type": ["object", "null"]}},
        "extension": {"type": "object"},
    },
}

FEEDBACK_REQUEST: dict[str, Any] = {
    "type": "object",
    "required": ["feedback"],
    "properties": {"feedback": {"type": "array", "minItems": 1, "items": {
        "type": "object",
        "required": ["card", "outcome", "outcomeTimestamp"],
        "properties": {
            "card": {"type": "string"},
            "outcome": {"type": "string", "enum": ["accepted", "overridden"]},
            "outcomeTimestamp": {"type": "string", "format": "date-time"},
            "acceptedSuggestions": {"type": "array", "items": {
                "type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}},
            "overrideReason": {"type": "object", "properties": {
                "reason": {"type": "object", "required": ["system", "code"], "properties": {
                    "system": {"type": "string"}, "code": {"type": "string"}, "display": {"type": "string"}}},
                "userComment": {"type": "string"}}},
        },
    }}},
}

_CODING: dict[str, Any] = {"type": "object", "required": ["system", "code"], "properties": {
    "system": {"type": "string"}, "code": {"type": "string"}, "display": {"type": "string"}}}
CDS_RESPONSE: dict[str, Any] = {
    "type": "object",
    "required": ["cards"],
    "properties": {
        "cards": {"type": "array", "items": {
            "type": "object",
            "required": ["summary", "indicator", "source"],
            "properties": {
                "uuid": {"type": "string", "format": "uuid"},
                "summary": {"type": "string", "maxLength": 139},
                "detail": {"type": "string"},
                "indicator": {"type": "string", "enum": ["info", "warning", "critical"]},
                "source": {"type": "object", "required": ["label"], "properties": {
                    "label": {"type": "string"}, "url": {"type": "string"}, "topic": _CODING}},
                "suggestions": {"type": "array", "items": {"type": "object", "required": ["label"]}},
                "selectionBehavior": {"type": "string", "enum": ["at-most-one", "any"]},
                "overrideReasons": {"type": "array", "items": _CODING},
                "links": {"type": "array", "items": {"type": "object", "required": ["label", "url", "type"]}},
            },
        }},
        "extension": {"type": "object"},
    },
}
DISCOVERY_RESPONSE: dict[str, Any] = {
    "type": "object",
    "required": ["services"],
    "properties": {"services": {"type": "array", "items": {
        "type": "object", "required": ["hook", "description", "id"],
        "properties": {"hook": {"type": "string"}, "title": {"type": "string"}, "description": {"type": "string"},
                       "id": {"type": "string"}, "prefetch": {"type": "object"},
                       "usageRequirements": {"type": "string"}}}}},
}
OPERATION_OUTCOME: dict[str, Any] = {"type": "object", "required": ["resourceType", "issue"], "properties": {
    "resourceType": {"type": "string", "enum": ["OperationOutcome"]}, "issue": {"type": "array"}}}


def json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def responses(ok: dict[str, Any] | None, *errors: int) -> dict[int | str, dict[str, Any]]:
    words = {400: "Malformed request", 401: "No valid CDS client JWT", 404: "Unknown service",
             412: "Needed data cannot be had", 413: "Body too large", 415: "Not JSON",
             422: "The record could not be evaluated", 503: "Service unavailable (no plan loaded, feedback store down)"}
    out: dict[int | str, dict[str, Any]] = {}
    if ok is not None:
        out[200] = {"description": "OK", "content": {"application/json": {"schema": ok}}}
    else:
        out[200] = {"description": "Stored"}
    for status in errors:
        # 401 comes from the auth dependency, which answers like every FHIR endpoint of the server.
        media = "application/fhir+json" if status == 401 else "application/json"
        out[status] = {"description": words[status], "content": {media: {"schema": OPERATION_OUTCOME}}}
    return out
