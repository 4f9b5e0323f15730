"""Issues found while validating, and the OperationOutcome they become.

An issue is a plain tuple so that the hot path (one per failed check, usually none) stays cheap;
``to_outcome`` turns the list into a FHIR R4 OperationOutcome. ``issue.expression`` carries the
location in FHIRPath form with indexes (``CareTeam.participant[1].role``), which is what R4 asks
for; the XPath ``location`` is deprecated in R4 and not produced (operationoutcome.html).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

SEVERITY_ORDER = {"fatal": 0, "error": 1, "warning": 2, "information": 3}
# Issues an outcome lists (the most severe first); the others are counted in one last issue. Every
# issue costs some 700 bytes between its tuple, its JSON object and the response's bytes, and one
# can come from every JSON value of the input: unbounded, 890,000 integers where strings belong (a
# 1.7 MB body) took 780 MB. 10,000 issues are about 7 MB and more than anyone reads.
MAX_ISSUES = 10_000


class Issue(NamedTuple):
    severity: str  # fatal | error | warning | information
    code: str  # R4 IssueType: structure, required, value, invariant, code-invalid, not-found, ...
    diagnostics: str
    expression: str


def keep_most_severe(issues: Iterable[Issue], dropped: dict[str, int]) -> list[Issue]:
    """The first :data:`MAX_ISSUES` of ``issues`` in severity order (found order within a severity),
    duplicates removed; what is left out is added to ``dropped`` per severity. (A repeat of an issue
    left out earlier is counted again: it is no longer there to compare with.)"""
    unique = sorted(dict.fromkeys(issues), key=lambda i: SEVERITY_ORDER.get(i.severity, 9))
    for issue in unique[MAX_ISSUES:]:
        dropped[issue.severity] = dropped.get(issue.severity, 0) + 1
    del unique[MAX_ISSUES:]
    return unique


def to_outcome(issues: Iterable[Issue], dropped: Mapping[str, int] | None = None) -> dict[str, Any]:
    """An OperationOutcome with the issues in severity order, duplicates removed, at most
    :data:`MAX_ISSUES` of them; ``dropped`` (severity -> count) are issues found but not kept, named
    with the ones beyond the bound in one last ``information`` issue.

    OperationOutcome.issue is 1..*, so a clean result carries one ``information`` issue saying so
    (the same convention as the HL7 Java validator's "All OK").
    """
    left_out = dict(dropped or {})
    unique = keep_most_severe(issues, left_out)
    if not unique:
        return {"resourceType": "OperationOutcome", "issue": [
            {"severity": "information", "code": "informational", "diagnostics": "No issues detected during validation"}
        ]}
    listed = [_issue_json(i) for i in unique]
    if any(left_out.values()):
        listed.append(_not_listed(left_out))
    return {"resourceType": "OperationOutcome", "issue": listed}


_PLURAL = {"fatal": "fatal", "error": "errors", "warning": "warnings", "information": "information"}


def _not_listed(left_out: Mapping[str, int]) -> dict[str, Any]:
    parts = ", ".join(f"{n:,} {_PLURAL.get(severity, severity)}" for severity, n in sorted(
        left_out.items(), key=lambda item: SEVERITY_ORDER.get(item[0], 9)) if n)
    return {"severity": "information", "code": "too-costly",
            "diagnostics": f"{sum(left_out.values()):,} further issues not listed ({parts}): an outcome lists "
                           f"at most {MAX_ISSUES:,} issues, the most severe first"}


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
