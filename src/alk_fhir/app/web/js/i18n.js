// The app speaks Dutch (the guideline's language) with English available. Texts of FHIR resources
// come in Dutch with English in the FHIR translation extension (R4 "_element" primitive extension);
// codes of our CodeSystems carry English designations. Dates read dd-mm-jjjj in Dutch and
// "29 Nov 2026" (en-GB) in English, in the forms too (lforms-locale.js EN_GB).

export const TRANSLATION = "http://hl7.org/fhir/StructureDefinition/translation";

export const STRINGS = {
  nl: {
    appTitle: "Hardnekkige ALK",
    skip: "Naar de inhoud",
    language: "Taal",
    tabs: "Onderdelen",
    tabForms: "Vragenlijsten",
    tabResults: "Beoordeling en advies",
    tabModel: "Verklaringsmodel",
    tabAmbit: "AMBIT-desintegratierooster",
    tabOverview: "Casusoverzicht",
    starting: "De app wordt gestart…",
    loading: "Gegevens worden geladen…",
    born: "geboren",
    patientUnknown: "Patiënt onbekend",
    chooseForm: "Kies een vragenlijst",
    openForm: "Open vragenlijst",
    openFormNamed: "Open vragenlijst: {0}",
    submit: "Opslaan in het dossier",
    toSave: "Naar ‘Opslaan in het dossier’ (onderaan)",
    saving: "Bezig met opslaan…",
    savedAt: "Opgeslagen in het dossier op {0} om {1}.",
    viewUpdated: "Bekijk de bijgewerkte beoordeling",
    viewUpdatedModel: "Bekijk het bijgewerkte verklaringsmodel",
    viewUpdatedAmbit: "Bekijk het bijgewerkte AMBIT-desintegratierooster",
    invalidSummary: "Nog niet opgeslagen. Vul eerst in:",
    requiredError: "Beantwoord deze vraag.",
    dateUnreadable: "‘{0}’ is geen datum die de app kan lezen; er is niets opgeslagen. Typ de datum als {1}, of maak het veld leeg.",
    dateExample: "15-03-2024 (ook 15-3-2024, 15032024 of 2024-03-15)",
    dateFix: "datum niet leesbaar",
    answerMalformed: "dit antwoord past niet bij de vraag en is niet opgeslagen",
    openedWith: "Geopend met de laatste antwoorden, van {0}. Opslaan maakt een nieuwe versie; wat u niet wijzigt, blijft staan.",
    openedNew: "Nog niet eerder ingevuld voor deze patiënt.",
    prefilledNote: "Antwoorden gemarkeerd met ‘uit het dossier’ zijn ingevuld uit het EPD; controleer ze.",
    fromRecord: "uit het dossier",
    prefillProblem: "Niet alles kon uit het dossier worden ingevuld",
    formLanguageNote: "De vragenlijst is opnieuw geopend in de gekozen taal; uw antwoorden zijn behouden.",
    resultsTitle: "Beoordeling en advies",
    conclusionMet: "Hardnekkige ALK: {0} {1} voldaan",
    conclusionNotMet: "Hardnekkige ALK: geen criterium voldaan",
    conclusionUnknown: "Hardnekkige ALK: nog niet vastgesteld",
    conclusionNone: "Hardnekkige ALK: nog niet beoordeeld",
    criterionWord: "criterium",
    criteriaWord: "criterium", // as the guideline's readers say it: "criterium 2 en 3 voldaan"
    unknownCriteria: "{0} {1} onbekend",
    and: "en",
    seeEvidence: "onderbouwing",
    assessedOn: "beoordeeld op {0}",
    urgentTitle: "Eerst doen",
    safetyTitle: "Let op",
    safetyUnavailable: "De ALK-service kon niet nagaan of er een doodswens of risicomedicatie is vastgelegd; kijk dit na in het dossier",
    seeAdvice: "advies",
    otherAdvice: "Overig advies",
    adviceCount: { one: "{0} advies", other: "{0} adviezen" },
    guidelineNote: "Klik op een hoofdstuk om het advies te zien. ‘H §2.2’ verwijst naar paragraaf 2.2 van de Handreiking hardnekkige ALK (NALK); elke ‘Bron’-link opent die paragraaf.",
    notRecorded: "niet vastgelegd",
    notAssessedYet: "Nog niet beoordeeld",
    notAssessedHint: "— de criteria zijn nog niet ingevuld (vragenlijst ‘{0}’).",
    encounterClass: { AMB: "Spreekuurcontact", HH: "Visite", VR: "Telefonisch of video-contact", IMP: "Opname", EMER: "Spoedcontact", SS: "Dagbehandeling" },
    adviceTitle: "Advies uit de handreiking",
    noAdvice: "Er is nu geen advies uit de handreiking van toepassing.",
    urgent: "dringend",
    trigger: "Aanleiding",
    source: "Bron",
    newWindow: "(opent in een nieuw venster)",
    createInEhr: "Maak aan in het dossier: {0}",
    creating: "Bezig met aanmaken…",
    created: "Aangemaakt in het dossier: {0}, {1}.",
    createNotAllowed: "De app mag dit niet in het EPD aanmaken (geen toestemming voor {0}); doe het in het EPD zelf.",
    kind: { Task: "taak", ServiceRequest: "aanvraag", CarePlan: "stappenplan (concept)", CareTeam: "zorgteam" },
    assessment: "Onderbouwing van de beoordeling",
    overall: "Conclusie",
    criterion: "Criterium",
    status: "Status",
    evidence: "Onderbouwing",
    features: "Aanvullende kenmerken (Profielschets)",
    noFeatures: "Geen aanvullende kenmerken vastgesteld.",
    noEvidence: "—",
    guideline: "Handreiking",
    answerGiven: "Antwoord in de vragenlijst: ‘{0}’, gegeven op {1}",
    answerGivenShort: "Antwoord in de vragenlijst, gegeven op {0}",
    answersFrom: "Antwoorden uit de vragenlijst: {0}",
    answersOfDate: "{0} van {1}",
    answerCount: { one: "{0} antwoord", other: "{0} antwoorden" },
    featureCount: { one: "{0} kenmerk uit de Profielschets", other: "{0} kenmerken uit de Profielschets" },
    contact: "Contact",
    medication: "Geneesmiddel",
    treatment: "Behandeling",
    countValue: "{0}: {1}",
    yes: "ja",
    no: "nee",
    refresh: "Vernieuwen",
    modelTitle: "Biopsychosociaal verklaringsmodel",
    scegsTitle: "SCEGS-model",
    noModel: "Er is nog geen verklaringsmodel ingevuld voor deze patiënt.",
    filledOn: "Ingevuld op",
    dimension: "Dimensie",
    answer: "Antwoord",
    ambitTitle: "AMBIT-desintegratierooster: betrokkenen en hun perspectief",
    noAmbit: "Er is nog geen AMBIT-desintegratierooster ingevuld voor deze patiënt.",
    stakeholder: "Betrokkene",
    sharedConclusion: "Gezamenlijke voorlopige conclusie",
    overviewTitle: "Laatste gedeelde casusoverzicht",
    printOverview: "Afdrukken of opslaan als pdf",
    printNote: "Alleen het casusoverzicht wordt afgedrukt, zonder menu’s en tabbladen.",
    overviewDate: "Overzicht van {0}",
    overviewNewer: "Dit overzicht is ouder dan de laatste antwoorden in het dossier ({0}); die staan er nog niet in.",
    overviewDocumentLanguage: "",
    noOverview: "Er staat nog geen gedeeld casusoverzicht voor deze patiënt in het dossier.",
    overviewUnsupported: "Het EPD biedt geen zoekactie naar casusoverzichten (Bundle?composition.patient) aan",
    overviewRenderMissing: "Deze versie van de ALK-service kan casusoverzichten nog niet weergeven.",
    errorTitle: "Er ging iets mis",
    sessionExpired: "Uw sessie bij het EPD is verlopen. Start de app opnieuw vanuit het EPD.",
    authDenied: "Het EPD heeft de toegang voor deze app geweigerd. Zonder toestemming kan de app geen gegevens tonen.",
    noLaunch: "De app is zonder SMART-launch geopend. Start de app vanuit het EPD (of via de startpagina).",
    relaunch: "Opnieuw starten",
    noPatient: "Het EPD gaf geen patiënt mee bij de start. Open de app vanuit een patiëntdossier.",
    serviceError: "De ALK-service gaf een fout",
    ehrError: "Het EPD gaf een fout",
    partialData: "Niet alle gegevens konden uit het EPD worden gelezen",
    more: "meer",
    gender: { male: "man", female: "vrouw", other: "anders", unknown: "onbekend" },
  },
  en: {
    appTitle: "Persistent ALK",
    skip: "Skip to content",
    language: "Language",
    tabs: "Sections",
    tabForms: "Questionnaires",
    tabResults: "Assessment and advice",
    tabModel: "Explanatory model",
    tabAmbit: "AMBIT disintegration grid",
    tabOverview: "Case overview",
    starting: "Starting the app…",
    loading: "Loading data…",
    born: "born",
    patientUnknown: "Unknown patient",
    chooseForm: "Choose a questionnaire",
    openForm: "Open questionnaire",
    openFormNamed: "Open questionnaire: {0}",
    submit: "Save to the record",
    toSave: "Go to ‘Save to the record’ (below)",
    saving: "Saving…",
    savedAt: "Saved to the record on {0} at {1}.",
    viewUpdated: "View the updated assessment",
    viewUpdatedModel: "View the updated explanatory model",
    viewUpdatedAmbit: "View the updated AMBIT disintegration grid",
    invalidSummary: "Not saved yet. Please answer first:",
    requiredError: "Please answer this question.",
    dateUnreadable: "‘{0}’ is not a date the app can read; nothing was saved. Type the date as {1}, or empty the field.",
    dateExample: "15/03/2024 (day first; also 15-3-2024, 15032024, 15 Mar 2024 or 2024-03-15)",
    dateFix: "date not readable",
    answerMalformed: "this answer does not fit the question and was not saved",
    openedWith: "Opened with the latest answers, of {0}. Saving makes a new version; what you do not change stays.",
    openedNew: "Not filled in before for this patient.",
    prefilledNote: "Answers marked ‘from the record’ were filled in from the EHR; please check them.",
    fromRecord: "from the record",
    prefillProblem: "Not everything could be filled in from the record",
    formLanguageNote: "The questionnaire was reopened in the chosen language; your answers were kept.",
    resultsTitle: "Assessment and advice",
    conclusionMet: "Persistent ALK: {0} {1} met",
    conclusionNotMet: "Persistent ALK: no criterion met",
    conclusionUnknown: "Persistent ALK: not established yet",
    conclusionNone: "Persistent ALK: not assessed yet",
    criterionWord: "criterion",
    criteriaWord: "criteria",
    unknownCriteria: "{0} {1} unknown",
    and: "and",
    seeEvidence: "evidence",
    assessedOn: "assessed on {0}",
    urgentTitle: "Do first",
    safetyTitle: "Take note",
    safetyUnavailable: "The ALK service could not check whether a wish to die or risk medication is recorded; please check the record",
    seeAdvice: "advice",
    otherAdvice: "Other advice",
    adviceCount: { one: "{0} advice", other: "{0} pieces of advice" },
    guidelineNote: "Open a chapter to see its advice. ‘H §2.2’ refers to section 2.2 of the Dutch guideline on persistent ALK (NALK Handreiking); every ‘Source’ link opens that section.",
    notRecorded: "not recorded",
    notAssessedYet: "Not assessed yet",
    notAssessedHint: "— the criteria have not been filled in yet (questionnaire ‘{0}’).",
    encounterClass: { AMB: "Surgery consultation", HH: "Home visit", VR: "Phone or video contact", IMP: "Admission", EMER: "Emergency contact", SS: "Day treatment" },
    adviceTitle: "Guideline advice",
    noAdvice: "No guideline advice applies now.",
    urgent: "urgent",
    trigger: "Why",
    source: "Source",
    newWindow: "(opens in a new window)",
    createInEhr: "Create in the record: {0}",
    creating: "Creating…",
    created: "Created in the record: {0}, {1}.",
    createNotAllowed: "The app may not create this in the EHR (no permission for {0}); please do it in the EHR.",
    kind: { Task: "task", ServiceRequest: "request", CarePlan: "step plan (draft)", CareTeam: "care team" },
    assessment: "Evidence for the assessment",
    overall: "Conclusion",
    criterion: "Criterion",
    status: "Status",
    evidence: "Evidence",
    features: "Additional features (profile sketch)",
    noFeatures: "No additional features found.",
    noEvidence: "—",
    guideline: "Guideline",
    answerGiven: "Questionnaire answer: ‘{0}’, given on {1}",
    answerGivenShort: "Questionnaire answer, given on {0}",
    answersFrom: "Questionnaire answers: {0}",
    answersOfDate: "{0} of {1}",
    answerCount: { one: "{0} answer", other: "{0} answers" },
    featureCount: { one: "{0} profile-sketch feature", other: "{0} profile-sketch features" },
    contact: "Contact",
    medication: "Medication",
    treatment: "Treatment",
    countValue: "{0}: {1}",
    yes: "yes",
    no: "no",
    refresh: "Refresh",
    modelTitle: "Biopsychosocial explanatory model",
    scegsTitle: "SCEGS model",
    noModel: "No explanatory model has been recorded for this patient yet.",
    filledOn: "Recorded on",
    dimension: "Dimension",
    answer: "Answer",
    ambitTitle: "AMBIT disintegration grid: stakeholders and their perspective",
    noAmbit: "No AMBIT disintegration grid has been recorded for this patient yet.",
    stakeholder: "Stakeholder",
    sharedConclusion: "Shared provisional conclusion",
    overviewTitle: "Latest shared case overview",
    printOverview: "Print or save as PDF",
    printNote: "Only the case overview is printed, without menus and tabs.",
    overviewDate: "Overview of {0}",
    overviewNewer: "This overview is older than the latest answers in the record ({0}); it does not show them yet.",
    overviewDocumentLanguage: "The overview is a Dutch document: its attested text is shown as written.",
    noOverview: "The record holds no shared case overview for this patient yet.",
    overviewUnsupported: "The EHR does not offer a search for case overviews (Bundle?composition.patient)",
    overviewRenderMissing: "This version of the ALK service cannot display case overviews yet.",
    errorTitle: "Something went wrong",
    sessionExpired: "Your session with the EHR has expired. Please launch the app again from the EHR.",
    authDenied: "The EHR denied this app access. Without authorization the app cannot show any data.",
    noLaunch: "The app was opened without a SMART launch. Please start it from the EHR (or the launch page).",
    relaunch: "Launch again",
    noPatient: "The EHR did not pass a patient at launch. Open the app from a patient record.",
    serviceError: "The ALK service returned an error",
    ehrError: "The EHR returned an error",
    partialData: "Not all data could be read from the EHR",
    more: "more",
    gender: { male: "male", female: "female", other: "other", unknown: "unknown" },
  },
};

let current = (() => {
  try {
    const saved = sessionStorage.getItem("alk-app-lang");
    if (saved === "en" || saved === "nl") return saved;
  } catch (_) { /* storage may be unavailable */ }
  return "nl";
})();

export function lang() {
  return current;
}

export function setLang(value) {
  current = value === "en" ? "en" : "nl";
  try { sessionStorage.setItem("alk-app-lang", current); } catch (_) { /* ignore */ }
  document.documentElement.lang = current;
}

/** The app's text `key` in the current language; {0}, {1}, … are filled from `args`. */
export function t(key, ...args) {
  const text = STRINGS[current][key] ?? STRINGS.nl[key] ?? key;
  if (typeof text !== "string" || !args.length) return text;
  return text.replace(/\{(\d+)\}/g, (_, i) => String(args[Number(i)] ?? ""));
}

/** "1 antwoord" / "3 antwoorden". */
export function plural(key, count) {
  const forms = t(key);
  return (count === 1 ? forms.one : forms.other).replace("{0}", String(count));
}

/** "2, 3 en 4" / "2, 3 and 4". */
export function joinList(items) {
  const list = items.map(String);
  if (list.length <= 1) return list.join("");
  return `${list.slice(0, -1).join(", ")} ${t("and")} ${list[list.length - 1]}`;
}

/** The value of `field` on `obj` in the current language (translation extension on `_field`). */
export function tr(obj, field, language = current) {
  if (!obj) return undefined;
  const value = obj[field];
  if (language === "nl") return value;
  const ext = (obj["_" + field]?.extension || []).find(
    (e) => e.url === TRANSLATION && (e.extension || []).some((x) => x.url === "lang" && String(x.valueCode).startsWith(language)));
  const content = ext?.extension?.find((x) => x.url === "content")?.valueString;
  return content ?? value;
}

// Display texts of our CodeSystems' codes, filled from the service (designations per language).
const displays = new Map();
const conceptOrder = new Map();

export function registerCodeSystem(cs) {
  let position = 0;
  const walk = (concepts) => {
    for (const c of concepts || []) {
      const en = (c.designation || []).find((d) => String(d.language || "").startsWith("en"))?.value;
      displays.set(`${cs.url}|${c.code}`, { nl: c.display, en: en || c.display });
      conceptOrder.set(`${cs.url}|${c.code}`, position++);
      walk(c.concept);
    }
  };
  walk(cs.concept);
}

/** Position of a code in its CodeSystem's hierarchy (document order), for sorting by guideline order. */
export function codeOrder(system, code) {
  return conceptOrder.get(`${system}|${code}`) ?? Number.MAX_SAFE_INTEGER;
}

export function knownCode(system, code) {
  return displays.has(`${system}|${code}`);
}

/** The display of a Coding in the current language: our CodeSystems first, then the record's display. */
export function codingText(coding) {
  if (!coding) return "";
  const known = displays.get(`${coding.system}|${coding.code}`);
  if (known) return known[current] || known.nl;
  return tr(coding, "display") || "";
}

/** The text of a CodeableConcept in the current language; never a bare code. */
export function conceptText(concept) {
  if (!concept) return "";
  const coded = (concept.coding || []).find((c) => displays.has(`${c.system}|${c.code}`));
  if (coded) return codingText(coded);
  return tr(concept, "text") || (concept.coding || []).map((c) => tr(c, "display")).find(Boolean) || "";
}

const EN_DATE = new Intl.DateTimeFormat("en-GB", { day: "numeric", month: "short", year: "numeric", timeZone: "UTC" });

/** A FHIR date or dateTime as dd-mm-jjjj (Dutch) or "29 Nov 2026" (English); the day as written. */
export function formatDate(value) {
  if (!value) return "";
  const text = String(value);
  const [y, m, d] = text.slice(0, 10).split("-");
  if (!m) return y;
  if (!d) return current === "nl" ? `${m}-${y}` : `${m}/${y}`;
  if (current === "nl") return `${d}-${m}-${y}`;
  return EN_DATE.format(new Date(Date.UTC(Number(y), Number(m) - 1, Number(d))));
}

/** The time of day of a JavaScript Date, HH:MM. */
export function formatTime(date) {
  return `${String(date.getHours()).padStart(2, "0")}:${String(date.getMinutes()).padStart(2, "0")}`;
}

/** Now as a FHIR dateTime with the local offset (the day in it is the user's day, not UTC's). */
export function localDateTime(date = new Date()) {
  const pad = (n) => String(Math.abs(n)).padStart(2, "0");
  const offset = -date.getTimezoneOffset();
  const sign = offset >= 0 ? "+" : "-";
  return `${localDay(date)}T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`
    + `${sign}${pad(Math.trunc(offset / 60))}:${pad(offset % 60)}`;
}

/** Today as FHIR date (local calendar day). */
export function localDay(date = new Date()) {
  return `${date.getFullYear()}-${String(date.getMonth() + 1).padStart(2, "0")}-${String(date.getDate()).padStart(2, "0")}`;
}
