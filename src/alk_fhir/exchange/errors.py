"""The one error a caller of ``exchange`` has to catch, with the server's own words in it.

A FHIR server explains a refusal in an OperationOutcome (R4 http.html, "General Considerations":
errors SHOULD carry one); an OAuth token endpoint explains it in ``error`` /
``error_description`` (RFC 6749 §5.2). Both are turned into one readable ``diagnostics`` string
so that a CLI can print it as is. Nothing here ever looks at request headers, so a bearer token
cannot end up in an error message.
"""

from __future__ import annotations

import json
from typing import Any

import requests

_SNIPPET = 300


class ExchangeError(Exception):
    """A request to a partner server failed for good (after any retries).

    ``status`` is the last HTTP status, or ``None`` when no answer came at all (connection
    refused, reset, timed out). ``outcome`` is the server's OperationOutcome when it sent one.
    """

    def __init__(self, method: str, url: str, status: int | None, diagnostics: str,
                 outcome: dict[str, Any] | None = None) -> None:
        self.method = method
        self.url = url
        self.status = status
        self.diagnostics = diagnostics
        self.outcome = outcome
        answer = f"HTTP {status}" if status is not None else "no answer"
        super().__init__(f"{method} {url} -> {answer}: {diagnostics}")


def outcome_diagnostics(outcome: dict[str, Any]) -> str:
    """One line per issue: ``severity code: text (at expression)``."""
    parts = []
    for issue in outcome.get("issue") or []:
        if not isinstance(issue, dict):
            continue
        text = issue.get("diagnostics") or (issue.get("details") or {}).get("text") or ""
        where = issue.get("expression") or issue.get("location") or []
        line = f"{issue.get('severity', 'error')} {issue.get('code', 'unknown')}"
        if text:
            line += f": {text}"
        if where:
            line += f" (at {', '.join(str(w) for w in where)})"
        parts.append(line)
    return "; ".join(parts) or "OperationOutcome without issues"


def response_json(response: requests.Response) -> Any:
    """The body as JSON, or ``None`` when it is empty or not JSON."""
    if not response.content:
        return None
    try:
        return json.loads(response.content)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


def error_from_response(method: str, url: str, response: requests.Response, note: str = "") -> ExchangeError:
    body = response_json(response)
    outcome: dict[str, Any] | None = None
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        outcome = body
        text = outcome_diagnostics(body)
    elif isinstance(body, dict) and isinstance(body.get("error"), str):
        text = body["error"] + (f": {body['error_description']}" if body.get("error_description") else "")
    else:
        raw = " ".join(response.text.split())
        text = (raw[:_SNIPPET] + "…") if len(raw) > _SNIPPET else (raw or response.reason or "empty response")
    if note:
        text = f"{text} ({note})"
    return ExchangeError(method, url, response.status_code, text, outcome)
