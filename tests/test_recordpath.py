"""The record-expression compiler (``alk_fhir.recordpath``) against fhirpathpy, construct by construct.

tests/test_facts.py compares every fact of the package on every example record; the constructs the
compiler accepts but the Library does not use today (xor, implies, intersect, last(), 2-argument
iif(), decimal and date literals, date arithmetic, …) are compared here, so that a package author
who starts using them gets FHIRPath's answer, not a compiler's guess.
"""

from __future__ import annotations

from typing import Any

import fhirpathpy
import pytest
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models

from alk_fhir.recordpath import Unsupported, compile_record_expression
from test_facts import _comparable

OBS: list[dict[str, Any]] = [
    {"resourceType": "Observation", "id": "a", "status": "final", "code": {"coding": [
        {"system": "http://loinc.org", "code": "x"}]}, "valueQuantity": {"value": 4.5, "unit": "kg"},
     "effectiveDateTime": "2025-03-01"},
    {"resourceType": "Observation", "id": "b", "status": "preliminary", "code": {"coding": [
        {"system": "http://snomed.info/sct", "code": "y"}, {"system": "http://loinc.org", "code": "x"}]},
     "effectivePeriod": {"start": "2024-12-01", "end": "2025-01-10"}},
    {"resourceType": "Observation", "id": "c", "status": "final", "code": {"text": "only text"},
     "valueQuantity": {"value": 2, "unit": "kg"}, "effectiveDateTime": "2026-11-20T10:00:00+01:00"},
]
QR: list[dict[str, Any]] = [{"resourceType": "QuestionnaireResponse", "id": "q", "status": "completed", "item": [
    {"linkId": "g", "item": [{"linkId": "g.1", "answer": [{"valueBoolean": True}]},
                             {"linkId": "g.2", "answer": [{"valueString": "text"}]}]},
    {"linkId": "n", "answer": [{"valueInteger": 3}]}]}]
TODAY = "2026-11-23"

EXPRESSIONS = [
    "%obs.where(status = 'final' implies value.exists()).id",
    "%obs.where((status = 'final') xor (code.coding.code = 'x')).id",
    "%obs.code.coding.code.distinct().count()",
    "(%obs.id | %obs.status).first()",
    "(%obs.where(id = 'zz').id | %obs.status).first()",
    "%obs.id.last()",
    "%obs.id.isDistinct()",
    "%obs.code.coding.code.isDistinct()",
    "%obs.select(status.upper())",
    "%obs.select(code.text.lower())",
    "%obs.id.intersect('a' | 'c' | 'z')",
    "%obs.id.combine('a').count()",
    "%obs.id.exclude('b')",
    "%obs.where(status.contains('lim')).id",
    "%obs.where(id.endsWith('c') or id.startsWith('a')).id",
    "%obs.where(status.matches('^fin')).id",
    "%obs.where(effective.ofType(dateTime) >= @2025-01-01).id",
    "%obs.where(effective.end < @2025-02-01).id",
    "%obs.where(value.value > 3.5).id",
    "%obs.where(value.value >= 2 and value.value <= 2).id",
    "iif(%obs.exists(), 'yes')",
    "iif(%obs.where(id = 'zz').exists(), 'yes')",
    "%obs.aggregate($total + 1, 0)",
    "%obs.value.value.aggregate(iif($total.empty() or $this > $total, $this, $total))",
    "%obs.where(status != 'final').id",
    "%qr.repeat(item).linkId",
    "%qr.repeat(item).where(answer.value = true).linkId",
    "%qr.repeat(item).answer.value.ofType(string)",
    "%qr.repeat(item).answer.value.ofType(integer)",
    "%qr.repeat(item).answer.value.ofType(boolean)",
    "%obs.where(code.coding.where(system = 'http://loinc.org').exists()).id",
    "%obs.select(iif(status = 'final', id, {})).count()",
    "%obs.exists(id = 'b')",
    "%obs.all(status.exists())",
    "%obs.all(value.exists())",
    "{}.exists()",
    "{}.empty()",
    "('a' in %obs.id)",
    "(%obs.id contains 'z')",
    "(%obs.id.first() = 'a') and (%obs.id.last() != 'a')",
    "%obs.where(effective.ofType(dateTime) < %today - 6 months).id",
    "%obs.where(effective.ofType(dateTime) > %today - 1 year).id",
    "%obs.where(effective.ofType(dateTime) >= %today - 4 days).id",
    "%obs.where(effective.start.exists($this <= %today - 1 year)).id",
    "%obs.where(value.exists().not()).id",
    "%obs.count() + 1 > 3",
    "%obs.Observation.id",
    "%obs.ofType(Observation).id.count()",
    "%obs.where(status = 'final').where(value.value < 3).id",
    "%obs.select(code.coding.code | code.text).distinct()",
    # runs of comparisons of one element with strings (a set lookup when the element is one string)
    "%obs.where(status = 'amended' or status = 'final' or status = 'corrected').id",
    "%obs.where(value.exists() and status != 'preliminary' and status != 'cancelled' and id.exists()).id",
    "%obs.select(status = 'final' or status = 'x' or id = 'b' or id = 'c')",
    "%obs.select(text = 'a' or text = 'b')",
    "%qr.repeat(item).answer.select(value = 'text' or value = 'other')",
    "%qr.repeat(item).answer.select(value != 'text' and value != 'other')",
    # comparison with a boolean literal (one boolean by identity, anything else as = compares)
    "%qr.repeat(item).where(answer.value != false).linkId",
    "%qr.repeat(item).select(answer.value = true)",
    "%obs.select(status = true)",
    # a call or union written twice for one item: computed once (both branches of an or, a nested loop)
    "%obs.where(code.coding.where(system = 'x').exists() or code.coding.where(system = 'x').count() = 0).id",
    "%obs.where((effective.start | effective.ofType(dateTime)).exists() and "
    "(effective.start | effective.ofType(dateTime)).first() > @2025-01-01).id",
    "%obs.select(code.coding.where(code = 'x').code | code.coding.where(code = 'x').system)",
    "%obs.where(code.coding.select(code.coding.where(code = 'x').exists()).exists() or "
    "code.coding.where(code = 'x').exists()).id",
    "%obs.select(code.coding.code.aggregate($total | code.coding.code.first(), {}) | "
    "code.coding.code.aggregate($total | code.coding.code.first(), {}))",
    # choice elements of one item, inline
    "%obs.select(effective.ofType(dateTime) | effective.start)",
    "%obs.where(value.exists()).select(value.unit)",
]


def _reference(expression: str) -> Any:
    env = {"obs": [ResourceNode.create_node(o, o["resourceType"]) for o in OBS],
           "qr": [ResourceNode.create_node(q, q["resourceType"]) for q in QR], "today": TODAY}
    return fhirpathpy.evaluate({}, expression, env, models["r4"], options={"returnRawData": True})


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_generated_code_gives_fhirpaths_answer(expression: str) -> None:
    fn = compile_record_expression(expression, {"obs", "qr", "today"}, {})
    got = fn([{}], {"obs": OBS, "qr": QR, "today": TODAY})
    assert _comparable(got) == _comparable(_reference(expression)), getattr(fn, "source", "")


def test_dates_of_different_precision_equal_as_far_as_both_go_compare_to_empty() -> None:
    """FHIRPath §6.2: "If one value is specified to a different level of precision than the other, the
    result is empty ({ }) to indicate that the result of the comparison is unknown." 2026-11-20T10:00
    against the date 2026-11-20 is therefore neither >= nor <; fhirpathpy 2.2 answers true here (it
    reads the date as a dateTime at midnight), so this case is checked on its own."""
    later = compile_record_expression("%obs.where(effective.ofType(dateTime) >= %today - 3 days).id", {"obs", "today"},
                                      {})
    earlier = compile_record_expression("%obs.where(effective.ofType(dateTime) < %today - 3 days).id",
                                        {"obs", "today"}, {})
    env = {"obs": OBS, "today": TODAY}
    assert later([{}], env) == [] and earlier([{}], env) == ["a"]


@pytest.mark.parametrize("expression", [
    "%obs.id.substring(1)",  # a function outside the subset
    "%undeclared.exists()",  # a variable that is neither data, built-in nor an earlier fact
    "%obs.where(value.value > 3 'mg')",  # a quantity that is not a calendar duration
    "%obs.id * 2",
])
def test_outside_the_subset_is_refused_at_compile_time(expression: str) -> None:
    with pytest.raises(Unsupported):
        compile_record_expression(expression, {"obs"}, {})


def test_to_date_keeps_the_day_as_written() -> None:
    """``toDate()`` (N1 §5.5): a dateTime's own calendar day, never converted to another offset, so that
    an MP9 period ending 2026-03-17T00:00+02:00 still ends on the 17th for a Dutch ``%today``."""
    from alk_fhir.recordpath import compile_record_expression

    fact = compile_record_expression("%x.toDate()", {"x"}, {})
    assert fact([{}], {"x": ["2026-03-17T00:00:00+02:00"]}) == ["2026-03-17"]
    assert fact([{}], {"x": ["2026-03"]}) == ["2026-03"]
    assert fact([{}], {"x": ["geen datum"]}) == []


_SHAPES: list[dict[str, Any]] = [
    {"period": {"start": "2020"}}, {"period": [{"start": "2020"}]}, {"period": [{"start": "2020"}, {"start": "2021"}]},
    {"answer": [{"valueBoolean": True}]}, {"answer": [{"valueCoding": {"code": "x"}}]}, {"answer": []},
    {"medicationCodeableConcept": {"coding": [{"code": "a"}, {"code": "b"}]}},
    {"medicationReference": {"reference": "Medication/1"}}, {"given": ["a", None], "_given": [None, {"id": "g"}]},
    {"name": [{"given": ["a", None], "_given": [None, {"id": "g"}]}]}, {"_status": {"id": "s"}}, {"x": [None]},
    {"x": ["s"]}, {"value": 5}, {"valueQuantity": {"value": 3}}, {"a": {"b": [[1]]}}, {"period": None},
    {"extension": [{"url": "u", "valuePeriod": {"start": "2020"}}]},
    {"_period": {"id": "p"}}, {"period": {"_start": {"id": "s"}}}, {"period": {"start": ["a", None],
                                                                              "_start": [None, {"id": "e"}]}},
    {"answer": [{"valueBoolean": True}, {"valueBoolean": False}]}, {"answer": ["x"]}, {"_medication": {"id": "m"}},
    {"medicationReference": {"_reference": {"id": "r"}}}, {"period": {"start": None, "end": "2021"}},
]
_PATHS = [("period", "start"), ("answer", "value"), ("answer", "value", "code"), ("medication", "coding"),
          ("medication", "coding", "code"), ("medication", "reference"), ("given",), ("name", "given"), ("status",),
          ("x",), ("x", "y"), ("value",), ("value", "value"), ("a", "b"), ("extension", "value", "start"),
          ("period",), ("medication",)]


@pytest.mark.parametrize("names", _PATHS)
def test_a_path_from_one_item_is_the_path_step_by_step(names: tuple[str, ...]) -> None:
    """``_path1`` keeps the common shapes (one value per step, a choice element, a list of one on the way,
    a list at the end) in one loop, ``_path2`` the two-step paths in straight-line code: each must give
    what navigating step by step gives, extension-only primitives (NoValue) included."""
    from alk_fhir.fastpath import NoValue
    from alk_fhir.recordpath import _nav1, _path, _path1, _path2

    def plain(items: list[Any]) -> list[Any]:
        return [("no value", v.parts) if isinstance(v, NoValue) else v for v in items]

    for item in _SHAPES:
        expected = plain(_path(_nav1(item, names[0]), names[1:]))
        assert plain(_path1(item, names)) == expected, item
        if len(names) == 2:
            assert plain(_path2(item, *names)) == expected, item


def test_dates_of_one_precision_compare_as_their_parts() -> None:
    """Two dates of the same precision are compared by their text; that must be the order of their
    parts (compare_temporal), and an invalid date must still be no date."""
    from alk_fhir.fhirpath.values import compare_temporal
    from alk_fhir.recordpath import _dyn_compare, _temporal

    days = ["2024-02-29", "2024-03-01", "2023-12-31", "0999-01-01", "2026-11-23", "2026-11-22"]
    months, years = ["2024-02", "2024-11", "2023-12"], ["2024", "2023", "0999"]
    for group in (days, months, years):
        for a in group:
            for b in group:
                ta, tb = _temporal(a), _temporal(b)
                assert ta is not None and tb is not None
                assert _dyn_compare(a, b) == compare_temporal(ta, tb), (a, b)
    assert _dyn_compare("2023-02-29", "2023-03-01") is None  # no such day: not a date, not comparable
    assert _dyn_compare("2024-02", "2024-02-10") is None  # different precision, equal as far as both go


def test_a_date_plus_calendar_units_is_add_temporals_answer() -> None:
    """The full-date shortcut of ``date + quantity`` (``%today - 12 months``, an MP9 start plus its weeks)
    gives add_temporal's date: truncation towards zero, month ends kept in their month, leap days; what
    it leaves to add_temporal (out of range) add_temporal still refuses."""
    import itertools
    from decimal import Decimal

    from alk_fhir.fhirpath.values import FDate, Quantity, add_temporal, add_to_date_text

    days = ["2024-02-29", "2024-01-31", "2023-12-31", "2026-11-23", "0001-01-01", "9999-12-31", "2000-02-29"]
    amounts = [Decimal(x) for x in ("0", "1", "-1", "12", "-12", "1.5", "-1.5", "2.9", "-2.9", "9999", "-9999")]
    shortcut = 0
    for day, amount, unit, sign in itertools.product(days, amounts, ("day", "week", "month", "year"), (1, -1)):
        found = add_to_date_text(FDate.parse(day), Quantity(amount, unit), sign)
        if found is not None:
            shortcut += 1
            assert found == add_temporal(FDate.parse(day), Quantity(amount, unit), sign).text(), (day, amount, unit)
    assert shortcut > 500
    assert add_to_date_text(FDate.parse("9999-12-31"), Quantity(Decimal(1), "day"), 1) is None
