// Calls to the alk-fhir service that serves this app (same origin): the knowledge repository
// (/fhir/Questionnaire, /fhir/ValueSet/$expand, /fhir/CodeSystem), PlanDefinition/$apply, and the
// case-overview renderer. Patient data goes to the service only inside a request; it keeps nothing.

const FHIR_BASE = new URL("../fhir/", location.href);
const APP_API = new URL("api/", location.href);

export class ServiceError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
    this.source = "service";
  }
}

async function parseError(res) {
  let detail = `HTTP ${res.status}`;
  try {
    const body = await res.json();
    const issue = (body.issue || [])[0];
    if (issue) detail += `: ${issue.diagnostics || issue.code}`;
  } catch (_) { /* not JSON */ }
  return new ServiceError(res.status, detail);
}

async function getJson(path) {
  const res = await fetch(new URL(path, FHIR_BASE), { headers: { Accept: "application/fhir+json" } });
  if (!res.ok) throw await parseError(res);
  return res.json();
}

const cache = new Map();
function cached(key, make) {
  if (!cache.has(key)) cache.set(key, make().catch((err) => { cache.delete(key); throw err; }));
  return cache.get(key);
}

/** Every Questionnaire the service publishes (the forms this app offers). */
export function questionnaires() {
  return cached("questionnaires", async () => {
    const bundle = await getJson("Questionnaire");
    return (bundle.entry || []).map((e) => e.resource);
  });
}

/** A Questionnaire by canonical URL (optionally url|version). */
export async function questionnaire(canonical) {
  const [url] = String(canonical).split("|");
  const found = (await questionnaires()).find((q) => q.url === url || q.id === url);
  if (!found) throw new ServiceError(404, `Questionnaire ${canonical}`);
  return found;
}

export function expand(valueSetUrl) {
  return cached(`vs:${valueSetUrl}`, async () => {
    const vs = await getJson(`ValueSet/$expand?url=${encodeURIComponent(valueSetUrl)}`);
    return vs.expansion?.contains || [];
  });
}

export function codeSystems() {
  return cached("codesystems", async () => {
    const bundle = await getJson("CodeSystem");
    return (bundle.entry || []).map((e) => e.resource);
  });
}

/** A PlanDefinition of the package by canonical (url|version): its actions and their conditions. */
export function planDefinition(canonical) {
  const [url] = String(canonical).split("|");
  return cached(`plan:${url}`, async () => {
    const bundle = await getJson(`PlanDefinition?url=${encodeURIComponent(url)}`);
    const found = (bundle.entry || []).map((e) => e.resource)[0];
    if (!found) throw new ServiceError(404, `PlanDefinition ${url}`);
    return found;
  });
}

/** PlanDefinition/$apply on the patient's resources: the CarePlan with RequestGroup + assessment. */
export async function apply(patientId, resources, today, practitioner) {
  const body = {
    resourceType: "Parameters",
    parameter: [
      { name: "subject", valueString: `Patient/${patientId}` },
      { name: "today", valueDate: today },
      ...(practitioner ? [{ name: "practitioner", valueString: practitioner }] : []),
      { name: "data", resource: { resourceType: "Bundle", type: "collection", entry: resources.map((r) => ({ resource: r })) } },
    ],
  };
  const res = await fetch(new URL("PlanDefinition/$apply", FHIR_BASE), {
    method: "POST",
    headers: { "Content-Type": "application/fhir+json", Accept: "application/fhir+json" },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw await parseError(res);
  return res.json();
}

/** The safety facts that hold for the record (POST /app/api/safety): Parameters.parameter, each with
 * the alk-trigger extension (label, value, the record's entries behind it). */
export async function safetyFacts(patientId, resources, today) {
  const body = {
    resourceType: "Parameters",
    parameter: [
      { name: "subject", valueString: `Patient/${patientId}` },
      { name: "today", valueDate: today },
      { name: "data", resource: { resourceType: "Bundle", type: "collection", entry: resources.map((r) => ({ resource: r })) } },
    ],
  };
  const res = await fetch(new URL("safety", APP_API), {
    method: "POST",
    headers: { "Content-Type": "application/fhir+json", Accept: "application/fhir+json" },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw await parseError(res);
  return (await res.json()).parameter || [];
}

/** The readable HTML of a case-overview document (Bundle type document). */
export async function renderOverview(document) {
  const res = await fetch(new URL("render-overview", APP_API), {
    method: "POST",
    headers: { "Content-Type": "application/fhir+json", Accept: "text/html" },
    body: JSON.stringify(document),
  });
  if (!res.ok) throw await parseError(res);
  return res.text();
}
