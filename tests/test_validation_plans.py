"""What the validator's compiled plans must keep doing: the compiled fixed/pattern comparisons mean
exactly ``patterns.equal``/``patterns.matches``, and slicing finds an item's slice through its
index (slices filed by discriminator value) the way trying every slice in order would — first
matching slice in definition order, a filed value that is not enough to match, slices that cannot
be filed (required binding), malformed values where a code was expected."""

from __future__ import annotations

import calendar
import copy
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alk_fhir.config import REPO_ROOT
from alk_fhir.knowledge import Package
from alk_fhir.knowledge.canonical import CONCEPTS_SYSTEM
from alk_fhir.validation import Validator, build_validator, patterns, primitives, xhtml

GUIDELINE_SYSTEM = "https://alk-fhir.org/fhir/CodeSystem/alk-guideline"
OVERVIEW = "https://alk-fhir.org/fhir/StructureDefinition/alk-case-overview"

scalars = st.one_of(st.none(), st.booleans(), st.sampled_from([0, 1, 2, -1, 0.0, 1.0, 1.5]),
                    st.sampled_from(["", "a", "b", "1", CONCEPTS_SYSTEM]))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.sampled_from(["system", "code", "coding", "value", "text"]), inner, max_size=3)),
    max_leaves=12)


@st.composite
def pattern_and_value(draw: st.DrawFn) -> tuple[Any, Any]:
    """A pattern and a value that often matches it: the pattern itself, the pattern with more
    properties/items, or anything."""
    pattern = draw(json_values)
    kind = draw(st.sampled_from(["same", "more", "other"]))
    if kind == "other":
        return pattern, draw(json_values)
    value = copy.deepcopy(pattern)
    if kind == "more" and isinstance(value, dict):
        value[draw(st.sampled_from(["display", "code", "x"]))] = draw(json_values)
    elif kind == "more" and isinstance(value, list):
        value.insert(draw(st.integers(0, len(value))), draw(json_values))
    return pattern, value


@settings(max_examples=300, deadline=None, database=None, derandomize=True)
@given(pattern_and_value())
def test_compiled_pattern_and_fixed_mean_matches_and_equal(pair: tuple[Any, Any]) -> None:
    pattern, value = pair
    assert patterns.compile_pattern(pattern)(value) is patterns.matches(value, pattern)
    assert patterns.compile_equal(pattern)(value) is patterns.equal(value, pattern)


def test_booleans_never_equal_numbers_in_patterns() -> None:
    assert not patterns.compile_pattern({"value": 1})({"value": True})
    assert not patterns.compile_equal(0)(False)
    assert patterns.compile_pattern({"value": True})({"value": True, "x": 1})


@pytest.fixture(scope="module")
def validator(package: Package, core_dir: Path) -> Validator:
    return build_validator(package, core_dir)


def example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((REPO_ROOT / "examples" / "profiles" / name).read_text(encoding="utf-8"))
    return data


def errors(validator: Validator, resource: dict[str, Any]) -> list[tuple[str, str, str]]:
    outcome = validator.validate(resource)
    return [(i["code"], ", ".join(i.get("expression", [])), i["diagnostics"]) for i in outcome["issue"]
            if i["severity"] == "error"]


def section_code(concept: str, guideline: str) -> list[dict[str, str]]:
    return [{"system": CONCEPTS_SYSTEM, "code": concept}, {"system": GUIDELINE_SYSTEM, "code": guideline}]


def test_overview_examples_hold(validator: Validator) -> None:
    assert errors(validator, example("alk-case-overview-example.json")) == []
    assert errors(validator, example("alk-assessment-example.json")) == []


def test_an_item_in_two_slices_goes_to_the_first_in_definition_order(validator: Validator) -> None:
    """section[3] carries the medication codes first and the complaints codes after them: it is in
    'complaints' (defined before 'medication'), so 'complaints' has two and 'medication' none."""
    composition = example("alk-case-overview-example.json")
    section = composition["section"][3]
    assert section["code"]["coding"][0]["code"] == "overview-medication"
    section["code"]["coding"] += section_code("overview-complaints", "1.1")
    assert sorted(errors(validator, composition)) == [
        ("required", "Composition.section", "slice 'medication': minimum required = 1, but only found 0"),
        ("structure", "Composition.section", "slice 'complaints': at most 1 allowed, found 2"),
    ]


def test_a_filed_code_alone_does_not_make_a_match(validator: Validator) -> None:
    """The concept code files section[0] under 'complaints', but the slice's pattern also asks for
    guideline section 1.1: without it the section is in no slice, and the slicing is closed."""
    composition = example("alk-case-overview-example.json")
    composition["section"][0]["code"]["coding"] = [{"system": CONCEPTS_SYSTEM, "code": "overview-complaints"}]
    closed = f"section[0] matches none of the slices of {OVERVIEW} Composition.section (closed slicing)"
    assert sorted(errors(validator, composition)) == [
        ("required", "Composition.section", "slice 'complaints': minimum required = 1, but only found 0"),
        ("structure", "Composition.section[0]", closed),
    ]


@pytest.mark.parametrize("coding", [
    [{"system": {"not": "a string"}, "code": "overview-complaints"}],
    [{"system": [CONCEPTS_SYSTEM], "code": "overview-complaints"}],
    "overview-complaints",
])
def test_malformed_codings_in_a_sliced_element_are_reported_not_raised(validator: Validator, coding: Any) -> None:
    composition = example("alk-case-overview-example.json")
    composition["section"][0]["code"]["coding"] = coding
    found = errors(validator, composition)
    assert ("required", "Composition.section", "slice 'complaints': minimum required = 1, but only found 0") in found
    assert any(e.startswith("Composition.section[0].code.coding") and c == "structure" for c, e, _ in found) or any(
        e == "Composition.section[0]" and "closed slicing" in d for _, e, d in found), found


def test_slices_by_binding_and_by_pattern_side_by_side(validator: Validator) -> None:
    """Observation.component: criterion1..3 are filed by their pattern, 'features' (a required
    binding) is tried for every component; a feature code lands in 'features', a criterion code in
    its criterion slice, a code in neither in no slice (open slicing: no error for that)."""
    obs = example("alk-assessment-example.json")
    feature = copy.deepcopy(obs["component"][3])
    obs["component"] = [*obs["component"][:3], feature, copy.deepcopy(obs["component"][0])]
    assert errors(validator, obs) == [
        ("structure", "Observation.component", "slice 'criterion1': at most 1 allowed, found 2")]
    obs["component"][0]["code"]["coding"][0]["code"] = "criterion-9"
    found = errors(validator, obs)
    assert ("structure", "Observation.component", "slice 'criterion1': at most 1 allowed, found 2") not in found
    assert not any("criterion1" in d for _, _, d in found), found


def test_extension_slices_by_url(validator: Validator) -> None:
    """The extension is in slice 'evidence' by its url and checked against alk-evidence, which
    allows a Reference value only."""
    obs = example("alk-assessment-example.json")
    evidence = obs["component"][0]["extension"][0]
    evidence["valueString"] = evidence.pop("valueReference")["reference"]
    where = "Observation.component[0].extension[0]"
    assert errors(validator, obs) == [
        ("structure", f"{where}.valueString", "unknown element 'valueString'"),
        ("required", f"{where}.value", "value: minimum required = 1, but only found 0"),
    ]


def test_printable_strings_have_no_whitespace_but_the_space_and_no_control_characters() -> None:
    """What primitives._IMPLIED_BY_PRINTABLE rests on, checked over every code point."""
    space = re.compile(r"\s")
    for c in map(chr, range(sys.maxunicode + 1)):
        assert bool(space.match(c)) == c.isspace()
        if c.isprintable():
            assert c == " " or not c.isspace(), hex(ord(c))
            assert primitives._CONTROL.match(c) is None, hex(ord(c))


@pytest.fixture(scope="module")
def regexes(validator: Validator) -> dict[str, re.Pattern[str]]:
    return validator.compiler.regexes


characters = st.sampled_from(["a", "Z", "0", "-", ".", "/", ":", " ", "\t", "\n", "\r", "\x01", "\x1f", "\x0b",
                              "\u00a0", "\u2028", "\u200b", "é", "😀"])


@settings(max_examples=500, deadline=None, database=None, derandomize=True)
@given(st.lists(characters, min_size=1, max_size=8).map("".join))
def test_the_printable_shortcut_accepts_only_what_the_regex_and_the_control_check_accept(
        regexes: dict[str, re.Pattern[str]], value: str) -> None:
    for code in ("string", "markdown", "uri", "url", "canonical", "code"):
        pattern = regexes[code]
        implied = primitives._IMPLIED_BY_PRINTABLE.get(pattern.pattern)
        assert implied is not None, f"{code}: the published regex is not the one the shortcut was written for"
        if implied(value):
            assert pattern.fullmatch(value) is not None and primitives._CONTROL.search(value) is None, (code, value)
        slow = None if pattern.fullmatch(value) and not primitives._CONTROL.search(value) else "invalid"
        assert (primitives.primitive_checker(code, regexes)(value) is None) == (slow is None), (code, value)


def test_real_dates_follow_the_calendar() -> None:
    for year in (1900, 2000, 2023, 2024):
        for month in range(1, 13):
            last = calendar.monthrange(year, month)[1]
            assert primitives._real_date(f"{year}-{month:02d}-{last:02d}")
            assert not primitives._real_date(f"{year}-{month:02d}-{last + 1:02d}")


CONDITION = {"resourceType": "Condition", "id": "c", "subject": {"reference": "Patient/p"},
             "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>'}}
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"


@pytest.mark.parametrize(("fields", "expected"), [
    ({"clinicalStatus": {"coding": [{"system": CLINICAL, "code": {"x": 1}}]}},
     ("Condition.clinicalStatus.coding[0].code", "expected a JSON string for a code, got dict")),
    ({"clinicalStatus": {"coding": None}},
     ("Condition.clinicalStatus.coding", "'coding' repeats and must be a JSON array")),
    ({"verificationStatus": {"coding": [{"system": ["a"], "code": "confirmed"}]}},
     ("Condition.verificationStatus.coding[0].system", "'system' does not repeat and must not be an array")),
    ({"onsetPeriod": {"start": "2026-13-01", "end": "2026-12-01"}},
     ("Condition.onset.ofType(Period)", "per-1: If present, start SHALL have a lower value than end")),
    ({"onsetPeriod": {"start": "2026-01-01T25:00:00Z", "end": "2026-12-01"}},
     ("Condition.onset.ofType(Period).start", "'2026-01-01T25:00:00Z' is not a valid dateTime")),
])
def test_malformed_values_are_reported_where_checks_used_to_raise(
        validator: Validator, fields: dict[str, Any], expected: tuple[str, str]) -> None:
    """Bindings, per-1 and FHIRPath comparisons met objects, arrays and impossible dates that the
    walk reports, and raised TypeError/ValueError (a 500 at the API) instead of returning."""
    found = [(e, d) for _, e, d in errors(validator, {**CONDITION, **fields})]
    assert expected in found, found


def test_a_comparison_with_an_object_is_an_unevaluable_invariant(validator: Validator) -> None:
    request = {"resourceType": "ServiceRequest", "id": "s", "status": "active", "intent": "order",
               "subject": {"reference": "Patient/p"}, "text": CONDITION["text"],
               "occurrenceTiming": {"repeat": {"duration": {"x": 1}, "durationUnit": "h"}}}
    found = errors(validator, request)
    where = "ServiceRequest.occurrence.ofType(Timing).repeat"
    assert ("value", f"{where}.duration", "expected a JSON number for a decimal, got dict") in found
    assert any(e == where and d.startswith("tim-4:") and "could not be evaluated" in d for _, e, d in found), found


def test_a_reference_to_an_entry_whose_resource_type_is_an_object(validator: Validator) -> None:
    odd = "urn:uuid:7b7e5f55-0000-4000-8000-000000000001"
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": odd, "resource": {"resourceType": {"x": 1}, "id": "o"}},
        {"fullUrl": "urn:uuid:7b7e5f55-0000-4000-8000-000000000002",
         "resource": {**CONDITION, "subject": {"reference": odd}}}]}
    found = errors(validator, bundle)
    assert ("structure", "Bundle.entry[0].resource", "resourceType is missing") in found
    assert ("invalid", "Bundle.entry[1].resource.subject",
            "reference resolves to a {'x': 1}; allowed here: Group | Patient") in found, found


def test_primitive_array_items_are_each_bound_and_located(validator: Validator) -> None:
    """A primitive array checked in the walk: each item's binding, with the item's index, and a
    null kept by its '_' part."""
    param = {"resourceType": "SearchParameter", "id": "sp", "url": "http://example.org/sp", "name": "sp",
             "status": "active", "description": "d", "code": "sp", "type": "token", "text": CONDITION["text"],
             "base": ["Patient", "Nope", None, "Observation"], "_base": [None, None, {"id": "b2"}, None]}
    found = errors(validator, param)
    assert found == [("code-invalid", "SearchParameter.base[1]", "the value 'Nope' is not in the value set "
                      "http://hl7.org/fhir/ValueSet/resource-types (required binding)"),
                     ("invariant", "SearchParameter.base[2]", "ele-1: All FHIR elements must have a @value or children")
                     ], found  # a '_' part with only an id is still an element without value or children
    del param["_base"]
    found = errors(validator, param)
    assert ("structure", "SearchParameter.base[2]", "'base' has a null without a matching '_base' entry "
            "(json.html: null only keeps arrays aligned)") in found, found


@pytest.mark.parametrize(("resource", "canonical"), [
    ({"resourceType": "Task", "status": "requested", "intent": "order"}, {"instantiatesCanonical": "#pd"}),
    ({"resourceType": "CarePlan", "status": "active", "intent": "plan", "subject": {"reference": "Patient/p"}},
     {"instantiatesCanonical": ["http://example.org/x", "#pd"]}),
])
def test_local_canonicals_recorded_in_the_walk_count_for_dom3(
        validator: Validator, resource: dict[str, Any], canonical: dict[str, Any]) -> None:
    """A '#id' canonical (single or in an array, not only a Reference) refers to a contained
    resource (dom-3)."""
    rtype = resource["resourceType"]
    resource = {**resource, "id": "r", "text": CONDITION["text"],
                "contained": [{"resourceType": "PlanDefinition", "id": "pd", "status": "active"}]}
    dom3 = [e for e in errors(validator, resource) if e[2].startswith("dom-3")]
    assert [e for _, e, _ in dom3] == [rtype], dom3
    found = errors(validator, {**resource, **canonical})
    assert not [e for e in found if e[2].startswith("dom-3")], found


texts = st.one_of(
    st.sampled_from(["Klacht.", "a", " ", "\n  ", ""]),
    st.lists(st.sampled_from(["a", " ", "\t", "\n", "\r", "\x01", "\x0b", "\u00a0", ">", "]]>", "]]", "&amp;", "&nbsp;",
                              "&#160;", "&", "é", "\ud800", "\ufffe"]), max_size=3).map("".join))
tags = st.sampled_from(["p", "b", "br", "img", "div", "span", "h1", "script", "P", "x1", "table"])


@st.composite
def narrative_body(draw: st.DrawFn, depth: int = 0) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["text", "element", "empty", "odd"] if depth < 3 else ["text", "empty"]))
        tag = draw(tags)
        if kind == "text":
            parts.append(draw(texts))
        elif kind == "element":
            close = draw(st.sampled_from([tag, tag, "p", ""]))
            parts.append(f"<{tag}>{draw(narrative_body(depth + 1))}" + (f"</{close}>" if close else ""))
        elif kind == "empty":
            parts.append(draw(st.sampled_from([f"<{tag}/>", f"<{tag} />", f'<{tag} class="x"/>'])))
        else:
            parts.append(draw(st.sampled_from(["<!-- c -->", "<![CDATA[x]]>", "</p/>", "<p onclick='x'>y</p>", "<"])))
    return "".join(parts)


@settings(max_examples=1500, deadline=None, database=None, derandomize=True)
@given(st.sampled_from(['<div xmlns="http://www.w3.org/1999/xhtml">', "<div>", ' <div xmlns="http://www.w3.org/1999/xhtml">',
                        '<div xmlns="http://www.w3.org/1999/xhtml" lang="nl">', "<p xmlns=\"http://www.w3.org/1999/xhtml\">"]),
       narrative_body(), st.sampled_from(["</div>", "</div> ", "</p>", ""]))
def test_the_simple_narrative_reading_answers_as_the_xml_parser(root: str, body: str, end: str) -> None:
    div = root + body + end
    assert xhtml.html_problems(div) == xhtml._parsed_problems(div), div


def test_a_lone_surrogate_in_a_narrative_is_reported(validator: Validator) -> None:
    """JSON can carry "\\ud800"; ElementTree raised UnicodeEncodeError on it (a 500 at the API)."""
    found = errors(validator, {**CONDITION, "text": {"status": "generated",
                                                     "div": '<div xmlns="http://www.w3.org/1999/xhtml">a\ud800</div>'}})
    assert [(c, e, d[:6]) for c, e, d in found] == [("invariant", "Condition.text.div", "txt-1:")], found
    assert xhtml.html_problems('<div xmlns="http://www.w3.org/1999/xhtml">a\ud800</div>') == (
        "the narrative is not well-formed XHTML: character U+D800 at position 43 is not allowed in XML", None)
