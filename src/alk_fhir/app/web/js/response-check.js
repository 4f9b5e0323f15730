// The last check before a QuestionnaireResponse is written to the EHR: every answer against the
// Questionnaire it answers (FHIR R4 QuestionnaireResponse invariants and Questionnaire item types):
// the question exists, the answer's value[x] is the one its item type allows, and a date, dateTime,
// integer or decimal is well formed (the FHIR R4 primitive's regular expression, and a real day
// within EARLIEST_YEAR..LATEST_YEAR). A form that fails is not written: nothing malformed reaches the record.
import { EARLIEST_YEAR, LATEST_YEAR } from "./date-input.js";

const VALUE_OF_TYPE = {
  boolean: ["valueBoolean"], decimal: ["valueDecimal"], integer: ["valueInteger"], date: ["valueDate"],
  dateTime: ["valueDateTime"], time: ["valueTime"], string: ["valueString"], text: ["valueString"],
  url: ["valueUri"], choice: ["valueCoding"], "open-choice": ["valueCoding", "valueString"],
  attachment: ["valueAttachment"], reference: ["valueReference"], quantity: ["valueQuantity"],
};
// FHIR R4 datatypes.html: date and dateTime (the time part optional for dateTime)
const DATE = /^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?$/;
const DATETIME = /^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?$/;

function realDay(text) {
  const [y, m, d] = String(text).slice(0, 10).split("-").map(Number);
  if (y < EARLIEST_YEAR || y > LATEST_YEAR) return false;
  if (!m || !d) return true;
  return d <= new Date(Date.UTC(y, m, 0)).getUTCDate();
}

function valueProblem(key, value) {
  if (key === "valueDate") return DATE.test(String(value)) && realDay(value) ? null : "date";
  if (key === "valueDateTime") return DATETIME.test(String(value)) && realDay(value) ? null : "dateTime";
  if (key === "valueInteger") return Number.isInteger(value) ? null : "integer";
  if (key === "valueDecimal") return typeof value === "number" && Number.isFinite(value) ? null : "decimal";
  if (key === "valueBoolean") return typeof value === "boolean" ? null : "boolean";
  if (key === "valueString") return typeof value === "string" && value.trim() ? null : "string";
  if (key === "valueCoding") return value && (value.code || value.display) ? null : "coding";
  return null;
}

/** [{linkId, text, problem}] for every answer the Questionnaire does not allow as written. */
export function checkResponse(response, questionnaire) {
  const items = new Map();
  const index = (list) => { for (const i of list || []) { items.set(i.linkId, i); index(i.item); } };
  index(questionnaire.item);
  const problems = [];
  const walk = (list) => {
    for (const qrItem of list || []) {
      const item = items.get(qrItem.linkId);
      if (!item) {
        problems.push({ linkId: qrItem.linkId, text: qrItem.text || qrItem.linkId, problem: "unknown" });
        continue;
      }
      for (const answer of qrItem.answer || []) {
        const keys = Object.keys(answer).filter((k) => k.startsWith("value"));
        const allowed = VALUE_OF_TYPE[item.type] || keys;
        for (const key of keys) {
          const problem = allowed.includes(key) ? valueProblem(key, answer[key]) : "type";
          if (problem) problems.push({ linkId: item.linkId, text: item.text || item.linkId, problem });
        }
        walk(answer.item);
      }
      walk(qrItem.item);
    }
  };
  walk(response.item);
  return problems;
}
