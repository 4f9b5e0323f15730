"""OperationOutcome: the one error shape of the FHIR endpoints and of the CDS endpoints alike.

CDS Hooks recommends an OperationOutcome body for any non-2xx answer ("Returning
OperationOutcome"), so both faces build it here and differ only in the media type they send it
with (``application/fhir+json`` under ``/fhir``, ``application/json`` under ``/cds-services``).
"""

from __future__ import annotations

from typing import Any

FHIR_JSON = "application/fhir+json"
OUTCOME_SYSTEM = "http://terminology.hl7.org/CodeSystem/operation-outcome"

# HTTP status -> R4 IssueType, for errors raised as bare status codes (the framework's 404/405, …).
_STATUS_CODES = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported",
                 409: "conflict", 412: "conflict", 413: "too-long", 415: "not-supported", 422: "processing",
                 429: "throttled"}


def operation_outcome(severity: str, code: str, diagnostics: str, expression: str | None = None,
                      details: tuple[str, str] | None = None) -> dict[str, Any]:
    """An OperationOutcome with one issue; ``details`` is a code of the R4 ``operation-outcome``
    CodeSystem with its display (e.g. ``("MSG_UPDATED", "existing resource updated")``)."""
    issue: dict[str, Any] = {"severity": severity, "code": code}
    if details is not None:
        issue["details"] = {"coding": [{"system": OUTCOME_SYSTEM, "code": details[0], "display": details[1]}]}
    issue["diagnostics"] = diagnostics
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def issue_code(status: int) -> str:
    """The IssueType that fits an HTTP error status (``exception`` for anything else)."""
    return _STATUS_CODES.get(status, "exception")


def outcome_details(outcome: object) -> set[str]:
    """Every ``operation-outcome`` code in the issues' ``details`` of an OperationOutcome."""
    if not isinstance(outcome, dict) or outcome.get("resourceType") != "OperationOutcome":
        return set()
    found: set[str] = set()
    for issue in outcome.get("issue") or []:
        details = issue.get("details") if isinstance(issue, dict) else None
        codings = details.get("coding") if isinstance(details, dict) else None
        for coding in codings if isinstance(codings, list) else []:
            if isinstance(coding, dict) and coding.get("system") == OUTCOME_SYSTEM and isinstance(
                    coding.get("code"), str):
                found.add(coding["code"])
    return found
