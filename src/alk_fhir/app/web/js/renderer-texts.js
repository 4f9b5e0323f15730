// Texts the form renderer writes without a language file, in the app's language.
//
// lforms-locale.js gives LHC-Forms its Dutch language file. A few texts come from parts of the
// renderer that have no language file: the date picker's buttons (ng-zorro's built-in en_US
// texts), the answer list's footer and its screen-reader messages (autocomplete-lhc), the
// form's own screen-reader messages ("Set values for question"), and the "Required" tooltip.
// We do not change the renderer's code: this module watches what it writes into the page and puts
// the Dutch text in place (text, title, placeholder and aria-label), from the tables below. In
// English nothing is changed. Unknown texts are left as they are; the browser test lists the
// renderer's English texts and fails when one shows in the Dutch app.
// One date in both languages: the picker's "Today" button has today as its title in ng-zorro's
// en_US format M/D/YYYY ("12/6/2026" on 6 December, a date in June to a Dutch or British reader);
// it gets the app's own date format (formatDate: "06-12-2026", "6 Dec 2026").
import { formatDate, localDay } from "./i18n.js";

const EXACT = new Map(Object.entries({
  // LHC-Forms templates
  "Required": "Verplicht",
  // ng-zorro date picker (DatePicker.lang of its en_US locale)
  "Today": "Vandaag",
  "Now": "Nu",
  "Ok": "OK",
  "Clear": "Wissen",
  "Back to today": "Terug naar vandaag",
  "Month": "Maand",
  "Year": "Jaar",
  "select time": "kies een tijd",
  "select date": "kies een datum",
  "Select date": "Kies een datum",
  "Select time": "Kies een tijd",
  "Select month": "Kies een maand",
  "Select year": "Kies een jaar",
  "Choose a week": "Kies een week",
  "Choose a month": "Kies een maand",
  "Choose a year": "Kies een jaar",
  "Choose a decade": "Kies een decennium",
  "Previous month (PageUp)": "Vorige maand (PageUp)",
  "Next month (PageDown)": "Volgende maand (PageDown)",
  "Last year (Control + left)": "Vorig jaar (Control + pijl links)",
  "Next year (Control + right)": "Volgend jaar (Control + pijl rechts)",
  "Last decade": "Vorig decennium",
  "Next decade": "Volgend decennium",
  "Last century": "Vorige eeuw",
  "Next century": "Volgende eeuw",
  // icon labels
  "calendar": "kalender",
  "close-circle": "wissen",
  "swap-right": "tot",
  "clock-circle": "klok",
  "question-circle": "toelichting",
  "plus": "toevoegen",
  "minus": "verwijderen",
  "close": "sluiten",
  "down": "openklappen",
  "up": "dichtklappen",
  // autocomplete-lhc answer list
  "See more items (Ctl Ret)": "Meer keuzes tonen (Ctrl+Enter)",
  "Search Results": "Zoekresultaten",
  "Search Hint": "Zoektip",
  // The date picker's weekday and month names (Angular's "en" locale data, through ng-zorro's
  // DatePipe date helper: no language file)
  "Su": "zo", "Mo": "ma", "Tu": "di", "We": "wo", "Th": "do", "Fr": "vr", "Sa": "za",
  "Sun": "zo", "Mon": "ma", "Tue": "di", "Wed": "wo", "Thu": "do", "Fri": "vr", "Sat": "za",
  "Sunday": "zondag", "Monday": "maandag", "Tuesday": "dinsdag", "Wednesday": "woensdag",
  "Thursday": "donderdag", "Friday": "vrijdag", "Saturday": "zaterdag",
  "Jan": "jan.", "Feb": "feb.", "Mar": "mrt.", "Apr": "apr.", "May": "mei", "Jun": "jun.", "Jul": "jul.",
  "Aug": "aug.", "Sep": "sep.", "Oct": "okt.", "Nov": "nov.", "Dec": "dec.",
  "January": "januari", "February": "februari", "March": "maart", "April": "april", "June": "juni",
  "July": "juli", "August": "augustus", "September": "september", "October": "oktober",
  "November": "november", "December": "december",
}));

// [English pattern, Dutch replacement] for texts with a variable part (screen-reader messages).
const PATTERNS = [
  [/^Set values for (question|section|row)$/, "Antwoord ingevuld"],
  [/^(Toegevoegd|Verwijderd): (question|section|row)$/, (_, verb, what) => `${verb}: ${{ question: "vraag", section: "onderdeel", row: "rij" }[what]}`],
  [/^Hiding (.*)$/, "Verborgen: $1"],
  [/^Showing (\d+) of (\d+) items\.$/, "$1 van $2 keuzes getoond."],
  [/^Showing (\d+) of (\d+)\.$/, "$1 van $2 keuzes getoond."],
  [/^(\d+) of (\d+)$/, "$1 van $2"],
  [/^Showing (.*)$/, "Getoond: $1"],
  [/^A list has appeared below the field\.$/, "Onder het veld staat nu een keuzelijst."],
  [/^A list has appeared below the (.*)\.$/, "Onder het veld $1 staat nu een keuzelijst."],
  [/^A list is being loaded for the field\.$/, "De keuzelijst wordt geladen."],
  [/^Above list heading: (.*)$/, "Boven het kopje: $1"],
  [/^Under list heading: (.*)$/, "Onder het kopje: $1"],
  [/^For this field your entry must match an item from the suggestion list\.$/, "Kies voor dit veld een antwoord uit de lijst."],
  [/^No list items matched the field's value\.$/, "Geen keuze past bij wat u typte."],
  [/^Selected (.*)$/, "Gekozen: $1"],
  [/^Unselected (.*)$/, "Niet meer gekozen: $1"],
  [/^Pressing control\+return will expand the list\.$/, "Met Ctrl+Enter ziet u de hele lijst."],
  [/^The field no longer contains a non-matching value\.$/, "Het veld bevat geen afwijkend antwoord meer."],
  [/^The field's value does not match any items in the list\.?(.*)$/, "Het antwoord staat niet in de lijst.$1"],
  [/^Type to show matching list values\.$/, "Typ om passende keuzes te zien."],
  [/^The column headers on the multi-column list are (.*)$/, "De kolomkoppen van de lijst zijn $1"],
  [/^Help for question (.*)$/, "Toelichting bij de vraag $1"],
  [/^Help button for (.*)$/, "Knop toelichting bij $1"],
  [/^Instruction for (.*)$/, "Toelichting bij $1"],
  [/^Other values for (.*)$/, "Andere antwoorden bij $1"],
];

const ATTRIBUTES = ["title", "placeholder", "aria-label"];
// Where the renderer writes: the form, the date picker's overlay, the answer list, and the
// screen-reader logs (the form's "reader_log"; the answer list makes its own "reader_log2", …).
const LOGS = "[id^='reader_log']";
const SCOPES = `.lforms-container, .cdk-overlay-container, #lhc-tools-searchResults, ${LOGS}`;

let language = "nl";
let observer = null;

// Messages with a variable part are only looked for where the renderer writes messages.
const MESSAGES = `#lhc-tools-searchResults, ${LOGS}`;
// Never touched: what the user typed or the answers show, and the app's own texts.
const SKIP = "textarea, .lhc-watched-value, [data-app-text]";

/** The Dutch text for one of the renderer's English texts, or null; `messages`: also the patterns. */
export function translateRendererText(text, messages = true) {
  const trimmed = text.trim();
  if (!trimmed) return null;
  if (EXACT.has(trimmed)) return text.replace(trimmed, EXACT.get(trimmed));
  if (!messages) return null;
  for (const [pattern, replacement] of PATTERNS) {
    if (pattern.test(trimmed)) return text.replace(trimmed, trimmed.replace(pattern, replacement));
  }
  return null;
}

function translateNode(node) {
  if (node.nodeType === Node.TEXT_NODE) {
    const parent = node.parentElement;
    if (!parent || !parent.closest(SCOPES) || parent.closest(SKIP)) return;
    const nl = translateRendererText(node.data, Boolean(parent.closest(MESSAGES)));
    if (nl !== null && nl !== node.data) node.data = nl;
    return;
  }
  if (node.nodeType !== Node.ELEMENT_NODE) return;
  const inScope = node.closest(SCOPES) || node.querySelector?.(SCOPES);
  if (!inScope) return;
  const elements = [node, ...node.querySelectorAll("*")];
  for (const el of elements) {
    if (!el.closest(SCOPES) || el.closest(SKIP)) continue;
    for (const name of ATTRIBUTES) {
      const value = el.getAttribute(name);
      if (value === null) continue;
      const nl = translateRendererText(value, false);
      if (nl !== null && nl !== value) el.setAttribute(name, nl);
    }
  }
  const walker = document.createTreeWalker(node, NodeFilter.SHOW_TEXT);
  for (let text = walker.nextNode(); text; text = walker.nextNode()) translateNode(text);
}

const TODAY_BUTTON = ".ant-picker-today-btn[title]";

function dateTitles(node) {
  if (node.nodeType !== Node.ELEMENT_NODE) return;
  const buttons = node.matches(TODAY_BUTTON) ? [node] : node.querySelectorAll(TODAY_BUTTON);
  if (!buttons.length) return;
  const today = formatDate(localDay());
  for (const button of buttons) if (button.getAttribute("title") !== today) button.setAttribute("title", today);
}

function onMutations(records) {
  for (const record of records) {
    if (record.type === "attributes") dateTitles(record.target);
    else if (record.type === "childList") for (const node of record.addedNodes) dateTitles(node);
  }
  if (language !== "nl") return;
  for (const record of records) {
    if (record.type === "characterData") translateNode(record.target);
    else if (record.type === "attributes") translateNode(record.target);
    else for (const node of record.addedNodes) translateNode(node);
  }
}

/** Start translating the renderer's output (once); `lang` is the app's language. */
export function setRendererTextLanguage(lang) {
  language = lang === "en" ? "en" : "nl";
  for (const log of document.querySelectorAll(LOGS)) log.setAttribute("lang", language);
  if (!observer) {
    observer = new MutationObserver(onMutations);
    observer.observe(document.body, { subtree: true, childList: true, characterData: true,
      attributes: true, attributeFilter: ATTRIBUTES });
  }
  dateTitles(document.body);
  if (language === "nl") translateNode(document.body);
}

/** The Dutch texts this module writes for fixed English ones (the browser test's English check uses them). */
export function dutchRendererTexts() {
  return [...new Set(EXACT.values())];
}

/** Empty the renderer's screen-reader log (its messages belong to the form just left). */
export function clearReaderLog() {
  for (const log of document.querySelectorAll(LOGS)) log.replaceChildren();
}
