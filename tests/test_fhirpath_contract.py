"""The public contract of ``alk_fhir.fhirpath`` (issue 20): ``evaluate(expression, resource,
variables) -> list`` of plain Python values, ``Unsupported`` before evaluation, host functions."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from alk_fhir import fhirpath

OBS: dict[str, Any] = {
    "resourceType": "Observation", "id": "o", "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
    "valueQuantity": {"value": 72.5, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"},
    "effectiveDateTime": "2026-11-20T10:00:00+01:00",
}


def test_values_come_back_as_python_values() -> None:
    assert fhirpath.evaluate("status", OBS) == ["final"]
    assert fhirpath.evaluate("effective", OBS) == ["2026-11-20T10:00:00+01:00"]  # dates as their text
    assert fhirpath.evaluate("value.value", OBS) == [Decimal("72.5")]
    assert fhirpath.evaluate("code.coding.count()", OBS) == [1]
    assert fhirpath.evaluate("code", OBS) == [OBS["code"]]  # elements as dicts
    (q,) = fhirpath.evaluate("value.value * 2 'kg'", OBS)
    assert (q.value, q.unit) == (Decimal("145.0"), "kg")
    assert fhirpath.evaluate("(1 week + 2 days) = 9 days", None) == [True]
    assert fhirpath.evaluate("2 days + 1 year", None) == []  # a calendar year is no number of days


def test_choice_elements_and_types_come_from_the_r4_model() -> None:
    assert fhirpath.evaluate("value.is(Quantity) and effective.is(dateTime)", OBS) == [True]
    assert fhirpath.evaluate("value.ofType(Quantity).unit", OBS) == ["kg"]
    assert fhirpath.evaluate("effective > @2026-11-20T09:30:00+01:00", OBS) == [True]
    assert fhirpath.evaluate("effective > @2026-11-20", OBS) == []  # precisions differ: undecided


def test_variables_and_host_functions() -> None:
    seen: list[Any] = []

    def member_of(items: list[Any], args: list[list[Any]], env: dict[str, Any]) -> list[Any]:
        seen.append((items, args, env["terminology"]))
        return [any(c.get("code") == "29463-7" for i in items for c in i.get("coding", []))]

    env = {"threshold": 70, "terminology": "t"}
    out = fhirpath.evaluate("code.memberOf('http://x/vs') and value.value > %threshold", OBS, env,
                            {"memberOf": member_of})
    assert out == [True]
    assert seen == [([OBS["code"]], [["http://x/vs"]], "t")]


def test_unsupported_is_raised_before_evaluation_naming_the_construct() -> None:
    calls: list[int] = []

    class Watch(dict[str, Any]):
        def __missing__(self, key: str) -> Any:
            calls.append(1)
            raise KeyError(key)

    with pytest.raises(fhirpath.Unsupported, match="conformsTo"):
        fhirpath.evaluate("%x.conformsTo('http://hl7.org/fhir/StructureDefinition/Patient')", OBS, Watch())
    assert calls == []
    with pytest.raises(fhirpath.Unsupported, match="memberOf"):  # a host function not supplied
        fhirpath.evaluate("code.memberOf('http://x/vs')", OBS)
