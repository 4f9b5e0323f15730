// Reading the patient's record from the EHR's FHIR server with the SMART client (patient-scoped
// token), and writing to it. One search per resource type the guideline's facts use (the same list
// as the CDS prefetch); a type the EHR refuses (403/404/400) is reported and left out, so one
// missing type cannot hide the advice the rest supports. 401 is never swallowed.

const TYPES = ["Condition", "MedicationStatement", "MedicationRequest", "Procedure", "DiagnosticReport",
  "Encounter", "CareTeam", "CarePlan", "QuestionnaireResponse", "Consent", "Observation",
  // what accepted advice created (issue 21): a step whose Task or ServiceRequest is in progress is not proposed again
  "Task", "ServiceRequest"];
const PAGE_LIMIT = 10;

let current = null;

export function forget() {
  current = null;
}

async function search(client, type, patientId) {
  try {
    const items = await client.request(`${type}?patient=${encodeURIComponent(patientId)}&_count=100`,
      { pageLimit: PAGE_LIMIT, flat: true });
    return { items: (items || []).filter((r) => r && r.resourceType === type) };
  } catch (err) {
    if (err && err.status === 401) throw err;
    return { items: [], problem: `${type}: ${err && err.message ? err.message.split("\n")[0] : err}` };
  }
}

async function medications(client, resources) {
  const refs = new Set();
  for (const r of resources) {
    const ref = r.medicationReference?.reference;
    if (ref && ref.startsWith("Medication/")) refs.add(ref);
  }
  const found = await Promise.all([...refs].map((ref) => client.request(ref).catch((err) => {
    if (err && err.status === 401) throw err;
    return null;
  })));
  return found.filter(Boolean);
}

/** {patient, resources, problems}: everything the rules and views read, fetched once per view. */
export function record(client) {
  if (!current) {
    current = (async () => {
      const patientId = client.patient.id;
      const patient = await client.patient.read();
      const results = await Promise.all(TYPES.map((type) => search(client, type, patientId)));
      const resources = [patient, ...results.flatMap((r) => r.items)];
      resources.push(...await medications(client, resources));
      return { patient, resources, problems: results.map((r) => r.problem).filter(Boolean) };
    })().catch((err) => { current = null; throw err; });
  }
  return current;
}

/** The completed/amended responses to one Questionnaire (any version), newest first. */
export function responsesTo(resources, canonical) {
  const found = resources.filter((r) => r.resourceType === "QuestionnaireResponse"
    && ["completed", "amended"].includes(r.status)
    && String(r.questionnaire || "").split("|")[0] === canonical);
  const when = (r) => Date.parse(r.authored || "") || 0; // offsets differ between writers: compare instants
  return found.sort((a, b) => when(b) - when(a));
}

/** The newest completed/amended response to one Questionnaire (any version). */
export function latestResponse(resources, canonical) {
  return responsesTo(resources, canonical)[0] || null;
}

/** Answers per linkId, walking nested items and answers' items. */
export function answersByLink(response) {
  const out = new Map();
  const walk = (items) => {
    for (const item of items || []) {
      for (const answer of item.answer || []) {
        if (!out.has(item.linkId)) out.set(item.linkId, []);
        out.get(item.linkId).push(answer);
        walk(answer.item);
      }
      walk(item.item);
    }
  };
  walk(response?.item);
  return out;
}

function answerKey(answers) {
  return JSON.stringify((answers || []).map((a) => {
    const out = {};
    for (const [key, value] of Object.entries(a)) {
      if (!key.startsWith("value")) continue;
      out[key] = key === "valueCoding" ? { system: value.system, code: value.code } : value;
    }
    return out;
  }));
}

/**
 * Since when each answer of the newest response has stood: linkId -> the `authored` of the oldest
 * response in the unbroken run of versions (newest backwards) that gave the same answer. A save of
 * the app carries every unchanged answer forward, so this is the date the clinician gave it.
 */
export function answerDates(responses) {
  const out = new Map();
  if (!responses.length) return out;
  const maps = responses.map(answersByLink);
  for (const [link, answers] of maps[0]) {
    const key = answerKey(answers);
    let since = responses[0].authored;
    for (let i = 1; i < responses.length; i++) {
      if (answerKey(maps[i].get(link)) !== key) break;
      since = responses[i].authored;
    }
    out.set(link, since);
  }
  return out;
}

/** Write a QuestionnaireResponse to the EHR (POST [base]/QuestionnaireResponse). */
export async function saveResponse(client, response) {
  const saved = await client.create(response, { headers: { Prefer: "return=representation" } });
  forget();
  return saved;
}

/** Create a resource in the EHR (POST [base]/[type]); the EHR's answer, or the sent resource. */
export async function createInRecord(client, resource) {
  const created = await client.create(resource, { headers: { Prefer: "return=representation" } });
  forget();
  return created && created.resourceType ? created : resource;
}

/** Whether the granted scopes allow creating `type` (SMART v1 and v2 scope syntax). */
export function mayCreate(client, type) {
  const granted = String(client?.state?.tokenResponse?.scope || client?.state?.scope || "").split(/\s+/);
  return granted.some((s) => {
    const m = /^(patient|user)\/([A-Za-z*]+)\.([a-z*]+)$/.exec(s);
    if (!m || (m[2] !== type && m[2] !== "*")) return false;
    return m[3] === "*" || m[3] === "write" || (/^[cruds]+$/.test(m[3]) && m[3].includes("c"));
  });
}
