"""k-anonymity of the register at the level of the patient, by generalisation, then suppression, then
leaving patients out.

The unit is the patient, not the row: one pseudonym links all the rows of a patient (every version
of every document about them), so what an attacker sees of a patient is the *set* of their rows'
quasi-identifiers. Two versions each in a group of five can still form a pair no one else has (and
narrow a birthday to a month where the age band changes). So a patient's signature is the set of
the quasi-identifier tuples of all their rows, and a class is the set of patients with the same
signature; every published class must hold at least ``k`` patients.

The quasi-identifiers (``fields.QUASI_IDENTIFIERS``) are every exported attribute an attacker could
know from outside and that can single a patient out: the month of a version, the age band, sex, the
ALK diagnosis codes and the guideline sections the overview has content for. While a class is too
small, every patient in it takes one more step of :data:`STEPS`, in all of their rows: first a
generalisation (month → year, diagnosis code → its ICD-10 category or ICPC rubric, section → its
chapter, age band → a 20-year band), then suppression (the value becomes null), ending with sex.
Only when no patient in a too-small class has a step left are those patients left out (others may
still be joining their class). Each round takes a step or leaves patients out, so it ends.
:class:`Suppression` says what was done; the data dictionary documents the steps.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from alk_fhir.register.fields import QUASI_IDENTIFIERS

DEFAULT_K = 5
WIDE_AGE_BANDS = {"0-17": "0-17", "18-29": "18-39", "30-39": "18-39", "40-49": "40-59", "50-59": "40-59",
                  "60-69": "60-79", "70-79": "60-79", "80+": "80+"}


def _year(value: Any) -> Any:
    return value[:4] if isinstance(value, str) else value


def _wide_age(value: Any) -> Any:
    return WIDE_AGE_BANDS.get(value, value) if isinstance(value, str) else value


def _categories(value: Any) -> Any:
    """``system|F45.1`` → ``system|F45``: the ICD-10 category or ICPC rubric (the code's first three
    characters, which is the code system's own hierarchy); other systems' codes stay as they are."""
    if not isinstance(value, list):
        return value
    out = set()
    for item in value:
        system, _, code = str(item).rpartition("|")
        out.add(f"{system}|{code[:3]}" if len(code) > 3 and code[3] == "." else str(item))
    return sorted(out)


def _chapters(value: Any) -> Any:
    if not isinstance(value, list):
        return value
    return sorted({str(item).split(".", 1)[0] for item in value}, key=lambda c: int(c) if c.isdigit() else 0)


def _null(_value: Any) -> Any:
    return None


# (column, what the step does to it, how): applied in this order, one per round, per patient
STEPS: tuple[tuple[str, str, Callable[[Any], Any]], ...] = (
    ("period", "generalised", _year),
    ("alk_conditions", "generalised", _categories),
    ("advice_sections", "generalised", _chapters),
    ("age_band", "generalised", _wide_age),
    ("period", "suppressed", _null),
    ("alk_conditions", "suppressed", _null),
    ("advice_sections", "suppressed", _null),
    ("age_band", "suppressed", _null),
    ("sex", "suppressed", _null),
)


@dataclass
class Suppression:
    k: int
    quasi_identifiers: tuple[str, ...]
    rows_in: int = 0
    rows_out: int = 0
    patients_in: int = 0
    patients_out: int = 0
    cells: dict[str, int] = field(default_factory=dict)  # column -> cells set to null
    generalised: dict[str, int] = field(default_factory=dict)  # column -> cells made coarser
    patients: dict[str, int] = field(default_factory=dict)  # column -> patients whose column was suppressed
    dropped_rows: int = 0
    dropped_patients: int = 0
    smallest_class: int | None = None  # patients in the smallest class after suppression

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.k, "unit": "patient", "quasiIdentifiers": list(self.quasi_identifiers),
            "steps": [f"{column} {what}" for column, what, _ in STEPS],
            "rowsIn": self.rows_in, "rowsOut": self.rows_out,
            "patientsIn": self.patients_in, "patientsOut": self.patients_out,
            "generalisedCells": self.generalised, "suppressedCells": self.cells,
            "suppressedPatients": self.patients,
            "droppedRows": self.dropped_rows, "droppedPatients": self.dropped_patients,
            "smallestClass": self.smallest_class,
        }


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _published(row: dict[str, Any], steps: Sequence[tuple[str, str, Callable[[Any], Any]]]) -> dict[str, Any]:
    copy = dict(row)
    for column, _, how in steps:
        if column in copy:
            copy[column] = how(copy[column])
    return copy


def signatures(rows: Sequence[dict[str, Any]], quasi: tuple[str, ...] = QUASI_IDENTIFIERS) -> dict[str, frozenset[Any]]:
    """Per patient, the set of their rows' quasi-identifier tuples: what links their rows together."""
    found: dict[str, set[Any]] = defaultdict(set)
    for row in rows:
        found[row["pseudonym"]].add(tuple(_freeze(row.get(q)) for q in quasi))
    return {patient: frozenset(sig) for patient, sig in found.items()}


def patient_classes(rows: Sequence[dict[str, Any]],
                    quasi: tuple[str, ...] = QUASI_IDENTIFIERS) -> dict[frozenset[Any], set[str]]:
    """Patients grouped by signature: the equivalence classes k-anonymity counts."""
    classes: dict[frozenset[Any], set[str]] = defaultdict(set)
    for patient, sig in signatures(rows, quasi).items():
        classes[sig].add(patient)
    return classes


def k_anonymise(rows: Sequence[dict[str, Any]], k: int = DEFAULT_K,
                quasi: tuple[str, ...] = QUASI_IDENTIFIERS) -> tuple[list[dict[str, Any]], Suppression]:
    """The rows with every patient in a class of at least ``k`` (new dicts; the input is not changed),
    and the account."""
    if k < 1:
        raise ValueError("k must be at least 1")
    steps = tuple(s for s in STEPS if s[0] in quasi)
    report = Suppression(k, quasi, rows_in=len(rows), patients_in=len({r["pseudonym"] for r in rows}))
    level: dict[str, int] = defaultdict(int)  # patient -> steps taken
    dropped: set[str] = set()
    while True:
        current = [_published(r, steps[:level[r["pseudonym"]]]) for r in rows if r["pseudonym"] not in dropped]
        small = {p for patients in patient_classes(current, quasi).values() if len(patients) < k for p in patients}
        if not small:
            break
        stuck = {p for p in small if level[p] >= len(steps)}
        if stuck == small:  # nobody could generalise more: only then is anybody left out
            dropped |= stuck
            continue
        for patient in small - stuck:
            level[patient] += 1
    out = []
    for row in rows:
        patient = row["pseudonym"]
        if patient in dropped:
            continue
        done = steps[:level[patient]]
        published = _published(row, done)
        for column in {c for c, _, _ in done}:
            if row.get(column) is not None and published.get(column) is None:
                report.cells[column] = report.cells.get(column, 0) + 1
            elif row.get(column) != published.get(column):
                report.generalised[column] = report.generalised.get(column, 0) + 1
        out.append(published)
    for column, what, _ in steps:
        if what == "suppressed":
            suppressed = sum(1 for patient, n in level.items() if patient not in dropped
                             and (column, what) in {(c, w) for c, w, _ in steps[:n]})
            if suppressed:
                report.patients[column] = suppressed
    report.rows_out, report.patients_out = len(out), len({r["pseudonym"] for r in out})
    report.dropped_rows, report.dropped_patients = len(rows) - len(out), len(dropped)
    sizes = [len(p) for p in patient_classes(out, quasi).values()]
    report.smallest_class = min(sizes) if sizes else None
    return out, report
