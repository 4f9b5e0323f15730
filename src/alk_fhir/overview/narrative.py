"""Narratives of the overview: valid FHIR XHTML, in Dutch.

R4 narrative.html: ``div`` in the XHTML namespace, basic formatting only (no scripts, forms,
styles sheets or event attributes), never empty (txt-1, txt-2). Composition.section.text is "the
attested content of the section", so it must hold everything a clinician needs from the section
(clinically safe on its own); every table row here is one :class:`~alk_fhir.overview.items.Item`.
All text passes through :func:`esc`.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

from alk_fhir.context import PatientContext
from alk_fhir.context.fhirdata import JSON
from alk_fhir.overview.items import COLUMNS, DEFAULT_COLUMNS, Item, SectionItems, status_nl
from alk_fhir.overview.sections import SectionSpec
from alk_fhir.overview.text import nl_date, patient_line, reference_text

XHTML_NS = "http://www.w3.org/1999/xhtml"

# emptyReason (http://terminology.hl7.org/CodeSystem/list-empty-reason) and the Dutch sentence.
EMPTY: dict[str, tuple[str, str]] = {
    "complaints": ("nilknown", "Geen aanhoudende lichamelijke klachten vastgelegd."),
    "somaticDiagnostics": ("notstarted", "Nog geen somatische diagnostiek vastgelegd."),
    "psychiatricDiagnostics": ("notstarted", "Nog geen psychiatrische diagnostiek vastgelegd."),
    "medication": ("nilknown", "Geen medicatie in gebruik vastgelegd."),
    "treatments": ("notstarted", "Nog geen ALK-behandelingen vastgelegd."),
    "explanatoryModel": ("notstarted", "Nog geen gedeeld verklaringsmodel vastgelegd."),
    "careTeam": ("notstarted", "Nog geen zorgteam en geen casus-coördinator vastgelegd."),
    "stepPlan": ("notstarted", "Nog geen stappenplan vastgelegd."),
    "expectations": ("notstarted", "Nog geen verwachtingen afgesproken."),
    "consultations": ("nilknown", "Geen consultaties gevraagd en geen toestemming vastgelegd."),
}
EMPTY_DISPLAY = {"nilknown": "Nil Known", "notstarted": "Not Started", "notasked": "Not Asked",
                 "unavailable": "Unavailable", "withheld": "Information Withheld", "closed": "Closed"}
EMPTY_REASON_SYSTEM = "http://terminology.hl7.org/CodeSystem/list-empty-reason"
HEADER_KINDS = frozenset({"team", "plan"})  # shown as a heading line above the table, not as a row


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def narrative(inner: str) -> dict[str, str]:
    return {"status": "generated", "div": f'<div xmlns="{XHTML_NS}">{inner}</div>'}


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _row(item: Item, width: int) -> list[str]:
    if item.kind == "answer" and width > 2:  # a questionnaire answer among rows of another kind
        cells = [": ".join(c for c in item.cells if c)] + [""] * (width - 1)
        return cells
    cells = list(item.cells) + [""] * (width - len(item.cells))
    if item.flags and item.kind == "step":
        cells[0] = f"{cells[0]} ({'; '.join(item.flags)})"
    return cells[:width]


def coordinators(items: Iterable[Item]) -> list[str]:
    return [i.cells[1] for i in items if "casus-coördinator" in i.flags]


def empty_sentence(spec: SectionSpec) -> tuple[str, str]:
    code, sentence = EMPTY.get(spec.key, ("nilknown", "Niets vastgelegd."))
    return code, f"{sentence.rstrip('.')} (Handreiking §{spec.guideline})."


def section_text(spec: SectionSpec, content: SectionItems) -> dict[str, str]:
    """The narrative of one section from its items (or the empty sentence)."""
    parts: list[str] = []
    if spec.key == "careTeam":
        names = coordinators(content.items)
        if names:
            parts.append(f"<p><strong>Casus-coördinator:</strong> {esc(', '.join(names))}</p>")
        elif content.items:
            parts.append("<p><strong>Let op:</strong> er is geen casus-coördinator aangesteld "
                         "(Handreiking §3.1).</p>")
    parts += [f"<p><strong>Let op:</strong> {esc(note)}</p>" for note in content.notes]
    rows = [i for i in content.items if i.kind not in HEADER_KINDS]
    for head in (i for i in content.items if i.kind in HEADER_KINDS):
        name, extra = (head.cells[1], head.cells[2]) if head.kind == "team" else (head.cells[0], head.cells[4])
        period = head.cells[1] if head.kind == "plan" and head.cells[1] else ""
        details = ", ".join(b for b in (extra, period) if b)
        parts.append(f"<p><b>{esc(name or 'Zorgteam')}</b>{f' ({esc(details)})' if details else ''}</p>")
    if rows:
        headers = COLUMNS.get(spec.key, DEFAULT_COLUMNS)
        parts.append(table(headers, (_row(i, len(headers)) for i in rows)))
    if not parts:
        parts.append(f"<p>{esc(empty_sentence(spec)[1])}</p>")
    return narrative("".join(parts))


def composition_text(composition: JSON, ctx: PatientContext,
                     sections: Sequence[tuple[SectionSpec, SectionItems]]) -> dict[str, str]:
    """The Composition's own narrative: who, when, by whom, and one line per section."""
    author = ", ".join(reference_text(ctx, a) for a in composition.get("author") or [])
    custodian = reference_text(ctx, composition.get("custodian"))
    parts = [
        f"<p><b>{esc(composition.get('title', 'Casusoverzicht hardnekkige ALK'))}</b></p>",
        f"<p>Patiënt: {esc(patient_line(ctx.resolve(composition.get('subject')) or ctx.patient))}</p>",
        f"<p>Datum: {esc(nl_date(composition.get('date')))}; status: {esc(status_nl(composition.get('status')))}; "
        f"opgesteld door: {esc(author or 'onbekend')}; beheerd door: {esc(custodian or 'onbekend')}.</p>",
    ]
    lines = []
    for spec, content in sections:
        rows = [i for i in content.items if i.kind not in HEADER_KINDS]
        if spec.key == "careTeam":
            names = coordinators(content.items)
            summary = f"casus-coördinator {', '.join(names)}" if names else (
                "geen casus-coördinator" if rows else "nog niet vastgelegd")
        elif spec.key == "stepPlan":
            steps = sum(1 for i in rows if i.kind == "step")
            plans = [i for i in content.items if i.kind == "plan"]
            summary = f"{steps} {'stap' if steps == 1 else 'stappen'}" if plans else "nog niet vastgelegd"
        else:
            count = f"{len(rows)} {'onderdeel' if len(rows) == 1 else 'onderdelen'}"
            summary = count if rows else "nog niets vastgelegd"
        notes = "".join(f" <strong>{esc(n.split(':')[0])}</strong>" for n in content.notes)
        lines.append(f"<li>§{esc(spec.guideline)} {esc(spec.title)}: {esc(summary)}{notes}</li>")
    parts.append(f"<ul>{''.join(lines)}</ul>")
    return narrative("".join(parts))


def careplan_text(plan: JSON, content: SectionItems) -> dict[str, str]:
    """A step plan's own narrative (regenerated whenever a step is added)."""
    rows = [i for i in content.items if i.kind == "step"]
    headers = COLUMNS["stepPlan"]
    inner = f"<p><b>{esc(plan.get('title') or 'Stappenplan')}</b> ({esc(status_nl(plan.get('status')))})</p>"
    inner += table(headers, (_row(i, len(headers)) for i in rows)) if rows else "<p>Nog geen stappen.</p>"
    return narrative(inner)
