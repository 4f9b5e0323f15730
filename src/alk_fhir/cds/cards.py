"""CDS Hooks cards built from the applied PlanDefinition: every card is an applicable action.

No clinical rule lives here: whether a card appears is decided by the action's FHIRPath condition in
``PlanDefinition/alk-guideline`` ($apply); this module only presents the RequestGroup it returned.

Mapping (CDS Hooks 2.0, "Card Attributes"):
- one card per applicable action that proposes something (its ``resource`` is a request from an
  ActivityDefinition, not the CommunicationRequest of a guidance-only step) or is ``urgent``,
  and per top-level action that is not a group;
- one summary card per applicable top-level group (``groupingBehavior = logical-group``, e.g.
  ``persistent-alk``) whose Markdown ``detail`` lists its guidance-only steps (no resource, not
  urgent: H §2.1, §2.2, §2.3, §2.4, §3.2, §3.4, §3.5 …); nested groups only structure the plan and
  give no card of their own;
- ``summary`` = the action's title (< 140 characters; a ``{fact}`` in it names this patient's entries,
  e.g. the drug ordered; a group's card with a single step is about that step and takes its title),
  ``detail`` = its description, what triggered it ("Aanleiding": ``triggers.trigger_line``), the
  notes on our numbers that apply to this patient and the Handreiking section it cites,
  ``indicator`` = ``warning`` for ``urgent`` actions, else ``info``
  (the guideline has no emergencies, so never ``critical``);
- ``source``: the guideline as ``label``, the citation URL of the action (or of the nearest
  ancestor, or the plan's) as ``url``, and the action's guideline section Coding as ``topic``;
- ``suggestions``: one per proposing action (one intent), whose ``create`` actions carry the request
  from the ActivityDefinition as a draft for the clinician to complete (the label says so), with a
  business identifier per patient, action and day and the matching If-None-Exist value (Da Vinci CRD's
  ``davinci-crd.if-none-exist`` action extension), so accepting twice creates once;
  ``selectionBehavior`` ``at-most-one`` (one suggestion per card);
- ``overrideReasons``: Codings of our concepts CodeSystem, each with a ``display``;
- ``links``: the guideline text (``absolute``) and, when ``ALK_FHIR_APP_LAUNCH_URL`` is set, the
  SMART app (``smart``) with ``appContext`` naming the Questionnaire a Task asks for.

Optional fields are omitted when they have no value, never ``null``/``""``/``[]``/``{}``.
Card and suggestion ``uuid``s derive from a secret of this process (:data:`UUID_SALT`, random at
start-up), ``hookInstance`` and the action id: unique per call (``hookInstance`` is), stable for the
same call on the same process, and not derivable from the hookInstance by anyone who lacks the salt,
so an EHR's logs cannot link a card (or its feedback) back to the visit that showed it.
"""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from alk_fhir.apply import ApplyResult, Engine
from alk_fhir.apply.engine import DEFAULT_PLAN
from alk_fhir.cds.suggestions import suggested
from alk_fhir.cds.text import Texts, concept_texts, pick, shorten, texts
from alk_fhir.cds.triggers import Note, fill, notes_for, trigger_line
from alk_fhir.context import PatientContext, compile_facts
from alk_fhir.context.facts import OPERATIONALISATION
from alk_fhir.criteria.assess import unknown_entries
from alk_fhir.fhir import uuid5_text
from alk_fhir.fhirpath import variables_in
from alk_fhir.knowledge import CONCEPTS_SYSTEM, GUIDELINE_SYSTEM, Package
from alk_fhir.knowledge.canonical import FACTS_LIBRARY

JSON = dict[str, Any]
SUMMARY_LIMIT = 140
_NAMESPACE = uuid.UUID("0b7d1c54-7f0e-4a44-9d0c-3b5f2b8f6e21")
UUID_SALT = secrets.token_hex(32)  # per process; never leaves it (see the module docstring)
COLLECT_WITH_INPUT = "questionnaire"
# The business identifier of what a suggestion creates: one per patient, action and day.
IDENTIFIER_SYSTEM = "https://alk-fhir.org/fhir/sid/cds-suggestion"
IF_NONE_EXIST = "davinci-crd.if-none-exist"  # Da Vinci CRD 2.1 CDSHookServiceResponseExtensionIfNoneExist

_WORDS: dict[str, Texts] = {
    "label": {"nl": "Handreiking hardnekkige ALK (NALK)", "en": "Guideline on persistent ALK (NALK)"},
    "source": {"nl": "Bron", "en": "Source"},
    "guideline": {"nl": "Handreiking", "en": "Guideline"},
    "steps": {"nl": "Verder uit de handreiking", "en": "More from the guideline"},
    "questionnaire": {"nl": "Vragenlijst openen", "en": "Open questionnaire"},
    "careteam": {"nl": "Zorgteam aanmaken", "en": "Create care team"},
    "create": {"nl": "Aanmaken", "en": "Create"},
    "draft": {"nl": "Als concept klaarzetten", "en": "Prepare as a draft"},
}


@dataclass(frozen=True)
class ActionInfo:
    """What the card of one PlanDefinition action shows, compiled once."""

    id: str
    title: Texts
    description: Texts
    priority: str
    container: bool
    topic: dict[str, JSON]  # language -> Coding
    citation: Texts
    url: str
    definition: JSON | None
    # the operationalisations ("hier: …") of the open numbers the action's conditions rest on
    numbers: tuple[Note, ...] = ()
    # the facts its conditions read that the Library presents (the engine's CompiledAction.shown)
    shown: tuple[tuple[str, dict[str, str]], ...] = ()
    # the facts its conditions name: the finding behind its card (a snoozed card returns when it changes)
    reads: tuple[str, ...] = ()


@dataclass(frozen=True)
class Catalog:
    actions: dict[str, ActionInfo]
    package: Package
    # CodeSystem alk-concepts, group ``override-reasons``: why a clinician does not follow a card.
    override_reasons: tuple[tuple[str, Texts], ...] = ()

    def info(self, action_id: str) -> ActionInfo:
        return self.actions[action_id]


def _concepts(pkg: Package, url: str) -> list[JSON]:
    system = next((cs for cs in pkg.of_type("CodeSystem") if cs.get("url") == url), None)
    found: list[JSON] = []

    def walk(concepts: list[JSON]) -> None:
        for c in concepts:
            found.append(c)
            walk(c.get("concept", []))

    walk((system or {}).get("concept", []))
    return found


def _sections(pkg: Package) -> dict[str, Texts]:
    return {c["code"]: concept_texts(c) for c in _concepts(pkg, GUIDELINE_SYSTEM)}


def _override_reasons(pkg: Package) -> tuple[tuple[str, Texts], ...]:
    group = next((c for c in _concepts(pkg, CONCEPTS_SYSTEM) if c["code"] == "override-reasons"), {})
    return tuple((c["code"], concept_texts(c)) for c in group.get("concept", []))


def _section_code(action: JSON) -> str | None:
    for cc in action.get("code", []):
        for c in cc.get("coding", []):
            if c.get("system") == GUIDELINE_SYSTEM:
                return str(c["code"])
    return None


def compile_catalog(engine: Engine, plan: str = DEFAULT_PLAN) -> Catalog:
    """Texts, topics and citations of every action of ``plan``: a request only looks them up."""
    pkg = engine.package
    try:
        compiled = engine.plan(plan)
    except KeyError:  # a package without the guideline plan (e.g. a stub): the services answer 503
        return Catalog({}, pkg)
    sections = _sections(pkg)
    program = compile_facts(pkg)
    facts = {f.name: f for f in program.facts}

    applies = _note_subjects(pkg)

    def deeper(name: str) -> list[str]:
        """The facts and parameters ``name`` rests on through others (not those it reads itself)."""
        seen: set[str] = set()
        todo = [u for d in facts[name].uses if d in facts for u in facts[d].uses] if name in facts else []
        while todo:
            dep = todo.pop()
            if dep in facts and dep not in seen:
                seen.add(dep)
                todo.extend(facts[dep].uses)
        return sorted(seen)

    def numbers(action: JSON) -> tuple[Note, ...]:
        """Operationalisations of the facts a condition names and of the parameters those read, each
        with the condition's fact that leads to it (shown only when that fact holds); further down the
        facts' dependencies only those whose note names the fact it is about (``applies``), so that a
        number shows where this patient's record reaches it (the PHQ-15 clear change, only with ROM
        pairs) and not on every card that could."""
        found: list[Note] = []
        for cond in action.get("condition", []):
            text = str((cond.get("expression") or {}).get("expression", ""))
            for via in variables_in(text):
                negated = f"%{via}.not()" in text
                direct = [via, *sorted(facts[via].uses)] if via in facts else [via]
                for name in [*direct, *(n for n in deeper(via) if n in applies and n not in direct)]:
                    op = facts[name].operationalisation if name in facts else None
                    note = Note(via, negated, applies.get(name), op) if op else None
                    if note is not None and note not in found:
                        found.append(note)
        return tuple(found)

    shown = {a.action["id"]: a.shown for a in _compiled_actions(compiled.actions)}

    plan_cite: JSON = next((ra for ra in compiled.plan.get("relatedArtifact", [])
                            if ra.get("type") == "citation" and ra.get("url")), {})
    plan_url = str(plan_cite.get("url", ""))
    actions: dict[str, ActionInfo] = {}

    def walk(action: JSON, inherited_url: str) -> None:
        docs = [d for d in action.get("documentation", []) if isinstance(d, dict)]
        url = next((d["url"] for d in docs if d.get("url")), inherited_url)
        code = _section_code(action)
        section = sections.get(code or "", {})
        topic = {lang: {"system": GUIDELINE_SYSTEM, "code": code, **({"display": section[lang]} if section else {})}
                 for lang in ("nl", "en")} if code else {}
        container = action.get("groupingBehavior") == "logical-group"
        if docs and docs[0].get("display"):
            citation = texts(docs[0], "display")
        elif container or not code:  # a group spans sections: cite the guideline as a whole
            citation = texts(plan_cite, "display")
        else:
            citation = {lang: f"{_WORDS['guideline'][lang]} §{code}" + (f" {section[lang]}" if section else "")
                        for lang in ("nl", "en")}
        definition = pkg.resolve(action["definitionCanonical"]) if "definitionCanonical" in action else None
        actions[action["id"]] = ActionInfo(
            id=action["id"], title=texts(action, "title"), description=texts(action, "description"),
            priority=str(action.get("priority", "routine")),
            container=container,
            topic=topic, citation=citation, url=url, definition=definition, numbers=numbers(action),
            shown=shown.get(action["id"], ()),
            reads=tuple(dict.fromkeys(n for c in action.get("condition", []) for n in variables_in(
                str((c.get("expression") or {}).get("expression", ""))))))
        for child in action.get("action", []):
            walk(child, url)

    for action in compiled.plan.get("action", []):
        walk(action, plan_url)
    return Catalog(actions, pkg, _override_reasons(pkg))


def _note_subjects(pkg: Package) -> dict[str, str]:
    """Fact -> the fact its operationalisation is about (sub-extension ``applies``), from the Library."""
    library = pkg.resolve(FACTS_LIBRARY) or {}
    out: dict[str, str] = {}
    for param in library.get("parameter", []):
        for ext in param.get("extension", []):
            if ext.get("url") != OPERATIONALISATION:
                continue
            for part in ext.get("extension", []):
                if part.get("url") == "applies" and isinstance(part.get("valueString"), str):
                    out[str(param["name"])] = part["valueString"]
    return out


def _compiled_actions(actions: tuple[Any, ...]) -> list[Any]:
    out = []
    for action in actions:
        out += [action, *_compiled_actions(action.children)]
    return out


@dataclass(frozen=True)
class CardOptions:
    lang: str
    hook_instance: str
    launch_url: str = ""


def _uuid(options: CardOptions, *parts: str) -> str:
    return uuid5_text(_NAMESPACE, "|".join((UUID_SALT, options.hook_instance, *parts)))


def override_reasons(catalog: Catalog, lang: str) -> list[JSON]:
    return [{"system": CONCEPTS_SYSTEM, "code": code, "display": pick(display, lang)}
            for code, display in catalog.override_reasons]


def _source(info: ActionInfo, lang: str) -> JSON:
    source: JSON = {"label": pick(_WORDS["label"], lang)}
    if info.url:
        source["url"] = info.url
    if info.topic:
        source["topic"] = info.topic[lang]
    return source


def _citation_line(info: ActionInfo, lang: str) -> str:
    cite = pick(info.citation, lang)
    if not cite:
        return ""
    shown = f"[{cite}]({info.url})" if info.url else cite
    return f"**{pick(_WORDS['source'], lang)}:** {shown}"


def _numbers_line(info: ActionInfo, lang: str, ctx: PatientContext | None) -> str:
    """Numbers the guideline leaves open, stated as ours (Library alk-facts, alk-operationalisation):
    those that apply to this patient (``triggers.notes_for``), all of them without a record."""
    notes = notes_for(info.numbers, ctx) if ctx is not None else tuple(n.text for n in info.numbers)
    return "; ".join(dict.fromkeys(pick(n, lang) for n in notes))


def _title(info: ActionInfo, catalog: Catalog, lang: str, ctx: PatientContext | None) -> str:
    return fill(pick(info.title, lang), ctx, catalog.package)


def _trigger(info: ActionInfo, catalog: Catalog, lang: str, ctx: PatientContext | None) -> str:
    return trigger_line(info.shown, ctx, catalog.package, lang) if ctx is not None else ""


def _detail(*blocks: str) -> str:
    return "\n\n".join(b for b in blocks if b)


def _guideline_link(info: ActionInfo, lang: str) -> list[JSON]:
    if not info.url:
        return []
    return [{"label": pick(info.citation, lang) or pick(_WORDS["label"], lang), "url": info.url, "type": "absolute"}]


def _questionnaire_links(resource: JSON, catalog: Catalog, options: CardOptions) -> list[JSON]:
    if not options.launch_url or resource.get("resourceType") != "Task":
        return []
    links = []
    for item in resource.get("input", []) or []:
        canonical = item.get("valueCanonical")
        if (item.get("type") or {}).get("text") != COLLECT_WITH_INPUT or not isinstance(canonical, str):
            continue
        questionnaire = catalog.package.resolve(canonical) or {}
        title = pick(texts(questionnaire, "title"), options.lang) or canonical
        links.append({
            "label": shorten(f"{pick(_WORDS['questionnaire'], options.lang)}: {title}", SUMMARY_LIMIT),
            "url": options.launch_url,
            "type": "smart",
            "appContext": json.dumps({"questionnaire": canonical, "patient": (resource.get("for") or {}).get(
                "reference")}, separators=(",", ":")),
        })
    return links


def _action_description(res: JSON, main: JSON, info: ActionInfo, catalog: Catalog, lang: str) -> str:
    if res is main and info.definition is not None:
        found = pick(texts(info.definition, "description"), lang) or pick(texts(info.definition, "title"), lang)
        if found:
            return found
    if res.get("resourceType") == "CareTeam":
        member = next((p.get("member") or {} for p in res.get("participant", []) if isinstance(p, dict)), {})
        role_code = next((c.get("code") for p in res.get("participant", []) for r in p.get("role", [])
                          for c in r.get("coding", []) if c.get("system") == CONCEPTS_SYSTEM), None)
        concept = catalog.package.terminology.concept(CONCEPTS_SYSTEM, role_code) if role_code else None
        role = pick(concept_texts(concept), lang) if concept else ""
        who = member.get("display") or member.get("reference") or ""
        detail = f" ({role}: {who})" if role and who else ""
        return f"{pick(_WORDS['careteam'], lang)}: {res.get('name', '')}{detail}".strip()
    return f"{pick(_WORDS['create'], lang)}: {res.get('resourceType')}"


def _suggestion(action: JSON, info: ActionInfo, result_requests: dict[str, JSON], catalog: Catalog,
                options: CardOptions) -> tuple[JSON, JSON] | None:
    ref = (action.get("resource") or {}).get("reference", "")
    main = result_requests.get(ref.removeprefix("urn:uuid:"))
    if main is None:
        return None
    pairs = suggested(main, result_requests)
    lang = options.lang
    label = pick(texts(info.definition or {}, "title"), lang) or pick(info.title, lang)
    if main.get("status") == "draft":  # for the clinician to complete and decide on, not decided by a click
        label = f"{pick(_WORDS['draft'], lang)}: {label}"
    suggestion: JSON = {
        "label": shorten(label, SUMMARY_LIMIT),
        "uuid": _uuid(options, action["id"], "suggestion"),
        "actions": [_create(res, action["id"], _action_description(orig, main, info, catalog, lang))
                    for orig, res in pairs],
    }
    return suggestion, pairs[-1][1]


def _create(res: JSON, action_id: str, description: str) -> JSON:
    """A ``create`` action whose resource carries a business identifier derived from the patient, the
    action and the day (the resource's own subject and date), with the matching If-None-Exist header value
    (Da Vinci CRD ``davinci-crd.if-none-exist`` extension, R4 http.html#ccreate): accepting the same
    suggestion twice, from this card or from a second call the same day, creates one resource."""
    subject = (res.get("for") or res.get("subject") or {}).get("reference", "")
    day = str(res.get("authoredOn") or res.get("created") or "")[:10]
    value = uuid5_text(_NAMESPACE, f"{subject}|{action_id}|{res.get('resourceType')}|{day}")
    res["identifier"] = [*res.get("identifier", []), {"system": IDENTIFIER_SYSTEM, "value": value}]
    return {"type": "create", "description": description, "resource": res,
            "extension": {IF_NONE_EXIST: f"identifier={IDENTIFIER_SYSTEM}|{value}"}}


def _steps_block(guidance: list[JSON], catalog: Catalog, lang: str, ctx: PatientContext | None = None) -> str:
    lines = []
    for step in guidance:
        info = catalog.info(step["id"])
        cite = pick(info.citation, lang)
        numbers = _numbers_line(info, lang, ctx)
        trigger = _trigger(info, catalog, lang, ctx)
        lines.append(f"- **{_title(info, catalog, lang, ctx)}**" + (f" ({cite})" if cite else "")
                     + f": {pick(info.description, lang)}" + (f" _({numbers})_" if numbers else "")
                     + (f" {trigger}" if trigger else ""))
    return f"**{pick(_WORDS['steps'], lang)}:**\n\n" + "\n".join(lines) if lines else ""


def action_card(action: JSON, catalog: Catalog, requests: dict[str, JSON], options: CardOptions,
                guidance: list[JSON] | None = None, unknown: str = "", ctx: PatientContext | None = None) -> JSON:
    """The card of one action; a group's guidance-only steps (``guidance``) are listed in its detail."""
    info = catalog.info(action["id"])
    lang = options.lang
    summary_only = info.container
    headline = _headline(info, guidance or [], catalog) if summary_only else info
    card: JSON = {
        "uuid": _uuid(options, action["id"]),
        "summary": shorten(_title(headline, catalog, lang, ctx), SUMMARY_LIMIT),
        "indicator": "warning" if action.get("priority") == "urgent" and not summary_only else "info",
        "source": _source(info, lang),
    }
    numbers = _numbers_line(info, lang, ctx)
    detail = _detail(pick(info.description, lang), _trigger(info, catalog, lang, ctx),
                     f"_{numbers}_" if numbers else "", unknown,
                     _steps_block(guidance or [], catalog, lang, ctx), _citation_line(info, lang))
    if detail:
        card["detail"] = detail
    links = _guideline_link(info, lang)
    made = _suggestion(action, info, requests, catalog, options) if _proposes(action, requests) else None
    if made is not None:
        suggestion, resource = made
        card["suggestions"] = [suggestion]
        card["selectionBehavior"] = "at-most-one"
        links += _questionnaire_links(resource, catalog, options)
    if not summary_only and catalog.override_reasons:
        card["overrideReasons"] = override_reasons(catalog, lang)
    if links:
        card["links"] = links
    return card


def _headline(group: ActionInfo, guidance: list[JSON], catalog: Catalog) -> ActionInfo:
    """What a group's card is about: its first step whose title names this patient's entries (a
    ``{fact}``: the drug ordered), else its only step, else the group itself."""
    steps = [catalog.info(step["id"]) for step in guidance]
    named = next((step for step in steps if "{" in step.title.get("nl", "")), None)
    return named or (steps[0] if len(steps) == 1 else group)


def _proposes(action: JSON, requests: dict[str, JSON]) -> bool:
    """True for a step whose request came from an ActivityDefinition; a guidance-only step references
    just the CommunicationRequest carrying its own text, which the card already shows."""
    ref = (action.get("resource") or {}).get("reference", "").removeprefix("urn:uuid:")
    found = requests.get(ref)
    return found is not None and found["resourceType"] != "CommunicationRequest"


def _is_card(action: JSON, requests: dict[str, JSON]) -> bool:
    return _proposes(action, requests) or action.get("priority") == "urgent"


def _collect(action: JSON, catalog: Catalog, requests: dict[str, JSON], guidance: list[JSON],
             specific: list[JSON]) -> None:
    """Sort the descendants of ``action``: own cards (``specific``) and guidance-only steps."""
    for child in action.get("action", []):
        if _is_card(child, requests):
            specific.append(child)
        elif not catalog.info(child["id"]).container:
            guidance.append(child)
        _collect(child, catalog, requests, guidance, specific)


_UNKNOWN: dict[str, str] = {
    "nl": "Niet te beoordelen uit het dossier (de uitkomst staat er alleen als tekst, of de metingen tonen geen "
          "duidelijke verandering); beantwoord de criteria in de vragenlijst: {n} {what}: {items}.",
    "en": "Not decidable from the record (the outcome is there only as text, or the measurements show no clear "
          "change); answer the criteria in the questionnaire: {n} {what}: {items}.",
}
_TREATMENTS: dict[str, tuple[str, str]] = {"nl": ("ALK-behandeling", "ALK-behandelingen"),
                                           "en": ("ALK treatment", "ALK treatments")}
_NO_CLEAR_CHANGE: dict[str, str] = {"nl": "geen duidelijke verandering", "en": "no clear change"}


def _score_change(result: ApplyResult, key: str) -> str:
    """The first and the last score of a treatment's pre/post measurements (the facts ``romScores``), as the
    clinician reads them: "PHQ-15 12 → 13"; empty when they cannot be told apart by date."""
    scores = [o for o in result.context.fact_resources("romScores")
              if key in {str(r.get("reference")) for r in [*o.get("partOf", []), *o.get("focus", [])]
                         if isinstance(r, dict)}]

    def when(obs: JSON) -> str:
        return str(obs.get("effectiveDateTime") or (obs.get("effectivePeriod") or {}).get("start") or "")

    if len(scores) < 2:
        return ""
    first, last = min(scores, key=when), max(scores, key=when)
    code = first.get("code") or {}
    name = next((c.get("display") for c in code.get("coding", []) if c.get("display")), code.get("text") or "")
    name = str(name).split(" (")[0].removeprefix("Patient Health Questionnaire 15 item").strip() or "PHQ-15"
    values = [(o.get("valueQuantity") or {}).get("value") for o in (first, last)]
    return f"{name} {values[0]} → {values[1]}"


def _unknown_line(result: ApplyResult, lang: str) -> str:
    """Names the record's entries that leave a criterion unknown (the criteria's ``unknown-evidence``;
    read without the whole assessment, whose other facts no card shows)."""
    seen = [str(ref["reference"]) for ref in unknown_entries(result.context, result.package)]
    if not seen:
        return ""
    unclear = {str(ref["reference"]) for ref in result.context.evidence("noClearChangeTreatments")}
    items = []
    for key in seen:
        res = result.context.by_key.get(key) or {}
        code = res.get("code") or {}
        name = code.get("text") or next((c.get("display") for c in code.get("coding", []) if c.get("display")), key)
        when = str(res.get("performedDateTime") or (res.get("performedPeriod") or {}).get("start") or "")[:10]
        outcome = (res.get("outcome") or {}).get("text")
        if key in unclear:
            change = _score_change(result, key)
            outcome = None
            name += f" ({when})" if when else ""
            when = ""
            name += f": {_NO_CLEAR_CHANGE.get(lang, _NO_CLEAR_CHANGE['nl'])}" + (f" ({change})" if change else "")
        items.append(name + (f" ({when})" if when else "") + (f": \"{outcome}\"" if outcome else ""))
    what = _TREATMENTS.get(lang, _TREATMENTS["nl"])[0 if len(items) == 1 else 1]
    return _UNKNOWN.get(lang, _UNKNOWN["nl"]).format(n=len(items), what=what, items="; ".join(items))


def build_cards(result: ApplyResult, catalog: Catalog, options: CardOptions) -> list[JSON]:
    """Cards in plan order: each top-level action's card (a group's summary card when it has guidance
    steps), then the cards of its proposing or urgent descendants."""
    return [card for _, card in action_cards(result, catalog, options)]


def action_cards(result: ApplyResult, catalog: Catalog, options: CardOptions) -> list[tuple[str, JSON]]:
    """``build_cards`` with the plan action id of every card (what a snooze is kept for)."""
    requests = {r["id"]: r for r in result.requests}
    unknown: str | None = None  # read when a §1.1 card needs it
    cards: list[tuple[str, JSON]] = []
    for top in result.requestgroup.get("action", []):
        guidance: list[JSON] = []
        specific: list[JSON] = []
        _collect(top, catalog, requests, guidance, specific)
        info = catalog.info(top["id"])
        if not info.container or guidance:
            assessing = info.topic.get("nl", {}).get("code") == "1.1"  # the cards that ask for the criteria
            if assessing and unknown is None:
                unknown = _unknown_line(result, options.lang)
            cards.append((top["id"], action_card(top, catalog, requests, options, guidance,
                                                 (unknown or "") if assessing else "", result.context)))
        cards += [(a["id"], action_card(a, catalog, requests, options, ctx=result.context)) for a in specific]
    return cards
