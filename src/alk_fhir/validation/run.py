"""The state of one validation call: the issues found and where in the instance we are.

A ``Frame`` is pushed per resource: FHIRPath's ``%resource`` is the resource an element sits in
and ``%rootResource`` its container when it is contained (R4 fhirpath.html §2.9.1.4 "Variables").
Local references seen while walking (``#id``) are collected per root so that ``dom-3`` can be
decided at the end of the resource without a second pass.

A call keeps at most :data:`~alk_fhir.validation.outcome.MAX_ISSUES` issues, the most severe first,
and counts the rest (``dropped``): issues are not bounded by the size of the input (a 1.7 MB Patient
of 890,000 integers in ``name.given`` gave 890,001 issues and 780 MB before issue 25), so the list is
compacted whenever it doubles that bound. Errors are kept before warnings, so ``has_errors`` on the
outcome says the same as it would on every issue.
"""

from __future__ import annotations

from typing import Any

from alk_fhir.validation.outcome import MAX_ISSUES, Issue, keep_most_severe


class Frame:
    __slots__ = ("contained_ids", "local_refs", "path", "resource", "root")

    def __init__(self, resource: dict[str, Any], root: dict[str, Any], path: str,
                 contained_ids: frozenset[str], local_refs: set[str]) -> None:
        self.resource = resource
        self.root = root
        self.path = path
        self.contained_ids = contained_ids
        self.local_refs = local_refs


class Run:
    __slots__ = ("bundles", "dropped", "frame", "issues", "memo", "quiet_depth")

    def __init__(self) -> None:
        self.issues: list[Issue] = []
        self.dropped: dict[str, int] = {}  # severity -> issues found but not kept (beyond MAX_ISSUES)
        self.frame: Frame | None = None
        self.bundles: list[Any] = []  # stack of bundle.BundleIndex (innermost last)
        self.quiet_depth = 0
        self.memo: dict[tuple[str, int], Any] = {}  # per call only: results two checks share (txt-1/txt-2)

    def add(self, severity: str, code: str, diagnostics: str, expression: str) -> None:
        self.issues.append(Issue(severity, code, diagnostics, expression))
        if len(self.issues) > 2 * MAX_ISSUES:
            self._compact()

    def error(self, code: str, diagnostics: str, expression: str) -> None:
        self.add("error", code, diagnostics, expression)

    def warning(self, code: str, diagnostics: str, expression: str) -> None:
        self.add("warning", code, diagnostics, expression)

    def _compact(self) -> None:
        self.issues = keep_most_severe(self.issues, self.dropped)

    @property
    def bundle(self) -> Any:
        return self.bundles[-1] if self.bundles else None

    def has_errors_since(self, mark: int) -> bool:
        """Whether an error came after ``mark`` (a ``len(run.issues)``); only meaningful while fewer
        than 2 × MAX_ISSUES issues were found (a compaction reorders the list)."""
        return any(i.severity in ("error", "fatal") for i in self.issues[mark:])
