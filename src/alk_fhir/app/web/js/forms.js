// The SDC forms, rendered by LHC-Forms (npm lforms): we do not render questionnaires ourselves.
//
// Before handing a Questionnaire to LHC-Forms the app only (1) puts the chosen language's texts in
// place (FHIR translation extensions) and (2) resolves `answerValueSet` canonicals of our package
// against the service's ValueSet/$expand into `answerOption`s, because the EHR's FHIR server does
// not know our ValueSets. enableWhen, launchContext, variable and initialExpression are LHC-Forms'
// job (SDC "Form Behavior" and "Form Population"), with the SMART client as its FHIR context.
//
// A form opens with the patient's answers to it (SDC "Form Population"): the newest
// QuestionnaireResponse in the EHR for that canonical is merged into the form
// (LForms.Util.mergeFHIRDataIntoLForms), and pre-population (initialExpression) fills only the
// items that response leaves unanswered; those are marked "uit het dossier". Saving writes a new
// QuestionnaireResponse holding every answer the form shows, so what was not changed is kept.
import { takeAllDates, watchDates } from "./date-input.js";
import { h, show } from "./dom.js";
import { codeOrder, codingText, formatDate, formatTime, lang, localDateTime, localDay, t, tr } from "./i18n.js";
import { answersByLink, latestResponse, record, saveResponse } from "./record.js";
import { clearReaderLog } from "./renderer-texts.js";
import { checkResponse } from "./response-check.js";
import { expand, questionnaire, questionnaires } from "./service.js";

const TEXT_FIELDS = ["text", "prefix"];
const INITIAL_EXPRESSION = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-initialExpression";
const BASE = "https://alk-fhir.org/fhir/Questionnaire/";
// After saving, the view that shows what the form feeds (the rest feed the assessment and advice).
const UPDATED_VIEW = {
  [`${BASE}alk-explanatory-model`]: ["model", "viewUpdatedModel"],
  [`${BASE}alk-ambit-grid`]: ["ambit", "viewUpdatedAmbit"],
};

function localiseCoding(coding, language) {
  const out = { ...coding };
  const text = language === "nl" ? tr(coding, "display", "nl") : codingText(coding) || tr(coding, "display", language);
  if (text) out.display = text;
  delete out._display;
  return out;
}

async function prepareItems(items, language) {
  const out = [];
  for (const item of items || []) {
    const copy = { ...item };
    for (const field of TEXT_FIELDS) {
      if (copy[field] !== undefined) {
        copy[field] = tr(item, field, language);
        delete copy["_" + field];
      }
    }
    if (copy.answerValueSet && !copy.answerValueSet.startsWith("#")) {
      const contains = await expand(copy.answerValueSet);
      copy.answerOption = contains.map((c) => ({
        valueCoding: localiseCoding({ system: c.system, code: c.code, display: c.display }, language),
      }));
      delete copy.answerValueSet;
    } else if (copy.answerOption) {
      copy.answerOption = copy.answerOption.map((opt) => (opt.valueCoding
        ? { ...opt, valueCoding: localiseCoding(opt.valueCoding, language) }
        : opt));
    }
    if (copy.item) copy.item = await prepareItems(copy.item, language);
    // LHC-Forms reports a required *group* as missing a value even when it is filled in. A group
    // with a required child is enforced through that child (FHIR: a required group needs an
    // answered descendant), so the group's own flag can go.
    if (copy.type === "group" && copy.required && (copy.item || []).some((i) => i.required)) delete copy.required;
    out.push(copy);
  }
  return out;
}

/** A copy of the Questionnaire ready for LHC-Forms in `language`. */
export async function prepare(q, language) {
  const copy = JSON.parse(JSON.stringify(q));
  copy.title = tr(q, "title", language);
  delete copy._title;
  copy.item = await prepareItems(q.item, language);
  return copy;
}

/** A copy of the prepared Questionnaire without SDC initialExpression: the form the GP sees gets the
 * pre-populated values from the app (found out of sight, see prepopulatedValues), so the renderer
 * does not compute them a second time over what the app decided to leave open. */
function withoutInitialExpressions(q) {
  const copy = JSON.parse(JSON.stringify(q));
  const strip = (items) => {
    for (const item of items || []) {
      if (item.extension) item.extension = item.extension.filter((e) => e.url !== INITIAL_EXPRESSION);
      strip(item.item);
    }
  };
  strip(copy.item);
  return copy;
}

/** linkIds of the items that pre-populate from the record (SDC initialExpression). */
function prepopulatedLinks(items, out = new Set()) {
  for (const item of items || []) {
    if ((item.extension || []).some((e) => e.url === INITIAL_EXPRESSION)) out.add(item.linkId);
    prepopulatedLinks(item.item, out);
  }
  return out;
}

/** Walk LHC-Forms form data (its documented form-definition format) with each item's element id. */
function walkItems(items, visit, path = []) {
  const seen = new Map();
  for (const item of items || []) {
    const rep = (seen.get(item.linkId) || 0) + 1;
    seen.set(item.linkId, rep);
    const here = [...path, rep];
    visit(item, `${item.linkId}/${here.join("/")}`);
    walkItems(item.items, visit, here);
  }
}

function isEmpty(value) {
  return LForms.Util.isItemValueEmpty(value) || (value && typeof value === "object" && !Array.isArray(value)
    && !value.code && !value.text && !value.label && value.value === undefined);
}

function problemText(err) {
  return Array.isArray(err) ? err.map((e) => e?.message || e).join("; ") : err?.message || String(err);
}

/**
 * The values SDC pre-population gives the items in `links`, by rendering the form once out of
 * sight with LHC-Forms' own pre-population (its public API), then reading its form data.
 * {values, problem}: a query the EHR refuses leaves the values it could find.
 */
async function prepopulatedValues(prepared, links) {
  const scratch = h("div", { class: "lforms-scratch", "aria-hidden": "true", inert: true });
  document.body.append(scratch);
  const values = new Map();
  let problem = null;
  try {
    try {
      await LForms.Util.addFormToPage(prepared, scratch, { prepopulate: true, fhirVersion: "R4" });
    } catch (err) {
      if (err && err.status === 401) throw err;
      problem = problemText(err);
    }
    const data = scratch.firstChild ? LForms.Util.getFormData(scratch, false, false) : null;
    walkItems(data?.items, (item) => {
      // a count of nothing in the record (0 medicines) is no answer from the record: the GP gives it
      if (links.has(item.linkId) && !values.has(item.linkId) && !isEmpty(item.value) && item.value !== 0) {
        values.set(item.linkId, item.value);
      }
    });
  } finally {
    LForms.Util.removeFormsFromPage(scratch);
    scratch.remove();
    clearReaderLog();
  }
  return { values, problem };
}

/**
 * A copy of `response` whose items follow the Questionnaire's structure. Responses written by
 * other systems or against an older version of the form may skip or add a group level (an answer
 * directly under "features" where the form has it in a sub-group); LHC-Forms can only merge a
 * response that follows the form, so each answer is moved to where the form asks its question.
 * Items the form no longer has are left out (the response in the EHR keeps them). Coded answers
 * take the form's own coding, so their display follows the form's language.
 */
export function conformResponse(response, questionnaireItems) {
  const find = (qrItems, linkId, siblings) => {
    const direct = qrItems.filter((i) => i.linkId === linkId);
    if (direct.length) return direct;
    for (const i of qrItems) {
      if (siblings.has(i.linkId)) continue;
      const inner = [...(i.item || []), ...(i.answer || []).flatMap((a) => a.item || [])];
      const found = inner.length ? find(inner, linkId, siblings) : [];
      if (found.length) return found;
    }
    return [];
  };
  const conform = (qItems, qrItems) => {
    const siblings = new Set((qItems || []).map((q) => q.linkId));
    const out = [];
    for (const q of qItems || []) {
      if (q.type === "display") continue;
      const found = find(qrItems, q.linkId, siblings);
      if (q.type === "group") {
        const instances = found.length ? found.map((g) => g.item || []) : [qrItems];
        for (const inner of instances) {
          const items = conform(q.item, inner);
          if (items.length) out.push({ linkId: q.linkId, ...(q.text ? { text: q.text } : {}), item: items });
        }
      } else {
        const options = new Map((q.answerOption || []).filter((o) => o.valueCoding)
          .map((o) => [`${o.valueCoding.system}|${o.valueCoding.code}`, o.valueCoding]));
        for (const item of found) {
          const answer = (item.answer || []).map((a) => {
            const copy = { ...a };
            // the answer as the form offers it (its display in the form's language)
            const option = a.valueCoding && options.get(`${a.valueCoding.system}|${a.valueCoding.code}`);
            if (option) copy.valueCoding = { ...option };
            if (q.item && a.item) copy.item = conform(q.item, a.item);
            else delete copy.item;
            return copy;
          });
          if (answer.length) out.push({ linkId: q.linkId, ...(q.text ? { text: q.text } : {}), answer });
        }
      }
    }
    return out;
  };
  return { ...response, item: conform(questionnaireItems, response.item || []) };
}

/** The QuestionnaireResponse of the open form, pointing at the canonical Questionnaire|version. */
export function buildResponse(client, q, container, language) {
  const patientRef = { reference: `Patient/${client.patient.id}` };
  const response = LForms.Util.getFormFHIRData("QuestionnaireResponse", "R4", container, { subject: patientRef });
  delete response.id;
  response.questionnaire = q.version ? `${q.url}|${q.version}` : q.url;
  response.status = "completed";
  response.subject = patientRef;
  response.authored = localDateTime();
  response.language = language === "en" ? "en" : "nl-NL";
  const user = client.user?.fhirUser;
  if (user && /^(Practitioner|PractitionerRole|Patient|RelatedPerson)\//.test(user)) {
    response.author = { reference: user.replace(/^.*?\b(Practitioner|PractitionerRole|Patient|RelatedPerson)\//, "$1/") };
  }
  return response;
}

let openForm = null; // {canonical, language, container, prefilled, touched, origin}

export function formLanguage() {
  return openForm ? openForm.language : null;
}

/** The answers of the open form, unsaved (to reopen it in another language). */
export function unsavedAnswers(client) {
  if (!openForm || !document.body.contains(openForm.container)) return null;
  try {
    return { canonical: openForm.canonical, response: buildResponse(client, openForm.q, openForm.container, openForm.language),
      prefilled: new Set([...openForm.prefilled].filter((id) => !openForm.touched.has(id))), origin: openForm.origin };
  } catch (_) {
    return null;
  }
}

const GUIDELINE = "https://alk-fhir.org/fhir/CodeSystem/alk-guideline";

/** A form's place in the guideline (its Questionnaire.code of CodeSystem alk-guideline): the criteria
 * (§1.1) come before the explanatory model (§2.5), the admission (§4.1) and the AMBIT grid (§4.2). */
function formOrder(q) {
  const coding = (q.code || []).find((c) => c.system === GUIDELINE);
  return coding ? codeOrder(GUIDELINE, coding.code) : Number.MAX_SAFE_INTEGER;
}

function formList(onOpen, selected) {
  const list = h("ul", { class: "form-list", "aria-label": t("chooseForm") });
  questionnaires().then((qs) => {
    for (const q of [...qs].sort((a, b) => formOrder(a) - formOrder(b))) {
      const current = q.url === String(selected || "").split("|")[0];
      list.append(h("li", {},
        h("button", {
          type: "button",
          class: current ? "form-button current" : "form-button",
          "aria-current": current ? "true" : undefined,
          dataset: { questionnaire: q.id },
          onclick: () => onOpen(q.url),
        }, tr(q, "title"))));
    }
  });
  return list;
}

/** Mark the items filled from the record (and keep marking them as enableWhen shows them). */
function markPrefilled(state) {
  const decorate = () => {
    for (const item of state.container.querySelectorAll("lhc-item[id^='item-']")) {
      const elementId = item.id.slice(5);
      const link = elementId.split("/")[0];
      const badgeId = `from-record-${elementId}`;
      // this form's badge only: a form being replaced (language switch) has badges of the same ids, and
      // two forms taking one badge from each other would never stop
      const existing = state.container.querySelector(`[id="${CSS.escape(badgeId)}"]`);
      const wanted = state.prefilled.has(link) && !state.touched.has(link);
      if (!wanted) {
        existing?.remove();
        continue;
      }
      if (existing && item.contains(existing)) continue;
      existing?.remove();
      const label = item.querySelector(`[id="label-${elementId}"]`);
      if (!label) continue;
      const badge = h("span", { class: "from-record", id: badgeId, "data-app-text": "" }, t("fromRecord"));
      label.closest(".lhc-question")?.after(badge);
      for (const input of item.querySelectorAll("input, textarea")) {
        const described = (input.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean);
        if (!described.includes(badgeId)) input.setAttribute("aria-describedby", [...described, badgeId].join(" "));
      }
    }
  };
  let queued = false;
  const observer = new MutationObserver(() => {
    if (!state.container.isConnected) {  // the form was closed or replaced: nothing left to mark
      observer.disconnect();
      return;
    }
    if (queued) return;
    queued = true;
    queueMicrotask(() => { queued = false; decorate(); });
  });
  observer.observe(state.container, { childList: true, subtree: true });
  const touch = (event) => {
    const item = event.target.closest?.("lhc-item[id^='item-']");
    if (!item) return;
    state.touched.add(item.id.slice(5).split("/")[0]);
    clearFieldError(item);
    decorate();
  };
  // capture phase: the renderer's controls stop some events from bubbling
  state.container.addEventListener("input", touch, true);
  state.container.addEventListener("change", touch, true);
  state.container.addEventListener("click", (event) => {
    if (event.target.closest?.("label, .ant-radio-wrapper, .ant-checkbox-wrapper, input[type=radio], input[type=checkbox]")) touch(event);
  }, true);
  decorate();
  return observer;
}

function focusTarget(item) {
  return item.querySelector("input:not([type=hidden]):not([disabled]), textarea, select, [tabindex='0']");
}

function clearFieldError(item) {
  const elementId = item.id.slice(5);
  document.getElementById(`error-${elementId}`)?.remove();
  item.classList.remove("alk-invalid");
  for (const input of item.querySelectorAll("[aria-invalid]")) {
    input.removeAttribute("aria-invalid");
    const rest = (input.getAttribute("aria-describedby") || "").split(/\s+/).filter((x) => x && x !== `error-${elementId}`);
    if (rest.length) input.setAttribute("aria-describedby", rest.join(" "));
    else input.removeAttribute("aria-describedby");
  }
}

/** Enabled, required questions without an answer: [{elementId, question}] in form order. */
function missingAnswers(container) {
  const data = LForms.Util.getFormData(container, false, true);
  const missing = [];
  walkItems(data?.items, (item, elementId) => {
    if (item.dataType === "SECTION" || item.dataType === "TITLE") return;
    const required = String(item.answerCardinality?.min ?? "0") !== "0";
    if (required && isEmpty(item.value)) missing.push({ elementId, question: item.question });
  });
  return missing;
}

/** The renderer's other validation messages (types, lengths …), already in the app's language. */
function otherProblems(container) {
  const requiredText = (globalThis.alkRendererLocale?.language === "nl")
    ? globalThis.alkRendererLocale.NL.requiresAValue : "requires a value";
  return (LForms.Util.checkValidity(container) || []).filter((m) => !String(m).endsWith(requiredText));
}

function showErrors(state, missing, others, refusedDates = []) {
  for (const item of state.container.querySelectorAll("lhc-item.alk-invalid")) clearFieldError(item);
  const links = [];
  for (const { elementId, question } of missing) {
    const item = document.getElementById(`item-${elementId}`);
    if (!item) continue;
    item.classList.add("alk-invalid");
    const message = h("p", { class: "field-error", id: `error-${elementId}`, "data-app-text": "" }, t("requiredError"));
    (item.querySelector(".lhc-de-input-unit-content") || item).append(message);
    for (const input of item.querySelectorAll("input:not([type=hidden]), textarea")) {
      input.setAttribute("aria-invalid", "true");
      const described = (input.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean);
      input.setAttribute("aria-describedby", [...described, `error-${elementId}`].join(" "));
    }
    links.push(h("li", {}, h("a", {
      href: `#item-${elementId}`,
      onclick: (event) => {
        event.preventDefault();
        focusTarget(item)?.focus();
      },
    }, question)));
  }
  for (const elementId of refusedDates) {
    const item = document.getElementById(`item-${elementId}`);
    if (!item) continue;
    const question = item.querySelector(`[id="label-${CSS.escape(elementId)}"]`)?.textContent.trim() || elementId;
    links.push(h("li", {}, h("a", {
      href: `#item-${elementId}`,
      onclick: (event) => {
        event.preventDefault();
        item.querySelector("nz-date-picker input")?.focus();
      },
    }, `${question} — ${t("dateFix")}`)));
  }
  show(state.errors, h("p", {}, t("invalidSummary")),
    links.length ? h("ul", {}, links) : null,
    others.length ? h("ul", {}, others.map((m) => h("li", {}, String(m)))) : null);
  state.errors.hidden = false;
  const first = [...missing.map((m) => m.elementId), ...refusedDates]
    .map((id) => document.getElementById(`item-${id}`)).find(Boolean);
  const target = first ? (first.querySelector("nz-date-picker input") && refusedDates.length && !missing.length
    ? first.querySelector("nz-date-picker input") : focusTarget(first)) : null;
  if (target) {
    target.focus();
    target.scrollIntoView({ block: "center" });
  } else {
    state.errors.focus();
  }
}

/**
 * The forms view. `options.questionnaire` opens that form; `options.unsaved` reopens the form with
 * answers not saved yet (a language switch); `options.focus` moves focus to the opened form.
 */
export async function renderForms(client, panel, options, hooks) {
  const canonical = options.questionnaire;
  const open = (url) => hooks.openForm(url);
  const host = h("div", { class: "form-host", id: "form-host" });
  show(panel, h("h1", { id: "view-title" }, t("tabForms")), formList(open, canonical), host);
  openForm = null;
  if (!canonical) return;

  const q = await questionnaire(canonical);
  const language = lang();
  const [prepared, { resources, problems: unread }] = await Promise.all([prepare(q, language), record(client)]);
  const unsaved = options.unsaved && options.unsaved.canonical === q.url ? options.unsaved : null;
  const latest = unsaved ? unsaved.response : latestResponse(resources, q.url);
  const origin = unsaved ? unsaved.origin : latest?.authored || null;

  const title = h("h2", { id: "form-title", tabindex: "-1" }, prepared.title);
  const originNote = h("p", { class: "form-origin", id: "form-origin" },
    origin ? t("openedWith", formatDate(origin)) : t("openedNew"));
  const prefillNote = h("p", { class: "note", id: "prefill-note", hidden: true }, t("prefilledNote"));
  const container = h("div", { class: "lforms-container", id: "lforms-container" });
  const errors = h("div", { class: "error form-errors", id: "form-errors", tabindex: "-1", hidden: true });
  const submit = h("button", { type: "button", class: "primary", id: "submit-form" }, t("submit"));
  const status = h("p", { class: "form-status", role: "status", id: "form-status" });
  const after = h("p", { class: "form-after", id: "form-after" });
  const problems = h("p", { class: "warning", id: "prefill-problems", hidden: true });
  // a long form: one link from the top to the save button (instead of a tab stop per question)
  const toSave = h("a", { href: "#submit-form", class: "to-save", id: "to-save", onclick: (event) => {
    event.preventDefault();
    submit.focus();
    submit.scrollIntoView({ block: "center" });
  } }, t("toSave"));
  show(host, h("section", { class: "form-section", "aria-labelledby": "form-title" },
    title, originNote, prefillNote, problems, toSave, container, errors,
    h("div", { class: "actions" }, submit, status), after));

  LForms.Util.setFHIRContext(client);
  const links = prepopulatedLinks(prepared.item);
  // What the EHR would not give the app also cannot pre-populate the form: say so.
  if (links.size && unread.length) {
    problems.textContent = `${t("prefillProblem")}: ${unread.join("; ")}`;
    problems.hidden = false;
  }
  let prefilled = new Set();
  try {
    if (!latest) {
      // pre-population out of sight, then the values it found (the same way as beside earlier answers)
      const found = links.size ? await prepopulatedValues(prepared, links) : { values: new Map(), problem: null };
      if (found.problem) {
        problems.textContent = `${t("prefillProblem")}: ${found.problem}`;
        problems.hidden = false;
      }
      const form = LForms.Util.convertFHIRQuestionnaireToLForms(withoutInitialExpressions(prepared), "R4");
      walkItems(form.items, (item) => {
        if (found.values.has(item.linkId) && isEmpty(item.value)) {
          item.value = found.values.get(item.linkId);
          prefilled.add(item.linkId);
        }
      });
      await LForms.Util.addFormToPage(form, container, { fhirVersion: "R4" });
    } else {
      const answered = answersByLink(latest);
      const open = new Set([...links].filter((link) => !answered.has(link)));
      const found = unsaved || !open.size ? { values: new Map(), problem: null } : await prepopulatedValues(prepared, open);
      const fill = found.values;
      if (found.problem) {
        problems.textContent = `${t("prefillProblem")}: ${found.problem}`;
        problems.hidden = false;
      }
      const form = LForms.Util.mergeFHIRDataIntoLForms("QuestionnaireResponse", conformResponse(latest, prepared.item),
        LForms.Util.convertFHIRQuestionnaireToLForms(withoutInitialExpressions(prepared), "R4"), "R4");
      walkItems(form.items, (item) => {
        if (fill.has(item.linkId) && isEmpty(item.value)) {
          item.value = fill.get(item.linkId);
          prefilled.add(item.linkId);
        }
      });
      if (unsaved) prefilled = new Set(unsaved.prefilled);
      await LForms.Util.addFormToPage(form, container, { fhirVersion: "R4" });
    }
  } catch (err) {
    if (err && err.status === 401) throw err;
    // Pre-population problems (a query the EHR refuses) leave the form usable; report them.
    problems.textContent = `${t("prefillProblem")}: ${problemText(err)}`;
    problems.hidden = false;
  }
  const state = { canonical: q.url, q, language, container, errors, prefilled, touched: new Set(), origin };
  openForm = state;
  watchDates(state);
  prefillNote.hidden = prefilled.size === 0;
  markPrefilled(state);
  if (options.focus !== false) title.focus();
  if (unsaved) status.textContent = t("formLanguageNote");

  submit.addEventListener("click", async () => {
    errors.hidden = true;
    after.replaceChildren();
    const datesRead = takeAllDates(state);
    const missing = missingAnswers(container);
    const others = otherProblems(container);
    if (missing.length || others.length || !datesRead) {
      status.textContent = "";
      showErrors(state, missing, others, [...state.refused.keys()]);
      return;
    }
    // Before writing: every answer against the Questionnaire (types, well-formed dates and numbers).
    const response = buildResponse(client, q, container, language);
    const wrong = checkResponse(response, prepared);
    if (wrong.length) {
      status.textContent = "";
      showErrors(state, [], wrong.map((w) => `${w.text}: ${t("answerMalformed")}`));
      return;
    }
    submit.disabled = true;
    status.textContent = t("saving");
    try {
      const saved = await saveResponse(client, response);
      const now = new Date();
      status.textContent = t("savedAt", formatDate(localDay(now)), formatTime(now));
      status.dataset.savedId = saved?.id ?? "";
      state.origin = saved?.authored || response.authored;
      originNote.textContent = t("openedWith", formatDate(state.origin));
      const [view, label] = UPDATED_VIEW[q.url] || ["results", "viewUpdated"];
      show(after, h("a", {
        href: `#${view}`,
        id: "view-updated",
        onclick: (event) => {
          event.preventDefault();
          hooks.openView(view);
        },
      }, t(label)));
      // the button was disabled while saving, which drops the focus to <body>: it goes to the next step
      document.getElementById("view-updated")?.focus();
      hooks.onSaved(q, saved);
    } catch (err) {
      status.textContent = "";
      hooks.onError(err, errors);
      errors.hidden = false;
    } finally {
      submit.disabled = false;
      if (document.activeElement === document.body) submit.focus();
    }
  });
}
