"""``alk-fhir fhirpath`` (issue 20) and the interpreter over patient records, beside the compiled facts.

The command evaluates with the engine behind ``alk_fhir.fhirpath.evaluate``; over a patient record it
has the facts' environment and host functions. The last test evaluates every fact definition of the
Library that way on every example record and requires the compiled fact's value (``recordpath``):
one semantics, whichever of the two evaluates a definition.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from alk_fhir import fhirpath
from alk_fhir.cli import main
from alk_fhir.context import build_context, compile_facts
from alk_fhir.context.facts import HOST_FUNCTIONS, fact_environment
from alk_fhir.knowledge import Package
from test_facts import CORPUS, _comparable, record

REPO = Path(__file__).resolve().parents[1]
PATIENT = REPO / "tests" / "fixtures" / "fhirpath-suite" / "patient-example.json"
RECORD = REPO / "examples" / "patients" / "patient-care-team-coordinator.json"


def cli(*args: str) -> Any:
    return CliRunner().invoke(main, ["fhirpath", *args])


def test_prints_the_result_as_json() -> None:
    result = cli("Patient.name.where(use = 'official').given", str(PATIENT))
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == ["Peter", "James"]


def test_without_a_file_and_with_variables() -> None:
    result = cli("%n * 2 + %d", "--var", "n=21", "--var", "d=0.5")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [42.5]
    text = cli("%who + '!'", "--var", "who=hallo")
    assert json.loads(text.output) == ["hallo!"]


def test_quantities_and_dates_as_json() -> None:
    result = cli("(Patient.birthDate + 1 year) | (5.5 'mg')", str(PATIENT))
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == ["1975-12-25", {"value": 5.5, "unit": "mg"}]


@pytest.mark.parametrize("expression, message", [
    ("conformsTo('http://hl7.org/fhir/StructureDefinition/Patient')",
     "unsupported FHIRPath construct: function conformsTo()"),
    ("Patient.name.given.", "not a FHIRPath expression"),
    ("@2015T +", "not a FHIRPath expression"),
])
def test_refuses_what_the_engine_does_not_implement_naming_it(expression: str, message: str) -> None:
    result = cli(expression, str(PATIENT))
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_an_execution_error_names_the_file() -> None:
    result = cli("Patient.name.single()", str(PATIENT))
    assert result.exit_code == 1
    assert "single() on more than one item" in result.output and str(PATIENT) in result.output


def test_bad_files_and_variables(tmp_path: Path) -> None:
    missing = cli("name", str(tmp_path / "nope.json"))
    assert missing.exit_code == 2 and "nope.json: cannot read" in missing.output
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    bad = cli("name", str(tmp_path / "bad.json"))
    assert bad.exit_code == 2 and "bad.json: not JSON" in bad.output
    (tmp_path / "plain.json").write_text("[1, 2]", encoding="utf-8")
    plain = cli("name", str(tmp_path / "plain.json"))
    assert plain.exit_code == 2 and "not a FHIR resource" in plain.output
    wrong = cli("%x", "--var", "x")
    assert wrong.exit_code == 2 and "expected name=value" in wrong.output


def test_a_patient_record_has_the_facts_environment() -> None:
    result = cli("%conditions.where(abatement.empty()).code.coding.code", str(RECORD), "--date", "2026-11-23")
    assert result.exit_code == 0, result.output
    codes = json.loads(result.output)
    assert codes and all(isinstance(c, str) for c in codes)
    fact = cli("%persistentAlk", str(RECORD), "--date", "2026-11-23")
    assert json.loads(fact.output) == [True]
    focus = cli("name.family", str(RECORD), "--date", "2026-11-23")
    assert json.loads(focus.output) == ["Hendriks"]


def test_over_a_record_names_what_the_facts_compiler_refuses() -> None:
    result = CliRunner().invoke(
        main, ["fhirpath", "%conditions.code.coding.code.first().is(code)", str(RECORD), "--date", "2026-11-23"])
    assert result.exit_code == 0, result.output
    assert "refused by the facts compiler (recordpath): function is/1" in result.stderr
    fine = CliRunner().invoke(
        main, ["fhirpath", "%conditions.count()", str(RECORD), "--date", "2026-11-23"])
    assert fine.exit_code == 0 and fine.stderr == ""


@pytest.mark.parametrize("name", CORPUS)
def test_the_interpreter_agrees_with_every_compiled_fact(package: Package, name: str) -> None:
    ctx = build_context(record(name), package, date(2026, 11, 23))
    env = fact_environment(ctx)
    compared = 0
    for fact in compile_facts(package).facts:
        try:
            ours = fhirpath.evaluate(fact.expression, ctx.patient, env, HOST_FUNCTIONS)
        except fhirpath.Unsupported:
            continue
        compiled = ctx.facts[fact.name]
        compiled = compiled if isinstance(compiled, list) else [compiled]
        assert _comparable(ours) == _comparable(compiled), fact.name
        compared += 1
    assert compared >= len(compile_facts(package).facts) * 0.9
