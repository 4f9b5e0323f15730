// The explanatory model and the AMBIT grid as tables, built from the latest QuestionnaireResponse in
// the EHR and the structure of our Questionnaires (rows, columns and labels come from the
// Questionnaire and our CodeSystem, so the tables follow the knowledge package, not this code):
// - biopsychosocial model: the row groups under item `bps` (bio/psycho/social) × the phases of
//   ValueSet alk-bps-phases (predisposing/precipitating/perpetuating), H §2.5;
// - SCEGS alternative: the items under `scegs`, one row per dimension;
// - AMBIT grid: one row per `stakeholder` answer group × the stakeholder group's other items, H §4.2.
import { h, show } from "./dom.js";
import { codingText, formatDate, t, tr } from "./i18n.js";
import { answersByLink, latestResponse, record } from "./record.js";
import { expand, questionnaire } from "./service.js";

const BASE = "https://alk-fhir.org/fhir";
export const MODEL_Q = `${BASE}/Questionnaire/alk-explanatory-model`;
export const AMBIT_Q = `${BASE}/Questionnaire/alk-ambit-grid`;
const PHASES_VS = `${BASE}/ValueSet/alk-bps-phases`;
const STAKEHOLDER_HEAD = new Set(["stakeholder-kind", "stakeholder-name", "stakeholder-discipline"]);

function answerText(answer) {
  if (!answer) return "";
  if (answer.valueCoding) return codingText(answer.valueCoding);
  for (const key of ["valueString", "valueDate", "valueDateTime", "valueInteger", "valueDecimal", "valueUri"]) {
    if (answer[key] !== undefined) return key.startsWith("valueDate") ? formatDate(answer[key]) : String(answer[key]);
  }
  if (answer.valueBoolean !== undefined) return answer.valueBoolean ? t("yes") : t("no");
  return "";
}

function cell(answers) {
  const texts = (answers || []).map(answerText).filter((s) => s.trim());
  if (!texts.length) return h("span", { class: "muted" }, "—");
  return texts.length === 1 ? texts[0] : h("ul", { class: "cell-list" }, texts.map((s) => h("li", {}, s)));
}

function findItem(items, linkId) {
  for (const item of items || []) {
    if (item.linkId === linkId) return item;
    const found = findItem(item.item, linkId);
    if (found) return found;
  }
  return null;
}

function hasCode(item, code) {
  return (item.code || []).some((c) => c.code === code);
}

function missing(message, canonical, hooks) {
  return h("div", { class: "card" }, h("p", {}, message),
    h("button", { type: "button", class: "secondary open-form", onclick: () => hooks.openForm(canonical) }, t("openForm")));
}

function editButton(canonical, hooks) {
  return h("p", {}, h("button", { type: "button", class: "secondary open-form", onclick: () => hooks.openForm(canonical) },
    t("openForm")));
}

function meta(response, found, links) {
  return h("dl", { class: "meta" },
    links.filter(([link]) => (found.get(link) || []).length).map(([link, label]) => [
      h("dt", {}, label), h("dd", {}, cell(found.get(link)))]),
    h("dt", {}, t("filledOn")), h("dd", {}, formatDate(response.authored)));
}

async function bpsTable(q, found) {
  const group = findItem(q.item, "bps");
  const phases = await expand(PHASES_VS);
  return h("table", { class: "grid bps stack", id: "bps-table" },
    h("caption", {}, t("modelTitle")),
    h("thead", {}, h("tr", {}, h("td", {}),
      phases.map((p) => h("th", { scope: "col", dataset: { phase: p.code } }, codingText(p))))),
    h("tbody", {}, (group?.item || []).map((row) => h("tr", { dataset: { row: row.linkId } },
      h("th", { scope: "row" }, tr(row, "text")),
      phases.map((p) => {
        const item = (row.item || []).find((i) => hasCode(i, p.code));
        return h("td", { dataset: { link: item?.linkId || "" }, "data-label": codingText(p) }, cell(item ? found.get(item.linkId) : []));
      })))));
}

function scegsTable(q, found) {
  const group = findItem(q.item, "scegs");
  return h("table", { class: "grid scegs", id: "scegs-table" },
    h("caption", {}, t("scegsTitle")),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("dimension")), h("th", { scope: "col" }, t("answer")))),
    h("tbody", {}, (group?.item || []).map((item) => h("tr", { dataset: { link: item.linkId } },
      h("th", { scope: "row" }, tr(item, "text")), h("td", {}, cell(found.get(item.linkId)))))));
}

export async function renderModel(client, panel, hooks) {
  const { resources } = await record(client);
  const q = await questionnaire(MODEL_Q);
  const response = latestResponse(resources, MODEL_Q);
  if (!response) {
    show(panel, h("h1", { id: "view-title", tabindex: "-1" }, t("tabModel")), missing(t("noModel"), MODEL_Q, hooks));
    return;
  }
  const found = answersByLink(response);
  const model = (found.get("model") || [])[0]?.valueCoding?.code;
  const label = (link) => tr(findItem(q.item, link), "text") || link;
  const head = meta(response, found, [["main-complaint", label("main-complaint")], ["shared-goal", label("shared-goal")],
    ["filled-with", label("filled-with")]]);
  const tables = [];
  if (model !== "scegs" || found.has("bps-bio-predisposing")) tables.push(await bpsTable(q, found));
  if (model === "scegs") tables.push(scegsTable(q, found));
  const agreement = found.get("agreement");
  show(panel, h("h1", { id: "view-title", tabindex: "-1" }, t("tabModel")), head, tables,
    agreement ? h("p", {}, h("strong", {}, `${label("agreement")}: `), cell(agreement)) : null,
    editButton(MODEL_Q, hooks));
}

/** Each repetition of the `stakeholder` group in the response, as {linkId: answers}. */
function stakeholders(response) {
  const rows = [];
  const walk = (items) => {
    for (const item of items || []) {
      if (item.linkId === "stakeholder") rows.push(answersByLink({ item: item.item }));
      else walk(item.item);
    }
  };
  walk(response.item);
  return rows;
}

export async function renderAmbit(client, panel, hooks) {
  const { resources } = await record(client);
  const q = await questionnaire(AMBIT_Q);
  const response = latestResponse(resources, AMBIT_Q);
  if (!response) {
    show(panel, h("h1", { id: "view-title", tabindex: "-1" }, t("tabAmbit")), missing(t("noAmbit"), AMBIT_Q, hooks));
    return;
  }
  const group = findItem(q.item, "stakeholder");
  const dims = (group?.item || []).filter((i) => !STAKEHOLDER_HEAD.has(i.linkId));
  const rows = stakeholders(response);
  const conclusion = answersByLink(response).get("shared-conclusion");
  show(panel, h("h1", { id: "view-title", tabindex: "-1" }, t("tabAmbit")),
    h("table", { class: "grid ambit stack", id: "ambit-grid" },
      h("caption", {}, t("ambitTitle"), " — ", `${t("filledOn")} ${formatDate(response.authored)}`),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("stakeholder")),
        dims.map((d) => h("th", { scope: "col", dataset: { link: d.linkId } }, tr(d, "text"))))),
      h("tbody", {}, rows.map((row) => h("tr", {},
        h("th", { scope: "row" },
          h("div", {}, cell(row.get("stakeholder-name"))),
          h("div", { class: "muted" }, [cell(row.get("stakeholder-kind")),
            row.get("stakeholder-discipline") ? [" · ", cell(row.get("stakeholder-discipline"))] : null])),
        dims.map((d) => h("td", { dataset: { link: d.linkId }, "data-label": tr(d, "text") }, cell(row.get(d.linkId)))))))),
    conclusion ? h("p", { id: "ambit-conclusion" }, h("strong", {}, `${t("sharedConclusion")}: `), cell(conclusion)) : null,
    editButton(AMBIT_Q, hooks));
}
