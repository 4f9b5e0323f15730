"""Slicing rules our published profiles do not use: ordered/openAtEnd, and the type, exists and
profile discriminators (R4 profiling.html#discriminator). The test-only profiles in
fixtures/validation are differentials; their snapshots come from the project's own generator."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from alk_fhir.build import snapshot
from alk_fhir.config import REPO_ROOT
from alk_fhir.knowledge import load_package
from alk_fhir.knowledge.canonical import canonical
from alk_fhir.validation import Validator, build_validator

FIXTURES = Path(__file__).parent / "fixtures" / "validation"
DIV = '<div xmlns="http://www.w3.org/1999/xhtml">x</div>'


@pytest.fixture(scope="module")
def validator(tmp_path_factory: pytest.TempPathFactory, core_dir: Path) -> Validator:
    root = tmp_path_factory.mktemp("package")
    for path in (REPO_ROOT / "profiles").glob("*.json"):
        shutil.copy(path, root / path.name)
    ours = load_package(root)
    make = snapshot.snapshotter(core_dir)
    for path in sorted(FIXTURES.glob("StructureDefinition-*.json")):
        sd = make(json.loads(path.read_text(encoding="utf-8")), ours.resolve)
        (root / path.name).write_text(json.dumps(sd), encoding="utf-8")
    return build_validator(load_package(root), core_dir)


def errors(validator: Validator, resource: dict[str, Any], profile: str) -> list[tuple[str, str]]:
    outcome = validator.validate(resource, canonical("StructureDefinition", profile))
    return [(", ".join(i.get("expression", [])), i["diagnostics"]) for i in outcome["issue"]
            if i["severity"] == "error"]


def entry(resource: dict[str, Any], n: int) -> dict[str, Any]:
    return {"fullUrl": f"urn:uuid:7b7e5f55-0000-4000-8000-{n:012d}", "resource": resource}


COMPOSITION = {"resourceType": "Composition", "id": "c", "status": "final", "type": {"text": "t"}, "date": "2026-01-01",
               "author": [{"display": "a"}], "title": "t", "text": {"status": "generated", "div": DIV}}
PATIENT = {"resourceType": "Patient", "id": "p", "text": {"status": "generated", "div": DIV}}
BASIC = {"resourceType": "Basic", "id": "b", "code": {"text": "x"}, "text": {"status": "generated", "div": DIV}}


def test_type_discriminator_ordered_and_open_at_end(validator: Validator) -> None:
    def bundle(*resources: dict[str, Any]) -> dict[str, Any]:
        return {"resourceType": "Bundle", "type": "collection", "entry": [entry(r, i) for i, r in enumerate(resources)]}

    assert errors(validator, bundle(COMPOSITION, PATIENT, PATIENT, BASIC), "test-ordered-bundle") == []
    found = errors(validator, bundle(PATIENT, COMPOSITION), "test-ordered-bundle")
    assert any(e == "Bundle.entry[1]" and "out of order" in d for e, d in found), found
    found = errors(validator, bundle(COMPOSITION, BASIC, PATIENT), "test-ordered-bundle")
    assert any(e == "Bundle.entry[2]" and "openAtEnd" in d for e, d in found), found
    found = errors(validator, bundle(PATIENT), "test-ordered-bundle")
    assert ("Bundle.entry", "slice 'composition': minimum required = 1, but only found 0") in found


def test_exists_discriminator_with_closed_rules(validator: Validator) -> None:
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "bloeddruk"},
           "text": {"status": "generated", "div": DIV}}
    measured = {"code": {"text": "systolisch"}, "valueQuantity": {"value": 120}}
    missing = {"code": {"text": "diastolisch"}, "dataAbsentReason": {"text": "niet gemeten"}}
    assert errors(validator, {**obs, "component": [measured, missing]}, "test-exists-observation") == []
    found = errors(validator, {**obs, "component": [measured, missing, missing]}, "test-exists-observation")
    assert ("Observation.component", "slice 'missing': at most 1 allowed, found 2") in found
    unmeasured = {"code": {"text": "pols"}, "valueString": "snel"}  # in slice 'measured', which allows Quantity only
    found = errors(validator, {**obs, "component": [unmeasured]}, "test-exists-observation")
    assert any(e == "Observation.component[0].valueString" for e, _ in found), found


def test_profile_discriminator(validator: Validator) -> None:
    team = json.loads((REPO_ROOT / "examples" / "profiles" / "alk-careteam-example.json").read_text(encoding="utf-8"))
    del team["meta"]
    good = {"resourceType": "Bundle", "type": "collection", "entry": [entry(BASIC, 0), entry(team, 1)]}
    assert errors(validator, good, "test-profiled-bundle") == []
    team["participant"] = team["participant"][1:]  # no coordinator: no longer an alk-careteam
    found = errors(validator, good, "test-profiled-bundle")
    assert ("Bundle.entry", "slice 'team': minimum required = 1, but only found 0") in found
