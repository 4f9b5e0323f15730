"""Validation results for people and for pipelines: text lines, a summary, a FHIR collection.

Several files' results stay FHIR: a ``collection`` Bundle with one OperationOutcome per file, the
file named by ``entry.fullUrl`` (a ``file:`` URI), rather than a private JSON shape.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from alk_fhir.validation.outcome import counts

_LABEL = {"fatal": "FATAL", "error": "ERROR", "warning": "WARNING", "information": "INFO"}


def text_lines(name: str, outcome: dict[str, Any], warnings: bool = True) -> list[str]:
    """``file: SEVERITY expression: diagnostics`` per issue (information and, optionally, warnings left out)."""
    lines = []
    for issue in outcome.get("issue", []):
        severity = issue.get("severity", "error")
        if severity == "information" or (severity == "warning" and not warnings):
            continue
        where = ", ".join(issue.get("expression", [])) or "-"
        lines.append(f"{name}: {_LABEL.get(severity, severity.upper())} {where}: {issue.get('diagnostics', '')}")
    return lines


def summary(results: list[tuple[str, dict[str, Any]]]) -> str:
    total = {"fatal": 0, "error": 0, "warning": 0}
    invalid = 0
    for _, outcome in results:
        c = counts(outcome)
        for key in total:
            total[key] += c[key]
        invalid += bool(c["error"] or c["fatal"])
    files = len(results)
    return (f"{files} file{'s' if files != 1 else ''}: {files - invalid} valid, {invalid} invalid "
            f"({total['error'] + total['fatal']} errors, {total['warning']} warnings)")


def collection(results: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "collection",
        "entry": [{"fullUrl": Path(name).resolve().as_uri(), "resource": outcome} for name, outcome in results],
    }
