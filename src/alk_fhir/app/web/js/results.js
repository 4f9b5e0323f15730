// The persistent-ALK assessment and the guideline advice that applies now, both from
// PlanDefinition/$apply on the patient's record: the CarePlan holds the RequestGroup (advice) and
// the assessment Observation (alk-assessment profile), contained. This view only presents that
// result; it decides nothing clinical.
//
// Order on the page (what the GP needs first): one line with the conclusion; "Let op", the
// safety-relevant facts the record or forms hold (a lasting wish to die, risk medication; the
// service names them from Library alk-facts, POST /app/api/safety), each with the advice that
// answers it; the urgent advice; then the rest of the advice in guideline order (the order of
// CodeSystem alk-guideline), folded per chapter of the guideline; then the evidence of the
// assessment, folded too, with the date each questionnaire answer was given. Every advice says what triggered it where the
// $apply result names it (the assessment's criteria and features; the facts of extension
// alk-trigger when the engine supplies them), offers its action (open the form; create the
// proposed request in the EHR) and links to its section of the guideline (guideline.html).
import { h, show } from "./dom.js";
import {
  codeOrder, codingText, conceptText, formatDate, joinList, lang, localDay, plural, t, tr,
} from "./i18n.js";
import { answerDates, answersByLink, createInRecord, mayCreate, record, responsesTo } from "./record.js";
import { apply, planDefinition, questionnaires, safetyFacts } from "./service.js";

const BASE = "https://alk-fhir.org/fhir";
const EVIDENCE = `${BASE}/StructureDefinition/alk-evidence`;
const TRIGGER = `${BASE}/StructureDefinition/alk-trigger`;
const GUIDELINE = `${BASE}/CodeSystem/alk-guideline`;
const CRITERIA_Q = `${BASE}/Questionnaire/alk-criteria`;
const URGENT = new Set(["urgent", "asap", "stat"]);
const SHOWN = 4; // evidence items listed before the rest is folded away

function contained(resource, ref) {
  const id = String(ref?.reference || "").replace(/^#/, "");
  return (resource.contained || []).find((r) => r.id === id) || null;
}

function firstCode(concept) {
  return (concept?.coding || [])[0]?.code || "";
}

/** The linkId and Questionnaire item text an evidence reference to a response points at. */
function questionOf(ref, items) {
  const link = String(ref?.display || "").split("#")[1] || "";
  return { link, text: link ? items.get(link) : "" };
}

function answerText(answer) {
  if (!answer) return "";
  if (answer.valueCoding) return codingText(answer.valueCoding) || tr(answer.valueCoding, "display") || "";
  if (answer.valueBoolean !== undefined) return answer.valueBoolean ? t("yes") : t("no");
  for (const key of ["valueDate", "valueDateTime"]) if (answer[key]) return formatDate(answer[key]);
  for (const key of ["valueString", "valueInteger", "valueDecimal"]) if (answer[key] !== undefined) return String(answer[key]);
  return "";
}

/** A short description of a referenced entry of the record: what it is and its date; never an id. */
function describe(ref, ctx) {
  const key = ref?.reference || "";
  const res = ctx.byKey.get(key);
  if (!res) return ref?.display && !/^https?:/.test(ref.display) ? ref.display : "";
  switch (res.resourceType) {
    case "QuestionnaireResponse": {
      const { link } = questionOf(ref, ctx.items);
      const answers = answersByLink(res).get(link) || [];
      const latest = ctx.latestCriteria && ctx.latestCriteria.id === res.id;
      const since = (latest && ctx.dates.get(link)) || res.authored;
      const value = answers.map(answerText).filter(Boolean).join(", ");
      return value ? t("answerGiven", value, formatDate(since)) : t("answerGivenShort", formatDate(since));
    }
    case "Procedure":
      return [conceptText(res.code) || t("treatment"), formatDate(res.performedDateTime || res.performedPeriod?.start),
        res.outcome ? conceptText(res.outcome) : ""].filter(Boolean).join(", ");
    case "Condition":
      return [conceptText(res.code), formatDate(res.onsetDateTime || res.onsetPeriod?.start || res.recordedDate)]
        .filter(Boolean).join(", ");
    case "Encounter": {
      // what kind of contact: its type, else its class (v3 ActCode, worded by the app), else "Contact"
      // (the class's own display is HL7's English, "ambulatory": the app words the v3 ActCode itself)
      const kind = (res.type || []).map(conceptText).find(Boolean) || t("encounterClass")[res.class?.code]
        || t("contact");
      return [kind, formatDate(res.period?.start)].filter(Boolean).join(", ");
    }
    case "MedicationStatement":
    case "MedicationRequest": {
      const medication = res.medicationCodeableConcept
        || ctx.byKey.get(res.medicationReference?.reference || "")?.code;
      return conceptText(medication) || res.medicationReference?.display || t("medication");
    }
    case "CareTeam":
      return res.name || conceptText((res.category || [])[0]);
    default:
      return [conceptText(res.code) || conceptText((res.category || [])[0]),
        formatDate(res.effectiveDateTime || res.dateTime || res.date || res.authoredOn)].filter(Boolean).join(", ");
  }
}

/** The day an entry of the record happened (for ordering: newest first); "" when it has none. */
function dayOf(res) {
  if (!res) return "";
  return String(res.period?.start || res.performedDateTime || res.performedPeriod?.start || res.effectiveDateTime
    || res.effectivePeriod?.start || res.onsetDateTime || res.recordedDate || res.authored || res.dateTime
    || res.date || res.authoredOn || "").slice(0, 10);
}

/** References newest first (entries without a date keep their order, after the dated ones). */
function byDate(refs, ctx) {
  return refs.map((ref, i) => [ref, dayOf(ctx.byKey.get(ref?.reference || "")), i])
    .sort((a, b) => (b[1] && a[1] ? b[1].localeCompare(a[1]) : (a[1] ? -1 : b[1] ? 1 : 0)) || a[2] - b[2])
    .map(([ref]) => ref);
}

function evidenceList(holder, ctx) {
  const refs = byDate((holder.extension || []).filter((e) => e.url === EVIDENCE).map((e) => e.valueReference), ctx);
  const texts = refs.map((ref) => describe(ref, ctx)).filter(Boolean);
  if (!texts.length) return t("noEvidence");
  const items = texts.map((text) => h("li", {}, text));
  if (items.length <= SHOWN) return h("ul", { class: "evidence" }, items);
  return [h("ul", { class: "evidence" }, items.slice(0, SHOWN)),
    h("details", { class: "more" }, h("summary", {}, `+ ${items.length - SHOWN} ${t("more")}`),
      h("ul", { class: "evidence" }, items.slice(SHOWN)))];
}

function statusBadge(concept) {
  const code = firstCode(concept);
  return h("span", { class: `badge ${code}`, dataset: { code } }, conceptText(concept));
}

function criterionNumber(component) {
  const code = firstCode(component.code);
  const m = /(\d+)$/.exec(code);
  return m ? m[1] : conceptText(component.code);
}

/** "Hardnekkige ALK: criterium 2 en 3 voldaan" from the assessment Observation. */
export function conclusion(obs, assessed = true) {
  if (!obs) return t("conclusionNone");
  const criteria = (obs.component || []).filter((c) => c.valueCodeableConcept);
  const met = criteria.filter((c) => firstCode(c.valueCodeableConcept) === "criterion-met").map(criterionNumber);
  const unknown = criteria.filter((c) => firstCode(c.valueCodeableConcept) === "criterion-unknown").map(criterionNumber);
  const word = (n) => (n === 1 ? t("criterionWord") : t("criteriaWord"));
  if (met.length) return t("conclusionMet", word(met.length), joinList(met));
  if (!assessed) return t("conclusionNone"); // no criteria form yet: nothing was assessed, nothing is "unknown"
  if (firstCode(obs.valueCodeableConcept) === "criterion-not-met") return t("conclusionNotMet");
  if (unknown.length) return `${t("conclusionUnknown")} (${t("unknownCriteria", word(unknown.length), joinList(unknown))})`;
  return t("conclusionUnknown");
}

function sectionCoding(action) {
  return (action.code || []).flatMap((c) => c.coding || []).find((c) => c.system === GUIDELINE) || null;
}

function guidelineKey(action) {
  const coding = sectionCoding(action);
  return coding ? codeOrder(GUIDELINE, coding.code) : Number.MAX_SAFE_INTEGER;
}

function inGuidelineOrder(actions) {
  return actions.map((a, i) => [a, i]).sort((x, y) => guidelineKey(x[0]) - guidelineKey(y[0]) || x[1] - y[1])
    .map(([a]) => a);
}

function sourceLink(action) {
  const coding = sectionCoding(action);
  if (!coding) return null;
  const href = `guideline.html?lang=${lang()}#section-${coding.code}`;
  const display = codingText(coding);
  const label = display.startsWith(t("guideline")) ? `§${coding.code} ${display}` : `${t("guideline")} §${coding.code} ${display}`;
  return h("p", { class: "source" }, `${t("source")}: `,
    h("a", { href, target: "_blank", rel: "noopener", class: "source-link" }, label,
      h("span", { class: "visually-hidden" }, ` ${t("newWindow")}`)));
}

/** The facts of alk-trigger extensions in words: "Label: value (entries behind it)". */
function triggerParts(extensions, ctx) {
  const parts = [];
  for (const ext of (extensions || []).filter((e) => e.url === TRIGGER)) {
    const field = (name) => (ext.extension || []).filter((x) => x.url === name);
    const label = field("label").map((x) => tr(x, "valueString")).find(Boolean) || "";
    const valueExt = field("value")[0] || {};
    const key = Object.keys(valueExt).find((k) => k.startsWith("value") && !k.startsWith("_"));
    let value = key ? valueExt[key] : undefined;
    if (typeof value === "boolean") value = value ? t("yes") : t("no");
    else if (key === "valueDate" || key === "valueDateTime") value = formatDate(value);
    const evidence = byDate(field("evidence").map((x) => x.valueReference), ctx).map((ref) => describe(ref, ctx))
      .filter(Boolean);
    if (!label) continue;
    // a fact without a value and without entries behind it is one the record does not hold
    if (value === undefined && !evidence.length) value = t("notRecorded");
    const fact = field("fact").map((x) => x.valueString).find(Boolean) || "";
    parts.push({ fact, text: `${value !== undefined ? t("countValue", label, value) : label}${evidence.length ? ` (${evidence.join("; ")})` : ""}` });
  }
  return parts;
}

/**
 * What triggered an advice, as far as the $apply result says it. An advice without a condition of
 * its own (the plan's "Uitgangspunt" under persistent ALK) applies because the advice it belongs to
 * does: it gives that advice's reason, so no advice on the GP's screen stands without one for this
 * patient (issue 24: "half the items have no patient-specific Aanleiding").
 */
function triggerText(action, ctx) {
  const parts = triggerParts(action.extension, ctx).map((p) => p.text);
  if (!parts.length && ctx.criteriaTriggered.has(action.id) && ctx.met) parts.push(ctx.conclusion);
  if (!parts.length && ctx.featureTriggered.has(action.id) && ctx.featureCount) {
    parts.push(plural("featureCount", ctx.featureCount));
  }
  const parent = ctx.parents?.get(action);
  if (!parts.length && parent && ctx.unconditional?.has(action.id)) return triggerText(parent, ctx);
  return parts.join("; ");
}

/** A proposed request as a resource to create in the EHR (as the CDS suggestions do). */
function forEhr(resource, references) {
  const copy = JSON.parse(JSON.stringify(resource));
  delete copy.id;
  if (copy.intent === "option") copy.intent = "proposal";
  const walk = (node) => {
    if (Array.isArray(node)) return node.map(walk).filter((x) => x !== undefined);
    if (!node || typeof node !== "object") return node;
    if (typeof node.reference === "string" && node.reference.startsWith("#")) {
      const target = references.get(node.reference.slice(1));
      return target ? { ...node, reference: target } : undefined;
    }
    const out = {};
    for (const [k, v] of Object.entries(node)) {
      const value = walk(v);
      if (value !== undefined && !(Array.isArray(value) && !value.length)) out[k] = value;
    }
    return out;
  };
  return walk(copy);
}

function requestLabel(resource) {
  const kind = t("kind")[resource.resourceType] || resource.resourceType;
  const what = resource.resourceType === "CarePlan" ? "" : conceptText(resource.code);
  return what && resource.resourceType !== "Task" ? `${kind} ‘${what}’` : kind;
}

function createButton(resource, plan, client, idBase) {
  const focus = resource.focus?.reference?.startsWith("#") ? contained(plan, resource.focus) : null;
  const types = [resource.resourceType, ...(focus ? [focus.resourceType] : [])];
  const status = h("p", { class: "action-status", role: "status", id: `${idBase}-status` });
  const label = requestLabel(resource);
  const denied = types.filter((type) => !mayCreate(client, type));
  if (denied.length) {
    status.textContent = t("createNotAllowed", joinList(denied.map((type) => t("kind")[type] || type)));
    return [status];
  }
  const button = h("button", { type: "button", class: "secondary", id: `${idBase}-create` }, t("createInEhr", label));
  button.addEventListener("click", async () => {
    button.disabled = true;
    status.textContent = t("creating");
    try {
      const references = new Map();
      if (focus) {
        const team = await createInRecord(client, forEhr(focus, references));
        if (team.id) references.set(focus.id, `${team.resourceType}/${team.id}`);
      }
      await createInRecord(client, forEhr(resource, references));
      status.textContent = t("created", label, formatDate(localDay()));
      button.remove();
    } catch (err) {
      button.disabled = false;
      status.textContent = `${t("ehrError")}: ${String(err?.message || err).split("\n")[0]}`;
      if (err && err.status === 401) throw err;
    }
  });
  return [button, status];
}

function actionsOf(action, ctx) {
  const resource = action.resource ? contained(ctx.plan, action.resource) : null;
  if (!resource) return [];
  const idBase = `action-${action.id}`;
  const form = resource.resourceType === "Task" ? (resource.input || []).map((i) => i.valueCanonical).find(Boolean) : null;
  if (form) {
    const title = ctx.titles.get(form.split("|")[0]) || t("openForm");
    return [h("button", { type: "button", class: "secondary open-form", id: `${idBase}-open`,
      onclick: () => ctx.hooks.openForm(form.split("|")[0]) }, t("openFormNamed", title))];
  }
  if (["Task", "ServiceRequest", "CarePlan"].includes(resource.resourceType)) {
    return createButton(resource, ctx.plan, ctx.client, idBase);
  }
  return [];
}

function adviceView(action, level, ctx, nested = true) {
  const urgent = URGENT.has(action.priority);
  const heading = `h${Math.min(level, 6)}`;
  const titleId = `advice-${action.id}-title`;
  const trigger = triggerText(action, ctx);
  const children = nested ? inGuidelineOrder((action.action || []).filter((a) => !URGENT.has(a.priority))) : [];
  const actions = actionsOf(action, ctx);
  return h("article", { class: urgent ? "advice urgent" : "advice", id: `advice-${action.id}`,
    "aria-labelledby": titleId, dataset: { action: action.id || "", priority: action.priority || "" } },
  h(heading, { id: titleId, class: "advice-title" }, tr(action, "title"),
    urgent ? h("span", { class: "badge urgent" }, ` ${t("urgent")}`) : null),
  tr(action, "description") ? h("p", { class: "advice-text" }, tr(action, "description")) : null,
  trigger ? h("p", { class: "trigger" }, h("strong", {}, `${t("trigger")}: `), trigger) : null,
  actions.length ? h("div", { class: "advice-actions" }, actions) : null,
  sourceLink(action),
  children.map((child) => adviceView(child, level + 1, ctx)));
}

function allActions(actions, out = [], parents = null, parent = null) {
  for (const a of actions || []) {
    out.push(a);
    if (parents && parent) parents.set(a, parent);
    allActions(a.action, out, parents, a);
  }
  return out;
}

function assessmentView(obs, ctx) {
  if (!obs) return null;
  const criteria = (obs.component || []).filter((c) => c.valueCodeableConcept);
  const features = (obs.component || []).filter((c) => c.valueBoolean === true);
  const byDay = new Map();
  for (const since of ctx.dates.values()) {
    const day = String(since).slice(0, 10);
    byDay.set(day, (byDay.get(day) || 0) + 1);
  }
  const dated = [...byDay.entries()].sort((a, b) => b[0].localeCompare(a[0]))
    .map(([day, n]) => t("answersOfDate", plural("answerCount", n), formatDate(day)));
  // Never assessed (no criteria form, and the record alone settles nothing): not "unknown on <today>".
  const neverAssessed = !ctx.latestCriteria && firstCode(obs.valueCodeableConcept) === "criterion-unknown";
  const overall = !neverAssessed
    ? [statusBadge(obs.valueCodeableConcept),
      obs.effectiveDateTime ? ` (${t("assessedOn", formatDate(obs.effectiveDateTime))})` : ""]
    : [h("span", { class: "badge criterion-unknown" }, t("notAssessedYet")), ` ${t("notAssessedHint", ctx.titles.get(CRITERIA_Q) || "")}`];
  return h("details", { class: "card fold", id: "assessment" },
    h("summary", {}, h("h2", { id: "assessment-title", tabindex: "-1" }, t("assessment"))),
    h("p", { class: "overall" }, `${t("overall")}: `, overall),
    dated.length ? h("p", { class: "answer-dates", id: "answer-dates" }, t("answersFrom", joinList(dated))) : null,
    h("div", { class: "table-wrap" }, h("table", { class: "grid criteria stack" },
      h("caption", { class: "visually-hidden" }, t("assessment")),
      h("thead", {}, h("tr", {},
        h("th", { scope: "col" }, t("criterion")), h("th", { scope: "col" }, t("status")),
        h("th", { scope: "col" }, t("evidence")))),
      h("tbody", {}, criteria.map((c) => h("tr", { dataset: { criterion: firstCode(c.code) } },
        h("th", { scope: "row" }, conceptText(c.code)),
        h("td", { "data-label": t("status") }, statusBadge(c.valueCodeableConcept)),
        h("td", { "data-label": t("evidence") }, evidenceList(c, ctx))))))),
    h("h3", {}, t("features")),
    features.length
      ? h("ul", { class: "features" }, features.map((c) => h("li", { dataset: { feature: firstCode(c.code) } },
        conceptText(c.code), h("div", { class: "muted" }, evidenceList(c, ctx)))))
      : h("p", {}, t("noFeatures")));
}

/** Open every folded part around `element`, then scroll to it and give it focus. */
export function reveal(element) {
  if (!element) return;
  for (let node = element.parentElement; node; node = node.parentElement) {
    if (node.localName === "details") node.open = true;
  }
  if (!element.hasAttribute("tabindex")) element.setAttribute("tabindex", "-1"); // a heading takes focus
  element.scrollIntoView({ block: "start" });
  element.focus({ preventScroll: true });
}

/** The advice that answers a safety fact: those whose trigger names it, else those whose trigger cites
 * every entry behind it (the medication review, which covers risk medication when there is
 * polypharmacy); urgent first. */
function adviceFor(fact, entries, actions) {
  const triggers = (a) => (a.extension || []).filter((e) => e.url === TRIGGER);
  const names = (a) => triggers(a).some((e) => (e.extension || []).some((x) => x.url === "fact" && x.valueString === fact));
  const cited = (a) => new Set(triggers(a).flatMap((e) => (e.extension || []).filter((x) => x.url === "evidence")
    .map((x) => x.valueReference?.reference)));
  let found = actions.filter(names);
  if (!found.length && entries.length) found = actions.filter((a) => { const c = cited(a); return entries.every((r) => c.has(r)); });
  return found.sort((a, b) => Number(URGENT.has(b.priority)) - Number(URGENT.has(a.priority)));
}

/** "Let op": what is safety-relevant in the record or the forms, each with the advice that answers it. */
function safetyView(facts, actions, ctx) {
  const items = [];
  for (const param of facts) {
    const entries = (param.extension || []).filter((e) => e.url === TRIGGER).flatMap((e) => (e.extension || [])
      .filter((x) => x.url === "evidence").map((x) => x.valueReference?.reference)).filter(Boolean);
    for (const part of triggerParts(param.extension, ctx)) {
      const answers = adviceFor(part.fact, entries, actions);
      items.push(h("li", { dataset: { fact: part.fact } }, h("strong", {}, part.text),
        answers.length ? [h("br"), `${t("seeAdvice")}: `, answers.map((a, i) => [i ? "; " : "",
          h("a", { href: `#advice-${a.id}`, onclick: (event) => {
            event.preventDefault();
            reveal(document.getElementById(`advice-${a.id}-title`));
          } }, tr(a, "title"))])] : null));
    }
  }
  if (!items.length) return null;
  return h("section", { class: "safety", id: "safety", "aria-labelledby": "safety-title" },
    h("h2", { id: "safety-title" }, t("safetyTitle")), h("ul", {}, items));
}

/** The top-level chapter of the guideline an advice belongs to ("2" for §2.5). */
function chapterOf(action) {
  const coding = sectionCoding(action);
  return coding ? String(coding.code).split(".")[0] : "";
}

/** The non-urgent advice, one folded group per chapter of the guideline (each advice in the chapter
 * of its own section, so a step of §3 under an advice of §2 is found under §3), in guideline order. */
function groupedAdvice(rest, ctx) {
  const groups = new Map();
  for (const action of rest) {
    const chapter = chapterOf(action);
    if (!groups.has(chapter)) groups.set(chapter, []);
    groups.get(chapter).push(action);
  }
  return [...groups.entries()].map(([chapter, actions]) => {
    const count = actions.length;
    const title = chapter ? `§${chapter} ${codingText({ system: GUIDELINE, code: chapter })}` : t("otherAdvice");
    return h("details", { class: "advice-group", id: `chapter-${chapter || "other"}`, dataset: { chapter } },
      h("summary", {}, h("h3", { class: "group-title" }, title),
        h("span", { class: "group-count" }, ` ${plural("adviceCount", count)}`),
        h("span", { class: "group-titles" }, actions.map((a) => tr(a, "title")).join(" · "))),
      actions.map((a) => adviceView(a, 4, ctx, false)));
  });
}

/** Practitioner/… of the signed-in user (SMART fhirUser), for the proposals that name the user. */
function practitionerOf(client) {
  const user = String(client.user?.fhirUser || "");
  const m = /(Practitioner|PractitionerRole)\/[^/]+$/.exec(user);
  return m ? m[0] : null;
}

export async function renderResults(client, panel, hooks) {
  const { patient, resources, problems } = await record(client);
  const [plan, qs, safety] = await Promise.all([apply(patient.id, resources, localDay(), practitionerOf(client)),
    questionnaires(), safetyFacts(patient.id, resources, localDay()).catch((err) => ({ failed: err }))]);
  const definition = await planDefinition(String((plan.instantiatesCanonical || [])[0] || "")).catch(() => null);
  const titles = new Map(qs.map((q) => [q.url, tr(q, "title")]));
  const items = new Map();
  const walkItems = (list) => { for (const i of list || []) { items.set(i.linkId, tr(i, "text")); walkItems(i.item); } };
  walkItems(qs.find((q) => q.url === CRITERIA_Q)?.item);
  const obsRef = (plan.supportingInfo || [])[0];
  const obs = obsRef ? contained(plan, obsRef) : (plan.contained || []).find((r) => r.resourceType === "Observation");
  const groupRef = (plan.activity || [])[0]?.reference;
  const group = groupRef ? contained(plan, groupRef) : (plan.contained || []).find((r) => r.resourceType === "RequestGroup");
  const criteriaResponses = responsesTo(resources, CRITERIA_Q);
  const ctx = {
    client, plan, hooks, titles, items,
    byKey: new Map(resources.map((r) => [`${r.resourceType}/${r.id}`, r])),
    latestCriteria: criteriaResponses[0] || null,
    dates: answerDates(criteriaResponses),
    conclusion: conclusion(obs, criteriaResponses.length > 0),
    criteriaTriggered: new Set(),
    featureTriggered: new Set(),
  };
  // Which advice the assessment triggers: the plan's own conditions say (%persistentAlk,
  // %profileFeatureCount); the values are the assessment's.
  // Advice without a condition of its own apply whenever the advice they belong to does.
  ctx.unconditional = new Set();
  for (const action of allActions(definition?.action)) {
    const expressions = (action.condition || []).map((c) => String(c.expression?.expression || "")).join(" ");
    if (/%persistentAlk\b/.test(expressions)) ctx.criteriaTriggered.add(action.id);
    if (/%profileFeatureCount\b/.test(expressions)) ctx.featureTriggered.add(action.id);
    if (!expressions.trim()) ctx.unconditional.add(action.id);
  }
  ctx.featureCount = (obs?.component || []).filter((c) => c.valueBoolean === true).length;
  ctx.met = firstCode(obs?.valueCodeableConcept) === "criterion-met";
  const top = group?.action || [];
  ctx.parents = new Map();
  const every = allActions(top, [], ctx.parents);
  const urgent = inGuidelineOrder(every.filter((a) => URGENT.has(a.priority)));
  const rest = inGuidelineOrder(every.filter((a) => !URGENT.has(a.priority)));

  show(panel,
    h("h1", { id: "view-title", tabindex: "-1" }, t("resultsTitle")),
    problems.length ? h("p", { class: "warning" }, `${t("partialData")}: ${problems.join("; ")}`) : null,
    h("p", { class: "conclusion", id: "conclusion" }, h("strong", {}, ctx.conclusion),
      obs ? [" · ", h("a", { href: "#assessment", onclick: (event) => {
        event.preventDefault();
        reveal(document.getElementById("assessment-title"));
      } }, t("seeEvidence"))] : null),
    // the safety facts could not be read: say so where they would stand, never leave the place empty
    safety.failed ? h("p", { class: "warning", id: "safety-unavailable" },
      `${t("safetyUnavailable")}: ${String(safety.failed.message || safety.failed).split("\n")[0]}`)
      : safetyView(safety, every, ctx),
    urgent.length ? h("section", { class: "urgent-advice", id: "urgent", "aria-labelledby": "urgent-title" },
      h("h2", { id: "urgent-title" }, t("urgentTitle")),
      urgent.map((a) => adviceView(a, 3, ctx))) : null,
    h("section", { class: "advice-list", id: "advice", "aria-labelledby": "advice-title" },
      h("h2", { id: "advice-title" }, t("adviceTitle")),
      rest.length ? [h("p", { class: "note", id: "guideline-note" }, t("guidelineNote")), groupedAdvice(rest, ctx)]
        : h("p", {}, t("noAdvice"))),
    assessmentView(obs, ctx));
}
