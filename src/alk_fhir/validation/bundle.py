"""Bundles: resolving references between entries, and the rules that span entries.

Resolution follows R4 bundle.html#references: an absolute reference (``urn:uuid:…``,
``http…/Patient/1``) is looked up among the entries' ``fullUrl``; a relative one (``Patient/1``) is
made absolute with the base of the referring entry's RESTful fullUrl, and, failing that, matched on
type and id. Rules checked once all entries have been walked:

- a RESTful ``fullUrl`` must end in the entry's ``resourceType/id`` (Bundle.entry.fullUrl comment);
- in a document, "any other resources referenced from Composition must be included as subsequent
  entries in the Bundle" (R4 Composition definition): an unresolvable reference from the
  Composition is an error, from another entry a warning (the document is not self-contained);
- a reference whose targetProfile is one of our profiles must point at an entry that conforms to
  it (the referenced resource is validated against that profile when it does not claim it itself).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from alk_fhir.validation.outcome import Issue
from alk_fhir.validation.run import Run

RESTFUL = re.compile(
    r"^(?P<base>(?:https?://[^?#]*?/)?)(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})"
    r"(?:/_history/[A-Za-z0-9\-.]{1,64})?$")

Conformance = Callable[[dict[str, Any], str, Run], list[Issue]]


class BundleIndex:
    def __init__(self, bundle: dict[str, Any], path: str) -> None:
        self.bundle = bundle
        self.path = path
        self.type = bundle.get("type")
        self.by_full_url: dict[str, dict[str, Any]] = {}
        self.by_type_id: dict[tuple[str, str], dict[str, Any]] = {}
        self.entry_of: dict[int, tuple[int, str | None]] = {}
        self.required: list[tuple[dict[str, Any], tuple[str, ...], str]] = []
        self.unresolved: list[tuple[str, str, bool]] = []
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
        m = RESTFUL.match(reference)
        if m is None:
            return None
        if not m.group("base") and referrer is not None:
            _, full_url = self.entry_of.get(id(referrer), (0, None))
            own = RESTFUL.match(full_url) if full_url else None
            if own is not None and own.group("base"):
                found = self.by_full_url.get(f"{own.group('base')}{m.group('type')}/{m.group('id')}")
                if found is not None:
                    return found
        return self.by_type_id.get((m.group("type"), m.group("id")))

    def entry_path(self, resource: dict[str, Any]) -> str:
        index, _ = self.entry_of.get(id(resource), (-1, None))
        return f"{self.path}.entry[{index}].resource"

    def note_unresolved(self, reference: str, path: str, referrer: dict[str, Any] | None) -> None:
        if self.is_document:
            self.unresolved.append((reference, path, referrer is not None and referrer is self.composition))

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
        for reference, path, from_composition in self.unresolved:
            text = f"reference '{reference}' does not resolve to an entry of this document"
            if from_composition:
                run.error("not-found", text + " (every resource the Composition references must be in the Bundle)",
                          path)
            else:
                run.warning("not-found", text, path)
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


def _claimed(resource: dict[str, Any]) -> list[str]:
    meta = resource.get("meta")
    profiles = meta.get("profile") if isinstance(meta, dict) else None
    return [p.split("|", 1)[0] for p in profiles if isinstance(p, str)] if isinstance(profiles, list) else []
