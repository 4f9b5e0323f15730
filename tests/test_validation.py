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

# file stem -> (severity, expression, words in the diagnostics): an issue the outcome must have
EXPECTED: dict[str, tuple[str, str, str]] = {
    "applied-careplan-activity-not-a-requestgroup": ("error", "CarePlan.activity[0].reference",
                                                     "allowed here: RequestGroup"),
    "applied-careplan-malformed-reference": ("error", "CarePlan.subject", "is not a valid reference"),
    "assessment-code-not-persistent-alk-assessment": ("error", "Observation.code",
                                                      "does not match the required pattern"),
    "assessment-criterion-status-unknown": ("error", "Observation.component[0].value.ofType(CodeableConcept)",
                                            "alk-criterion-status (required binding)"),
    "assessment-evidence-not-a-reference": ("error", "Observation.component[0].extension[0].valueString",
                                            "unknown element"),
    "assessment-impossible-date": ("error", "Observation.effective.ofType(dateTime)", "no such date"),
    "assessment-without-criterion3": ("error", "Observation.component", "slice 'criterion3': minimum required = 1"),
    "careteam-coordinator-is-patient": ("error", "CareTeam.participant[0].member",
                                        "reference to a Patient; allowed here: Practitioner | PractitionerRole"),
    "careteam-misspelled-element": ("error", "CareTeam.participants", "unknown element 'participants'"),
    "careteam-status-not-in-valueset": ("error", "CareTeam.status", "'busy' is not in the value set"),
    "careteam-three-coordinators": ("error", "CareTeam.participant", "slice 'coordinator': at most 2 allowed, found 3"),
    "careteam-without-coordinator": ("error", "CareTeam.participant", "slice 'coordinator': minimum required = 1"),
    "careteam-without-name": ("error", "CareTeam.name", "minimum required = 1"),
    "case-overview-missing-section": ("error", "Composition.section", "slice 'consultations': minimum required = 1"),
    "case-overview-section-empty-with-entries": ("error", "Composition.section[0]", "cmp-2"),
    "case-overview-unknown-section": ("error", "Composition.section[9]", "matches none of the slices"),
    "consent-provision-deny": ("error", "Consent.provision.type", 'value must be exactly "permit"'),
    "consent-unreferenced-contained": ("error", "Consent", "dom-3"),
    "document-careteam-without-coordinator": ("error", "Bundle.entry[10].resource.careTeam[0]",
                                              f"does not conform to {CARETEAM}"),
    "document-first-entry-not-composition": ("error", "Bundle", "alk-doc-1"),
    "document-fullurl-does-not-match-id": ("error", "Bundle.entry[2].fullUrl", "does not match the entry's resource"),
    "document-fullurl-not-unique": ("error", "Bundle.entry[15].fullUrl", "is also the fullUrl of Bundle.entry[1]"),
    "document-not-of-type-document": ("error", "Bundle.type", 'value must be exactly "document"'),
    "document-patient-missing": ("error", "Bundle.entry[0].resource.subject",
                                 "does not resolve to an entry of this document"),
    "document-without-identifier": ("error", "Bundle.identifier", "minimum required = 1"),
    "requestgroup-action-without-guideline-code": ("error", "RequestGroup.action[0]", "alk-rg-1"),
    "requestgroup-narrative-with-script": ("error", "RequestGroup.text.div", "txt-1"),
    "stepplan-activity-without-detail": ("error", "CarePlan", "alk-sp-1"),
    "stepplan-intent-not-plan": ("error", "CarePlan.intent", 'value must be exactly "plan"'),
    "stepplan-period-ends-before-start": ("error", "CarePlan.activity[0].detail.scheduled.ofType(Period)", "per-1"),
    "stepplan-step-not-scheduled-as-period": ("error", "CarePlan.activity[0].detail.scheduledString",
                                              "unknown element"),
    "transaction-reference-to-unknown-urn-uuid": ("error", "Bundle.entry[1].resource.subject",
                                                  "does not resolve to an entry of this transaction"),
}


@pytest.fixture(scope="module")
def validator(package: Package, core_dir: Path) -> Validator:
    return build_validator(package, core_dir)


def read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def errors(outcome: dict[str, Any]) -> list[tuple[str, str]]:
    return [(", ".join(i.get("expression", [])), i["diagnostics"]) for i in outcome["issue"]
            if i["severity"] in ("error", "fatal")]


def issues(outcome: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(i["severity"], ", ".join(i.get("expression", [])), i["diagnostics"]) for i in outcome["issue"]]


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
    severity, expression, words = EXPECTED[path.stem]
    found = issues(outcome)
    assert any(s == severity and e == expression and words in d for s, e, d in found), found


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


# ---- references a bundle cannot resolve ------------------------------------------------------------
PATIENT_URN = "urn:uuid:9a3c5e7f-1b2d-4c6e-8f0a-2b4d6f8a0c1e"


def transaction(subject: str) -> dict[str, Any]:
    goal = {"resourceType": "Goal", "lifecycleStatus": "proposed", "description": {"text": "weer wandelen"},
            "subject": {"reference": subject}}
    patient = {"resourceType": "Patient", "name": [{"family": "Jansen-de Wit"}]}
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": PATIENT_URN, "resource": patient, "request": {"method": "POST", "url": "Patient"}},
        {"fullUrl": "urn:uuid:0c2e4a6b-8d1f-4a3c-9e5b-7d9f1b3c5e70", "resource": goal,
         "request": {"method": "POST", "url": "Goal"}},
    ]}


@pytest.mark.parametrize(("subject", "unresolvable"), [
    (PATIENT_URN, False),
    ("urn:uuid:9a3c5e7f-1b2d-4c6e-8f0a-000000000000", True),  # a temporary id no entry has
    ("urn:oid:2.16.528.1.1007.3.3.1234", True),
    ("Patient/pt-jansen", False),  # "left untouched" (http.html): the Patient the server already has
    ("https://fhir.example.org/fhir/Patient/pt-jansen", False),
    ("Patient?identifier=http://fhir.nl/fhir/NamingSystem/bsn|999911120", False),  # conditional (http.html#trules)
])
def test_a_transaction_must_resolve_its_urn_references(validator: Validator, subject: str,
                                                        unresolvable: bool) -> None:
    outcome = validator.validate(transaction(subject))
    at_subject = [(s, d) for s, e, d in issues(outcome) if e == "Bundle.entry[1].resource.subject"]
    if unresolvable:
        assert ("error", f"reference '{subject}' does not resolve to an entry of this transaction: no entry has "
                "it as fullUrl, so the server has no resource to put in its place") in at_subject
    else:
        assert at_subject == []
        assert errors(outcome) == []


def test_conditional_references_only_in_a_transaction_and_to_an_allowed_type(validator: Validator) -> None:
    wrong_type = validator.validate(transaction("Practitioner?identifier=123"))
    assert any(e == "Bundle.entry[1].resource.subject" and "not allowed here" in d for _, e, d in issues(wrong_type))
    collection = transaction("Patient?identifier=123")
    collection["type"] = "collection"
    for entry in collection["entry"]:
        del entry["request"]
    found = issues(validator.validate(collection))
    assert any(s == "error" and e == "Bundle.entry[1].resource.subject" and "not a valid reference" in d
               for s, e, d in found)


def test_a_document_entry_must_resolve_its_urn_references(validator: Validator) -> None:
    doc = read(EXAMPLES / "profiles" / "alk-case-overview-document-example.json")
    goal = next(i for i, e in enumerate(doc["entry"]) if e["resource"]["resourceType"] == "Goal")
    where = f"Bundle.entry[{goal}].resource.subject"
    doc["entry"][goal]["resource"]["subject"] = {"reference": "urn:uuid:9a3c5e7f-1b2d-4c6e-8f0a-000000000000"}
    assert any(s == "error" and e == where and "a urn: reference can only resolve to an entry's fullUrl" in d
               for s, e, d in issues(validator.validate(doc)))
    # a RESTful one may point at the server the document came from: the document is not self-contained
    doc["entry"][goal]["resource"]["subject"] = {"reference": "Patient/elders"}
    found = [(s, e) for s, e, _ in issues(validator.validate(doc))]
    assert ("warning", where) in found
    assert ("error", where) not in found


# ---- content nested deeper than Python recurses ----------------------------------------------------
def nested_extensions(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {"url": "https://example.org/x", "valueString": "blad"}
    for _ in range(levels):
        node = {"url": "https://example.org/x", "extension": [node]}
    return {"resourceType": "Patient", "extension": [node]}


def test_deeply_nested_content_is_a_fatal_issue_not_a_recursion_error(validator: Validator) -> None:
    outcome = validator.validate(nested_extensions(900))
    assert has_errors(outcome)
    assert [(i["severity"], i["code"]) for i in outcome["issue"]] == [("fatal", "too-costly")]
    assert "nested too deeply" in outcome["issue"][0]["diagnostics"]
    assert not has_errors(validator.validate(nested_extensions(50)))  # the validator is still whole afterwards
    assert errors(validator.validate(read(EXAMPLES / "profiles" / "alk-careteam-example.json"))) == []


def test_validate_file_names_a_file_nested_too_deeply(validator: Validator, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    deep = tmp_path / "diep.json"
    deep.write_text("[" * 1200 + "]" * 1200, encoding="utf-8")  # json.loads itself gives up
    outcome = validator.validate_file(deep)
    assert [i["severity"] for i in outcome["issue"]] == ["fatal"]
    assert outcome["issue"][0]["diagnostics"].startswith(f"{deep}: cannot be decoded: ")

    def too_deep(*args: Any, **kwargs: Any) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    # content that decodes but is too deep to walk (where that starts depends on the caller's stack)
    monkeypatch.setattr(validator.compiler, "check_resource", too_deep)
    walked = EXAMPLES / "profiles" / "alk-careteam-example.json"
    outcome = validator.validate_file(walked)
    assert [i["severity"] for i in outcome["issue"]] == ["fatal"]
    assert outcome["issue"][0]["diagnostics"].startswith(f"{walked}: the content is nested too deeply")
