"""k-anonymity on the quasi-identifiers of the register, by cell suppression (then row suppression).

A class is the set of rows with the same published quasi-identifiers (age band, sex, period; a
suppressed cell, null, is a value of its own). A class must hold at least ``k`` different patients
(pseudonyms), not ``k`` rows: the versions of one patient's documents are one person. While a class
is too small, every patient in it loses one more quasi-identifier, in :data:`SUPPRESSION_ORDER`
(period first, then age band, then sex), in all of that patient's rows, since the pseudonym links
them. Only when no patient in a too-small class has anything left to suppress are those patients
left out (others may still be joining their class). Each round suppresses a cell or leaves patients
out, so it ends. :class:`Suppression` says what was done.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from alk_fhir.register.fields import QUASI_IDENTIFIERS

SUPPRESSION_ORDER = ("period", "age_band", "sex")
DEFAULT_K = 5


@dataclass
class Suppression:
    k: int
    quasi_identifiers: tuple[str, ...]
    rows_in: int = 0
    rows_out: int = 0
    patients_in: int = 0
    patients_out: int = 0
    cells: dict[str, int] = field(default_factory=dict)  # column -> cells set to null
    patients: dict[str, int] = field(default_factory=dict)  # column -> patients whose column was suppressed
    dropped_rows: int = 0
    dropped_patients: int = 0
    smallest_class: int | None = None  # patients in the smallest class after suppression

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.k, "quasiIdentifiers": list(self.quasi_identifiers),
            "suppressionOrder": list(SUPPRESSION_ORDER),
            "rowsIn": self.rows_in, "rowsOut": self.rows_out,
            "patientsIn": self.patients_in, "patientsOut": self.patients_out,
            "suppressedCells": self.cells, "suppressedPatients": self.patients,
            "droppedRows": self.dropped_rows, "droppedPatients": self.dropped_patients,
            "smallestClass": self.smallest_class,
        }


def _classes(rows: Sequence[dict[str, Any]], hidden: dict[str, set[str]],
             quasi: tuple[str, ...]) -> dict[tuple[Any, ...], set[str]]:
    found: dict[tuple[Any, ...], set[str]] = defaultdict(set)
    for row in rows:
        gone = hidden.get(row["pseudonym"], set())
        found[tuple(None if q in gone else row.get(q) for q in quasi)].add(row["pseudonym"])
    return found


def k_anonymise(rows: Sequence[dict[str, Any]], k: int = DEFAULT_K,
                quasi: tuple[str, ...] = QUASI_IDENTIFIERS) -> tuple[list[dict[str, Any]], Suppression]:
    """The rows with small classes suppressed (new dicts; the input is not changed), and the account."""
    if k < 1:
        raise ValueError("k must be at least 1")
    order = tuple(q for q in SUPPRESSION_ORDER if q in quasi) + tuple(q for q in quasi if q not in SUPPRESSION_ORDER)
    report = Suppression(k, quasi, rows_in=len(rows), patients_in=len({r["pseudonym"] for r in rows}))
    hidden: dict[str, set[str]] = defaultdict(set)
    dropped: set[str] = set()
    kept = list(rows)
    while True:
        small = {p for patients in _classes(kept, hidden, quasi).values() if len(patients) < k for p in patients}
        if not small:
            break
        stuck = set()
        for patient in sorted(small):
            column = next((c for c in order if c not in hidden[patient]), None)
            if column is None:
                stuck.add(patient)
            else:
                hidden[patient].add(column)
        if stuck == small:  # nobody could suppress more: only then is anybody left out
            dropped |= stuck
            kept = [r for r in kept if r["pseudonym"] not in dropped]
    out = []
    for row in kept:
        copy = dict(row)
        for column in (c for c in order if c in hidden.get(row["pseudonym"], ())):
            if copy.get(column) is not None:
                report.cells[column] = report.cells.get(column, 0) + 1
            copy[column] = None
        out.append(copy)
    for column in order:
        suppressed = sum(1 for patient, columns in hidden.items() if patient not in dropped and column in columns)
        if suppressed:
            report.patients[column] = suppressed
    report.rows_out, report.patients_out = len(out), len({r["pseudonym"] for r in out})
    report.dropped_rows, report.dropped_patients = len(rows) - len(out), len(dropped)
    sizes = [len(p) for p in _classes(out, {}, quasi).values()]
    report.smallest_class = min(sizes) if sizes else None
    return out, report
