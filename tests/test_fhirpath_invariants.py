"""Invariants outside ``fastpath`` are evaluated by our engine (validation/invariants.py): on every
node of the validation corpus it must decide each such invariant of the R4 core definitions and of
our profiles as fhirpathpy does (holds: exactly ``[true]``), wherever fhirpathpy can evaluate it.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest

from alk_fhir import fastpath, fhirpath
from alk_fhir.knowledge import Package
from alk_fhir.validation import Validator, build_validator
from test_validation_fhirpath import constraints, instances, nodes, slow, variants

# Invariants our engine reads as N1 requires where fhirpathpy does not (each checked by hand):
KNOWN: dict[str, str] = {
    "per-1": "start <= end with start 2026 and end 2026-06-01 is empty in N1 §6.2 (the precisions differ "
             "and the year is equal); fhirpathpy answers true. The validator decides per-1 with its native "
             "(R5's boundary reading), tests/test_validation_fhirpath.py covers it.",
}


@pytest.fixture(scope="module")
def validator(package: Package, core_dir: Path) -> Validator:
    return build_validator(package, core_dir)


def test_our_engine_decides_invariants_as_fhirpathpy(package: Package, validator: Validator) -> None:
    table = constraints(package, validator.defs)
    ours: dict[tuple[str, str], Any] = {}
    for type_path, items in table.items():
        for _, expr in items:
            if fastpath.compile_fast(expr, type_path) is None:
                with contextlib.suppress(fhirpath.Unsupported):  # fhirpathpy evaluates those
                    ours[(type_path, expr)] = fhirpath.compile_fhirpath(expr)
    assert len(ours) > 100
    compared = 0
    disagreements: list[str] = []
    for res in instances():
        for type_path, where, node, resource, root in nodes(res, str(res["resourceType"]), res):
            for key, expr in table.get(type_path, []):
                run = ours.get((type_path, expr))
                if run is None or key in KNOWN:
                    continue
                for variant in variants(node):
                    focus_resource = variant if node is resource else resource
                    try:
                        expected = slow(expr, variant, type_path, focus_resource, root)
                    except Exception:
                        continue  # fhirpathpy cannot evaluate it: nothing to agree with
                    env = {"resource": focus_resource, "rootResource": root, "ucum": "http://unitsofmeasure.org"}
                    try:
                        got = [fhirpath.python_value(v) for v in run(fhirpath.typed(variant, type_path), env)]
                    except fhirpath.FHIRPathEvaluationError as exc:
                        disagreements.append(f"{key} at {where}: ours raised {exc}, fhirpathpy {expected}")
                        continue
                    compared += 1
                    if (got == [True]) != (expected == [True]):
                        disagreements.append(f"{key} at {where} on {variant}: ours {got} != fhirpathpy {expected}")
    assert compared > 2000
    assert disagreements == []
