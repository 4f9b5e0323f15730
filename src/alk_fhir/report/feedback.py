"""Count the CDS advice per month, guideline section and plan action: shown, accepted, overridden.

Input is what the store keeps (``alk_fhir.store.learning``): the cards shown per (month, section,
action) and every feedback entry reduced to its month, outcome, the section and action of its card
and its override reason's Coding. Output is a :class:`FeedbackReport`, the one thing the HTML, CSV
and JSON renderings read. Nothing in it names a patient, a professional or an organisation, and no
string in it comes from a CDS client: override reasons are counted by code only when the code is one
of ours (``Labels.reasons``), anything else is counted as ``other``; a comment is counted, never
shown. Every rendering shows a count of 1 to 4 as ``<5`` (:func:`cell`; bars of such counts are not
drawn, :func:`plotted`) and no acceptance rate computed from one: a cell that small, in a month and
for one piece of advice, could point at one consultation. Feedback whose card was never recorded as
shown (sent before this server recorded cards, or for a card it never showed) is counted under
section and action ``None``, so the report's totals are always the stored feedback's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from alk_fhir.store.learning import FeedbackFact, ShownCount

Texts = Mapping[str, str]  # language ("nl", "en") -> text
MIN_CELL = 5  # counts below this (and above 0) are shown as SMALL
SMALL = f"<{MIN_CELL}"
OTHER_REASON = "other"  # a reason Coding that is not one of our override reasons
NO_REASON = "none"  # overridden without a reason Coding (perhaps with a comment)
UNKNOWN: dict[str, str] = {"nl": "onbekend (kaart niet geregistreerd)", "en": "unknown (card not recorded)"}
EXTRA_REASONS: dict[str, dict[str, str]] = {
    OTHER_REASON: {"nl": "andere reden (code niet van de handreiking)", "en": "other reason (not one of our codes)"},
    NO_REASON: {"nl": "geen reden gekozen", "en": "no reason chosen"},
}


def cell(count: int) -> int | str:
    """A count as a report may show it: ``<5`` for 1 to 4."""
    return SMALL if 0 < count < MIN_CELL else count


def plotted(count: int) -> int:
    """A count as a chart may draw it: a small count is not drawn."""
    return 0 if 0 < count < MIN_CELL else count


def rate(part: int, whole: int) -> float | None:
    """``part / whole``, unless either is a small cell (or ``whole`` is 0): a rate must not reveal one."""
    if whole == 0 or cell(part) == SMALL or cell(whole) == SMALL:
        return None
    return part / whole


@dataclass(frozen=True)
class Labels:
    """Dutch and English titles: guideline sections, plan actions, our override reasons (by code)."""

    sections: Mapping[str, Texts] = field(default_factory=dict)
    actions: Mapping[str, Texts] = field(default_factory=dict)
    reasons: Mapping[str, Texts] = field(default_factory=dict)
    reason_system: str = ""

    def section(self, code: str | None) -> Texts:
        return self.sections.get(code, {"nl": f"§{code}", "en": f"§{code}"}) if code else UNKNOWN

    def action(self, action_id: str | None) -> Texts:
        return self.actions.get(action_id, {"nl": action_id, "en": action_id}) if action_id else UNKNOWN

    def reason(self, code: str) -> Texts:
        return self.reasons.get(code) or EXTRA_REASONS.get(code) or {"nl": code, "en": code}

    def reason_codes(self) -> tuple[str, ...]:
        return (*self.reasons, OTHER_REASON, NO_REASON)


@dataclass
class Tally:
    shown: int = 0
    accepted: int = 0
    overridden: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    comments: int = 0  # overrides with a comment (the comment itself is never kept here)

    def add(self, other: Tally) -> None:
        self.shown += other.shown
        self.accepted += other.accepted
        self.overridden += other.overridden
        self.reasons.update(other.reasons)
        self.comments += other.comments

    @property
    def acceptance(self) -> float | None:
        """Accepted per card shown (None when nothing was shown, or either count is a small cell)."""
        return rate(self.accepted, self.shown)


Key = tuple[str, str | None, str | None]  # month, section, action id


@dataclass(frozen=True)
class FeedbackReport:
    since: str | None
    cells: dict[Key, Tally]
    labels: Labels

    @property
    def months(self) -> list[str]:
        return sorted({month for month, _, _ in self.cells})

    def rows(self) -> list[tuple[Key, Tally]]:
        """Per month, section and action, in that order (unknown last within a month)."""
        return sorted(self.cells.items(), key=lambda kv: _order(kv[0]))

    def per_action(self) -> list[tuple[tuple[str | None, str | None], Tally]]:
        """All months together, per section and action."""
        found: dict[tuple[str | None, str | None], Tally] = {}
        for (_, section, action), tally in self.cells.items():
            found.setdefault((section, action), Tally()).add(tally)
        return sorted(found.items(), key=lambda kv: _order(("", *kv[0])))

    def per_section(self) -> list[tuple[str | None, Tally]]:
        found: dict[str | None, Tally] = {}
        for (_, section, _), tally in self.cells.items():
            found.setdefault(section, Tally()).add(tally)
        return sorted(found.items(), key=lambda kv: _order(("", kv[0], None)))

    def per_month(self) -> list[tuple[str, Tally]]:
        found: dict[str, Tally] = {}
        for (month, _, _), tally in self.cells.items():
            found.setdefault(month, Tally()).add(tally)
        return sorted(found.items())

    def total(self) -> Tally:
        total = Tally()
        for tally in self.cells.values():
            total.add(tally)
        return total


def _section_key(code: str | None) -> tuple[int, tuple[int | str, ...]]:
    """Sections in guideline order (1.1 < 2 < 2.1 < 2.10), unknown last."""
    if code is None:
        return (1, ())
    return (0, tuple(int(p) if p.isdigit() else p for p in code.split(".")))


def _order(key: Key) -> tuple[str, tuple[int, tuple[int | str, ...]], tuple[int, str]]:
    month, section, action = key
    return (month, _section_key(section), (action is None, action or ""))


def reason_code(fact: FeedbackFact, labels: Labels) -> str:
    """Our override-reason code, or ``other`` / ``none``: never a string a client made up."""
    if fact.reason_code is None:
        return NO_REASON
    if fact.reason_system == labels.reason_system and fact.reason_code in labels.reasons:
        return fact.reason_code
    return OTHER_REASON


def build_report(shown: Iterable[ShownCount], feedback: Iterable[FeedbackFact], labels: Labels, *,
                 since: str | None = None) -> FeedbackReport:
    """Add up shown cards and feedback per (month, section, action); months before ``since`` are left out."""
    cells: dict[Key, Tally] = {}
    for count in shown:
        if since is None or count.month >= since:
            cells.setdefault((count.month, count.section, count.action_id), Tally()).shown += count.count
    for fact in feedback:
        if since is not None and fact.month < since:
            continue
        tally = cells.setdefault((fact.month, fact.section, fact.action_id), Tally())
        if fact.outcome == "accepted":
            tally.accepted += 1
        elif fact.outcome == "overridden":
            tally.overridden += 1
            tally.reasons[reason_code(fact, labels)] += 1
            tally.comments += fact.commented
    return FeedbackReport(since, cells, labels)
