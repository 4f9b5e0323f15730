"""The validator against our profiles: the published examples pass, each invalid example fails for
the reason its name gives (at the FHIRPath location it should), and validation never changes its input."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from alk_fhir.config import REPO_ROOT
from alk_fhir.knowledge import Package
from alk_fhir.knowledge.canonical import canonical
from alk_fhir.validation import (
    DOCUMENT_PROFILE,
    UnknownProfile,
    Validator,
    build_validator,
    counts,
    has_errors,
)

EXAMPLES = REPO_ROOT / "examples"
VALID = sorted((EXAMPLES / "profiles").glob("*.json")) + sorted((EXAMPLES / "questionnaire-responses").glob("*.json"))
INVALID = sorted((EXAMPLES / "invalid").glob("*.json"))
CARETEAM = canonical("StructureDefinition", "alk-careteam")

# file stem -> (expression, words in the diagnostics) that must be among the errors
EXPECTED: dict[str, tuple[str, str]] = {
    "applied-careplan-activity-not-a-requestgroup": ("CarePlan.activity[0].reference", "allowed here: RequestGroup"),
    "applied-careplan-malformed-reference": ("CarePlan.subject", "is not a valid reference"),
    "assessment-criterion-status-unknown": ("Observation.component[0].value.ofType(CodeableConcept)",
                                            "alk-criterion-status (required binding)"),
    "assessment-evidence-not-a-reference": ("Observation.component[0].extension[0].valueString", "unknown element"),
    "assessment-impossible-date": ("Observation.effective.ofType(dateTime)", "no such date"),
    "assessment-without-criterion3": ("Observation.component", "slice 'criterion3': minimum required = 1"),
    "careteam-coordinator-is-patient": ("CareTeam.participant[0].member",
                                        "reference to a Patient; allowed here: Practitioner | PractitionerRole"),
    "careteam-misspelled-element": ("CareTeam.participants", "unknown element 'participants'"),
    "careteam-status-not-in-valueset": ("CareTeam.status", "'busy' is not in the value set"),
    "careteam-three-coordinators": ("CareTeam.participant", "slice 'coordinator': at most 2 allowed, found 3"),
    "careteam-without-coordinator": ("CareTeam.participant", "slice 'coordinator': minimum required = 1"),
    "careteam-without-name": ("CareTeam.name", "minimum required = 1"),
    "case-overview-missing-section": ("Composition.section", "slice 'consultations': minimum required = 1"),
    "case-overview-section-empty-with-entries": ("Composition.section[0]", "cmp-2"),
    "case-overview-unknown-section": ("Composition.section[9]", "matches none of the slices"),
    "consent-provision-deny": ("Consent.provision.type", 'value must be exactly "permit"'),
    "consent-unreferenced-contained": ("Consent", "dom-3"),
    "document-careteam-without-coordinator": ("Bundle.entry[10].resource.careTeam[0]",
                                              f"does not conform to {CARETEAM}"),
    "document-first-entry-not-composition": ("Bundle", "alk-doc-1"),
    "document-fullurl-does-not-match-id": ("Bundle.entry[2].fullUrl", "does not match the entry's resource"),
    "document-not-of-type-document": ("Bundle.type", 'value must be exactly "document"'),
    "document-patient-missing": ("Bundle.entry[0].resource.subject", "does not resolve to an entry of this document"),
    "document-without-identifier": ("Bundle.identifier", "minimum required = 1"),
    "requestgroup-action-without-guideline-code": ("RequestGroup.action[0]", "alk-rg-1"),
    "requestgroup-narrative-with-script": ("RequestGroup.text.div", "txt-1"),
    "stepplan-activity-without-detail": ("CarePlan", "alk-sp-1"),
    "stepplan-intent-not-plan": ("CarePlan.intent", 'value must be exactly "plan"'),
    "stepplan-period-ends-before-start": ("CarePlan.activity[0].detail.scheduled.ofType(Period)", "per-1"),
    "stepplan-step-not-scheduled-as-period": ("CarePlan.activity[0].detail.scheduledString", "unknown element"),
}


@pytest.fixture(scope="module")
def validator(package: Package, core_dir: Path) -> Validator:
    return build_validator(package, core_dir)


def read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def errors(outcome: dict[str, Any]) -> list[tuple[str, str]]:
    return [(", ".join(i.get("expression", [])), i["diagnostics"]) for i in outcome["issue"]
            if i["severity"] in ("error", "fatal")]


def test_every_invalid_example_has_an_expectation() -> None:
    assert {p.stem for p in INVALID} == set(EXPECTED)


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_published_examples_are_valid(validator: Validator, path: Path) -> None:
    outcome = validator.validate(read(path))
    assert errors(outcome) == []


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_examples_fail_where_their_name_says(validator: Validator, path: Path) -> None:
    outcome = validator.validate(read(path))
    assert has_errors(outcome)
    expression, words = EXPECTED[path.stem]
    found = errors(outcome)
    assert any(e == expression and words in d for e, d in found), found


@pytest.mark.parametrize("path", VALID + INVALID + sorted((EXAMPLES / "patients").glob("*.json")), ids=lambda p: p.stem)
def test_validation_does_not_change_its_input(validator: Validator, path: Path) -> None:
    resource = read(path)
    before = copy.deepcopy(resource)
    validator.validate(resource)
    assert resource == before


def test_expression_indexes_a_repeating_element(validator: Validator) -> None:
    team = read(EXAMPLES / "profiles" / "alk-careteam-example.json")
    del team["participant"][1]["role"]
    outcome = validator.validate(team)
    assert ("CareTeam.participant[1].role", "role: minimum required = 1, but only found 0") in errors(outcome)


def test_expression_reaches_into_bundle_entries(validator: Validator) -> None:
    team = read(EXAMPLES / "profiles" / "alk-careteam-example.json")
    team["status"] = "busy"
    entries = [{"fullUrl": f"urn:uuid:00000000-0000-4000-8000-00000000000{i}", "resource": {
        "resourceType": "Basic", "id": f"b{i}", "code": {"text": "x"}}} for i in range(3)]
    entries.append({"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000003", "resource": team})
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    found = errors(validator.validate(bundle))
    assert any(e == "Bundle.entry[3].resource.status" and "'busy'" in d for e, d in found), found


def test_a_resource_without_meta_profile_is_checked_against_the_base(validator: Validator) -> None:
    team = read(EXAMPLES / "profiles" / "alk-careteam-example.json")
    del team["meta"]
    team["participant"] = team["participant"][1:]  # no coordinator: only our profile forbids that
    assert errors(validator.validate(team)) == []
    found = errors(validator.validate(team, CARETEAM))
    assert ("CareTeam.participant", "slice 'coordinator': minimum required = 1, but only found 0") in found
    team["status"] = "busy"  # the base's required binding still applies
    assert any(e == "CareTeam.status" for e, _ in errors(validator.validate(team)))


def test_an_unknown_profile_asked_for_is_refused(validator: Validator) -> None:
    with pytest.raises(UnknownProfile):
        validator.validate({"resourceType": "Patient"}, "https://example.org/fhir/StructureDefinition/nope")


def test_an_unknown_claimed_profile_is_a_warning(validator: Validator) -> None:
    patient = {"resourceType": "Patient", "meta": {"profile": ["https://example.org/StructureDefinition/nl-core"]},
               "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">Eva</div>'}}
    outcome = validator.validate(patient)
    assert errors(outcome) == []
    assert [i["expression"] for i in outcome["issue"] if i["severity"] == "warning"] == [["Patient.meta.profile[0]"]]


@pytest.mark.parametrize(("content", "words"), [
    ([1, 2], "not a FHIR resource"),
    ({"id": "x"}, "resourceType is missing"),
    ({"resourceType": "Patiënt"}, "unknown resource type"),
    ({"resourceType": "DomainResource"}, "unknown resource type"),
])
def test_content_that_is_no_resource(validator: Validator, content: Any, words: str) -> None:
    outcome = validator.validate(content)
    assert has_errors(outcome)
    assert words in outcome["issue"][0]["diagnostics"]


def test_validate_file_names_the_file_it_cannot_read(validator: Validator, tmp_path: Path) -> None:
    bad = tmp_path / "kapot.json"
    bad.write_text('{"resourceType": "Patient",', encoding="utf-8")
    outcome = validator.validate_file(bad)
    assert outcome["issue"][0]["severity"] == "fatal"
    assert str(bad) in outcome["issue"][0]["diagnostics"]
    missing = validator.validate_file(tmp_path / "weg.json")
    assert "weg.json" in missing["issue"][0]["diagnostics"]


def test_validate_document(validator: Validator) -> None:
    assert validator.knows(DOCUMENT_PROFILE)
    good = read(EXAMPLES / "profiles" / "alk-case-overview-document-example.json")
    assert not has_errors(validator.validate_document(good))
    plain = copy.deepcopy(good)
    del plain["meta"]
    plain["type"] = "collection"  # not claiming the profile does not get a bundle past the document check
    assert any(e == "Bundle.type" for e, _ in errors(validator.validate_document(plain)))
    assert has_errors(validator.validate_document({"resourceType": "Composition"}))


def test_outcomes_are_valid_operation_outcomes(validator: Validator) -> None:
    for path in INVALID[:5] + VALID[:2]:
        outcome = validator.validate(read(path))
        assert outcome["resourceType"] == "OperationOutcome"
        assert errors(validator.validate(outcome)) == []


def test_a_clean_result_says_so(validator: Validator) -> None:
    outcome = validator.validate(read(EXAMPLES / "profiles" / "alk-careteam-example.json"))
    assert outcome["issue"] == [{"severity": "information", "code": "informational",
                                 "diagnostics": "No issues detected during validation"}]
    assert counts(outcome) == {"fatal": 0, "error": 0, "warning": 0, "information": 0}


def test_every_profile_of_the_package_is_compiled(validator: Validator, package: Package) -> None:
    ours = {sd["url"] for sd in package.of_type("StructureDefinition")}
    assert ours and ours <= set(validator.compiler.compiled_urls())
    assert set(validator.profiles) == ours


def test_core_profiles_this_validator_cannot_read_degrade_to_a_warning(validator: Validator) -> None:
    no_snapshot = "http://hl7.org/fhir/StructureDefinition/example-composition"
    comp = {"resourceType": "Composition", "meta": {"profile": [no_snapshot]}, "status": "final",
            "type": {"text": "t"}, "date": "2026-01-01", "author": [{"display": "a"}], "title": "t",
            "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">t</div>'}}
    outcome = validator.validate(comp)
    assert errors(outcome) == []
    assert any("cannot be checked here" in i["diagnostics"] for i in outcome["issue"])
    with pytest.raises(UnknownProfile):
        validator.validate(comp, no_snapshot)
