"""The official HL7 FHIRPath R4 suite (tests/fixtures/fhirpath-suite/) through our engine.

Every case is passed, refused at compile time (the construct named), or failed; a failure (a wrong
answer, an error where an answer was due, no error where one was due) or a crash fails the build.
Where the suite and the FHIRPath N1 specification disagree we follow the specification; those cases
are listed with the reason in ``tests/fhirpath_suite.py`` (``SPEC_OVERRIDES``).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

_HERE = Path(__file__).parent
_spec = importlib.util.spec_from_file_location("fhirpath_suite", _HERE / "fhirpath_suite.py")
assert _spec is not None and _spec.loader is not None
suite = importlib.util.module_from_spec(_spec)
sys.modules["fhirpath_suite"] = suite
_spec.loader.exec_module(suite)


@pytest.fixture(scope="module")
def outcome() -> suite.Outcome:
    return suite.our_engine()


def test_the_suite_is_complete() -> None:
    cases = suite.cases()
    assert len(cases) == 935
    assert len({c.name for c in cases}) == len(cases)
    for name in {c.inputfile for c in cases if c.inputfile}:
        assert suite.load_input(name)["resourceType"]


def test_no_wrong_answer_and_no_crash(outcome: suite.Outcome) -> None:
    assert outcome.crashed == {}
    assert outcome.failed == {}


def test_passes_at_least_as_many_cases_as_fhirpathpy(outcome: suite.Outcome) -> None:
    assert len(outcome.passed) >= 763  # fhirpathpy 2.2.4, the engine this one replaces
    assert len(outcome.passed) + len(outcome.refused) == 935


def test_every_refusal_names_the_construct(outcome: suite.Outcome) -> None:
    for name, why in outcome.refused.items():
        assert why.strip(), name
        assert any(word in why for word in ("function", "strict mode", "operator", "type")), (name, why)


def test_spec_overrides_name_existing_cases_and_pass(outcome: suite.Outcome) -> None:
    names = {c.name for c in suite.cases()}
    for name, (_, reason) in suite.SPEC_OVERRIDES.items():
        assert name in names
        assert "N1" in reason or "FHIRPath 2.1" in reason
        assert name in outcome.passed


@pytest.mark.skipif(not suite.SUITE_DIR.joinpath("xml2json.py").exists(), reason="converter missing")
def test_json_inputs_equal_a_fresh_conversion_of_the_xml() -> None:
    spec = importlib.util.spec_from_file_location("xml2json", suite.SUITE_DIR / "xml2json.py")
    assert spec is not None and spec.loader is not None
    converter = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(converter)
    if not converter.CORE.exists():
        pytest.skip("the R4 core package is not installed (make install-dev)")
    for source in sorted((suite.SUITE_DIR / "xml").glob("*.xml")):
        fresh = converter.convert(source.read_text(encoding="utf-8"))
        committed = (suite.SUITE_DIR / (source.stem + ".json")).read_text(encoding="utf-8")
        assert json.loads(fresh) == json.loads(committed), source.name


@pytest.mark.parametrize("engine", ["recordpath", "fastpath"])
def test_the_code_generators_never_answer_wrong(engine: str) -> None:
    """The generators behind the facts (``recordpath``, untyped records) and behind invariants and
    plan conditions (``fastpath``) share the parser and the operators: on the suite they answer right
    or refuse at compile time, never wrong."""
    outcome = suite.ENGINES[engine]()
    assert outcome.crashed == {}
    assert outcome.failed == {}
    assert len(outcome.passed) > {"recordpath": 350, "fastpath": 180}[engine]


@pytest.mark.parametrize("expression, expected", [
    ("Patient.telecom.where(period.empty()).value", ["(03) 5555 6473", "(03) 3410 5613"]),
    ("Patient.name.all(period.empty())", [False]),
    ("iif(Patient.name.where(use = 'nickname').empty(), 'none', 'some')", ["none"]),
    ("(1 | 2 | 3).aggregate(iif($total.empty(), $this, $total + $this))", [6]),
    ("@2015T.is(DateTime)", [True]),
    ("'a' + 'b'", ["ab"]),
    ("7 days = 1 week", [True]),
    ("1 year = 1 'a'", []),
    ("@2012-04-15T15:00:00+02:00 = @2012-04-15T16:00:00+03:00", [True]),
    ("@2012-04-15T15:30:31 = @2012-04-15T15:30:31.1", [False]),
    ("@1973-12-25 + 7.7 days", ["1974-01-01"]),
    ("'a\\nb'.matches('a.b')", [True]),
    ("'P\\u0065ter' = 'Peter'", [True]),
    ("Patient.name.repeat('x')", ["x"]),
])
def test_the_wrong_answers_named_in_issue_20(expression: str, expected: list[object]) -> None:
    from alk_fhir import fhirpath
    patient = suite.load_input("patient-example.xml")
    assert fhirpath.evaluate(expression, patient) == expected


def test_refusals_happen_before_evaluation() -> None:
    from alk_fhir import fhirpath
    with pytest.raises(fhirpath.Unsupported, match="conformsTo"):
        fhirpath.compile_fhirpath("conformsTo('http://hl7.org/fhir/StructureDefinition/Patient')")
    with pytest.raises(fhirpath.FHIRPathSyntaxError):
        fhirpath.compile_fhirpath("Patient.name.given.")
    with pytest.raises(fhirpath.FHIRPathSyntaxError):
        fhirpath.compile_fhirpath("@2015-01-01 @2016")  # a tail is never dropped
