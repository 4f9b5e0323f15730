// The patient's latest shared case overview: the document Bundle is read from the EHR with the
// app's own token (FHIR R4 Bundle search parameter `composition`, chained to Composition.patient),
// rendered to HTML by the alk-fhir service (POST /app/api/render-overview), and shown in a sandboxed
// iframe (no scripts, no same-origin access): the page is someone else's document.
import { h, show } from "./dom.js";
import { t } from "./i18n.js";
import { renderOverview } from "./service.js";

const CONCEPTS = "https://alk-fhir.org/fhir/CodeSystem/alk-concepts";

function isCaseOverview(bundle) {
  const composition = bundle?.entry?.[0]?.resource;
  if (bundle?.resourceType !== "Bundle" || bundle.type !== "document" || composition?.resourceType !== "Composition") return false;
  // The profile alk-case-overview fixes Composition.category to our concept `case-overview`.
  return (composition.category || []).some((cat) => (cat.coding || []).some((c) => c.system === CONCEPTS && c.code === "case-overview"));
}

function stamp(bundle) {
  return String(bundle.timestamp || bundle.entry[0].resource.date || bundle.meta?.lastUpdated || "");
}

export async function renderOverviewView(client, panel) {
  const patientId = client.patient.id;
  let bundles;
  try {
    bundles = await client.request(
      `Bundle?type=document&composition.patient=${encodeURIComponent(`Patient/${patientId}`)}&_count=50`,
      { pageLimit: 4, flat: true });
  } catch (err) {
    if (err && err.status === 401) throw err;
    show(panel, h("h2", {}, t("tabOverview")),
      h("p", { class: "warning", id: "overview-message" }, `${t("overviewUnsupported")}: ${String(err?.message || err).split("\n")[0]}`));
    return;
  }
  const documents = (bundles || []).filter(isCaseOverview).sort((a, b) => stamp(b).localeCompare(stamp(a)));
  if (!documents.length) {
    show(panel, h("h2", {}, t("tabOverview")), h("p", { id: "overview-message" }, t("noOverview")));
    return;
  }
  let page;
  try {
    page = await renderOverview(documents[0]);
  } catch (err) {
    const message = err.status === 404 || err.status === 405 || err.status === 501 ? t("overviewRenderMissing")
      : `${t("serviceError")}: ${err.message}`;
    show(panel, h("h2", {}, t("tabOverview")), h("p", { class: "warning", id: "overview-message" }, message));
    return;
  }
  const frame = h("iframe", { class: "overview-frame", id: "overview-frame", sandbox: "", title: t("overviewFrame") });
  frame.srcdoc = page;
  show(panel, h("h2", {}, t("overviewTitle")), frame);
}
