"""Primitive values: the JSON type R4 prescribes and the type's regex, plus calendar validity.

R4 JSON (json.html#primitive): boolean → JSON true/false, integer/positiveInt/unsignedInt → JSON
number without fraction, decimal → JSON number, every other primitive → JSON string; a value is
never an empty string. The regexes are the ones the core StructureDefinitions publish in the
``regex`` extension on ``<type>.value`` (read at compile time, so the published text is the rule);
a date that matches the regex but does not exist (2023-02-30) is rejected too.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from typing import Any

from alk_fhir.validation.defs import REGEX_EXT, Definitions

PrimitiveCheck = Callable[[Any], str | None]

_INT_TYPES = {"integer", "positiveInt", "unsignedInt"}
_INT_MIN, _INT_MAX = -2147483648, 2147483647
_DATE_TYPES = {"date", "dateTime", "instant"}


def load_regexes(defs: Definitions) -> dict[str, re.Pattern[str]]:
    """type code -> compiled regex, from the core primitive type definitions."""
    out: dict[str, re.Pattern[str]] = {}
    for code in sorted(defs.primitive_types):
        sd = defs.type_structure(code)
        if sd is None:
            continue
        for el in sd.get("snapshot", {}).get("element", []):
            if el.get("path") != f"{code}.value":
                continue
            for t in el.get("type", []):
                for ext in t.get("extension", []):
                    if ext.get("url") == REGEX_EXT and ext.get("valueString"):
                        out[code] = re.compile(ext["valueString"])
    return out


# R4 datatypes.html#string: "Strings SHALL NOT contain Unicode character points below 32, except for
# u0009 (horizontal tab), u0010 (carriage return) and u0013 (line feed)" (the core regex lets them by).
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


# Formats a printable string (str.isprintable: no control characters and no whitespace but the
# space, verified over every code point in tests/test_validation_plans.py) already satisfies, keyed by
# the published regex text: for those strings neither the control-character search nor the regex
# can fail, so both are skipped. Any other string goes through both.
_IMPLIED_BY_PRINTABLE: dict[str, Callable[[str], bool]] = {
    r"[ \r\n\t\S]+": lambda v: v.isprintable(),  # string, markdown (v is not empty here)
    r"\S*": lambda v: v.isprintable() and " " not in v,  # uri, url, canonical
    r"[^\s]+(\s[^\s]+)*": lambda v: (v.isprintable() and v[0] != " " and v[-1] != " "  # code
                                    and "  " not in v),
}


def primitive_checker(code: str, regexes: dict[str, re.Pattern[str]]) -> PrimitiveCheck:
    """A check returning None when ``value`` is a valid JSON value of primitive ``code``, else why not."""
    regex = regexes.get(code)
    if code == "boolean":
        return lambda v: None if v is True or v is False else f"expected a JSON boolean for a {code}, got {_show(v)}"
    if code in _INT_TYPES:
        low = 1 if code == "positiveInt" else 0 if code == "unsignedInt" else _INT_MIN

        def check_int(v: Any) -> str | None:
            if type(v) is not int:
                return f"expected a JSON integer for a {code}, got {_show(v)}"
            if not low <= v <= _INT_MAX:
                return f"{v} is out of range for a {code}"
            return None
        return check_int
    if code == "decimal":
        def check_decimal(v: Any) -> str | None:
            if type(v) not in (int, float) or v != v or v in (float("inf"), float("-inf")):
                return f"expected a JSON number for a decimal, got {_show(v)}"
            return None
        return check_decimal
    if code == "xhtml":
        return lambda v: None if type(v) is str and v else f"expected an XHTML string, got {_show(v)}"

    implied = _IMPLIED_BY_PRINTABLE.get(regex.pattern) if regex is not None else None

    def check_string(v: Any) -> str | None:
        if type(v) is not str:
            return f"expected a JSON string for a {code}, got {_show(v)}"
        if not v:
            return f"an empty string is not a valid {code} (json.html: no empty values)"
        if implied is not None and implied(v):
            return None
        if not v.isprintable() and _CONTROL.search(v) is not None:
            return (f"{_show(v)} is not a valid {code}: control characters other than tab, CR and LF are not "
                    "allowed (datatypes.html#string)")
        if regex is not None and regex.fullmatch(v) is None:
            return f"{_show(v)} is not a valid {code}"
        if code in _DATE_TYPES and not _real_date(v):
            return f"{_show(v)} is not a valid {code}: no such date"
        return None
    return check_string


_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _real_date(v: str) -> bool:
    if len(v) < 10:
        return True  # year or year-month: the regex has checked it
    year, month, day = int(v[0:4]), int(v[5:7]), int(v[8:10])  # the regex allows months 01-12 only
    if month == 2:
        return day <= (29 if calendar.isleap(year) else 28)
    return day <= _DAYS[month]


def _show(v: Any) -> str:
    text = repr(v) if not isinstance(v, (dict, list)) else type(v).__name__
    return text if len(text) <= 60 else text[:57] + "..."
