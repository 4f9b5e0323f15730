"""FHIRPath system values and the operators on them, written once (FHIRPath N1 §4, §6).

Why one module: the interpreter (``evaluate``), the compiled invariants and plan conditions
(``fastpath``) and the compiled facts (``recordpath``) all call these functions, so that ``=``,
``<``, ``+`` on dates, quantities and strings mean the same everywhere. Before, each generator had
its own look-alike operators, and several of them answered wrong without notice.

Values: ``bool``, ``int``, ``Decimal``, ``str`` (System.String), ``FDate``, ``FDateTime``, ``FTime``,
``Quantity``. Dates and times keep their precision; comparing values of different precision gives
``None`` (an empty result) when the common part does not decide (N1 §6.1.5, §6.2.3).
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any


class FHIRPathEvaluationError(ValueError):
    """An expression that is valid but cannot be evaluated on this input (N1: an execution error)."""


# calendar duration keywords (N1 §"Time-valued quantities") -> their singular form
CALENDAR_UNITS: dict[str, str] = {}
for _w in ("year", "month", "week", "day", "hour", "minute", "second", "millisecond"):
    CALENDAR_UNITS[_w] = CALENDAR_UNITS[_w + "s"] = _w
# calendar durations of a week and below equal their UCUM definite durations; years and months do not
_CALENDAR_TO_UCUM = {"week": "wk", "day": "d", "hour": "h", "minute": "min", "second": "s", "millisecond": "ms"}
_UCUM_TO_CALENDAR = {"a": "year", "mo": "month", **{v: k for k, v in _CALENDAR_TO_UCUM.items()}}

# UCUM units we convert (code -> (dimension, factor to the dimension's base unit))
_UCUM: dict[str, tuple[str, Decimal]] = {
    "g": ("g", Decimal(1)), "mg": ("g", Decimal("0.001")), "ug": ("g", Decimal("0.000001")),
    "kg": ("g", Decimal(1000)), "ng": ("g", Decimal("1E-9")), "[lb_av]": ("g", Decimal("453.59237")),
    "m": ("m", Decimal(1)), "cm": ("m", Decimal("0.01")), "mm": ("m", Decimal("0.001")),
    "km": ("m", Decimal(1000)), "[in_i]": ("m", Decimal("0.0254")), "[ft_i]": ("m", Decimal("0.3048")),
    "s": ("s", Decimal(1)), "ms": ("s", Decimal("0.001")), "min": ("s", Decimal(60)),
    "h": ("s", Decimal(3600)), "d": ("s", Decimal(86400)), "wk": ("s", Decimal(604800)),
    "L": ("L", Decimal(1)), "l": ("L", Decimal(1)), "mL": ("L", Decimal("0.001")), "dL": ("L", Decimal("0.1")),
    "1": ("1", Decimal(1)),
}


class Quantity:
    """A FHIRPath quantity: a decimal ``value`` and a ``unit`` (a UCUM code, or a calendar keyword
    in its singular form: ``year``, ``month``, ``week``, ``day``, ``hour``, ``minute``, ``second``,
    ``millisecond``)."""

    __slots__ = ("unit", "value")

    def __init__(self, value: Decimal | int, unit: str) -> None:
        self.value = Decimal(value)
        self.unit = CALENDAR_UNITS.get(unit, unit)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Quantity) and quantity_equal(self, other) is True

    def __hash__(self) -> int:
        return hash(self.unit)

    def __repr__(self) -> str:
        return quantity_text(self)

    def is_calendar(self) -> bool:
        return self.unit in _CALENDAR_TO_UCUM or self.unit in ("year", "month")


def quantity_text(q: Quantity) -> str:
    unit = q.unit if q.unit in CALENDAR_UNITS else f"'{q.unit}'"
    return f"{decimal_text(q.value)} {unit}"


def _canonical(q: Quantity) -> tuple[str, Decimal] | None:
    """(dimension, value in the dimension's base unit), for units we can convert."""
    unit = _CALENDAR_TO_UCUM.get(q.unit, q.unit)
    found = _UCUM.get(unit)
    if found is None:
        return None
    return found[0], q.value * found[1]


def _quantity_compare(a: Quantity, b: Quantity, equivalence: bool = False) -> int | None:
    if a.unit == b.unit:
        return _cmp(a.value, b.value)
    calendar_years = {"year", "month", "a", "mo"}
    if a.unit in calendar_years or b.unit in calendar_years:
        # 1 year = 1 'a' is empty (a calendar year is not 365.25 days), 1 year ~ 1 'a' is true (N1 §6.1.1)
        if equivalence and _UCUM_TO_CALENDAR.get(a.unit, a.unit) == _UCUM_TO_CALENDAR.get(b.unit, b.unit):
            return _cmp(a.value, b.value)
        return None
    ca, cb = _canonical(a), _canonical(b)
    if ca is None or cb is None or ca[0] != cb[0]:
        return None
    return _cmp(ca[1], cb[1])


def quantities_comparable(a: Quantity, b: Quantity) -> bool:
    if a.unit == b.unit:
        return True
    ca, cb = _canonical(a), _canonical(b)
    return ca is not None and cb is not None and ca[0] == cb[0]


def quantity_equal(a: Quantity, b: Quantity) -> bool | None:
    c = _quantity_compare(a, b)
    return None if c is None else c == 0


def _cmp(a: Any, b: Any) -> int:
    return 0 if a == b else -1 if a < b else 1


def decimal_text(d: Decimal) -> str:
    """A decimal as FHIRPath writes it: no exponent, its own scale (``1.0`` stays ``1.0``)."""
    text = format(d, "f")
    return "0" if text in ("-0",) else text


# ---- dates and times ---------------------------------------------------------------------------
_DATE_RE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")
_DATETIME_RE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?(?:T(?:(\d{2})(?::(\d{2})(?::(\d{2})(\.\d+)?)?)?)?"
                          r"(Z|[+-]\d{2}:\d{2})?)?$")
_TIME_RE = re.compile(r"^(\d{2})(?::(\d{2})(?::(\d{2})(\.\d+)?)?)?$")


class _Temporal:
    """Components (year, month, day, hour, minute, second) to a precision, seconds as a Decimal
    (N1 treats seconds and milliseconds as one precision), and a time-zone offset in minutes."""

    __slots__ = ("frac_digits", "parts", "tz")
    kind = ""

    def __init__(self, parts: tuple[Any, ...], tz: int | None = None, frac_digits: int = 0) -> None:
        self.parts, self.tz, self.frac_digits = parts, tz, frac_digits

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and compare_temporal(self, other) == 0

    def __hash__(self) -> int:
        return hash(self.parts[:3])

    def __repr__(self) -> str:
        return "@" + self.text()

    def text(self) -> str:
        raise NotImplementedError


def _tz_minutes(text: str | None) -> int | None:
    if text is None:
        return None
    if text == "Z":
        return 0
    sign = -1 if text[0] == "-" else 1
    return sign * (int(text[1:3]) * 60 + int(text[4:6]))


def _tz_text(tz: int | None) -> str:
    if tz is None:
        return ""
    if tz == 0:
        return "Z"
    sign = "-" if tz < 0 else "+"
    return f"{sign}{abs(tz) // 60:02d}:{abs(tz) % 60:02d}"


def _seconds_text(sec: Decimal, digits: int) -> str:
    whole = int(sec)
    if digits == 0:
        return f"{whole:02d}"
    frac = (sec - whole).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_DOWN)
    return f"{whole:02d}" + format(frac, "f")[1:]


class FDate(_Temporal):
    kind = "Date"

    @classmethod
    def parse(cls, text: str) -> FDate:
        m = _DATE_RE.match(text)
        if m is None:
            raise FHIRPathEvaluationError(f"not a date: {text!r}")
        parts = tuple(int(g) for g in m.groups() if g is not None)
        _check_date(parts)
        return cls(parts)

    def text(self) -> str:
        p = self.parts
        return "-".join([f"{p[0]:04d}", *(f"{x:02d}" for x in p[1:])])


class FDateTime(_Temporal):
    kind = "DateTime"

    @classmethod
    def parse(cls, text: str) -> FDateTime:
        m = _DATETIME_RE.match(text)
        if m is None:
            raise FHIRPathEvaluationError(f"not a dateTime: {text!r}")
        y, mo, d, h, mi, s, frac, tz = m.groups()
        parts: list[Any] = [int(x) for x in (y, mo, d, h, mi) if x is not None]
        if s is not None:
            parts.append(Decimal(s + (frac or "")))
        _check_date(tuple(parts[:3]))
        return cls(tuple(parts), _tz_minutes(tz), len(frac) - 1 if frac else 0)

    @classmethod
    def from_date(cls, d: FDate) -> FDateTime:
        return cls(d.parts)

    def text(self) -> str:
        p = self.parts
        out = "-".join([f"{p[0]:04d}", *(f"{x:02d}" for x in p[1:3])])
        if len(p) > 3:
            out += f"T{p[3]:02d}"
            if len(p) > 4:
                out += f":{p[4]:02d}"
            if len(p) > 5:
                out += ":" + _seconds_text(p[5], self.frac_digits)
            out += _tz_text(self.tz)
        return out


class FTime(_Temporal):
    kind = "Time"

    @classmethod
    def parse(cls, text: str) -> FTime:
        m = _TIME_RE.match(text)
        if m is None:
            raise FHIRPathEvaluationError(f"not a time: {text!r}")
        h, mi, s, frac = m.groups()
        parts: list[Any] = [int(x) for x in (h, mi) if x is not None]
        if s is not None:
            parts.append(Decimal(s + (frac or "")))
        return cls(tuple(parts), None, len(frac) - 1 if frac else 0)

    def text(self) -> str:
        p = self.parts
        out = f"{p[0]:02d}"
        if len(p) > 1:
            out += f":{p[1]:02d}"
        if len(p) > 2:
            out += ":" + _seconds_text(p[2], self.frac_digits)
        return out


def _check_date(parts: tuple[int, ...]) -> None:
    if len(parts) > 1 and not 1 <= parts[1] <= 12:
        raise FHIRPathEvaluationError(f"month {parts[1]} out of range")
    if len(parts) > 2 and not 1 <= parts[2] <= calendar.monthrange(parts[0], parts[1])[1]:
        raise FHIRPathEvaluationError(f"day {parts[2]} out of range")


def _normalised(t: _Temporal) -> tuple[Any, ...]:
    """A dateTime's components in UTC when it has a time zone and at least an hour."""
    if not isinstance(t, FDateTime) or t.tz is None or len(t.parts) < 4 or t.tz == 0:
        return t.parts
    p = t.parts
    minute = p[4] if len(p) > 4 else 0
    shifted = datetime(p[0], p[1], p[2], p[3], minute) - timedelta(minutes=t.tz)
    out: list[Any] = [shifted.year, shifted.month, shifted.day, shifted.hour]
    if len(p) > 4:
        out.append(shifted.minute)
    return (*out, *p[5:])


def compare_temporal(a: _Temporal, b: _Temporal) -> int | None:
    """-1/0/1, or None when the values' precisions differ and their common part is equal (N1 §6.2)."""
    if (isinstance(a, FDate) and isinstance(b, FDateTime)) or (isinstance(a, FDateTime) and isinstance(b, FDate)):
        a = a if isinstance(a, FDateTime) else FDateTime.from_date(a)
        b = b if isinstance(b, FDateTime) else FDateTime.from_date(b)
    elif type(a) is not type(b):
        return None
    if isinstance(a, FDateTime) and len(a.parts) > 3 and len(b.parts) > 3 and (a.tz is None) != (b.tz is None):
        return None  # one has a time zone, the other not: undecidable without the local zone
    pa, pb = _normalised(a), _normalised(b)
    for x, y in zip(pa, pb, strict=False):
        if x != y:
            return -1 if x < y else 1
    return 0 if len(pa) == len(pb) else None


def temporal_equivalent(a: _Temporal, b: _Temporal) -> bool:
    return compare_temporal(a, b) == 0


_CAL_ORDER = ("year", "month", "day", "hour", "minute", "second")


def add_to_date_text(t: FDate, q: Quantity, sign: int) -> str | None:
    """What :func:`add_temporal` gives, as text, for the common case: a full date plus days, weeks,
    months or years (``%today - 12 months``, an MP9 start + its duration in weeks), without building
    values; the same arithmetic (the quantity truncated towards zero, a month's end kept within the
    month), kept beside it so that date arithmetic has one home (recordpath's facts call this first);
    None for anything else, out of range included, which add_temporal then answers (or refuses)."""
    unit = q.unit
    if len(t.parts) != 3 or unit not in ("day", "week", "month", "year"):
        return None
    value = q.value * sign
    if unit == "week":
        value = value * 7
    n = int(value.to_integral_value(rounding=ROUND_DOWN))
    y, m, d = t.parts
    if unit in ("day", "week"):
        try:
            day = date.fromordinal(date(y, m, d).toordinal() + n)
        except (ValueError, OverflowError):
            return None
        y, m, d = day.year, day.month, day.day
    else:
        total = y * 12 + (m - 1) + (n * 12 if unit == "year" else n)
        y, m = total // 12, total % 12 + 1
        if not 1 <= y <= 9999:
            return None
        d = min(d, calendar.monthrange(y, m)[1])
    return f"{y:04d}-{m:02d}-{d:02d}"


def add_temporal(t: _Temporal, q: Quantity, sign: int) -> _Temporal:
    """``date + quantity`` (N1 §6.6.1): calendar arithmetic; for years, months, weeks and days the
    decimal part of the quantity is dropped, seconds keep it."""
    unit = _UCUM_TO_CALENDAR.get(q.unit, q.unit) if q.unit not in ("a", "mo") else None
    if unit is None or unit not in (*_CAL_ORDER, "week", "millisecond"):
        raise FHIRPathEvaluationError(f"cannot add {quantity_text(q)} to a date or time")
    value = q.value * sign
    if unit == "week":
        unit, value = "day", value * 7
    if unit == "millisecond":
        unit, value = "second", value / 1000
    if unit != "second":
        value = value.to_integral_value(rounding=ROUND_DOWN)
    if isinstance(t, FTime):
        return _add_time(t, unit, value)
    parts = list(t.parts)
    level = _CAL_ORDER.index(unit)
    if level >= len(parts):
        if unit == "month" and len(parts) == 1:
            unit, value, level = "year", (value / 12).to_integral_value(rounding=ROUND_DOWN), 0
        else:
            raise FHIRPathEvaluationError(f"cannot add {quantity_text(q)} to {t.text()} (precision too low)")
    n = int(value) if unit != "second" else value
    if unit in ("year", "month"):
        total = parts[0] * 12 + ((parts[1] - 1) if len(parts) > 1 else 0) + (n * 12 if unit == "year" else n)
        parts[0] = total // 12
        if len(parts) > 1:
            parts[1] = total % 12 + 1
        if len(parts) > 2:
            parts[2] = min(parts[2], calendar.monthrange(parts[0], parts[1])[1])
    else:
        base = datetime(parts[0], parts[1], parts[2], *(parts[3:5]), *([int(parts[5])] if len(parts) > 5 else []))
        frac = parts[5] - int(parts[5]) if len(parts) > 5 else Decimal(0)
        if unit in ("day", "hour", "minute"):
            delta = timedelta(**{unit + "s": int(n)})
        else:
            total = frac + Decimal(n)
            whole = int(total.to_integral_value(rounding="ROUND_FLOOR"))
            frac = total - whole
            delta = timedelta(seconds=whole)
        shifted = base + delta
        new = [shifted.year, shifted.month, shifted.day, shifted.hour, shifted.minute,
               Decimal(shifted.second) + frac]
        parts = new[:len(parts)]
    if not 1 <= parts[0] <= 9999:
        raise FHIRPathEvaluationError("date out of range")
    digits = t.frac_digits
    if len(parts) > 5 and isinstance(parts[5], Decimal):
        digits = max(digits, -int(parts[5].normalize().as_tuple().exponent) if parts[5] % 1 else 0)
    return type(t)(tuple(parts), t.tz, digits)


def _add_time(t: FTime, unit: str, value: Decimal) -> FTime:
    if unit not in ("hour", "minute", "second"):
        raise FHIRPathEvaluationError(f"cannot add {unit}s to a time")
    parts = list(t.parts)
    seconds = Decimal(parts[0] * 3600 + (parts[1] * 60 if len(parts) > 1 else 0)) + (parts[2] if len(parts) > 2 else 0)
    seconds += value * {"hour": 3600, "minute": 60, "second": 1}[unit]
    seconds %= 86400
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    new: list[Any] = [int(h), int(m), s]
    return FTime(tuple(new[:len(parts)]), None, t.frac_digits)


def now_datetime() -> FDateTime:
    now = datetime.now(UTC).astimezone()
    offset = now.utcoffset()
    tz = int(offset.total_seconds() // 60) if offset is not None else 0
    sec = Decimal(now.second) + Decimal(now.microsecond // 1000) / 1000
    return FDateTime((now.year, now.month, now.day, now.hour, now.minute, sec), tz, 3)


# ---- numbers -------------------------------------------------------------------------------------
def to_decimal(v: Any) -> Decimal:
    if isinstance(v, Decimal):
        return v
    if isinstance(v, float):
        return Decimal(repr(v))
    return Decimal(v)


def parse_decimal(text: str) -> Decimal | None:
    if not re.fullmatch(r"[+-]?\d+(\.\d+)?", text.strip()):
        return None
    try:
        return Decimal(text.strip())
    except InvalidOperation:
        return None


# ---- equality, equivalence, order ----------------------------------------------------------------
def is_number(v: Any) -> bool:
    return type(v) in (int, Decimal, float)


def equal(a: Any, b: Any) -> bool | None:
    """``=`` on two single system values or elements (dicts)."""
    ta, tb = type(a), type(b)
    if ta is bool or tb is bool:
        return bool(a == b) if ta is tb else False
    if is_number(a) and is_number(b):
        return to_decimal(a) == to_decimal(b)
    if ta is str and tb is str:
        return bool(a == b)
    if isinstance(a, _Temporal) and isinstance(b, _Temporal):
        if (ta is FTime) != (tb is FTime):
            return False
        c = compare_temporal(a, b)
        return None if c is None else c == 0
    if ta is Quantity and tb is Quantity:
        return quantity_equal(a, b)
    if ta is dict and tb is dict:
        return bool(a == b)
    return False


def _normal_space(s: str) -> str:
    return " ".join(s.split()).lower()


def equivalent(a: Any, b: Any) -> bool:
    """``~`` on two single values (N1 §6.1.3): strings ignore case and white space, decimals compare
    at the lower precision, dates of different precision are not equivalent."""
    ta, tb = type(a), type(b)
    if ta is bool or tb is bool:
        return bool(a == b) if ta is tb else False
    if is_number(a) and is_number(b):
        da, db = to_decimal(a), to_decimal(b)
        places = min(_scale(da), _scale(db))
        q = Decimal(1).scaleb(-places)
        return da.quantize(q) == db.quantize(q) if places >= 0 else da == db
    if ta is str and tb is str:
        return _normal_space(a) == _normal_space(b)
    if isinstance(a, _Temporal) and isinstance(b, _Temporal):
        return compare_temporal(a, b) == 0
    if ta is Quantity and tb is Quantity:
        if a.unit != b.unit and (ca := _canonical(a)) is not None and (cb := _canonical(b)) is not None \
                and ca[0] == cb[0]:
            factor = _UCUM[_CALENDAR_TO_UCUM.get(a.unit, a.unit)][1]
            return equivalent(a.value, cb[1] / factor)  # at the precision of the less precise
        return _quantity_compare(a, b, equivalence=True) == 0
    if ta is dict and tb is dict:
        return bool(a == b)
    return False


def _scale(d: Decimal) -> int:
    exp = d.as_tuple().exponent
    return -exp if isinstance(exp, int) and exp < 0 else 0


def compare(a: Any, b: Any) -> int | None:
    """-1/0/1 for ``<``/``>``; None when undecidable (dates of different precision, quantities of
    different dimensions); raises for values that have no order between them (N1 §6.2)."""
    if is_number(a) and is_number(b) and type(a) is not bool and type(b) is not bool:
        return _cmp(to_decimal(a), to_decimal(b))
    if type(a) is str and type(b) is str:
        return _cmp(a, b)
    if isinstance(a, _Temporal) and isinstance(b, _Temporal):
        if isinstance(a, FTime) != isinstance(b, FTime):
            raise FHIRPathEvaluationError("cannot compare a time with a date")
        return compare_temporal(a, b)
    if type(a) is Quantity and type(b) is Quantity:
        return _quantity_compare(a, b)
    raise FHIRPathEvaluationError(f"cannot compare {type_name(a)} with {type_name(b)}")


def type_name(v: Any) -> str:
    """The System type name of a value (N1 §4)."""
    t = type(v)
    if t is bool:
        return "Boolean"
    if t is int:
        return "Integer"
    if t in (Decimal, float):
        return "Decimal"
    if t is str:
        return "String"
    if isinstance(v, _Temporal):
        return v.kind
    if t is Quantity:
        return "Quantity"
    return "Element"


# ---- arithmetic ----------------------------------------------------------------------------------
def add(a: Any, b: Any) -> Any:
    """``a + b`` on single values: numbers, strings (concatenation), dates + quantities, quantities."""
    if type(a) is str and type(b) is str:
        return a + b
    if is_number(a) and is_number(b) and type(a) is not bool and type(b) is not bool:
        return a + b if type(a) is int and type(b) is int else to_decimal(a) + to_decimal(b)
    if isinstance(a, _Temporal) and type(b) is Quantity:
        return add_temporal(a, b, 1)
    if type(a) is Quantity and type(b) is Quantity:
        return _quantity_sum(a, b, 1)
    raise FHIRPathEvaluationError(f"cannot add {type_name(a)} and {type_name(b)}")


def subtract(a: Any, b: Any) -> Any:
    if is_number(a) and is_number(b) and type(a) is not bool and type(b) is not bool:
        return a - b if type(a) is int and type(b) is int else to_decimal(a) - to_decimal(b)
    if isinstance(a, _Temporal) and type(b) is Quantity:
        return add_temporal(a, b, -1)
    if type(a) is Quantity and type(b) is Quantity:
        return _quantity_sum(a, b, -1)
    raise FHIRPathEvaluationError(f"cannot subtract {type_name(b)} from {type_name(a)}")


def _quantity_sum(a: Quantity, b: Quantity, sign: int) -> Quantity | None:
    if a.unit == b.unit:
        return Quantity(a.value + sign * b.value, a.unit)
    ca, cb = _canonical(a), _canonical(b)
    if ca is None or cb is None or ca[0] != cb[0]:
        return None
    # in the finer of the two units, where the sum is exact (1 week + 2 days = 9 days, not 1.2857… weeks)
    fa, fb = _UCUM[_CALENDAR_TO_UCUM.get(a.unit, a.unit)][1], _UCUM[_CALENDAR_TO_UCUM.get(b.unit, b.unit)][1]
    unit, factor = (a.unit, fa) if fa <= fb else (b.unit, fb)
    return Quantity((ca[1] + sign * cb[1]) / factor, unit)


def multiply(a: Any, b: Any) -> Any:
    if is_number(a) and is_number(b) and type(a) is not bool and type(b) is not bool:
        return a * b if type(a) is int and type(b) is int else to_decimal(a) * to_decimal(b)
    if type(a) is Quantity and is_number(b):
        return Quantity(a.value * to_decimal(b), a.unit)
    if is_number(a) and type(b) is Quantity:
        return Quantity(b.value * to_decimal(a), b.unit)
    if type(a) is Quantity and type(b) is Quantity:
        return _unit_product(a, b, 1)
    raise FHIRPathEvaluationError(f"cannot multiply {type_name(a)} by {type_name(b)}")


def divide(a: Any, b: Any) -> Any:
    """``/`` always gives a decimal; division by zero is empty (N1 §6.6.4)."""
    if is_number(a) and is_number(b) and type(a) is not bool and type(b) is not bool:
        if to_decimal(b) == 0:
            return None
        return _trim(to_decimal(a) / to_decimal(b))
    if type(a) is Quantity and is_number(b):
        if to_decimal(b) == 0:
            return None
        return Quantity(_trim(a.value / to_decimal(b)), a.unit)
    if type(a) is Quantity and type(b) is Quantity:
        if b.value == 0:
            return None
        return _unit_product(a, b, -1)
    raise FHIRPathEvaluationError(f"cannot divide {type_name(a)} by {type_name(b)}")


def _unit_product(a: Quantity, b: Quantity, power: int) -> Quantity:
    """``a * b`` (power 1) or ``a / b`` (power -1) for UCUM units we know, in their base units
    (2.0 'cm' * 2.0 'm' = 0.04 'm2', 4.0 'g' / 2.0 'm' = 2 'g/m', N1 §6.6.2)."""
    if a.is_calendar() or b.is_calendar():
        raise FHIRPathEvaluationError("cannot multiply or divide calendar durations")
    ca, cb = _canonical(a), _canonical(b)
    if ca is None or cb is None:
        raise FHIRPathEvaluationError(f"cannot multiply or divide '{a.unit}' and '{b.unit}'")
    if power == 1:
        unit = "1" if ca[0] == cb[0] == "1" else (ca[0] + "2" if ca[0] == cb[0] else f"{ca[0]}.{cb[0]}")
        return Quantity(ca[1] * cb[1], unit)
    unit = "1" if ca[0] == cb[0] else f"{ca[0]}/{cb[0]}"
    return Quantity(_trim(ca[1] / cb[1]), unit)


def _trim(d: Decimal) -> Decimal:
    """A quotient rounded to 8 decimal places, trailing zeros dropped."""
    q = d.quantize(Decimal("1E-8")) if d.adjusted() < 20 else d
    return q.normalize() if q == q.to_integral_value() else Decimal(str(q).rstrip("0"))


def int_div(a: Any, b: Any) -> Any:
    if not (is_number(a) and is_number(b)) or type(a) is bool or type(b) is bool:
        raise FHIRPathEvaluationError("div needs numbers")
    if to_decimal(b) == 0:
        return None
    q = (to_decimal(a) / to_decimal(b)).to_integral_value(rounding=ROUND_DOWN)
    return int(q)


def modulo(a: Any, b: Any) -> Any:
    if not (is_number(a) and is_number(b)) or type(a) is bool or type(b) is bool:
        raise FHIRPathEvaluationError("mod needs numbers")
    if to_decimal(b) == 0:
        return None
    if type(a) is int and type(b) is int:
        r = abs(a) % abs(b)
        return -r if a < 0 else r
    da, db = to_decimal(a), to_decimal(b)
    return da - db * (da / db).to_integral_value(rounding=ROUND_DOWN)


def negate(v: Any) -> Any:
    if type(v) is int or type(v) is Decimal:
        return -v
    if type(v) is float:
        return -to_decimal(v)
    if type(v) is Quantity:
        return Quantity(-v.value, v.unit)
    raise FHIRPathEvaluationError(f"cannot negate {type_name(v)}")
