"""PlanDefinition/$apply (FHIR R4 operation, plandefinition-operation-apply), compiled once.

``load_engine`` runs at start-up: every condition and dynamicValue expression is parsed into the
FHIRPath cache, every ``definitionCanonical`` resolved, and every ``%fact`` a condition names checked
against the facts the Library declares and the context computes. A request then only evaluates.

The result follows the R4 operation: a CarePlan (status draft, intent proposal) whose activity
references a RequestGroup (intent proposal) holding the applicable actions, each with its guideline
section code, title, description and documentation, and a reference to the request its
ActivityDefinition produced (intent option, as CPG-on-FHIR prescribes for requests inside a
RequestGroup). A step that only informs (no ActivityDefinition, no applicable sub-steps) references a
CommunicationRequest whose payload is the step's text: CPG-on-FHIR's "communicate" activity, and what
R4's rqg-1 ("must have resource or action but not both") asks of every RequestGroup action.
``as_bundle`` gives all resources as a collection Bundle; ``as_careplan`` the
CarePlan with everything contained, as the operation's single return value.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property, lru_cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

from alk_fhir import fhirpath, recordpath
from alk_fhir.context import PatientContext, build_context, compile_facts
from alk_fhir.context.facts import fact_lists
from alk_fhir.context.fhirdata import JSON
from alk_fhir.criteria import Assessment, assess, assessment_observation
from alk_fhir.fhir import uuid5_from_sha1, uuid5_text
from alk_fhir.knowledge import CANONICAL_BASE, BrokenPackage, Package
from alk_fhir.knowledge.canonical import TRANSLATION_EXT

DEFAULT_PLAN = f"{CANONICAL_BASE}/PlanDefinition/alk-guideline"
RG_PROFILE = f"{CANONICAL_BASE}/StructureDefinition/alk-guidance-requestgroup"
CAREPLAN_PROFILE = f"{CANONICAL_BASE}/StructureDefinition/alk-applied-careplan"
STEPPLAN_PROFILE = f"{CANONICAL_BASE}/StructureDefinition/alk-stepplan"
COLLECT_WITH = "http://hl7.org/fhir/uv/cpg/StructureDefinition/cpg-collectWith"
_NAMESPACE = uuid.UUID("6f1c3a52-4b8e-4f0a-9a57-2d0e9b7c1a11")


def _uuid5(name: str) -> str:
    """The ids of the resources $apply makes: uuid5 in our namespace (fhir.uuid5_text)."""
    return uuid5_text(_NAMESPACE, name)


# The %variables a dynamicValue may use, with their FHIR types (R4 plandefinition-operation-apply:
# subject, practitioner; CPG: now/today; ours: the active care teams and the computed assessment).
DYNAMIC_VARIABLES = {"subject": "Reference", "practitioner": "Reference", "now": "dateTime", "today": "date",
                     "careTeams": "Reference", "assessment": "Reference"}
_TEXT_KEYS = ("title", "_title", "description", "_description", "textEquivalent", "_textEquivalent")


@dataclass(frozen=True)
class CompiledAction:
    action: JSON
    conditions: tuple[str, ...]
    tests: tuple[fhirpath.Condition, ...]
    dynamic: tuple[tuple[str, fhirpath.Compiled], ...]  # (path, compiled expression) of the definition
    triggers: frozenset[str]
    definition: JSON | None
    children: tuple[CompiledAction, ...]
    # the facts its conditions read that the Library presents (name, presentation), in condition order
    shown: tuple[tuple[str, dict[str, str]], ...] = ()
    # what every applied RequestGroup action copies from the plan's action (texts, code, behaviours)
    copied: JSON = field(default_factory=dict)


@dataclass(frozen=True)
class CompiledPlan:
    plan: JSON
    actions: tuple[CompiledAction, ...]

    @property
    def canonical(self) -> str:
        return f"{self.plan['url']}|{self.plan['version']}"


@dataclass
class Engine:
    package: Package
    plans: dict[str, CompiledPlan] = field(default_factory=dict)

    def plan(self, reference: str) -> CompiledPlan:
        found = self.package.resolve(reference)
        if found is None or found["resourceType"] != "PlanDefinition" or found["url"] not in self.plans:
            raise KeyError(f"no PlanDefinition {reference}")
        compiled: CompiledPlan = self.plans[found["url"]]
        return compiled


@dataclass
class ApplyResult:
    careplan: JSON
    requestgroup: JSON
    requests: list[JSON]
    context: PatientContext
    trace: list[JSON]
    package: Package
    observation_id: str

    @cached_property
    def assessment(self) -> Assessment:
        """Built when read: a CDS call that shows no assessment does not evaluate the facts only the
        assessment needs (the profile features of a patient already in the pathway)."""
        return assess(self.context, self.package)

    @cached_property
    def observation(self) -> JSON:
        """The assessment as an alk-assessment Observation; the CarePlan references it by this id."""
        return assessment_observation(self.assessment, self.context, self.package, self.observation_id)

    @property
    def section_codes(self) -> list[str]:
        """The guideline sections of the applicable actions, leaves and groups, in plan order."""
        return [c["code"] for a in _walk(self.requestgroup.get("action", [])) for c in _section_codings(a)]

    def as_bundle(self) -> JSON:
        resources = [self.careplan, self.requestgroup, self.observation, *self.requests]
        return {
            "resourceType": "Bundle",
            "id": _uuid5(self.careplan["id"] + "|bundle"),
            "type": "collection",
            "timestamp": self.context.today.isoformat() + "T00:00:00Z",
            "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources],
        }

    def as_careplan(self) -> JSON:
        """The CarePlan with the RequestGroup, assessment and requests contained (references '#id')."""
        contained = [_localise(r) for r in (self.requestgroup, self.observation, *self.requests)]
        out: JSON = _localise(self.careplan)
        out["contained"] = contained
        return out


def _walk(actions: list[JSON]) -> list[JSON]:
    out = []
    for a in actions:
        out.append(a)
        out += _walk(a.get("action", []))
    return out


def _section_codings(action: JSON) -> list[JSON]:
    from alk_fhir.knowledge import GUIDELINE_SYSTEM

    return [c for cc in action.get("code", []) for c in cc.get("coding", []) if c.get("system") == GUIDELINE_SYSTEM]


def _localise(node: Any) -> Any:
    if isinstance(node, list):
        return [_localise(n) for n in node]
    if isinstance(node, dict):
        out = {k: _localise(v) for k, v in node.items()}
        ref = out.get("reference")
        if isinstance(ref, str) and ref.startswith("urn:uuid:"):
            out["reference"] = "#" + ref[len("urn:uuid:"):]
        return out
    return node


# ---------------------------------------------------------------------------------------- compile

def load_engine(pkg: Package) -> Engine:
    engine = Engine(package=pkg)
    for plan in pkg.of_type("PlanDefinition"):
        declared = _declared_facts(pkg, plan)
        engine.plans[plan["url"]] = CompiledPlan(plan=plan, actions=tuple(
            _compile_action(pkg, plan, a, declared) for a in plan.get("action", [])))
    return engine


def _declared_facts(pkg: Package, plan: JSON) -> dict[str, str]:
    """The facts (name -> FHIR type) the plan's Libraries declare as input parameters."""
    declared: dict[str, str] = {}
    for ref in plan.get("library", []):
        if pkg.resolve(ref) is None:
            raise BrokenPackage(f"PlanDefinition/{plan['id']}: library {ref} not in the package")
        declared |= compile_facts(pkg, ref).types
    return declared


def _compile_action(pkg: Package, plan: JSON, action: JSON, declared: dict[str, str]) -> CompiledAction:
    where = f"PlanDefinition/{plan['id']} action {action.get('id')}"
    conditions = []
    tests = []
    for cond in action.get("condition", []):
        expr = cond.get("expression", {})
        if cond.get("kind") != "applicability" or expr.get("language") != "text/fhirpath":
            raise BrokenPackage(f"{where}: only FHIRPath applicability conditions are supported")
        text = expr["expression"]
        unknown = set(fhirpath.variables_in(text)) - set(declared)
        if unknown:
            raise BrokenPackage(f"{where}: condition uses undeclared facts {sorted(unknown)}")
        try:
            tests.append(_condition(text, declared))
        except fhirpath.FHIRPathError as exc:
            raise BrokenPackage(f"{where}: {exc}") from exc
        conditions.append(text)
    definition = None
    dynamic: list[tuple[str, fhirpath.Compiled]] = []
    if "definitionCanonical" in action and action.get("action"):
        raise BrokenPackage(f"{where}: an action with a definition cannot hold sub-actions (R4 rqg-1)")
    if "definitionCanonical" in action:
        definition = pkg.resolve(action["definitionCanonical"])
        if definition is None or definition["resourceType"] != "ActivityDefinition":
            raise BrokenPackage(f"{where}: {action['definitionCanonical']} is not an ActivityDefinition here")
        for dv in definition.get("dynamicValue", []):
            text = dv["expression"]["expression"]
            unknown = set(fhirpath.variables_in(text)) - set(DYNAMIC_VARIABLES)
            if unknown:
                raise BrokenPackage(f"ActivityDefinition/{definition['id']}: unknown variables {sorted(unknown)}")
            try:
                dynamic.append((dv["path"], fhirpath.compile_evaluator(text, DYNAMIC_VARIABLES)))
            except fhirpath.FHIRPathError as exc:
                raise BrokenPackage(f"ActivityDefinition/{definition['id']}: {exc}") from exc
            _is_list_element(definition["kind"], dv["path"])  # fails loudly on a wrong path
    triggers = frozenset(t["name"] for t in action.get("trigger", []) if t.get("type") == "named-event")
    children = tuple(_compile_action(pkg, plan, a, declared) for a in action.get("action", []))
    presented = {f.name: f.presentation for ref in plan.get("library", [])
                 for f in compile_facts(pkg, ref).facts if f.presentation}
    names = list(dict.fromkeys(n for text in conditions for n in fhirpath.variables_in(text)))
    negated = {n for text in conditions for n in re.findall(r"%([A-Za-z][A-Za-z0-9_]*)\.not\(\)", text)}
    # a yes/no fact triggers when it holds as the condition reads it (true, or false where negated)
    shown = tuple((n, {**presented[n], "expect": "false" if n in negated else "true"}) for n in names
                  if n in presented)
    copied = {k: action[k] for k in (*_TEXT_KEYS, "code", "documentation", "priority", "groupingBehavior",
                                     "selectionBehavior") if k in action}
    return CompiledAction(action, tuple(conditions), tuple(tests), tuple(dynamic), triggers, definition, children,
                          shown, copied)


def _condition(text: str, declared: dict[str, str]) -> fhirpath.Condition:
    """An applicability condition over the facts, compiled as the facts themselves are (``recordpath``:
    one Python function, reading each fact's list as it is); a condition outside that subset goes to
    ``fhirpath.compile_condition``. Exactly ``[True]`` is true (as ``fhirpath.is_true``)."""
    try:
        run = recordpath.compile_record_expression(text, set(declared), {}, f"condition {text}")
    except recordpath.Unsupported:
        return fhirpath.compile_condition(text, declared)
    except Exception as exc:  # the parser's own errors
        raise fhirpath.FHIRPathError(f"cannot parse FHIRPath {text!r}: {exc}") from exc

    def test(resource: Any, facts: Any) -> bool:
        try:
            return run([resource] if resource else [], facts) == [True]
        except Exception as exc:
            raise fhirpath.FHIRPathError(f"cannot evaluate FHIRPath {text!r}: {exc}") from exc
    return test


@lru_cache(maxsize=256)
def _is_list_element(resource_type: str, path: str) -> bool:
    fields = {f.alias or name: f for name, f in get_fhir_model_class(resource_type).model_fields.items()}
    if path not in fields:
        raise BrokenPackage(f"{resource_type} has no element {path}")
    return "List" in str(fields[path].annotation) or "list" in str(fields[path].annotation)


# ------------------------------------------------------------------------------------------ apply

class NoSubject(ValueError):
    """Neither a subject nor a Patient in the data: R4 $apply's ``subject`` is 1..*, and our profiles
    (applied CarePlan, RequestGroup, assessment) require one."""


EARLIEST_DAY, LATEST_DAY = date(1900, 1, 1), date(8999, 12, 31)


def pinned_day(text: str) -> date:
    """A caller's "today" (YYYY-MM-DD) within the range the rules' date arithmetic is defined for."""
    day = date.fromisoformat(text)
    if not EARLIEST_DAY <= day <= LATEST_DAY:
        raise ValueError(f"{text} is outside {EARLIEST_DAY.isoformat()}..{LATEST_DAY.isoformat()}")
    return day


def run(engine: Engine, data: Any, today: date, *, plan: str = DEFAULT_PLAN, hook: str | None = None,
        practitioner: JSON | None = None, draft_orders: Any = None, patient_id: str | None = None,
        explain: bool = True) -> ApplyResult:
    """Context, assessment and $apply in one call: what every face needs (NoSubject without a patient).
    ``explain=False`` leaves out each advice's ``alk-trigger`` (what the app shows; CDS cards do not)."""
    ctx = build_context(data, engine.package, today, draft_orders=draft_orders, patient_id=patient_id)
    if ctx.subject_reference is None:
        raise NoSubject("the data hold no Patient and no subject was given: $apply is for one patient")
    return apply_plan(engine, plan, ctx, hook=hook, practitioner=practitioner, explain=explain)


def apply_plan(engine: Engine, plan_ref: str, ctx: PatientContext, *,
               hook: str | None = None, practitioner: JSON | None = None, explain: bool = True) -> ApplyResult:
    compiled = engine.plan(plan_ref)
    subject = ctx.subject_reference
    seed = f"{(subject or {}).get('reference', 'anonymous')}|{compiled.canonical}|{ctx.today.isoformat()}|{hook or ''}"

    prefix = hashlib.sha1(_NAMESPACE.bytes + f"{seed}|".encode(), usedforsecurity=False)

    def new_id(kind: str) -> str:
        """_uuid5(f"{seed}|{kind}"), the seed hashed once per call of apply_plan."""
        digest = prefix.copy()
        digest.update(kind.encode())
        return uuid5_from_sha1(digest.digest())

    obs = {"id": new_id("assessment")}  # built when read (ApplyResult.observation)
    care_teams = [{"reference": f"CareTeam/{t['id']}"} for t in ctx.of_type("CareTeam") if t.get("status") == "active"]
    variables: dict[str, Any] = {
        "subject": subject or [],
        "practitioner": practitioner or [],
        "now": ctx.today.isoformat(),
        "today": ctx.today.isoformat(),
        "careTeams": care_teams,
        "assessment": {"reference": f"urn:uuid:{obs['id']}"},
    }
    requests: list[JSON] = []
    trace: list[JSON] = []
    actions = [
        out for a in compiled.actions if hook is None or hook in a.triggers
        for out in [_apply_action(a, ctx, variables, requests, trace, new_id, practitioner, compiled, explain)]
        if out is not None
    ]
    rg: JSON = {
        "resourceType": "RequestGroup",
        "id": new_id("requestgroup"),
        "meta": {"profile": [RG_PROFILE]},
        "instantiatesCanonical": [compiled.canonical],
        "status": "draft",
        "intent": "proposal",
        "authoredOn": ctx.today.isoformat(),
    }
    if subject:
        rg["subject"] = subject
    if practitioner:
        rg["author"] = practitioner
    if actions:
        rg["action"] = actions
    plan = compiled.plan
    careplan: JSON = {
        "resourceType": "CarePlan",
        "id": new_id("careplan"),
        "meta": {"profile": [CAREPLAN_PROFILE]},
        "instantiatesCanonical": [compiled.canonical],
        "status": "draft",
        "intent": "proposal",
        **{k: plan[k] for k in ("title", "_title", "description", "_description") if k in plan},
        "created": ctx.today.isoformat(),
        "activity": [{"reference": {"reference": f"urn:uuid:{rg['id']}"}}],
        "supportingInfo": [{"reference": f"urn:uuid:{obs['id']}"}],
    }
    if subject:
        careplan["subject"] = subject
    if practitioner:
        careplan["author"] = practitioner
    return ApplyResult(careplan, rg, requests, ctx, trace, engine.package, obs["id"])


def _apply_action(compiled: CompiledAction, ctx: PatientContext, variables: dict[str, Any],
                  requests: list[JSON], trace: list[JSON], new_id: Any, practitioner: JSON | None,
                  plan: CompiledPlan, explain: bool = True) -> JSON | None:
    action = compiled.action
    facts = fact_lists(ctx.facts)
    applicable = all(test(ctx.patient or {}, facts) for test in compiled.tests)
    trace.append({"action": action.get("id"), "conditions": list(compiled.conditions), "applicable": applicable})
    if not applicable:
        return None
    out: JSON = {"id": action["id"]}
    if explain and compiled.shown:
        triggers = []
        for name, shown in compiled.shown:
            value = ctx.facts.get(name)
            if not isinstance(value, bool) or str(value).lower() == shown["expect"]:
                triggers.append(_trigger(ctx, name, shown))
        if triggers:
            out["extension"] = triggers
    out.update(compiled.copied)
    if compiled.definition is not None:
        resource = _instantiate(compiled.definition, compiled.dynamic, variables, new_id(action["id"]))
        requests.append(resource)
        out["resource"] = {"reference": f"urn:uuid:{resource['id']}"}
    children = [c for c in (_apply_action(ch, ctx, variables, requests, trace, new_id, practitioner, plan, explain)
                            for ch in compiled.children) if c is not None]
    if children:
        out["action"] = children
    elif action.get("groupingBehavior") == "logical-group" and compiled.children:
        return None  # a pure container whose steps all do not apply says nothing
    if "resource" not in out and "action" not in out:
        message = communication(action, ctx, practitioner, new_id(action["id"] + "|communication"))
        requests.append(message)
        out["resource"] = {"reference": f"urn:uuid:{message['id']}"}
    return out


TRIGGER_EXT = f"{CANONICAL_BASE}/StructureDefinition/alk-trigger"
_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T")
MAX_TRIGGER_EVIDENCE = 20


def _value(value: Any) -> JSON | None:
    """A fact's value as an Extension value[x] (a collection or unknown has none)."""
    if isinstance(value, bool):
        return {"valueBoolean": value}
    if isinstance(value, int):
        return {"valueInteger": value}
    if isinstance(value, str):
        if _DATE.match(value):
            return {"valueDate": value}
        return {"valueDateTime": value} if _DATETIME.match(value) else {"valueString": value}
    return None


def _trigger(ctx: PatientContext, name: str, shown: dict[str, str]) -> JSON:
    """What an advice rests on, for the clinician: the fact, its label (nl, en translation), its value and
    the record's entries behind it (alk-trigger, Library alk-facts ``alk-fact-presentation``)."""
    label: JSON = {"url": "label", "valueString": shown.get("nl", name)}
    if shown.get("en"):
        label["_valueString"] = {"extension": [{"url": TRANSLATION_EXT, "extension": [
            {"url": "lang", "valueCode": "en"}, {"url": "content", "valueString": shown["en"]}]}]}
    parts: list[JSON] = [{"url": "fact", "valueString": name}, label]
    value = _value(ctx.facts.get(shown.get("show") or name))
    if value is not None:
        parts.append({"url": "value", **value})
    parts += [{"url": "evidence", "valueReference": ref}
              for ref in ctx.evidence(shown.get("evidence") or shown.get("show") or name)[:MAX_TRIGGER_EVIDENCE]]
    return {"url": TRIGGER_EXT, "extension": parts}


def communication(action: JSON, ctx: PatientContext, practitioner: JSON | None, res_id: str) -> JSON:
    """The informational request of a guidance-only step: its text (nl, with the English translation
    extension) addressed to the clinician, status draft (R4's CommunicationRequest has no ``intent``)."""
    key = "description" if "description" in action else "title"
    payload: JSON = {"contentString": action.get(key, action["id"])}
    if f"_{key}" in action:
        payload["_contentString"] = action[f"_{key}"]
    message: JSON = {"resourceType": "CommunicationRequest", "id": res_id, "status": "draft",
                     "payload": [payload], "authoredOn": ctx.today.isoformat()}
    if "code" in action:
        message["reasonCode"] = action["code"]
    if ctx.subject_reference:
        message["subject"] = ctx.subject_reference
    if practitioner:
        message["recipient"] = [practitioner]
    return message


def _instantiate(definition: JSON, dynamic: tuple[tuple[str, fhirpath.Compiled], ...], variables: dict[str, Any],
                 res_id: str) -> JSON:
    """ActivityDefinition -> request resource (R4 activitydefinition-operation-apply mapping)."""
    kind = definition["kind"]
    canonical = f"{definition['url']}|{definition['version']}"
    res: JSON = {"resourceType": kind, "id": res_id, "instantiatesCanonical": [canonical]}
    texts: JSON = {k: definition[k] for k in ("description", "_description") if k in definition}
    if kind == "Task":
        res.update({"status": "draft", "intent": "option", "code": definition["code"], **texts})
        res["instantiatesCanonical"] = canonical  # Task.instantiatesCanonical is 0..1
        for ext in definition.get("extension", []):
            if ext.get("url") == COLLECT_WITH:
                res["input"] = [{"type": {"text": "questionnaire"}, "valueCanonical": ext["valueCanonical"]}]
    elif kind == "ServiceRequest":
        res.update({"status": "draft", "intent": "option", "code": definition["code"]})
        if "description" in definition:
            res["note"] = [{"text": definition["description"],
                            **({"_text": definition["_description"]} if "_description" in definition else {})}]
    elif kind == "CarePlan":
        titles: JSON = {k: definition[k] for k in ("title", "_title") if k in definition}
        res.update({"meta": {"profile": [STEPPLAN_PROFILE]}, "status": "draft",
                    "intent": definition.get("intent", "plan"), "category": [definition["code"]], **titles, **texts})
    else:
        raise BrokenPackage(f"ActivityDefinition/{definition['id']}: kind {kind} is not supported")
    if "priority" in definition and kind != "CarePlan":
        res["priority"] = definition["priority"]
    for path, expression in dynamic:
        value = expression({}, variables)
        if not value:
            continue
        res[path] = value if _is_list_element(kind, path) else value[0]
    return res
