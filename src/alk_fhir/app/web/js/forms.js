// The SDC forms, rendered by LHC-Forms (npm lforms): we do not render questionnaires ourselves.
// Before handing a Questionnaire to LHC-Forms the app only (1) puts the chosen language's texts in
// place (FHIR translation extensions) and (2) resolves `answerValueSet` canonicals of our package
// against the service's ValueSet/$expand into `answerOption`s, because the EHR's FHIR server does
// not know our ValueSets (plus one work-around, see prepareItems). enableWhen, launchContext, variable and initialExpression are LHC-Forms'
// job (SDC "Form Behavior" and "Form Population"), with the SMART client as its FHIR context.
import { h, show } from "./dom.js";
import { codingText, lang, t, tr } from "./i18n.js";
import { saveResponse } from "./record.js";
import { expand, questionnaire, questionnaires } from "./service.js";

const TEXT_FIELDS = ["text", "prefix"];

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

let openForm = null; // {questionnaire, language, container}

function formList(client, panel, onOpen, selected) {
  const list = h("ul", { class: "form-list", "aria-label": t("chooseForm") });
  questionnaires().then((qs) => {
    for (const q of qs) {
      const canonical = q.url;
      list.append(h("li", {},
        h("button", {
          type: "button",
          class: canonical === selected ? "form-button current" : "form-button",
          "aria-current": canonical === selected ? "true" : undefined,
          dataset: { questionnaire: q.id },
          onclick: () => onOpen(canonical),
        }, tr(q, "title"))));
    }
  });
  return list;
}

/** The forms view; `canonical` opens that Questionnaire right away. */
export async function renderForms(client, panel, canonical, onError, onSaved) {
  const open = async (url) => {
    try {
      await renderForms(client, panel, url, onError, onSaved);
    } catch (err) {
      onError(err, panel);
    }
  };
  const host = h("div", { class: "form-host", id: "form-host" });
  const status = h("p", { class: "form-status", role: "status", "aria-live": "polite", id: "form-status" });
  show(panel, h("h2", {}, t("tabForms")), formList(client, panel, open, canonical), status, host);
  if (!canonical) return;

  const q = await questionnaire(canonical);
  const language = lang();
  const prepared = await prepare(q, language);
  const formTitle = h("h3", { id: "form-title", class: "visually-hidden" }, prepared.title); // LHC-Forms shows the title
  const container = h("div", { class: "lforms-container", id: "lforms-container" });
  const errors = h("div", { class: "error", role: "alert", id: "form-errors", hidden: true });
  const submit = h("button", { type: "button", class: "primary", id: "submit-form" }, t("submit"));
  const note = h("p", { class: "note" }, t("formPrefilled"));
  show(host, formTitle, note, container, errors, h("div", { class: "actions" }, submit));
  status.textContent = t("loading");

  LForms.Util.setFHIRContext(client);
  try {
    await LForms.Util.addFormToPage(prepared, container, { prepopulate: true, fhirVersion: "R4" });
  } catch (err) {
    // Pre-population problems (a query the EHR refuses) leave the form usable; report them.
    const detail = Array.isArray(err) ? err.map((e) => e?.message || e).join("; ") : err?.message || String(err);
    status.textContent = detail;
  }
  if (status.textContent === t("loading")) status.textContent = "";
  openForm = { questionnaire: q, language, container };

  submit.addEventListener("click", async () => {
    errors.hidden = true;
    const invalid = LForms.Util.checkValidity(container);
    if (invalid && invalid.length) {
      show(errors, h("p", {}, t("invalid")), h("ul", {}, invalid.map((e) => h("li", {}, String(e)))));
      errors.hidden = false;
      return;
    }
    submit.disabled = true;
    status.textContent = t("saving");
    try {
      const response = buildResponse(client, q, container, language);
      const saved = await saveResponse(client, response);
      status.textContent = `${t("saved")} QuestionnaireResponse/${saved?.id ?? "?"}.`;
      status.dataset.savedId = saved?.id ?? "";
      onSaved(q, saved);
    } catch (err) {
      status.textContent = "";
      onError(err, errors);
      errors.hidden = false;
    } finally {
      submit.disabled = false;
    }
  });
}

/** The QuestionnaireResponse of the open form, pointing at the canonical Questionnaire|version. */
export function buildResponse(client, q, container, language) {
  const patientRef = { reference: `Patient/${client.patient.id}` };
  const response = LForms.Util.getFormFHIRData("QuestionnaireResponse", "R4", container, { subject: patientRef });
  delete response.id;
  response.questionnaire = q.version ? `${q.url}|${q.version}` : q.url;
  response.status = "completed";
  response.subject = patientRef;
  response.authored = new Date().toISOString();
  response.language = language === "en" ? "en" : "nl-NL";
  const user = client.user?.fhirUser;
  if (user && /^(Practitioner|PractitionerRole|Patient|RelatedPerson)\//.test(user)) {
    response.author = { reference: user.replace(/^.*?\b(Practitioner|PractitionerRole|Patient|RelatedPerson)\//, "$1/") };
  }
  return response;
}

export function formLanguage() {
  return openForm ? openForm.language : null;
}
