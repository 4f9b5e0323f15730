"""The state of one validation call: the issues found and where in the instance we are.

A ``Frame`` is pushed per resource: FHIRPath's ``%resource`` is the resource an element sits in
and ``%rootResource`` its container when it is contained (R4 fhirpath.html §2.9.1.4 "Variables").
Local references seen while walking (``#id``) are collected per root so that ``dom-3`` can be
decided at the end of the resource without a second pass.
"""

from __future__ import annotations

from typing import Any

from alk_fhir.validation.outcome import Issue


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
    __slots__ = ("bundles", "frame", "issues", "memo", "quiet_depth")

    def __init__(self) -> None:
        self.issues: list[Issue] = []
        self.frame: Frame | None = None
        self.bundles: list[Any] = []  # stack of bundle.BundleIndex (innermost last)
        self.quiet_depth = 0
        self.memo: dict[tuple[str, int], Any] = {}  # per call only: results two checks share (txt-1/txt-2)

    def add(self, severity: str, code: str, diagnostics: str, expression: str) -> None:
        self.issues.append(Issue(severity, code, diagnostics, expression))

    def error(self, code: str, diagnostics: str, expression: str) -> None:
        self.issues.append(Issue("error", code, diagnostics, expression))

    def warning(self, code: str, diagnostics: str, expression: str) -> None:
        self.issues.append(Issue("warning", code, diagnostics, expression))

    @property
    def bundle(self) -> Any:
        return self.bundles[-1] if self.bundles else None

    def has_errors_since(self, mark: int) -> bool:
        return any(i.severity in ("error", "fatal") for i in self.issues[mark:])
