"""What a card rests on, said in the card: the findings behind it, the notes that apply, the drug ordered.

Issue 21: a card names its trigger ("Aanleiding", as the app shows it): per fact the plan action's
conditions read and the Library presents (``alk-fact-presentation``), its label, its value when that is
more than yes (a count, a date) and the record's entries behind it, each with its date (a Task or
ServiceRequest in progress shows since when). Nothing here decides anything: which facts an action
reads comes from the compiled plan, their values from the record's facts, their labels from the
Library. Only for the cards a call shows, so a call pays for what it says, not for every action.

Notes on numbers we chose (``alk-operationalisation``, "hier: …") are listed only when they apply to
this patient: the fact that leads to the note holds as the condition reads it, and where the note
names a fact it is about (sub-extension ``applies``), that fact has a value.

Titles may name a fact in braces (``{draftRiskMedications}: risicomedicatie …``): the card's summary
then says what was ordered, or how many, for this patient.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from alk_fhir.cds.text import Texts, pick
from alk_fhir.context import PatientContext
from alk_fhir.knowledge import Package

JSON = dict[str, Any]
MAX_ENTRIES = 8
MAX_NAME = 60
_PLACEHOLDER = re.compile(r"\{([A-Za-z][A-Za-z0-9]*)\}")
_WORDS: dict[str, Texts] = {"trigger": {"nl": "Aanleiding", "en": "Triggered by"},
                            "since": {"nl": "sinds", "en": "since"},
                            "recorded": {"nl": "vastgelegd", "en": "recorded"}}
_DATES = ("authoredOn", "authored", "performedDateTime", "effectiveDateTime", "onsetDateTime", "created", "issued",
          "dateAsserted", "recordedDate")
_PERIODS = ("performedPeriod", "effectivePeriod", "period", "onsetPeriod")


@dataclass(frozen=True)
class Note:
    """An operationalisation shown under a card, and when it applies."""

    via: str  # the fact a condition names that leads to the note
    negated: bool  # the condition reads that fact as ``.not()``
    applies: str | None  # the fact the note is about (``applies``), when the Library names one
    text: Texts


def holds(value: Any, negated: bool = False) -> bool:
    """A fact's value says something: true (false where the condition negates it), a number other than
    0, a date, a non-empty list."""
    if isinstance(value, bool):
        return value is not negated
    if isinstance(value, list):
        return bool(value) is not negated
    return (value not in (None, 0, "")) is not negated


def notes_for(notes: tuple[Note, ...], ctx: PatientContext) -> tuple[Texts, ...]:
    found: list[Texts] = []
    for note in notes:
        if not holds(ctx.facts.get(note.via), note.negated):
            continue
        if note.applies and not holds(ctx.facts.get(note.applies)):
            continue
        if note.text not in found:
            found.append(note.text)
    return tuple(found)


def _first_display(concept: Any, pkg: Package) -> str:
    if not isinstance(concept, dict):
        return ""
    if isinstance(concept.get("text"), str) and concept["text"]:
        return str(concept["text"])
    for coding in concept.get("coding", []) or []:
        if isinstance(coding, dict) and isinstance(coding.get("display"), str) and coding["display"]:
            return str(coding["display"])
    for coding in concept.get("coding", []) or []:
        if isinstance(coding, dict) and coding.get("system") and coding.get("code"):
            shown = pkg.terminology.display(str(coding["system"]), str(coding["code"]))
            if shown:
                return shown
    # a code we have no display for still names the entry better than its id (ATC N02AX02)
    return next((str(c["code"]) for c in concept.get("coding", []) or [] if isinstance(c, dict) and c.get("code")), "")


def entry_name(res: JSON, ctx: PatientContext, pkg: Package) -> str:
    """What a clinician calls an entry: the drug, the code's text, or the resource's own title."""
    name = _first_display(res.get("medicationCodeableConcept"), pkg)
    if not name and isinstance(res.get("medicationReference"), dict):
        name = _first_display((ctx.resolve(res["medicationReference"], res) or {}).get("code"), pkg)
    if not name:
        name = _first_display(res.get("code"), pkg)
    if not name and isinstance(res.get("questionnaire"), str):
        questionnaire = pkg.resolve(res["questionnaire"]) or {}
        name = str(questionnaire.get("title") or res["questionnaire"])
    if not name:
        name = next((str(res[k]) for k in ("title", "name", "description") if isinstance(res.get(k), str)),
                    f"{res.get('resourceType')}/{res.get('id', '')}")
    return name if len(name) <= MAX_NAME else name[: MAX_NAME - 1].rsplit(" ", 1)[0] + "…"


def entry_date(res: JSON) -> str:
    """The entry's own date (authored, performed, effective, onset, …; a period's start), as YYYY-MM-DD."""
    for key in _DATES:
        value = res.get(key)
        if type(value) is str:
            return value[:10]
    for key in _PERIODS:
        period = res.get(key)
        start = period.get("start") if type(period) is dict else None
        if type(start) is str:
            return start[:10]
    return ""


def _entry(res: JSON, ctx: PatientContext, pkg: Package, lang: str) -> str:
    when = entry_date(res)
    status = res.get("status") if res.get("resourceType") in ("Task", "ServiceRequest", "CareTeam") else None
    if when and status:
        return f"{entry_name(res, ctx, pkg)} ({status}, {pick(_WORDS['since'], lang)} {when})"
    recorded = res.get("recordedDate")
    if when and type(recorded) is str and recorded[:10] != when:
        # a condition known long before it entered the record: "newer than the form" is about the latter
        when += f", {pick(_WORDS['recorded'], lang)} {recorded[:10]}"
    return entry_name(res, ctx, pkg) + (f" ({when})" if when else "")


def _value(value: Any) -> str:
    if isinstance(value, (bool, list, dict)):
        return ""
    return str(value)[:10] if isinstance(value, str) else str(value)


def trigger_line(shown: tuple[tuple[str, Mapping[str, str]], ...], ctx: PatientContext, pkg: Package,
                 lang: str) -> str:
    """"Aanleiding: label: value (entry (date); …) · …" for the facts behind an action that hold."""
    parts = []
    for name, presentation in shown:
        if presentation.get("expect") == "false":
            continue  # "no coordinator yet" is what the card's title says
        value = ctx.facts.get(presentation.get("show") or name)
        if not holds(value):
            continue
        label = pick({k: v for k, v in presentation.items() if k in ("nl", "en")}, lang) or name
        text = label + (f": {_value(value)}" if _value(value) else "")
        resources = ctx.fact_resources(presentation.get("evidence") or presentation.get("show") or name)
        if resources:
            listed = "; ".join(_entry(r, ctx, pkg, lang) for r in resources[:MAX_ENTRIES])
            text += f" ({listed}{'; …' if len(resources) > MAX_ENTRIES else ''})"
        parts.append(text)
    return f"**{pick(_WORDS['trigger'], lang)}:** " + " · ".join(parts) if parts else ""


def fill(title: str, ctx: PatientContext | None, pkg: Package) -> str:
    """``{fact}`` in a title becomes the fact's value for this patient: the names of the entries it
    holds, or its number; a title that starts with one starts with a capital."""
    if ctx is None or "{" not in title:
        return title

    def value(match: re.Match[str]) -> str:
        found = ctx.facts.get(match.group(1))
        if isinstance(found, (list, dict)):
            resources = ctx.fact_resources(match.group(1))
            return ", ".join(dict.fromkeys(entry_name(r, ctx, pkg) for r in resources)) or "?"
        return _value(found) or "?"

    filled = _PLACEHOLDER.sub(value, title)
    return filled[:1].upper() + filled[1:] if title.startswith("{") else filled
