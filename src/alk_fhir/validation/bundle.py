"""Bundles: resolving references between entries, and the rules that span entries.

Resolution follows R4 bundle.html#references: an absolute reference (``urn:uuid:…``,
``http…/Patient/1``) is looked up among the entries' ``fullUrl``; a relative one (``Patient/1``) is
made absolute with the base of the referring entry's RESTful fullUrl, and, failing that, matched on
type and id. Rules checked once all entries have been walked:

- a RESTful ``fullUrl`` must end in the entry's ``resourceType/id`` (Bundle.entry.fullUrl comment);
- ``fullUrl`` is unique (``bdl-7``, reported once for the Bundle by the invariant): every later
  entry that repeats one is named, so that the outcome says which entry to fix;
- which unresolvable references are errors (``note_unresolved``): in a document, those of the
  Composition and every ``urn:uuid:``/``urn:oid:`` one, other ones a warning; in a transaction, the
  ``urn:uuid:``/``urn:oid:`` ones; in any other bundle none (a collection or searchset makes no
  promise that what it references is inside);
- a reference whose targetProfile is one of our profiles must point at an entry that conforms to
  it (the referenced resource is validated against that profile when it does not claim it itself).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from alk_fhir.fhir import REFERENCE, RESOURCE_TYPE
from alk_fhir.validation.outcome import Issue
from alk_fhir.validation.run import Run

RESTFUL = re.compile(f"^{REFERENCE.pattern}$")  # alk_fhir.fhir's pattern, anchored for .match()

# A conditional reference (R4 http.html "Transaction Processing Rules"): only in a transaction, where
# the server replaces it by the one resource the search finds.
CONDITIONAL = re.compile(rf"(?P<type>{RESOURCE_TYPE.pattern})\?[^#\s]+")

Conformance = Callable[[dict[str, Any], str, Run], list[Issue]]

# A URN names a resource only by an entry's fullUrl: there is no server to ask (R4 bundle.html
# "Resolving references in Bundles" resolves absolute references by fullUrl, and only RESTful URLs
# can be looked up anywhere else).
URN_PREFIXES = ("urn:uuid:", "urn:oid:")

# Why an unresolved reference was kept: it decides the severity and the text in ``finish``.
FROM_COMPOSITION, URN_IN_DOCUMENT, ELSEWHERE_IN_DOCUMENT, URN_IN_TRANSACTION = range(4)


class BundleIndex:
    def __init__(self, bundle: dict[str, Any], path: str) -> None:
        self.bundle = bundle
        self.path = path
        self.type = bundle.get("type")
        self.by_full_url: dict[str, dict[str, Any]] = {}
        self.by_type_id: dict[tuple[str, str], dict[str, Any]] = {}
        self.entry_of: dict[int, tuple[int, str | None]] = {}
        self.required: list[tuple[dict[str, Any], tuple[str, ...], str]] = []
        self.unresolved: list[tuple[str, str, int]] = []
        self._bases: dict[int, str] = {}  # id(entry resource) -> base of its fullUrl
        entries = bundle.get("entry")
        self.composition: dict[str, Any] | None = None
        for i, entry in enumerate(entries if isinstance(entries, list) else []):
            res = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(res, dict):
                continue
            full_url = entry.get("fullUrl")
            full_url = full_url if isinstance(full_url, str) else None
            if full_url:
                self.by_full_url.setdefault(full_url, res)
            rtype, rid = res.get("resourceType"), res.get("id")
            if isinstance(rtype, str) and isinstance(rid, str):
                self.by_type_id.setdefault((rtype, rid), res)
            self.entry_of[id(res)] = (i, full_url)
            if i == 0 and self.type == "document" and rtype == "Composition":
                self.composition = res

    @property
    def is_document(self) -> bool:
        return bool(self.type == "document")

    def resolve(self, reference: str, referrer: dict[str, Any] | None) -> dict[str, Any] | None:
        found = self.by_full_url.get(reference)
        if found is not None:
            return found
        return self._by_parts(RESTFUL.match(reference), referrer)

    def resolve_parsed(self, reference: str, m: re.Match[str] | None,
                       referrer: dict[str, Any] | None) -> dict[str, Any] | None:
        """``resolve`` for a reference the caller has already matched against RESTFUL (the
        reference check has, for every Reference of every entry)."""
        found = self.by_full_url.get(reference)
        if found is not None:
            return found
        return self._by_parts(m, referrer)

    def _by_parts(self, m: re.Match[str] | None, referrer: dict[str, Any] | None) -> dict[str, Any] | None:
        if m is None:
            return None
        if not m.group("base") and referrer is not None:
            base = self._base_of(referrer)
            if base:
                found = self.by_full_url.get(f"{base}{m.group('type')}/{m.group('id')}")
                if found is not None:
                    return found
        return self.by_type_id.get((m.group("type"), m.group("id")))

    def _base_of(self, referrer: dict[str, Any]) -> str:
        """The server base of the referrer's RESTful fullUrl ('' if it has none), matched once per
        entry rather than once per reference the entry makes."""
        key = id(referrer)
        base = self._bases.get(key)
        if base is None:
            _, full_url = self.entry_of.get(key, (0, None))
            own = RESTFUL.match(full_url) if full_url else None
            base = self._bases[key] = own.group("base") if own is not None else ""
        return base

    def entry_path(self, resource: dict[str, Any]) -> str:
        index, _ = self.entry_of.get(id(resource), (-1, None))
        return f"{self.path}.entry[{index}].resource"

    def note_unresolved(self, reference: str, path: str, referrer: dict[str, Any] | None) -> None:
        """Keep a reference no entry answers to when the bundle's type makes that a problem.

        Documents (R4 documents.html §3.3.1 "Document Content"): "Resources referenced by the
        Composition as listed below SHALL be included in the bundle when the document is assembled",
        while "Other resources that these referenced resources refer to may also be included ... whether
        these linked resources should be included or not depends on the implementation environment".
        So the Composition's references must resolve inside the document (error); another entry's
        RESTful reference may point at the server it came from (warning: the document is not
        self-contained), but its ``urn:`` reference has nowhere else to resolve (error).

        Transactions (R4 http.html "Transaction Processing Rules"): the server replaces references
        to entries it creates and "References to resources that are not part of the bundle are left
        untouched", so ``Patient/123`` or ``http://…/Patient/123`` that no entry matches means the
        resource already on the server (fine); a ``urn:uuid:``/``urn:oid:`` is a temporary id that
        only an entry's fullUrl can give meaning to, and would be stored dangling (error).
        """
        urn = reference.startswith(URN_PREFIXES)
        if self.is_document:
            if referrer is not None and referrer is self.composition:
                self.unresolved.append((reference, path, FROM_COMPOSITION))
            else:
                self.unresolved.append((reference, path, URN_IN_DOCUMENT if urn else ELSEWHERE_IN_DOCUMENT))
        elif self.type == "transaction" and urn:
            self.unresolved.append((reference, path, URN_IN_TRANSACTION))

    def may_keep_unresolved(self, urn: bool) -> bool:
        """Whether ``note_unresolved`` could keep a reference (a ``urn:`` one or not) that no entry
        answers to: the reference check resolves a reference only when something depends on it."""
        return self.is_document or (self.type == "transaction" and urn)

    def _report_duplicate_full_urls(self, run: Run) -> None:
        """Name each entry whose fullUrl (and version) an earlier entry already has: bdl-7 holds for
        the Bundle as a whole and says neither which entries clash nor which to fix."""
        if self.type == "history":  # bdl-7: a history has one entry per version of a resource
            return
        first: dict[tuple[str, str], int] = {}
        entries = self.bundle.get("entry")
        for i, entry in enumerate(entries if isinstance(entries, list) else []):
            full_url = entry.get("fullUrl") if isinstance(entry, dict) else None
            if not isinstance(full_url, str) or not full_url:
                continue
            key = (full_url, _version_id(entry.get("resource")))
            if key in first:
                run.error("duplicate", f"fullUrl {full_url} is also the fullUrl of {self.path}.entry[{first[key]}]"
                          " (bdl-7: fullUrl must be unique in a bundle)", f"{self.path}.entry[{i}].fullUrl")
            else:
                first[key] = i

    def require(self, target: dict[str, Any], profiles: tuple[str, ...], path: str) -> None:
        self.required.append((target, profiles, path))

    def finish(self, run: Run, conformance: Conformance) -> None:
        entries = self.bundle.get("entry")
        for i, entry in enumerate(entries if isinstance(entries, list) else []):
            if not isinstance(entry, dict):
                continue
            full_url, res = entry.get("fullUrl"), entry.get("resource")
            m = RESTFUL.match(full_url) if isinstance(full_url, str) else None
            if m is not None and m.group("base") and isinstance(res, dict) and (
                    m.group("type") != res.get("resourceType") or m.group("id") != res.get("id")):
                run.error("invalid", f"fullUrl {full_url} does not match the entry's resource "
                          f"{res.get('resourceType')}/{res.get('id')}", f"{self.path}.entry[{i}].fullUrl")
        self._report_duplicate_full_urls(run)
        for reference, path, why in self.unresolved:
            _report_unresolved(run, reference, path, why)
        checked: dict[tuple[int, str], list[Issue]] = {}
        for target, profiles, path in self.required:
            claimed = _claimed(target)
            if any(p in claimed for p in profiles):
                continue
            failures: list[Issue] = []
            for url in profiles:
                key = (id(target), url)
                if key not in checked:
                    checked[key] = conformance(target, url, run)
                if not checked[key]:
                    failures = []
                    break
                failures = checked[key]
            if failures:
                first = failures[0]
                run.error("invalid", f"the referenced {target.get('resourceType')} ({self.entry_path(target)}) "
                          f"does not conform to {' or '.join(profiles)}: {first.diagnostics} at {first.expression}",
                          path)


def _report_unresolved(run: Run, reference: str, path: str, why: int) -> None:
    if why == URN_IN_TRANSACTION:
        run.error("not-found", f"reference '{reference}' does not resolve to an entry of this transaction: no "
                  "entry has it as fullUrl, so the server has no resource to put in its place", path)
        return
    text = f"reference '{reference}' does not resolve to an entry of this document"
    if why == FROM_COMPOSITION:
        run.error("not-found", text + " (every resource the Composition references must be in the Bundle)", path)
    elif why == URN_IN_DOCUMENT:
        run.error("not-found", text + " (a urn: reference can only resolve to an entry's fullUrl)", path)
    else:
        run.warning("not-found", text, path)


def _claimed(resource: dict[str, Any]) -> list[str]:
    meta = resource.get("meta")
    profiles = meta.get("profile") if isinstance(meta, dict) else None
    return [p.split("|", 1)[0] for p in profiles if isinstance(p, str)] if isinstance(profiles, list) else []


def _version_id(resource: Any) -> str:
    meta = resource.get("meta") if isinstance(resource, dict) else None
    version = meta.get("versionId") if isinstance(meta, dict) else None
    return version if isinstance(version, str) else ""
