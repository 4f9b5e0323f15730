"""Issues found while validating, and the OperationOutcome they become.

An issue is a plain tuple so that the hot path (one per failed check, usually none) stays cheap;
``to_outcome`` turns the list into a FHIR R4 OperationOutcome. ``issue.expression`` carries the
location in FHIRPath form with indexes (``CareTeam.participant[1].role``), which is what R4 asks
for; the XPath ``location`` is deprecated in R4 and not produced (operationoutcome.html).
"""

from __future__ import annotations

from typing import Any, NamedTuple

SEVERITY_ORDER = {"fatal": 0, "error": 1, "warning": 2, "information": 3}


class Issue(NamedTuple):
    severity: str  # fatal | error | warning | information
    code: str  # R4 IssueType: structure, required, value, invariant, code-invalid, not-found, ...
    diagnostics: str
    expression: str


def to_outcome(issues: list[Issue]) -> dict[str, Any]:
    """An OperationOutcome with the issues in severity order, duplicates removed.

    OperationOutcome.issue is 1..*, so a clean result carries one ``information`` issue saying so
    (the same convention as the HL7 Java validator's "All OK").
    """
    seen: set[Issue] = set()
    unique: list[Issue] = []
    for issue in issues:
        if issue not in seen:
            seen.add(issue)
            unique.append(issue)
    unique.sort(key=lambda i: SEVERITY_ORDER.get(i.severity, 9))
    if not unique:
        return {"resourceType": "OperationOutcome", "issue": [
            {"severity": "information", "code": "informational", "diagnostics": "No issues detected during validation"}
        ]}
    return {"resourceType": "OperationOutcome", "issue": [_issue_json(i) for i in unique]}


def _issue_json(issue: Issue) -> dict[str, Any]:
    out: dict[str, Any] = {"severity": issue.severity, "code": issue.code, "diagnostics": issue.diagnostics}
    if issue.expression:
        out["expression"] = [issue.expression]
    return out


def fatal_outcome(diagnostics: str, expression: str = "", code: str = "structure") -> dict[str, Any]:
    """The outcome for content that cannot be validated at all (not JSON, not a resource)."""
    return to_outcome([Issue("fatal", code, diagnostics, expression)])


def has_errors(outcome: dict[str, Any]) -> bool:
    """True when the outcome reports at least one error or fatal issue (warnings do not count)."""
    return any(i.get("severity") in ("fatal", "error") for i in outcome.get("issue", []))


def counts(outcome: dict[str, Any]) -> dict[str, int]:
    """Number of issues per severity; the clean-result ``information`` issue is not counted."""
    out = {"fatal": 0, "error": 0, "warning": 0, "information": 0}
    for i in outcome.get("issue", []):
        if i.get("code") == "informational" and i.get("diagnostics") == "No issues detected during validation":
            continue
        sev = i.get("severity", "error")
        out[sev] = out.get(sev, 0) + 1
    return out
