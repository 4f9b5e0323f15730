"""The facts of Library ``alk-facts``, compiled once per package and evaluated per record.

Nothing clinical is decided here. The Library holds, for every fact, its FHIRPath definition over
the record (extension ``cqf-expression`` on the parameter), its type, and for the numbers the
guideline leaves open the operationalisation text; its ``dataRequirement``s name the record's
resource lists (``%conditions``, ``%procedures`` …). This module only compiles the definitions
(``recordpath.compile_record_expression``: once, to Python source), hands them the record as those
lists, and supplies the FHIR functions the definitions call: ``resolve()`` over the record
(contained resources included), ``memberOf()`` and ``namesMemberOf()`` over the package's
terminology. A definition outside the
compiled FHIRPath subset, or naming a variable that is neither a data requirement, a built-in nor an
earlier fact, stops start-up (``BrokenPackage``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from typing import Any

from alk_fhir import recordpath
from alk_fhir.context.build import PatientContext, resolve_reference, resources_of
from alk_fhir.context.fhirdata import JSON, resource_key
from alk_fhir.fhirpath import variables_in
from alk_fhir.fhirpath.values import FHIRPathEvaluationError
from alk_fhir.knowledge import CANONICAL_BASE, BrokenPackage, Package
from alk_fhir.knowledge.canonical import FACTS_LIBRARY
from alk_fhir.knowledge.valuesets import Terminology

VS = f"{CANONICAL_BASE}/ValueSet/"
Q = f"{CANONICAL_BASE}/Questionnaire/"
MODEL_Q, AMBIT_Q, ADMISSION_Q = Q + "alk-explanatory-model", Q + "alk-ambit-grid", Q + "alk-admission-goals"
CQF_EXPRESSION = "http://hl7.org/fhir/StructureDefinition/cqf-expression"
OPERATIONALISATION = f"{CANONICAL_BASE}/StructureDefinition/alk-operationalisation"
PRESENTATION = f"{CANONICAL_BASE}/StructureDefinition/alk-fact-presentation"
# What the caller supplies besides the record: the day the rules run for, and the hook's draft orders.
BUILTINS = ("today", "draftOrders")
_SINGLETON_TYPES = {"boolean", "integer", "decimal", "date", "dateTime", "code", "string", "Duration"}
_REFS, _TERM = " references", " terminology"  # env keys no FHIRPath %name can reach


@dataclass(frozen=True)
class Fact:
    name: str
    type: str
    many: bool
    expression: str
    run: recordpath.Fn
    uses: frozenset[str]
    documentation: str
    operationalisation: dict[str, str] | None  # {"nl": …, "en": …} for the numbers we chose
    # how an advice names this fact as its trigger: {"nl", "en"} label, and optionally "show" (the fact
    # whose value is shown, e.g. the count behind polypharmacy) and "evidence" (the fact whose resources
    # are listed)
    presentation: dict[str, str] | None = None


@dataclass(frozen=True)
class FactProgram:
    facts: tuple[Fact, ...]
    requirements: dict[str, str]  # data requirement id -> resource type

    @cached_property
    def by_name(self) -> dict[str, Fact]:
        return {f.name: f for f in self.facts}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.facts)

    @property
    def types(self) -> dict[str, str]:
        return {f.name: f.type for f in self.facts}

    def requirements_of(self, names: set[str] | frozenset[str]) -> set[str]:
        """The data requirements the given facts read, through the facts they read."""
        by_name = self.by_name
        todo, seen, out = list(names), set(), set()
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            if name in self.requirements or name in BUILTINS:
                out.add(name)
            elif name in by_name:
                todo.extend(by_name[name].uses)
        return out


def _texts(extension: JSON, keys: tuple[str, ...] = ("nl", "en")) -> dict[str, str]:
    return {str(e.get("url")): str(e.get("valueString", "")) for e in extension.get("extension", [])
            if e.get("url") in keys}


def _resolve(items: list[Any], args: list[list[Any]], env: dict[str, Any]) -> list[Any]:
    out = []
    by_key, local = env[_REFS]
    for item in items:
        if type(item) is dict and "reference" in item:  # a CodeableConcept resolves to nothing
            found = resolve_reference(by_key, local, item)
            if found is not None:
                out.append(found)
    return out


def _is_member(term: Terminology, url: str, items: list[Any]) -> bool | None:
    """``memberOf(url)`` of Codings and CodeableConcepts (empty input: empty); the terminology
    remembers each answer."""
    if not items:
        return None
    for item in items:
        if type(item) is not dict:
            continue
        codings: Any = item.get("coding") if "coding" in item else (item,) if "code" in item else ()
        for c in codings if type(codings) in (list, tuple) else ():
            if type(c) is not dict:
                continue
            system, code = c.get("system"), c.get("code")
            if type(system) is not str or type(code) is not str:
                continue
            if term.member(url, system, code):
                return True
    return False


def _names_in(term: Terminology, url: str, items: list[Any]) -> bool | None:
    """``namesMemberOf(url)``: whether a string names a concept of the ValueSet (empty input: empty)."""
    if not items:
        return None
    for s in items:  # noqa: SIM110 (a loop, not any(): product names are read on every medication)
        if type(s) is str and term.names_in(url, s):
            return True
    return False


def _member_of(items: list[Any], args: list[list[Any]], env: dict[str, Any]) -> list[Any]:
    if not items or not args or len(args[0]) != 1:
        return []
    return [_is_member(env[_TERM], str(args[0][0]), items)]


def _names_member_of(items: list[Any], args: list[list[Any]], env: dict[str, Any]) -> list[Any]:
    if not items or not args or len(args[0]) != 1:
        return []
    return [_names_in(env[_TERM], str(args[0][0]), items)]


# UCUM codes of the calendar durations a FHIR Duration carries (as MP9's ext-TimeInterval.Duration does)
_UCUM_CALENDAR = {"a": "year", "mo": "month", "wk": "week", "d": "day"}


def _to_quantity(items: list[Any], args: list[list[Any]], env: dict[str, Any]) -> list[Any]:
    """FHIRPath ``toQuantity()`` of a FHIR Quantity/Duration element (FHIRPath §5.5: a FHIR Quantity is
    a System.Quantity): the calendar durations date arithmetic needs (``start + duration``); other units
    give empty, as an undefined conversion does."""
    if len(items) != 1:
        return []
    item = items[0]
    if isinstance(item, recordpath.Quantity):
        return [item]
    if type(item) is not dict or type(item.get("value")) not in (int, float, Decimal) or isinstance(
            item.get("value"), bool):
        return []
    unit = _UCUM_CALENDAR.get(str(item.get("code"))) if item.get("system", "http://unitsofmeasure.org") == (
        "http://unitsofmeasure.org") else None
    return [] if unit is None else [recordpath.Quantity(Decimal(str(item["value"])), unit)]


HOST_FUNCTIONS: dict[str, recordpath.HostFunction] = {
    "resolve": _resolve, "memberOf": _member_of, "namesMemberOf": _names_member_of, "toQuantity": _to_quantity}


def _predicates(term: Terminology) -> dict[str, recordpath.HostPredicate]:
    """``memberOf('…')`` and ``namesMemberOf('…')`` bound to their ValueSet at compile time, answering
    true/false/empty directly (no argument lists built per call)."""
    def member_of(args: tuple[str, ...]) -> Callable[[list[Any]], bool | None]:
        (url,) = args
        return lambda items: _is_member(term, url, items)

    def names_member_of(args: tuple[str, ...]) -> Callable[[list[Any]], bool | None]:
        (url,) = args
        return lambda items: _names_in(term, url, items)
    return {"memberOf": member_of, "namesMemberOf": names_member_of}


def compile_facts(pkg: Package, library: str = FACTS_LIBRARY) -> FactProgram:
    """The Library's facts, in order, compiled (once per package: cached on it)."""
    cached = pkg.compiled.get(f"facts|{library}")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    lib = pkg.resolve(library)
    if lib is None or lib.get("resourceType") != "Library":
        raise BrokenPackage(f"no Library {library} in the package")
    requirements = {str(r.get("id")): str(r.get("type")) for r in lib.get("dataRequirement", []) if r.get("id")}
    known = set(requirements) | set(BUILTINS)
    predicates = _predicates(pkg.terminology)
    facts = []
    for param in lib.get("parameter", []):
        name = str(param.get("name"))
        where = f"Library/{lib['id']} parameter {name}"
        expressions = [e["valueExpression"] for e in param.get("extension", []) if e.get("url") == CQF_EXPRESSION]
        if len(expressions) != 1 or expressions[0].get("language") != "text/fhirpath":
            raise BrokenPackage(f"{where}: needs exactly one cqf-expression in text/fhirpath")
        text = str(expressions[0].get("expression", ""))
        uses = frozenset(variables_in(text))
        unknown = uses - known
        if unknown:
            raise BrokenPackage(f"{where}: uses {sorted(unknown)}, neither a data requirement, a built-in "
                                "nor a fact defined before it")
        try:
            # the data requirements and the earlier facts are lists in a _Record (compute_facts)
            run = recordpath.compile_record_expression(text, known, HOST_FUNCTIONS, name, predicates,
                                                       known - set(BUILTINS))
        except recordpath.Unsupported as exc:
            raise BrokenPackage(f"{where}: outside the FHIRPath the engine compiles ({exc})") from exc
        except Exception as exc:  # the parser's own errors
            raise BrokenPackage(f"{where}: cannot parse {text!r}: {exc}") from exc
        op = next((e for e in param.get("extension", []) if e.get("url") == OPERATIONALISATION), None)
        shown = next((e for e in param.get("extension", []) if e.get("url") == PRESENTATION), None)
        presentation = _texts(shown, ("nl", "en", "show", "evidence")) if shown else None
        for key in ("show", "evidence"):
            if presentation and presentation.get(key) and presentation[key] not in known:
                raise BrokenPackage(f"{where}: presentation {key} {presentation[key]!r} is no fact before it")
        ftype = str(param.get("type", ""))
        facts.append(Fact(name, ftype, param.get("max", "1") == "*", text, run,
                          uses, str(param.get("documentation", "")), _texts(op) if op else None, presentation))
        known.add(name)
    program = FactProgram(tuple(facts), requirements)
    pkg.compiled[f"facts|{library}"] = program
    return program


class _Record(dict[str, Any]):
    """The environment of the fact definitions: the record's lists, the built-ins, and each fact,
    computed when a definition, a condition or a reader first asks for it (a hook then evaluates only
    what its actions and the assessment read)."""

    def __init__(self, program: FactProgram, focus: list[Any]) -> None:
        super().__init__()
        self.definitions = program.by_name
        self.focus = focus

    def __missing__(self, name: str) -> list[Any]:
        fact = self.definitions.get(name)
        if fact is None:
            raise KeyError(name)
        try:
            value: list[Any] = fact.run(self.focus, self)
        except FHIRPathEvaluationError:
            # FHIRPath N1 signals an error to the caller (a string function on a malformed element,
            # say): the fact is unknown for this record, and a malformed record is not fatal (issue 4)
            value = []
        self[name] = value
        return value


class FactValues(dict[str, Any]):
    """The facts of one record by name, as the rules read them (a single value, or the list for
    ``max = *`` facts, ``[]`` when empty), each computed on first read; ``all()`` computes every one."""

    def __init__(self, record: _Record, program: FactProgram) -> None:
        super().__init__()
        self._record = record
        self._program = program

    def __missing__(self, name: str) -> Any:
        fact = self._record.definitions.get(name)
        if fact is None:
            raise KeyError(name)
        value = self._record[name]
        out = value if fact.many else value[0] if len(value) == 1 else value
        self[name] = out
        return out

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except KeyError:
            return default

    def computed(self) -> set[str]:
        """The facts evaluated so far (read directly or through a definition)."""
        return {name for name in self._record if name in self._record.definitions}

    def all(self) -> dict[str, Any]:
        """Every fact, in the Library's order (for explanations and comparisons)."""
        return {name: self[name] for name in self._program.names}


def compute_facts(ctx: PatientContext, pkg: Package, program: FactProgram | None = None) -> None:
    """Make the facts of the context's record available (``ctx.facts``; ``ctx.evidence(fact)`` cites a
    fact's resources): each is evaluated when first read, once."""
    program = program or compile_facts(pkg)
    record = _Record(program, [ctx.patient] if ctx.patient else [])
    # the indexes resolve() needs, not the context: ctx -> facts -> record -> ctx would be a cycle
    record.update({_REFS: (ctx.by_key, ctx.local), _TERM: pkg.terminology, "today": ctx.today.isoformat(),
                   "draftOrders": ctx.draft_orders})
    for req, rtype in program.requirements.items():
        record[req] = ctx.of_type(rtype)
    ctx.facts = FactValues(record, program)


def fact_environment(ctx: PatientContext) -> dict[str, Any]:
    """The environment the fact definitions are evaluated in (data requirements, built-ins, the facts
    themselves computed on first read): for evaluating other expressions as a fact would be
    (``alk-fhir fhirpath``)."""
    if not isinstance(ctx.facts, FactValues):
        raise ValueError("the context's facts are not computed (build_context computes them)")
    return ctx.facts._record


def fact_lists(facts: dict[str, Any]) -> dict[str, Any]:
    """What a condition over the facts reads: each fact as its list (a record's ``FactValues`` without
    unwrapping single values, computed on first read as they are), or the given mapping as it is."""
    return facts._record if isinstance(facts, FactValues) else facts


def unread_types(data: Any, program: FactProgram) -> dict[str, int]:
    """Resource types the record holds that no data requirement of the Library reads, with how many
    of each: what ``--explain`` names as left out (some are still reached by reference, e.g. the
    Practitioner behind a PractitionerRole)."""
    read = set(program.requirements.values())
    out: dict[str, int] = {}
    for res in resources_of(data):
        rtype = res.get("resourceType") if isinstance(res, dict) else None
        if isinstance(rtype, str) and rtype not in read:
            out[rtype] = out.get(rtype, 0) + 1
    return dict(sorted(out.items()))


_SHOWN = ("linkId", "answer", "role", "member", "valueBoolean", "valueCoding", "valueString", "valueDate",
          "valueInteger")


def facts_as_json(facts: dict[str, Any]) -> dict[str, Any]:
    """The facts for people and logs: resources by reference, quantities as FHIR Quantities (every fact
    of a record's ``FactValues``)."""
    if isinstance(facts, FactValues):
        facts = facts.all()
    def plain(value: Any) -> Any:
        if isinstance(value, list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return resource_key(value) if "resourceType" in value else {
                k: plain(v) for k, v in value.items() if k in _SHOWN}
        if isinstance(value, recordpath.Quantity):
            return {"value": int(value.value) if value.value == int(value.value) else float(value.value),
                    "unit": value.unit}
        if isinstance(value, Decimal):
            return float(value)
        return value
    return {name: plain(value) for name, value in facts.items()}
