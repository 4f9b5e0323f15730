// Typed dates in the forms: nothing a GP types is lost or saved malformed.
//
// LHC-Forms 40.1.3 renders a date question with ng-zorro's date picker, which reads typed text with
// `new Date(text)` and keeps it only when it formats back to the same text: in Dutch (dd-MM-yyyy)
// no typed date is ever taken (the picker silently puts the old date back on Tab or save), and in
// English it takes five-digit years ("12/10/20263"). This module reads what was typed itself, at
// the moments the picker would drop it (Tab, Enter, leaving the field), before the picker does:
// - a date it can read is put into the form's own data (LHC-Forms' item value plus its documented
//   change propagation `updateOnSourceItemChange`), so the picker shows it and the save holds it;
// - anything else stays in the field as typed, marked invalid with a message next to it
//   (aria-invalid, aria-describedby), and saving is refused until it is corrected or emptied.
// Numbers are read day first in both languages: Dutch dd-mm-jjjj, d-m-jjjj, ddmmjjjj; English (en-GB,
// as the English form shows and asks for it, lforms-locale.js EN_GB) dd/mm/yyyy, d/m/yyyy, ddmmyyyy
// (also with - or . between the parts); in both ISO yyyy-mm-dd and month names ("15 Mar 2024",
// "15 maart 2024", "March 15, 2024"). A US month-first date is not guessed at: "03/15/2024" has no
// month 15 and is refused, "08/01/2025" is 8 January and the field then shows "8 Jan 2025".
import { h } from "./dom.js";
import { t } from "./i18n.js";

const MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const MONTHS_NL = ["jan", "feb", "mrt", "apr", "mei", "jun", "jul", "aug", "sep", "okt", "nov", "dec"];
export const EARLIEST_YEAR = 1900;
export const LATEST_YEAR = 2100;

function valid(y, m, d) {
  if (y < EARLIEST_YEAR || y > LATEST_YEAR || m < 1 || m > 12 || d < 1) return null;
  const last = new Date(Date.UTC(y, m, 0)).getUTCDate();
  if (d > last) return null;
  return `${y}-${String(m).padStart(2, "0")}-${String(d).padStart(2, "0")}`;
}

function monthNumber(word) {
  const key = word.toLowerCase().slice(0, 3);
  const i = MONTHS.indexOf(key);
  return i >= 0 ? i + 1 : MONTHS_NL.indexOf(key) + 1 || null;
}

/**
 * A typed date as FHIR date (YYYY-MM-DD), or null when it cannot be read as one calendar day.
 * Numeric forms are day first in Dutch and in English alike (en-GB: the English form shows
 * "1 Aug 2025" and asks for DD/MM/YYYY), so the language does not change how a date is read.
 */
export function parseTypedDate(text) {
  const value = String(text || "").trim();
  let m = /^(\d{4})-(\d{1,2})-(\d{1,2})$/.exec(value);
  if (m) return valid(+m[1], +m[2], +m[3]);
  m = /^(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})$/.exec(value);
  if (m) return valid(+m[3], +m[2], +m[1]);
  m = /^(\d{2})(\d{2})(\d{4})$/.exec(value);
  if (m) return valid(+m[3], +m[2], +m[1]);
  m = /^(\d{1,2})\.?\s+([A-Za-z]{3,})\.?,?\s+(\d{4})$/.exec(value); // 15 Mar 2024, 15 maart 2024
  if (m && monthNumber(m[2])) return valid(+m[3], monthNumber(m[2]), +m[1]);
  m = /^([A-Za-z]{3,})\.?\s+(\d{1,2}),?\s+(\d{4})$/.exec(value); // March 15, 2024
  if (m && monthNumber(m[1])) return valid(+m[3], monthNumber(m[1]), +m[2]);
  return null;
}

/** An item's date value (LHC-Forms keeps a Date at local midnight) as YYYY-MM-DD, or "". */
function isoOf(value) {
  if (!(value instanceof Date) || Number.isNaN(value.getTime())) return "";
  return `${value.getFullYear()}-${String(value.getMonth() + 1).padStart(2, "0")}-${String(value.getDate()).padStart(2, "0")}`;
}

function formData(container) {
  return container.querySelector("wc-lhc-form")?.lhcFormData || null;
}

function errorId(elementId) {
  return `date-error-${elementId}`;
}

function clearError(input, elementId, state) {
  state.refused.delete(elementId);
  document.getElementById(errorId(elementId))?.remove();
  input.removeAttribute("aria-invalid");
  const rest = (input.getAttribute("aria-describedby") || "").split(/\s+/).filter((x) => x && x !== errorId(elementId));
  if (rest.length) input.setAttribute("aria-describedby", rest.join(" "));
  else input.removeAttribute("aria-describedby");
}

function refuse(input, picker, typed, state) {
  const elementId = picker.id;
  state.refused.set(elementId, typed);
  const id = errorId(elementId);
  let message = document.getElementById(id);
  if (!message) {
    message = h("p", { class: "field-error date-error", id, "data-app-text": "" });
    picker.closest(".lhc-de-input-unit-content")?.append(message) ?? picker.after(message);
  }
  message.textContent = t("dateUnreadable", typed, t("dateExample"));
  input.setAttribute("aria-invalid", "true");
  const described = (input.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean);
  if (!described.includes(id)) input.setAttribute("aria-describedby", [...described, id].join(" "));
  // the picker puts its old date back when the field loses focus: the typed text stays instead
  const keep = () => { if (state.refused.get(elementId) === typed && input.value !== typed) input.value = typed; };
  setTimeout(keep, 0);
  setTimeout(keep, 120);
}

/** Read the typed text of one date field; true when the form's data now holds what was typed. */
function take(input, state) {
  const picker = input.closest("nz-date-picker");
  const data = formData(state.container);
  if (!picker || !data) return true;
  const item = (data.itemList || []).find((i) => i._elementId === picker.id);
  if (!item) return true;
  const typed = input.value.trim();
  if (!typed) {
    clearError(input, picker.id, state);
    return true; // emptying a field is an answer too (the picker clears its value itself)
  }
  const iso = parseTypedDate(typed);
  if (!iso) {
    refuse(input, picker, typed, state);
    return false;
  }
  clearError(input, picker.id, state);
  if (isoOf(item.value) !== iso) {
    const [y, m, d] = iso.split("-").map(Number);
    item.value = new Date(y, m - 1, d);
    data.updateOnSourceItemChange(item);
  }
  return true;
}

/**
 * Watch the date fields of a rendered form. `state`: {container}; returns the set of
 * refused fields (elementId -> typed text) that the save checks.
 */
export function watchDates(state) {
  state.refused = new Map();
  const isDate = (el) => el?.localName === "input" && el.closest?.("nz-date-picker");
  // capture phase: these run before the picker's own handlers on the input
  state.container.addEventListener("keydown", (event) => {
    if ((event.key === "Tab" || event.key === "Enter") && isDate(event.target)) take(event.target, state);
  }, true);
  state.container.addEventListener("focusout", (event) => {
    if (isDate(event.target)) take(event.target, state);
  }, true);
  state.container.addEventListener("input", (event) => {
    if (isDate(event.target) && state.refused.has(event.target.closest("nz-date-picker").id)) {
      state.refused.set(event.target.closest("nz-date-picker").id, event.target.value.trim());
    }
  }, true);
  return state.refused;
}

/** Read every date field once more (a save clicked straight after typing); true when all are readable. */
export function takeAllDates(state) {
  let ok = true;
  for (const input of state.container.querySelectorAll("nz-date-picker input")) {
    const picker = input.closest("nz-date-picker");
    if (input.value.trim() || state.refused.has(picker.id)) ok = take(input, state) && ok;
  }
  return ok && state.refused.size === 0;
}
