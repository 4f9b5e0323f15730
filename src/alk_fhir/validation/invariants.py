"""Invariants (ElementDefinition.constraint): native where it matters, FHIRPath otherwise.

Why natives. A constraint is evaluated on every occurrence of its element (R4
conformance-rules.html#constraints). ``ele-1`` sits on every element of every resource and
``ref-1``/``ext-1``/``dom-*`` on every Reference, Extension and resource: evaluated through
fhirpathpy (about 40 µs per call here) they alone would cap the validator far below 2,000
resources/s. Some core invariants also call functions fhirpathpy does not implement
(``hasValue()``, ``resolve()``, ``htmlChecks()``), so they could not be evaluated at all. Those
constraints are implemented in Python below, each the meaning of the R4 expression (quoted in
``R4``). ``tests/test_validation_fhirpath.py`` evaluates the natives side by side with the R4
expression (``hasValue()`` supplied to fhirpathpy there) on a corpus and requires identical
results. Deliberate differences, each HL7's own later reading of the rule:

- ``per-1`` compares ``start``'s low boundary with ``end``'s high boundary (R5's wording): R4's
  ``start <= end`` is empty, hence violated, for partial dates such as 2026 .. 2026-06-01;
- ``ref-1`` holds for a Reference without ``reference`` and for ``#`` from a contained resource to
  its container (references.html#contained); ``bdl-8`` holds for an entry without ``fullUrl`` —
  read literally, both expressions are empty there;
- ``htmlChecks()`` (txt-1/txt-2) is xhtml.py; ``resolve()`` (ctm-1) resolves contained resources
  and Bundle entries.

``ele-1`` and ``ext-1`` are decided inside the structure walk (structure.py), which already looks
at every key. A native is used only when the constraint carries the R4 expression verbatim, so a
profile that reuses a key for another rule is evaluated as written. Every other constraint —
including all of ours — goes to ``fastpath`` (compiled closures for the common FHIRPath subset) or,
outside that subset, to our FHIRPath engine (``alk_fhir.fhirpath.compile_fhirpath``: compiled once,
typed by the element's path so choice elements and ``is()``/``as()`` work, ``%resource``/
``%rootResource`` set); fhirpathpy only for an expression our engine refuses (of the 9,001 R4 core
constraints, ``resolve()`` and ``htmlChecks()`` ones, which have natives). A constraint holds only
when the expression yields exactly ``true`` (empty or false is a violation, as in the HL7
validator).

fhirpathpy's docstring warns that it may annotate its input; the validator never relies on that
not happening: ``tests/test_validation.py`` deep-copies every example it validates and asserts the
input is unchanged afterwards.
"""

from __future__ import annotations

import calendar
import functools
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from fhirpathpy.engine.nodes import ResourceNode

from alk_fhir import fastpath, fhirpath
from alk_fhir.validation import xhtml
from alk_fhir.validation.run import Run

ValueCheck = Callable[[Any, str, Run], None]
Native = Callable[[Any, Run], bool]

UCUM = "http://unitsofmeasure.org"
typed_node: Callable[[Any, str], Any] = ResourceNode.create_node
R4 = {
    "dom-2": "contained.contained.empty()",
    "dom-3": "contained.where((('#'+id in (%resource.descendants().reference | %resource.descendants().as(canonical)"
             " | %resource.descendants().as(uri) | %resource.descendants().as(url))) or descendants().where(reference"
             " = '#').exists() or descendants().where(as(canonical) = '#').exists() or descendants().where(as(canoni"
             "cal) = '#').exists()).not()).trace('unmatched', id).empty()",
    "dom-4": "contained.meta.versionId.empty() and contained.meta.lastUpdated.empty()",
    "dom-5": "contained.meta.security.empty()",
    "dom-6": "text.`div`.exists()",
    "ref-1": "reference.startsWith('#').not() or (reference.substring(1).trace('url') in %rootResource.contained"
             ".id.trace('ids'))",
    "per-1": "start.hasValue().not() or end.hasValue().not() or (start <= end)",
    "txt-1": "htmlChecks()",
    "txt-2": "htmlChecks()",
    "ctm-1": "onBehalfOf.exists() implies (member.resolve().iif(empty(), true, ofType(Practitioner).exists()))",
    "age-1": "(code.exists() or value.empty()) and (system.empty() or system = %ucum) and (value.empty() or"
             " value.hasValue().not() or value > 0)",
    "cnt-3": "(code.exists() or value.empty()) and (system.empty() or system = %ucum) and (code.empty() or code ="
             " '1') and (value.empty() or value.hasValue().not() or value.toString().contains('.').not())",
    "bdl-1": "total.empty() or (type = 'searchset') or (type = 'history')",
    "bdl-2": "entry.search.empty() or (type = 'searchset')",
    "bdl-3": "entry.all(request.exists() = (%resource.type = 'batch' or %resource.type = 'transaction' or"
             " %resource.type = 'history'))",
    "bdl-4": "entry.all(response.exists() = (%resource.type = 'batch-response' or %resource.type ="
             " 'transaction-response' or %resource.type = 'history'))",
    "bdl-5": "resource.exists() or request.exists() or response.exists()",
    "bdl-7": "(type = 'history') or entry.where(fullUrl.exists()).select(fullUrl&resource.meta.versionId).isDistinct()",
    "bdl-8": "fullUrl.contains('/_history/').not()",
    "bdl-9": "type = 'document' implies (identifier.system.exists() and identifier.value.exists())",
    "bdl-10": "type = 'document' implies (timestamp.hasValue())",
    "bdl-11": "type = 'document' implies entry.first().resource.is(Composition)",
    "bdl-12": "type = 'message' implies entry.first().resource.is(MessageHeader)",
    "cmp-1": "text.exists() or entry.exists() or section.exists()",
    "cmp-2": "emptyReason.empty() or entry.empty()",
}
# Decided by the structure walk, never compiled here.
WALK_KEYS = frozenset({"ele-1", "ext-1"})


def _exists(node: Any, key: str) -> bool:
    """FHIRPath ``key.exists()`` on a JSON object: the element or its primitive extension is there."""
    return isinstance(node, dict) and (node.get(key) is not None or node.get("_" + key) is not None)


def _has_value(node: Any, key: str) -> bool:
    return isinstance(node, dict) and node.get(key) is not None


def _items(node: Any, key: str) -> list[Any]:
    value = node.get(key) if isinstance(node, dict) else None
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def dom2(res: Any, run: Run) -> bool:
    return not any(_exists(c, "contained") for c in _items(res, "contained"))


def dom3(res: Any, run: Run) -> bool:
    """Every contained resource is referenced ('#id') from the container or refers to it ('#')."""
    refs = run.frame.local_refs if run.frame is not None else set()
    for c in _items(res, "contained"):
        cid = c.get("id") if isinstance(c, dict) else None
        if f"#{cid}" not in refs and f"#>{cid}" not in refs:
            return False
    return True


def dom4(res: Any, run: Run) -> bool:
    return not any(_exists(_meta(c), "versionId") or _exists(_meta(c), "lastUpdated") for c in _items(res, "contained"))


def dom5(res: Any, run: Run) -> bool:
    return not any(_exists(_meta(c), "security") for c in _items(res, "contained"))


def _meta(res: Any) -> Any:
    return res.get("meta") if isinstance(res, dict) else None


def dom6(res: Any, run: Run) -> bool:
    return _exists(res.get("text"), "div")


def ref1(ref: Any, run: Run) -> bool:
    """A local reference names a contained resource of the root. ``#`` alone (a contained resource
    pointing at its container, references.html#contained) is accepted, which the R4 expression
    forgets."""
    value = ref.get("reference") if isinstance(ref, dict) else None
    if not isinstance(value, str) or not value.startswith("#"):
        return True
    frame = run.frame
    if frame is None:
        return False
    if value == "#":
        return frame.resource is not frame.root
    return value[1:] in frame.contained_ids


def per1(period: Any, run: Run) -> bool:
    """Read as HL7 corrected it in R5 (``start.lowBoundary() <= end.highBoundary()``): R4's
    ``start <= end`` is empty — a violation — for partial dates such as 2026 .. 2026-06-01, which
    are valid periods."""
    if not (_has_value(period, "start") and _has_value(period, "end")):
        return True
    low, high = _boundary(str(period["start"]), False), _boundary(str(period["end"]), True)
    if low is None or high is None:
        return False
    if (low[1] is None) != (high[1] is None):  # one carries a time zone, the other not: compare as written
        return low[0].replace(tzinfo=None) <= high[0].replace(tzinfo=None)
    return low[0] <= high[0]


_DT = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})?)?)?)?$")


@functools.lru_cache(maxsize=4096)
def _boundary(value: str, high: bool) -> tuple[datetime, str | None] | None:
    """The earliest (or latest) instant a partial date/dateTime can stand for. Kept per value (a
    pure function of it, and the same dates recur across a bundle's periods): parsing one takes
    microseconds. None for what is no instant at all (month 13, hour 25, year 0: the primitive's
    format check reports it; per-1 cannot hold for it)."""
    try:
        return _parse_boundary(value, high)
    except ValueError:  # calendar.IllegalMonthError, datetime's range checks
        return None


def _parse_boundary(value: str, high: bool) -> tuple[datetime, str | None] | None:
    m = _DT.match(value)
    if m is None:
        return None
    year, month, day, hour, minute, second, fraction, tz = m.groups()
    y = int(year)
    mo = int(month) if month else (12 if high else 1)
    last = calendar.monthrange(y, mo)[1]
    d = int(day) if day else (last if high else 1)
    if hour is None:
        moment = datetime(y, mo, min(d, last), 23, 59, 59, 999999) if high else datetime(y, mo, min(d, last))
        return moment, None
    micro = int((fraction or ".0")[1:].ljust(6, "0")[:6])
    moment = datetime(y, mo, min(d, last), int(hour), int(minute), min(int(second), 59), micro)
    if tz:
        offset = timedelta(0) if tz == "Z" else (1 if tz[0] == "+" else -1) * timedelta(
            hours=int(tz[1:3]), minutes=int(tz[4:6]))
        moment = moment.replace(tzinfo=timezone(offset))
    return moment, tz


def _html(div: str, run: Run) -> tuple[str | None, str | None]:
    """txt-1 and txt-2 read the same parse; it is kept for the rest of this validation call only."""
    key = ("html", id(div))
    found: tuple[str | None, str | None] | None = run.memo.get(key)
    if found is None:
        found = run.memo[key] = xhtml.html_problems(div)
    return found


def txt1(div: Any, run: Run) -> bool:
    return isinstance(div, str) and _html(div, run)[0] is None


def txt2(div: Any, run: Run) -> bool:
    return isinstance(div, str) and _html(div, run)[1] is None


def ctm1(participant: Any, run: Run) -> bool:
    if not _exists(participant, "onBehalfOf"):
        return True
    member = participant.get("member") if isinstance(participant, dict) else None
    target = resolve(member.get("reference") if isinstance(member, dict) else None, run)
    return target is None or target.get("resourceType") == "Practitioner"


def resolve(reference: Any, run: Run) -> dict[str, Any] | None:
    """FHIRPath ``resolve()`` within what the validator holds: contained resources and the
    enclosing Bundle. Anything else does not resolve (empty), as the function specifies."""
    if not isinstance(reference, str) or run.frame is None:
        return None
    if reference.startswith("#"):
        if reference == "#":
            return run.frame.root
        for c in _items(run.frame.root, "contained"):
            if isinstance(c, dict) and c.get("id") == reference[1:]:
                return c
        return None
    bundle = run.bundle
    if bundle is None:
        return None
    found: dict[str, Any] | None = bundle.resolve(reference, run.frame.resource)
    return found


def age1(q: Any, run: Run) -> bool:
    return ((_exists(q, "code") or not _exists(q, "value"))
            and (not _exists(q, "system") or q.get("system") == UCUM)
            and (not _exists(q, "value") or not _has_value(q, "value") or _gt_zero(q.get("value"))))


def _gt_zero(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0


def cnt3(q: Any, run: Run) -> bool:
    return ((_exists(q, "code") or not _exists(q, "value"))
            and (not _exists(q, "system") or q.get("system") == UCUM)
            and (not _exists(q, "code") or q.get("code") == "1")
            and (not _exists(q, "value") or not _has_value(q, "value") or "." not in _fp_string(q.get("value"))))


def _fp_string(v: Any) -> str:
    return str(Decimal(str(v))) if isinstance(v, float) else str(v)


def _btype(b: Any) -> Any:
    return b.get("type") if isinstance(b, dict) else None


def _implies(btype: Any, wanted: str, then: bool) -> bool:
    """``type = 'wanted' implies then``; with no type the left side is empty and ``{} implies X`` is X."""
    return then if btype is None else (btype != wanted or then)


def bdl1(b: Any, run: Run) -> bool:
    return not _exists(b, "total") or _btype(b) in ("searchset", "history")


def bdl2(b: Any, run: Run) -> bool:
    return not any(_exists(e, "search") for e in _items(b, "entry")) or _btype(b) == "searchset"


def bdl3(b: Any, run: Run) -> bool:
    if _btype(b) is None:  # '%resource.type = ...' is empty, so is every comparison in all()
        return not _items(b, "entry")
    wanted = _btype(b) in ("batch", "transaction", "history")
    return all(_exists(e, "request") == wanted for e in _items(b, "entry"))


def bdl4(b: Any, run: Run) -> bool:
    if _btype(b) is None:
        return not _items(b, "entry")
    wanted = _btype(b) in ("batch-response", "transaction-response", "history")
    return all(_exists(e, "response") == wanted for e in _items(b, "entry"))


def bdl5(entry: Any, run: Run) -> bool:
    return _exists(entry, "resource") or _exists(entry, "request") or _exists(entry, "response")


def bdl7(b: Any, run: Run) -> bool:
    if _btype(b) == "history":
        return True
    keys = []
    for e in _items(b, "entry"):
        if not _has_value(e, "fullUrl"):
            continue
        res = e.get("resource")
        meta = res.get("meta") if isinstance(res, dict) else None
        version = meta.get("versionId") if isinstance(meta, dict) else None
        keys.append(f"{e['fullUrl']}{version or ''}")
    return len(keys) == len(set(keys))


def bdl8(entry: Any, run: Run) -> bool:
    url = entry.get("fullUrl") if isinstance(entry, dict) else None
    return not isinstance(url, str) or "/_history/" not in url


def bdl9(b: Any, run: Run) -> bool:
    ident = b.get("identifier") if isinstance(b, dict) else None
    return _implies(_btype(b), "document", _exists(ident, "system") and _exists(ident, "value"))


def bdl10(b: Any, run: Run) -> bool:
    return _implies(_btype(b), "document", _has_value(b, "timestamp"))


def _first_is(b: Any, rtype: str) -> bool:
    entries = _items(b, "entry")
    first = entries[0].get("resource") if entries and isinstance(entries[0], dict) else None
    return isinstance(first, dict) and first.get("resourceType") == rtype


def bdl11(b: Any, run: Run) -> bool:
    return _implies(_btype(b), "document", _first_is(b, "Composition"))


def bdl12(b: Any, run: Run) -> bool:
    return _implies(_btype(b), "message", _first_is(b, "MessageHeader"))


def cmp1(section: Any, run: Run) -> bool:
    return _exists(section, "text") or _exists(section, "entry") or _exists(section, "section")


def cmp2(section: Any, run: Run) -> bool:
    return not _exists(section, "emptyReason") or not _exists(section, "entry")


NATIVES: dict[str, Native] = {
    "dom-2": dom2, "dom-3": dom3, "dom-4": dom4, "dom-5": dom5, "dom-6": dom6, "ref-1": ref1,
    "per-1": per1, "txt-1": txt1, "txt-2": txt2, "ctm-1": ctm1, "age-1": age1, "cnt-3": cnt3,
    "bdl-1": bdl1, "bdl-2": bdl2, "bdl-3": bdl3, "bdl-4": bdl4, "bdl-5": bdl5, "bdl-7": bdl7,
    "bdl-8": bdl8, "bdl-9": bdl9, "bdl-10": bdl10, "bdl-11": bdl11, "bdl-12": bdl12,
    "cmp-1": cmp1, "cmp-2": cmp2,
}


class InvariantError(ValueError):
    """A constraint of one of our profiles whose FHIRPath does not parse."""


def native_for(constraint: dict[str, Any]) -> Native | None:
    key = constraint.get("key", "")
    if R4.get(key) == constraint.get("expression"):
        return NATIVES[key]
    return None


def compile_constraint(constraint: dict[str, Any], type_path: str, where: str) -> ValueCheck | None:
    """One check closure for one constraint, or None for constraints the walk decides or that
    carry no FHIRPath. ``type_path`` types the focus for fhirpathpy (``CareTeam.participant``,
    ``Period``); ``where`` names the definition for error messages."""
    key = str(constraint.get("key", "?"))
    if key in WALK_KEYS:
        return None
    severity = "warning" if constraint.get("severity") == "warning" else "error"
    message = f"{key}: {constraint.get('human', '')}".rstrip(": ")
    native = native_for(constraint)
    if native is not None:
        def check_native(value: Any, path: str, run: Run) -> None:
            if not native(value, run):
                run.add(severity, "invariant", message, path)
        return check_native
    expression = constraint.get("expression")
    if not expression:
        return None
    fast = fastpath.compile_fast(expression, type_path)
    ours: Any = None
    if fast is None:  # our engine, else fhirpathpy: parsed now, so a broken expression stops start-up
        try:
            ours = fhirpath.compile_fhirpath(expression)
        except fhirpath.FHIRPathSyntaxError as exc:
            raise InvariantError(f"{where}: constraint {key}: {exc}") from exc
        except fhirpath.Unsupported:
            try:
                fhirpath.compile_expression(expression)
            except fhirpath.FHIRPathError as exc:
                raise InvariantError(f"{where}: constraint {key}: {exc}") from exc

    def slow(value: Any, run: Run) -> list[Any]:
        frame = run.frame
        env: dict[str, Any] = {"ucum": UCUM}
        if frame is not None:
            env["resource"] = frame.resource
            env["rootResource"] = frame.root
        if ours is not None:
            try:
                return [fhirpath.python_value(v) for v in ours(fhirpath.typed(value, type_path), env)]
            except fhirpath.FHIRPathEvaluationError as exc:
                raise fhirpath.FHIRPathError(str(exc)) from exc
        focus = value if isinstance(value, dict) and "resourceType" in value else typed_node(value, type_path)
        return fhirpath.evaluate_fhirpathpy(focus, expression, env)

    def check_fhirpath(value: Any, path: str, run: Run) -> None:
        try:
            if fast is not None:
                try:
                    result = fast([value], {"resource": run.frame.resource if run.frame is not None else None})
                except ValueError:  # outside singleton rules: let fhirpathpy say what it makes of it
                    result = slow(value, run)
            else:
                result = slow(value, run)
        except fhirpath.FHIRPathError as exc:
            run.add("error", "invariant", f"{message} (could not be evaluated: {exc})", path)
            return
        if result != [True]:
            run.add(severity, "invariant", message, path)
    return check_fhirpath
