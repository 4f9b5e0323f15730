// The persistent-ALK assessment (criteria with their evidence, profile features) and the guideline
// advice that applies now, both from PlanDefinition/$apply on the patient's record: the CarePlan
// holds the RequestGroup (advice) and the assessment Observation (alk-assessment profile), contained.
import { h, show } from "./dom.js";
import { conceptText, formatDate, t, tr } from "./i18n.js";
import { record } from "./record.js";
import { apply, questionnaires } from "./service.js";

const EVIDENCE = "https://alk-fhir.org/fhir/StructureDefinition/alk-evidence";
const GUIDELINE = "https://alk-fhir.org/fhir/CodeSystem/alk-guideline";
const SHOWN = 4; // evidence items listed before the rest is folded away

function today() {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}

function contained(resource, ref) {
  const id = String(ref?.reference || "").replace(/^#/, "");
  return (resource.contained || []).find((r) => r.id === id) || null;
}

/** A short human description of a referenced resource of the record. */
function describe(ref, byKey) {
  const key = ref?.reference || "";
  const res = byKey.get(key);
  if (!res) return ref?.display || key;
  switch (res.resourceType) {
    case "QuestionnaireResponse": {
      const link = String(ref.display || "").split("#")[1];
      return `${t("questionnaireAnswer")}${link ? ` (${link})` : ""}, ${t("answeredOn")} ${formatDate(res.authored)}`;
    }
    case "Procedure":
      return [conceptText(res.code), formatDate(res.performedDateTime || res.performedPeriod?.start),
        res.outcome ? conceptText(res.outcome) : ""].filter(Boolean).join(", ");
    case "Condition":
      return [conceptText(res.code), formatDate(res.onsetDateTime || res.onsetPeriod?.start)].filter(Boolean).join(", ");
    case "Encounter":
      return `${res.class?.display || "Encounter"} ${formatDate(res.period?.start)}`;
    case "MedicationStatement":
    case "MedicationRequest":
      return conceptText(res.medicationCodeableConcept) || key;
    default:
      return conceptText(res.code) || key;
  }
}

function evidenceList(holder, byKey) {
  const refs = (holder.extension || []).filter((e) => e.url === EVIDENCE).map((e) => e.valueReference);
  if (!refs.length) return t("noEvidence");
  const items = refs.map((ref) => h("li", {}, describe(ref, byKey)));
  if (items.length <= SHOWN) return h("ul", { class: "evidence" }, items);
  return [h("ul", { class: "evidence" }, items.slice(0, SHOWN)),
    h("details", { class: "more" }, h("summary", {}, `+ ${items.length - SHOWN} ${t("more")}`),
      h("ul", { class: "evidence" }, items.slice(SHOWN)))];
}

function statusBadge(concept) {
  const code = concept?.coding?.[0]?.code || "";
  return h("span", { class: `badge ${code}`, dataset: { code } }, conceptText(concept));
}

function assessmentView(obs, byKey) {
  if (!obs) return h("p", {}, "—");
  const criteria = (obs.component || []).filter((c) => c.valueCodeableConcept);
  const features = (obs.component || []).filter((c) => c.valueBoolean === true);
  return h("section", { class: "card", id: "assessment", "aria-labelledby": "assessment-title" },
    h("h3", { id: "assessment-title" }, t("assessment")),
    h("p", { class: "overall" }, `${t("overall")}: `, statusBadge(obs.valueCodeableConcept),
      obs.effectiveDateTime ? ` (${formatDate(obs.effectiveDateTime)})` : ""),
    h("table", { class: "grid criteria" },
      h("caption", { class: "visually-hidden" }, t("assessment")),
      h("thead", {}, h("tr", {},
        h("th", { scope: "col" }, t("criterion")), h("th", { scope: "col" }, t("status")),
        h("th", { scope: "col" }, t("evidence")))),
      h("tbody", {}, criteria.map((c) => h("tr", { dataset: { criterion: c.code?.coding?.[0]?.code || "" } },
        h("th", { scope: "row" }, conceptText(c.code)),
        h("td", {}, statusBadge(c.valueCodeableConcept)),
        h("td", {}, evidenceList(c, byKey)))))),
    h("h4", {}, t("features")),
    features.length
      ? h("ul", { class: "features" }, features.map((c) => h("li", { dataset: { feature: c.code?.coding?.[0]?.code || "" } },
        conceptText(c.code), h("div", { class: "muted" }, evidenceList(c, byKey)))))
      : h("p", {}, t("noFeatures")));
}

function sectionLabel(action) {
  const codes = (action.code || []).flatMap((c) => c.coding || []).filter((c) => c.system === GUIDELINE);
  return codes.map((c) => `${t("guideline")} §${c.code}`).join(", ");
}

function actionView(action, plan, onOpenForm, titles) {
  const task = action.resource ? contained(plan, action.resource) : null;
  const form = (task?.input || []).map((i) => i.valueCanonical).find(Boolean);
  const doc = (action.documentation || [])[0];
  const children = action.action || [];
  return h("li", { class: "action", dataset: { action: action.id || "" } },
    h("div", { class: "action-head" },
      h("strong", {}, tr(action, "title")),
      sectionLabel(action) ? h("span", { class: "section" }, sectionLabel(action)) : null,
      action.priority && action.priority !== "routine" ? h("span", { class: `badge ${action.priority}` }, action.priority) : null),
    tr(action, "description") ? h("p", {}, tr(action, "description")) : null,
    doc ? h("p", { class: "muted" }, `${t("source")}: `,
      doc.url && /^https?:/.test(doc.url) ? h("a", { href: doc.url, target: "_blank", rel: "noopener noreferrer" }, tr(doc, "display") || doc.url)
        : tr(doc, "display")) : null,
    form ? h("button", { type: "button", class: "secondary", onclick: () => onOpenForm(form) },
      `${t("openForm")}: ${titles.get(form.split("|")[0]) || form}`) : null,
    children.length ? h("ul", { class: "actions-list" }, children.map((a) => actionView(a, plan, onOpenForm, titles))) : null);
}

function adviceView(group, plan, onOpenForm, titles) {
  const actions = group?.action || [];
  return h("section", { class: "card", id: "advice", "aria-labelledby": "advice-title" },
    h("h3", { id: "advice-title" }, t("advice")),
    actions.length ? h("ul", { class: "actions-list" }, actions.map((a) => actionView(a, plan, onOpenForm, titles)))
      : h("p", {}, t("noAdvice")));
}

export async function renderResults(client, panel, onOpenForm) {
  const { patient, resources, problems } = await record(client);
  const plan = await apply(patient.id, resources, today());
  const titles = new Map((await questionnaires()).map((q) => [q.url, tr(q, "title")]));
  const byKey = new Map(resources.map((r) => [`${r.resourceType}/${r.id}`, r]));
  const obsRef = (plan.supportingInfo || [])[0];
  const obs = obsRef ? contained(plan, obsRef) : (plan.contained || []).find((r) => r.resourceType === "Observation");
  const groupRef = (plan.activity || [])[0]?.reference;
  const group = groupRef ? contained(plan, groupRef) : (plan.contained || []).find((r) => r.resourceType === "RequestGroup");
  show(panel,
    h("h2", {}, t("tabResults")),
    problems.length ? h("p", { class: "warning" }, `${t("partialData")}: ${problems.join("; ")}`) : null,
    h("div", { class: "results" }, assessmentView(obs, byKey), adviceView(group, plan, onOpenForm, titles)));
}
