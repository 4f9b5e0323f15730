// The patient's latest shared case overview, inline in the view: the document Bundle is read from
// the EHR with the app's own token (FHIR R4 Bundle search parameter `composition`, chained to
// Composition.patient), rendered by the alk-fhir service (POST /app/api/render-overview, which
// passes every narrative through its allow-list), and its sections are taken into the page through
// a second allow-list here (elements and attributes; no scripts, styles or event handlers can pass,
// and the page's Content-Security-Policy forbids inline script anyway). The view states the
// overview's date and says when the record holds answers newer than the overview.
import { h, show } from "./dom.js";
import { formatDate, joinList, lang, t, tr } from "./i18n.js";
import { record } from "./record.js";
import { questionnaires, renderOverview } from "./service.js";

const CONCEPTS = "https://alk-fhir.org/fhir/CodeSystem/alk-concepts";
const ALLOWED = new Set(["section", "h2", "h3", "h4", "h5", "h6", "p", "ul", "ol", "li", "table", "thead", "tbody",
  "tfoot", "tr", "th", "td", "caption", "col", "colgroup", "dl", "dt", "dd", "span", "strong", "em", "b", "i",
  "br", "hr", "a", "div", "small", "sub", "sup", "code", "blockquote", "abbr", "cite", "q", "pre", "dfn", "var",
  "samp", "tt", "big"]);
const ATTRIBUTES = new Set(["colspan", "rowspan", "scope", "lang", "title", "class", "abbr", "href"]);

function isCaseOverview(bundle) {
  const composition = bundle?.entry?.[0]?.resource;
  if (bundle?.resourceType !== "Bundle" || bundle.type !== "document" || composition?.resourceType !== "Composition") return false;
  // The profile alk-case-overview fixes Composition.category to our concept `case-overview`.
  return (composition.category || []).some((cat) => (cat.coding || []).some((c) => c.system === CONCEPTS && c.code === "case-overview"));
}

function stamp(bundle) {
  return String(bundle.entry[0].resource.date || bundle.timestamp || bundle.meta?.lastUpdated || "");
}

/** A copy of `node` with only allowed elements and attributes (text stays text). */
function clean(node) {
  if (node.nodeType === Node.TEXT_NODE) return document.createTextNode(node.data);
  if (node.nodeType !== Node.ELEMENT_NODE) return null;
  const tag = node.localName;
  const children = [...node.childNodes].map(clean).filter(Boolean);
  if (!ALLOWED.has(tag)) {
    if (["script", "style", "iframe", "object", "embed", "form", "input", "button", "textarea", "select",
      "link", "meta", "base", "svg", "math", "template"].includes(tag)) return null;
    const fragment = document.createDocumentFragment();
    fragment.append(...children);
    return fragment;
  }
  const out = document.createElement(tag);
  for (const { name, value } of [...node.attributes]) {
    if (!ATTRIBUTES.has(name)) continue;
    if (name === "href" && !/^(https?:|#)/i.test(value.trim())) continue;
    out.setAttribute(name, value);
  }
  if (tag === "a" && /^https?:/i.test(out.getAttribute("href") || "")) {
    out.setAttribute("target", "_blank");
    out.setAttribute("rel", "noopener noreferrer");
  }
  if (tag === "section" && node.id) out.id = `overview-${node.id}`;
  out.append(...children);
  return out;
}

/** Tables of the document read one block per row on a narrow screen: each cell names its column. */
function stackable(nodes) {
  for (const node of nodes) {
    for (const table of node.querySelectorAll ? node.querySelectorAll("table") : []) {
      const headers = [...table.querySelectorAll("thead th")].map((th) => th.textContent.trim());
      if (!headers.length) continue;
      table.classList.add("stack");
      for (const row of table.querySelectorAll("tbody tr")) {
        [...row.children].forEach((cell, i) => { if (headers[i]) cell.setAttribute("data-label", headers[i]); });
      }
    }
  }
  return nodes;
}

function authorText(bundle) {
  const composition = bundle.entry[0].resource;
  const byUrl = new Map(bundle.entry.map((e) => [e.fullUrl, e.resource]));
  return (composition.author || []).map((ref) => {
    const found = byUrl.get(ref.reference) || bundle.entry.map((e) => e.resource)
      .find((r) => `${r.resourceType}/${r.id}` === ref.reference);
    const name = (found?.name && (Array.isArray(found.name) ? found.name[0] : { text: found.name })) || null;
    return ref.display || name?.text || [...(name?.given || []), name?.family].filter(Boolean).join(" ") || "";
  }).filter(Boolean).join(", ");
}

/** Questionnaire answers in the record newer than `since`: [title (date)]. */
async function newerAnswers(client, since) {
  const { resources } = await record(client);
  const titles = new Map((await questionnaires()).map((q) => [q.url, tr(q, "title")]));
  const instant = (value) => Date.parse(value || "") || 0;
  const newest = new Map();
  for (const r of resources) {
    if (r.resourceType !== "QuestionnaireResponse" || !r.authored) continue;
    const url = String(r.questionnaire || "").split("|")[0];
    if (!titles.has(url)) continue;
    if (!newest.has(url) || instant(r.authored) > instant(newest.get(url))) newest.set(url, String(r.authored));
  }
  return [...newest.entries()].filter(([, authored]) => instant(authored) > instant(since))
    .map(([url, authored]) => `${titles.get(url)} (${formatDate(authored)})`);
}

export async function renderOverviewView(client, panel) {
  const heading = h("h1", { id: "view-title", tabindex: "-1" }, t("overviewTitle"));
  const patientId = client.patient.id;
  let bundles;
  try {
    bundles = await client.request(
      `Bundle?type=document&composition.patient=${encodeURIComponent(`Patient/${patientId}`)}&_count=50`,
      { pageLimit: 4, flat: true });
  } catch (err) {
    if (err && err.status === 401) throw err;
    show(panel, heading,
      h("p", { class: "warning", id: "overview-message" }, `${t("overviewUnsupported")}: ${String(err?.message || err).split("\n")[0]}`));
    return;
  }
  const documents = (bundles || []).filter(isCaseOverview).sort((a, b) => stamp(b).localeCompare(stamp(a)));
  if (!documents.length) {
    show(panel, heading, h("p", { id: "overview-message" }, t("noOverview")));
    return;
  }
  const latest = documents[0];
  let page;
  try {
    page = await renderOverview(latest);
  } catch (err) {
    const message = err.status === 404 || err.status === 405 || err.status === 501 ? t("overviewRenderMissing")
      : `${t("serviceError")}: ${err.message}`;
    show(panel, heading, h("p", { class: "warning", id: "overview-message" }, message));
    return;
  }
  const parsed = new DOMParser().parseFromString(page, "text/html");
  const sections = stackable([...parsed.querySelectorAll("main > section")].map(clean).filter(Boolean));
  // the document's header (patient with BSN, date, status, author, custodian) and its warnings
  const banners = [...parsed.querySelectorAll("header dl.facts, header .banner, header .coordinator")].map(clean)
    .filter(Boolean);
  const date = stamp(latest);
  const newer = await newerAnswers(client, date);
  const author = authorText(latest);
  const composition = latest.entry[0].resource;
  const print = h("button", { type: "button", class: "secondary print-button", id: "overview-print",
    onclick: () => window.print() }, t("printOverview"));
  show(panel, heading,
    h("p", { class: "overview-date", id: "overview-date" }, t("overviewDate", formatDate(date)),
      author ? ` · ${author}` : ""),
    h("div", { class: "overview-actions" }, print,
      h("span", { class: "note", id: "overview-print-note" }, t("printNote"))),
    newer.length ? h("p", { class: "warning", id: "overview-newer" }, t("overviewNewer", joinList(newer))) : null,
    lang() === "en" ? h("p", { class: "note", id: "overview-language" }, t("overviewDocumentLanguage")) : null,
    h("article", { class: "overview-doc", id: "overview", lang: "nl", "aria-labelledby": "overview-doc-title" },
      h("p", { class: "overview-doc-title", id: "overview-doc-title" }, String(composition.title || "")),
      banners, sections));
}
