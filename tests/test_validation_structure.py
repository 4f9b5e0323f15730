"""The structure rules of R4 JSON and the base definitions, on small hand-made instances."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from alk_fhir.knowledge import Package
from alk_fhir.knowledge.canonical import CONCEPTS_SYSTEM
from alk_fhir.validation import Validator, build_validator

DIV = '<div xmlns="http://www.w3.org/1999/xhtml">Eva Jansen</div>'


@pytest.fixture(scope="module")
def validator(package: Package, core_dir: Path) -> Validator:
    return build_validator(package, core_dir)


def patient(**fields: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": "p1", "text": {"status": "generated", "div": DIV}, **fields}


def issues(validator: Validator, resource: Any, severity: str = "error") -> list[tuple[str, str]]:
    outcome = validator.validate(resource)
    return [(", ".join(i.get("expression", [])), i["diagnostics"]) for i in outcome["issue"]
            if i["severity"] == severity]


def at(found: list[tuple[str, str]], expression: str, words: str) -> bool:
    return any(e == expression and words in d for e, d in found)


def test_a_plain_valid_patient(validator: Validator) -> None:
    assert issues(validator, patient(active=True, birthDate="1970-03-01", name=[{"family": "Jansen"}])) == []
    assert issues(validator, patient(), "warning") == []


@pytest.mark.parametrize(("field", "value", "words"), [
    ("active", "true", "expected a JSON boolean"),
    ("birthDate", "01-03-1970", "is not a valid date"),
    ("birthDate", "1970-02-29", "no such date"),
    ("birthDate", "", "empty string"),
    ("multipleBirthInteger", "2", "expected a JSON integer"),
    ("multipleBirthInteger", 2.5, "expected a JSON integer"),
    ("multipleBirthInteger", 3000000000, "out of range"),
    ("deceasedDateTime", "2020-01-01T10:00", "is not a valid dateTime"),
    ("gender", "f", "not in the value set http://hl7.org/fhir/ValueSet/administrative-gender"),
    ("id", "p_1", "is not a valid id"),
    ("language", "n\x00l", "control characters"),
])
def test_primitive_values(validator: Validator, field: str, value: Any, words: str) -> None:
    found = issues(validator, patient(**{field: value}))
    expression = "Patient." + {"multipleBirthInteger": "multipleBirth.ofType(integer)",
                               "deceasedDateTime": "deceased.ofType(dateTime)"}.get(field, field)
    assert at(found, expression, words), found


def test_strings_may_hold_tab_cr_lf_but_no_other_control_characters(validator: Validator) -> None:
    assert issues(validator, patient(name=[{"text": "Anna\tde Vries\r\n"}])) == []
    found = issues(validator, patient(name=[{"text": "Anna\x00"}, {"family": "de\x1bVries"}]))
    assert at(found, "Patient.name[0].text", "control characters"), found
    assert at(found, "Patient.name[1].family", "control characters"), found


def test_json_shape(validator: Validator) -> None:
    found = issues(validator, patient(name={"family": "Jansen"}, gender=["female"], telecom=[], active=None))
    assert at(found, "Patient.name", "repeats and must be a JSON array")
    assert at(found, "Patient.gender", "does not repeat")
    assert at(found, "Patient.telecom", "empty array")
    assert at(found, "Patient.active", "null")


def test_unknown_elements_and_empty_objects(validator: Validator) -> None:
    found = issues(validator, patient(geslacht="vrouw", maritalStatus={}, contact=[{"id": "c1"}]))
    assert at(found, "Patient.geslacht", "unknown element 'geslacht'")
    assert at(found, "Patient.maritalStatus", "ele-1")
    assert at(found, "Patient.contact[0]", "ele-1")


def test_primitive_extensions(validator: Validator) -> None:
    ext = {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "unknown"}]}
    assert issues(validator, patient(_birthDate=ext)) == []
    assert at(issues(validator, patient(_birthDate={})), "Patient.birthDate", "ele-1")
    name = {"given": ["Eva", None], "_given": [None, ext]}
    assert issues(validator, patient(name=[name])) == []
    found = issues(validator, patient(name=[{"given": ["Eva", None]}]))
    assert at(found, "Patient.name[0].given[1]", "null without a matching '_given' entry"), found
    found = issues(validator, patient(name=[{"given": ["Eva"], "_given": [None, ext]}]))
    assert at(found, "Patient.name[0].given", "different lengths")


def test_extensions(validator: Validator) -> None:
    both = {"url": "https://example.org/x", "valueString": "a", "extension": [{"url": "y", "valueString": "b"}]}
    neither = {"url": "https://example.org/x"}
    found = issues(validator, patient(extension=[both, neither]))
    assert at(found, "Patient.extension[0]", "ext-1") and at(found, "Patient.extension[1]", "ext-1")
    warnings = issues(validator, patient(extension=[{"url": "https://example.org/x", "valueString": "a"}]), "warning")
    assert at(warnings, "Patient.extension[0]", "unknown extension https://example.org/x")
    found = issues(validator, patient(modifierExtension=[{"url": "https://example.org/x", "valueBoolean": True}]))
    assert at(found, "Patient.modifierExtension[0]", "unknown modifier extension")
    wrong_type = {"url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace", "valueString": "Utrecht"}
    found = issues(validator, patient(extension=[wrong_type]))
    assert at(found, "Patient.extension[0].valueString", "unknown element")


def test_choice_types(validator: Validator) -> None:
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "pijn"}, "valueString": "veel",
           "valueInteger": 7, "text": {"status": "generated", "div": DIV}}
    assert at(issues(validator, obs), "Observation.value", "more than one type given for value[x]")


def test_references(validator: Validator) -> None:
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "pijn"},
           "text": {"status": "generated", "div": DIV}}
    assert at(issues(validator, {**obs, "subject": {"reference": "Medication/1"}}), "Observation.subject",
              "reference to a Medication")
    assert at(issues(validator, {**obs, "subject": {"reference": "Patiënt/1"}}), "Observation.subject",
              "not a valid reference")
    assert at(issues(validator, {**obs, "subject": {"reference": "Foo/1"}}), "Observation.subject",
              "'Foo' in reference 'Foo/1' is not a resource type")
    assert issues(validator, {**obs, "subject": {"reference": "https://fhir.example.org/Patient/1"}}) == []
    assert issues(validator, {**obs, "subject": {"reference": "urn:uuid:9d3c1a7e-1111-4f0b-9f3e-71a6c2d9b5e0"}}) == []


def test_contained_resources(validator: Validator) -> None:
    base = {"resourceType": "Observation", "status": "final", "code": {"text": "pijn"},
            "text": {"status": "generated", "div": DIV}}
    pat = {"resourceType": "Patient", "id": "pt"}
    assert issues(validator, {**base, "contained": [pat], "subject": {"reference": "#pt"}}) == []
    assert at(issues(validator, {**base, "contained": [pat]}), "Observation", "dom-3")
    assert at(issues(validator, {**base, "subject": {"reference": "#pt"}}), "Observation.subject", "ref-1")
    nested = {**pat, "contained": [{"resourceType": "Patient", "id": "x"}]}
    assert at(issues(validator, {**base, "contained": [nested], "subject": {"reference": "#pt"}}), "Observation",
              "dom-2")
    versioned = {**pat, "meta": {"versionId": "2"}}
    assert at(issues(validator, {**base, "contained": [versioned], "subject": {"reference": "#pt"}}), "Observation",
              "dom-4")
    # a contained resource may point back at its container with '#' (references.html#contained)
    group = {"resourceType": "Group", "id": "g", "type": "person", "actual": True,
             "characteristic": [{"code": {"text": "bron"}, "valueReference": {"reference": "#"}, "exclude": False}]}
    assert issues(validator, {**base, "contained": [group]}) == []
    wrong = {**base, "contained": [{"resourceType": "Medication", "id": "m"}], "subject": {"reference": "#m"}}
    assert at(issues(validator, wrong), "Observation.subject", "reference to a Medication")


def test_codes_of_code_systems_we_hold(validator: Validator) -> None:
    team = {"resourceType": "CareTeam", "status": "active", "text": {"status": "generated", "div": DIV},
            "participant": [{"role": [{"coding": [{"system": CONCEPTS_SYSTEM, "code": "no-such-role"}]}]}],
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                      "code": "NOPE"}]}]}
    found = issues(validator, team)
    assert at(found, "CareTeam.participant[0].role[0].coding[0]", "unknown code 'no-such-role'")
    assert at(found, "CareTeam.category[0].coding[0]", "unknown code 'NOPE'")


def test_narrative(validator: Validator) -> None:
    def with_div(div: str) -> list[tuple[str, str]]:
        return issues(validator, patient(text={"status": "generated", "div": div}))
    assert with_div('<div xmlns="http://www.w3.org/1999/xhtml"><p>Eva&nbsp;Jansen</p><img src="a.png"/></div>') == []
    assert at(with_div("<div><p>Eva</p></div>"), "Patient.text.div", "txt-1")
    assert at(with_div('<div xmlns="http://www.w3.org/1999/xhtml"><p onclick="x()">Eva</p></div>'),
              "Patient.text.div", "txt-1")
    assert at(with_div('<div xmlns="http://www.w3.org/1999/xhtml"><p>Eva</div>'), "Patient.text.div", "txt-1")
    assert at(with_div('<div xmlns="http://www.w3.org/1999/xhtml">  <p> </p></div>'), "Patient.text.div", "txt-2")
    assert at(issues(validator, {"resourceType": "Patient"}, "warning"), "Patient", "dom-6")


@pytest.mark.parametrize(("start", "end", "ok"), [
    ("2026-01-01", "2026-02-01", True), ("2026-02-01", "2026-01-01", False), ("2026", "2026-05-01", True),
    ("2026-06", "2026-05-31", False),
    ("2026-01-01T10:00:00+02:00", "2026-01-01T09:00:00Z", True), ("2026-01-01T10:00:00Z", "2026-01-01T09:00:00Z",
                                                                  False),
])
def test_periods(validator: Validator, start: str, end: str, ok: bool) -> None:
    found = issues(validator, patient(name=[{"family": "Jansen", "period": {"start": start, "end": end}}]))
    assert at(found, "Patient.name[0].period", "per-1") is not ok


def test_bundles(validator: Validator) -> None:
    pat = patient()
    obs = {"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "pijn"},
           "subject": {"reference": "Patient/p1"}, "text": {"status": "generated", "div": DIV}}
    base = "https://fhir.example.org/fhir/"
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": base + "Patient/p1", "resource": pat}, {"fullUrl": base + "Observation/o1", "resource": obs}]}
    assert issues(validator, bundle) == []
    twice = {**bundle, "entry": [bundle["entry"][0], bundle["entry"][0]]}
    assert at(issues(validator, twice), "Bundle", "bdl-7")
    wrong = {**bundle, "entry": [{**bundle["entry"][0], "request": {"method": "POST", "url": "Patient"}}]}
    assert at(issues(validator, wrong), "Bundle", "bdl-3")
    searchset = {**bundle, "total": 2}
    assert at(issues(validator, searchset), "Bundle", "bdl-1")
    history = {**bundle, "entry": [{"fullUrl": base + "Patient/p1/_history/2", "resource": pat}]}
    assert at(issues(validator, history), "Bundle.entry[0]", "bdl-8")


def test_a_document_must_hold_what_its_composition_references(validator: Validator) -> None:
    comp = {"resourceType": "Composition", "id": "c", "status": "final", "type": {"text": "overzicht"},
            "date": "2026-09-29", "title": "t",
            "author": [{"reference": "urn:uuid:0c5b5b1e-0000-4000-8000-000000000002"}],
            "subject": {"reference": "urn:uuid:0c5b5b1e-0000-4000-8000-000000000001"},
            "text": {"status": "generated", "div": DIV}}
    prac = {"resourceType": "Practitioner", "id": "pr", "text": {"status": "generated", "div": DIV}}
    obs = {"resourceType": "Observation", "id": "o", "status": "final", "code": {"text": "x"},
           "performer": [{"reference": "Practitioner/elders"}], "text": {"status": "generated", "div": DIV}}
    doc: dict[str, Any] = {"resourceType": "Bundle", "type": "document", "timestamp": "2026-09-29T12:00:00Z",
           "identifier": {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:0c5b5b1e-0000-4000-8000-000000000009"},
           "entry": [{"fullUrl": "urn:uuid:0c5b5b1e-0000-4000-8000-000000000000", "resource": comp},
                     {"fullUrl": "urn:uuid:0c5b5b1e-0000-4000-8000-000000000002", "resource": prac},
                     {"fullUrl": "urn:uuid:0c5b5b1e-0000-4000-8000-000000000003", "resource": obs}]}
    found = issues(validator, doc)
    assert at(found, "Bundle.entry[0].resource.subject", "does not resolve to an entry of this document"), found
    assert not at(found, "Bundle.entry[0].resource.author[0]", "does not resolve")
    assert at(issues(validator, doc, "warning"), "Bundle.entry[2].resource.performer[0]", "does not resolve")
    doc["entry"][0]["resource"]["author"] = [{"reference": "urn:uuid:0c5b5b1e-0000-4000-8000-000000000003"}]
    assert at(issues(validator, doc), "Bundle.entry[0].resource.author[0]", "reference resolves to a Observation")
