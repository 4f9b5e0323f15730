"""The HL7 FHIRPath R4 test suite (vendored in tests/fixtures/fhirpath-suite/) as data, and a runner
that classifies each case for an engine: passed, refused at compile time (with the construct named),
or failed (a wrong answer, an error where an answer was due, or a crash).

Used by tests/test_fhirpath_suite.py (which fails the build on any failure) and by
``python -m tests.fhirpath_suite`` (prints the figures the README gives).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

SUITE_DIR = Path(__file__).parent / "fixtures" / "fhirpath-suite"

# Cases where the suite and the FHIRPath N1 specification (http://hl7.org/fhirpath/N1) disagree:
# we follow the specification. name -> (expected outputs as (type, text) pairs, or None for "an error", reason)
SPEC_OVERRIDES: dict[str, tuple[list[tuple[str, str]] | None, str]] = {
    "testPlusDate19": (
        [("dateTime", "@1973-12-25T00:00:00.100+10:00")],
        "N1 §6.6.1: only for precisions above seconds is the decimal part of a time-valued quantity "
        "ignored; 0.1 's' adds 100 milliseconds",
    ),
    "testFHIRPathAsFunction11": (
        [("code", "male")],
        "N1 §6.3.2 (as): the value is returned when it is of the type 'or a subclass thereof'; FHIR "
        "code specialises string (its StructureDefinition's baseDefinition), and the suite's own "
        "testFHIRPathIsFunction2 has Patient.gender.is(string) true",
    ),
    "HighBoundaryDateTimeMillisecond1": (
        [("dateTime", "@2014-01-01T08:59:59.999-12:00")],
        "FHIRPath 2.1 highBoundary() (not in N1): the greatest value the input may stand for; the hour "
        "08 ends at 08:59:59.999, the suite fills the minutes with 00 (while it fills seconds with 59)",
    ),
    "HighBoundaryDateTimeMillisecond3": (
        [("dateTime", "@2014-01-01T08:59:59.999-12:00")],
        "FHIRPath 2.1 highBoundary() (not in N1): as HighBoundaryDateTimeMillisecond1",
    ),
    "testFHIRPathAsFunction16": (
        [("code", "male")],
        "N1 §5.2.4 (ofType): items of the type 'or a subclass thereof'; code specialises string, as "
        "for testFHIRPathAsFunction11",
    ),
}


@dataclass
class Case:
    name: str
    group: str
    expression: str
    inputfile: str | None
    outputs: list[tuple[str, str]]
    invalid: str | None
    mode: str | None
    predicate: bool
    ordered: bool = True


@dataclass
class Outcome:
    passed: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # name -> construct
    failed: dict[str, str] = field(default_factory=dict)  # name -> what went wrong
    crashed: dict[str, str] = field(default_factory=dict)


def cases() -> list[Case]:
    root = ET.parse(SUITE_DIR / "tests-fhir-r4.xml").getroot()
    out: list[Case] = []
    seen: set[str] = set()
    for group in root.iter("group"):
        for test in group.findall("test"):
            expr = test.find("expression")
            assert expr is not None
            outputs = [(o.get("type") or _untyped_output(o.text or ""), o.text or "") for o in test.findall("output")]
            name = test.get("name", "")
            if name in seen:  # the suite names testEquivalent23 twice
                name += "#2"
            seen.add(name)
            out.append(Case(
                name=name, group=group.get("name", ""), expression=expr.text or "",
                inputfile=test.get("inputfile"), outputs=outputs, invalid=expr.get("invalid"),
                mode=test.get("mode"), predicate=test.get("predicate") == "true",
                ordered=test.get("ordered") != "false",
            ))
    return out


def _untyped_output(text: str) -> str:
    """The type of an output the suite writes without one (the boundary and comparable cases)."""
    if text in ("true", "false"):
        return "boolean"
    if text.startswith("@T"):
        return "time"
    if text.startswith("@"):
        return "date-or-dateTime"
    if "'" in text:
        return "Quantity"
    return "decimal"


@lru_cache(maxsize=32)
def _input_text(name: str) -> str:
    json_name = name.rsplit(".", 1)[0] + ".json"
    return (SUITE_DIR / json_name).read_text(encoding="utf-8")


def load_input(name: str | None) -> Any:
    if name is None:
        return None
    return json.loads(_input_text(name), parse_float=Decimal)


Describe = Callable[[Any], tuple[str, str]]
Engine = Callable[[Case, Any], list[Any]]  # compiles (raising Unsupported/syntax errors) then evaluates


def _same(expected: tuple[str, str], got: tuple[str, str]) -> bool:
    etype, etext = expected
    gtype, gtext = got
    if etype == "decimal":
        if gtype not in ("decimal", "integer"):
            return False
        return Decimal(etext) == Decimal(gtext)
    if etype in ("string", "code", "id", "uri") and gtype != "record-string":
        return gtype in ("string", "code", "id", "uri") and etext == gtext
    if etype == "date-or-dateTime":  # a boundary written without its type: a date or a dateTime
        return gtype in ("date", "dateTime") and etext == gtext
    if etype == "Quantity" and gtype == "Quantity":  # the same value at its written precision
        (ev, eu), (gv, gu) = etext.split(" ", 1), gtext.split(" ", 1)
        return eu == gu and ev == gv
    if gtype == "record-string":  # an untyped engine's date or time: the text of a JSON string
        if etype in ("string", "code", "id", "uri"):
            return etext == gtext
        return etype in ("date", "dateTime", "time") and etext.strip().lstrip("@").lstrip("T") == gtext
    return (etype, etext.strip()) == (gtype, gtext)


def run_suite(compile_case: Callable[[Case], Callable[[Any], list[Any]]], describe: Describe,
              refusal: type[Exception], syntax_error: type[Exception], evaluation_error: type[Exception],
              ) -> Outcome:
    """Classify every case: refusals must come from compiling, never from evaluating."""
    outcome = Outcome()
    for case in cases():
        expected: list[tuple[str, str]] | None = None if case.invalid else case.outputs
        if case.name in SPEC_OVERRIDES:
            expected = SPEC_OVERRIDES[case.name][0]
        try:
            run = compile_case(case)
        except refusal as exc:
            outcome.refused[case.name] = str(exc)
            continue
        except syntax_error as exc:
            if expected is None:
                outcome.passed.append(case.name)
            else:
                outcome.failed[case.name] = f"syntax error: {exc}"
            continue
        except Exception as exc:  # a crash of the compiler
            outcome.crashed[case.name] = f"compiling: {type(exc).__name__}: {exc}"
            continue
        try:
            result = run(load_input(case.inputfile))
        except evaluation_error as exc:
            if expected is None:
                outcome.passed.append(case.name)
            else:
                outcome.failed[case.name] = f"evaluation error: {exc}"
            continue
        except Exception as exc:  # anything else is a crash, reported as such
            outcome.crashed[case.name] = f"{type(exc).__name__}: {exc}"
            continue
        if expected is None:
            outcome.failed[case.name] = f"expected an error, got {result!r}"
            continue
        got = [("boolean", "true" if result else "false")] if case.predicate else [describe(i) for i in result]
        exp = list(expected)
        ok = len(got) == len(exp) and (
            all(_same(e, g) for e, g in zip(exp, got, strict=True)) if case.ordered
            else all(any(_same(e, g) for g in got) for e in exp))
        if ok:
            outcome.passed.append(case.name)
        else:
            outcome.failed[case.name] = f"expected {exp}, got {got}"
    return outcome


def our_engine() -> Outcome:
    """The suite through ``alk_fhir.fhirpath`` (the engine behind ``evaluate``)."""
    from alk_fhir import fhirpath
    from alk_fhir.fhirpath.engine import Node, value_of
    from alk_fhir.fhirpath.values import FDate, FDateTime, FTime, Quantity, decimal_text, quantity_text

    def describe(item: Any) -> tuple[str, str]:
        if isinstance(item, Node):
            v = value_of(item)
            fhir_type = item.type or ""
            if isinstance(v, dict):
                return fhir_type or "element", json.dumps(v, default=str)
            if fhir_type in ("code", "id", "uri", "string", "markdown"):
                return fhir_type, str(v)
        else:
            v = item
        if type(v) is bool:
            return "boolean", "true" if v else "false"
        if type(v) is int:
            return "integer", str(v)
        if isinstance(v, Decimal):
            return "decimal", decimal_text(v)
        if isinstance(v, str):
            return "string", v
        if isinstance(v, FDate):
            return "date", "@" + v.text()
        if isinstance(v, FDateTime):
            return "dateTime", "@" + v.text()
        if isinstance(v, FTime):
            return "time", "@T" + v.text()
        if isinstance(v, Quantity):
            return "Quantity", quantity_text(v)
        return type(v).__name__, repr(v)

    def compile_case(case: Case) -> Callable[[Any], list[Any]]:
        run = fhirpath.compile_fhirpath(case.expression, strict=case.mode == "strict")
        return lambda resource: run(resource, None)

    return run_suite(compile_case, describe, fhirpath.Unsupported, fhirpath.FHIRPathSyntaxError,
                     fhirpath.FHIRPathEvaluationError)


def _describe_raw(v: Any) -> tuple[str, str]:
    """A value of the generators that work on raw JSON (``recordpath``, ``fastpath``)."""
    from alk_fhir.fhirpath.values import decimal_text
    if type(v) is bool:
        return "boolean", "true" if v else "false"
    if type(v) is int:
        return "integer", str(v)
    if isinstance(v, (Decimal, float)):
        return "decimal", decimal_text(Decimal(str(v)))
    if isinstance(v, str):
        return ("record-string", v) if v[:1].isdigit() and len(v) >= 4 else ("string", v)
    if isinstance(v, dict):
        return "element", json.dumps(v, default=str)
    return type(v).__name__, repr(v)


class _CompileError(Exception):
    """The parser of the generators (fhirpathpy's) rejected the text."""


def recordpath_engine() -> Outcome:
    """The suite through ``recordpath`` (the facts' code generator), over the raw JSON."""
    from alk_fhir import recordpath

    def compile_case(case: Case) -> Callable[[Any], list[Any]]:
        if case.mode == "strict":
            raise recordpath.Unsupported("strict mode (checking paths against the model at compile time)")
        try:
            fn = recordpath.compile_record_expression(case.expression, set(), {})
        except recordpath.Unsupported:
            raise
        except Exception as exc:
            raise _CompileError(str(exc)) from exc
        return lambda resource: fn([resource] if resource is not None else [], {})

    return run_suite(compile_case, _describe_raw, recordpath.Unsupported, _CompileError, ValueError)


class _Refused(Exception):
    """fastpath answers None for what it does not compile."""


def fastpath_engine() -> Outcome:
    """The suite through ``fastpath`` (invariants and plan conditions), typed by the input resource."""
    from alk_fhir import fastpath

    def compile_case(case: Case) -> Callable[[Any], list[Any]]:
        if case.mode == "strict":
            raise _Refused("strict mode (checking paths against the model at compile time)")
        resource = load_input(case.inputfile)
        type_path = resource["resourceType"] if resource else "Patient"
        fn = fastpath.compile_fast(case.expression, type_path, {})
        if fn is None:
            raise _Refused("outside the compiled subset")
        return lambda resource: fn([resource] if resource is not None else [], {"resource": resource})

    return run_suite(compile_case, _describe_raw, _Refused, _CompileError, ValueError)


ENGINES = {"ours": our_engine, "recordpath": recordpath_engine, "fastpath": fastpath_engine}


def main() -> None:
    import sys
    engine = sys.argv[1] if len(sys.argv) > 1 else "ours"
    outcome = ENGINES[engine]()
    total = len(cases())
    print(f"{total} cases: {len(outcome.passed)} passed, {len(outcome.refused)} refused at compile time, "
          f"{len(outcome.failed)} failed, {len(outcome.crashed)} crashed")
    for name, why in outcome.failed.items():
        print("FAILED ", name, why)
    for name, why in outcome.crashed.items():
        print("CRASHED", name, why)
    refusals: dict[str, int] = {}
    for why in outcome.refused.values():
        refusals[why] = refusals.get(why, 0) + 1
    for why, n in sorted(refusals.items(), key=lambda kv: -kv[1]):
        print(f"refused {n:4d}  {why}")


if __name__ == "__main__":
    main()
