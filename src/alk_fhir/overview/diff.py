"""What changed between two versions of an overview: per section, added / removed / changed items.

Sections are matched by their code (our ``overview-*`` concept), items by their key (see
``items.py``: a resource's ``Type/id``, a step's element id, a questionnaire answer's path), and an
item counts as changed when its data differ — never because of narrative, ``meta`` or ``id``,
which every copy and server may rewrite. A section without entries is compared on its narrative
text. Document-level facts (status, date, author, custodian, timestamp) are reported apart from
the sections: a new version always has a new date, but that is not a change in the patient's care.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from alk_fhir.context import PatientContext
from alk_fhir.context.fhirdata import JSON
from alk_fhir.knowledge import Package
from alk_fhir.overview.document import composition_of, document_context, section_entries
from alk_fhir.overview.items import Item, section_items, status_nl
from alk_fhir.overview.sections import SectionSpec, section_specs, spec_of_section
from alk_fhir.overview.text import nl_date, reference_text


@dataclass(frozen=True)
class Changed:
    before: Item
    after: Item
    fields: tuple[str, ...]


@dataclass
class SectionDiff:
    spec: SectionSpec
    added: list[Item] = field(default_factory=list)
    removed: list[Item] = field(default_factory=list)
    changed: list[Changed] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


@dataclass
class OverviewDiff:
    old: dict[str, str]
    new: dict[str, str]
    document: list[dict[str, str]]
    sections: list[SectionDiff]

    @property
    def changed_sections(self) -> list[SectionDiff]:
        return [s for s in self.sections if not s.is_empty]

    @property
    def is_empty(self) -> bool:
        return not self.changed_sections

    def to_json(self) -> dict[str, Any]:
        def item(i: Item) -> dict[str, Any]:
            out: dict[str, Any] = {"key": i.key, "label": i.label, "cells": list(i.cells)}
            if i.flags:
                out["flags"] = list(i.flags)
            return out

        return {
            "old": self.old,
            "new": self.new,
            "document": self.document,
            "changedSections": [s.spec.key for s in self.changed_sections],
            "sections": [{
                "section": s.spec.key, "code": s.spec.concept, "guideline": s.spec.guideline, "title": s.spec.title,
                "added": [item(i) for i in s.added],
                "removed": [item(i) for i in s.removed],
                "changed": [{"key": c.after.key, "before": item(c.before), "after": item(c.after),
                             "fields": list(c.fields)} for c in s.changed],
            } for s in self.sections],
        }

    def to_text(self) -> str:
        lines = ["Verschillen in het casusoverzicht",
                 f"  van:  {_version_line(self.old)}", f"  naar: {_version_line(self.new)}"]
        if self.document:
            lines.append("Document:")
            lines += [f"  {d['field']}: {d['before'] or '-'} → {d['after'] or '-'}" for d in self.document]
        for s in self.changed_sections:
            lines.append(f"§{s.spec.guideline} {s.spec.title}:")
            lines += [f"  + toegevoegd: {i.label}" for i in s.added]
            lines += [f"  - verwijderd: {i.label}" for i in s.removed]
            for c in s.changed:
                fields = f" (gewijzigd: {', '.join(c.fields)})" if c.fields else ""
                lines.append(f"  ~ gewijzigd: {c.before.label} → {c.after.label}{fields}")
        same = [f"§{s.spec.guideline} {s.spec.title}" for s in self.sections if s.is_empty]
        if not self.changed_sections:
            lines.append("Geen inhoudelijke wijzigingen in de secties.")
        elif same:
            lines.append("Ongewijzigd: " + ", ".join(same) + ".")
        return "\n".join(lines) + "\n"


def _version_line(info: dict[str, str]) -> str:
    bits = [info.get("date", "") or "zonder datum"]
    extra = ", ".join(b for b in (info.get("status", ""), info.get("custodian", "")) if b)
    if info.get("versionId"):
        extra = f"versie {info['versionId']}" + (f", {extra}" if extra else "")
    return f"{bits[0]} ({extra})" if extra else bits[0]


def _plain(narrative: Any) -> str:
    div = (narrative or {}).get("div") if isinstance(narrative, dict) else None
    if not isinstance(div, str):
        return ""
    try:
        return " ".join(" ".join(ET.fromstring(div).itertext()).split())
    except ET.ParseError:
        return " ".join(div.split())


def _items_by_spec(document: JSON, ctx: PatientContext, pkg: Package) -> dict[str, list[Item]]:
    found: dict[str, list[Item]] = {}
    for section in composition_of(document).get("section") or []:
        spec = spec_of_section(pkg, section)
        if spec is None:
            continue
        entries = section_entries(section, ctx)
        if entries:
            items = section_items(spec.key, entries, ctx, pkg).items
        else:
            text = _plain(section.get("text"))
            items = [Item("#text", (text,), text, kind="text")] if text else []
        found.setdefault(spec.key, []).extend(items)
    return found


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _fields(before: Any, after: Any) -> tuple[str, ...]:
    if isinstance(before, dict) and isinstance(after, dict):
        return tuple(sorted(k for k in set(before) | set(after)
                            if _canonical(before.get(k)) != _canonical(after.get(k))))
    return ()


def diff_items(old: list[Item], new: list[Item]) -> tuple[list[Item], list[Item], list[Changed]]:
    before = {i.key: i for i in old}
    after = {i.key: i for i in new}
    added = [i for i in new if i.key not in before]
    removed = [i for i in old if i.key not in after]
    changed = [Changed(before[i.key], i, _fields(before[i.key].value, i.value)) for i in new
               if i.key in before and _canonical(before[i.key].value) != _canonical(i.value)]
    return added, removed, changed


def _info(document: JSON, ctx: PatientContext) -> dict[str, str]:
    composition = composition_of(document)
    return {
        "identifier": str((document.get("identifier") or {}).get("value", "")),
        "versionId": str((document.get("meta") or {}).get("versionId", "")),
        "timestamp": str(document.get("timestamp", "")),
        "date": nl_date(composition.get("date")),
        "status": status_nl(composition.get("status")),
        "author": ", ".join(reference_text(ctx, a) for a in composition.get("author") or []),
        "custodian": reference_text(ctx, composition.get("custodian")),
        "title": str(composition.get("title", "")),
    }


_DOCUMENT_FIELDS = (("identifier", "identifier"), ("title", "titel"), ("status", "status"), ("date", "datum"),
                    ("author", "auteur"), ("custodian", "beheerder"))


def diff_overviews(old: Any, new: Any, pkg: Package) -> OverviewDiff:
    """Compare two versions of an overview (DocumentError when either is not a document)."""
    old_ctx, new_ctx = document_context(old, pkg), document_context(new, pkg)
    old_items, new_items = _items_by_spec(old, old_ctx, pkg), _items_by_spec(new, new_ctx, pkg)
    sections = []
    for spec in section_specs(pkg):
        added, removed, changed = diff_items(old_items.get(spec.key, []), new_items.get(spec.key, []))
        sections.append(SectionDiff(spec, added, removed, changed))
    a, b = _info(old, old_ctx), _info(new, new_ctx)
    document = [{"field": label, "before": a[k], "after": b[k]} for k, label in _DOCUMENT_FIELDS if a[k] != b[k]]
    return OverviewDiff(a, b, document, sections)
