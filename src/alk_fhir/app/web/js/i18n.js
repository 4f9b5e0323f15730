// The app speaks Dutch (the guideline's language) with English available. Texts of FHIR resources
// come in Dutch with English in the FHIR translation extension (R4 "_element" primitive extension);
// codes of our CodeSystems carry English designations.

export const TRANSLATION = "http://hl7.org/fhir/StructureDefinition/translation";

const STRINGS = {
  nl: {
    appTitle: "Hardnekkige ALK",
    language: "Taal",
    tabs: "Onderdelen",
    tabForms: "Vragenlijsten",
    tabResults: "Beoordeling en advies",
    tabModel: "Verklaringsmodel",
    tabAmbit: "AMBIT-grid",
    tabOverview: "Casusoverzicht",
    starting: "De app wordt gestart…",
    loading: "Gegevens worden geladen…",
    born: "geboren",
    patientUnknown: "Patiënt onbekend",
    chooseForm: "Kies een vragenlijst",
    openForm: "Open vragenlijst",
    submit: "Opslaan in het dossier",
    saving: "Bezig met opslaan…",
    saved: "Opgeslagen in het dossier als",
    invalid: "Vul eerst de verplichte vragen in:",
    formLanguageNote: "Een geopende vragenlijst behoudt zijn taal; open hem opnieuw om van taal te wisselen.",
    formPrefilled: "Waar het dossier gegevens heeft, zijn antwoorden alvast ingevuld; controleer ze.",
    assessment: "Beoordeling hardnekkige ALK",
    overall: "Conclusie",
    criterion: "Criterium",
    status: "Status",
    evidence: "Onderbouwing",
    features: "Aanvullende kenmerken (Profielschets)",
    noFeatures: "Geen aanvullende kenmerken vastgesteld.",
    noEvidence: "—",
    advice: "Advies uit de handreiking dat nu van toepassing is",
    noAdvice: "Geen advies van toepassing.",
    guideline: "Handreiking",
    source: "Bron",
    answeredOn: "ingevuld op",
    questionnaireAnswer: "antwoord in vragenlijst",
    refresh: "Vernieuwen",
    modelTitle: "Biopsychosociaal verklaringsmodel",
    scegsTitle: "SCEGS-model",
    noModel: "Er is nog geen verklaringsmodel ingevuld voor deze patiënt.",
    mainComplaint: "Klacht",
    sharedGoal: "Gezamenlijk doel",
    agreement: "Herkenning en verschillen",
    filledOn: "Ingevuld op",
    dimension: "Dimensie",
    answer: "Antwoord",
    ambitTitle: "AMBIT-grid: betrokkenen en hun perspectief",
    noAmbit: "Er is nog geen AMBIT-grid ingevuld voor deze patiënt.",
    stakeholder: "Betrokkene",
    sharedConclusion: "Gezamenlijke voorlopige conclusie",
    overviewTitle: "Laatste gedeelde casusoverzicht",
    noOverview: "Er staat nog geen gedeeld casusoverzicht voor deze patiënt in het dossier.",
    overviewUnsupported: "Het EPD biedt geen zoekactie naar casusoverzichten (Bundle?composition.patient) aan",
    overviewRenderMissing: "Deze versie van de ALK-service kan casusoverzichten nog niet weergeven.",
    overviewFrame: "Casusoverzicht",
    errorTitle: "Er ging iets mis",
    sessionExpired: "Uw sessie bij het EPD is verlopen. Start de app opnieuw vanuit het EPD.",
    authDenied: "Het EPD heeft de toegang voor deze app geweigerd. Zonder toestemming kan de app geen gegevens tonen.",
    noLaunch: "De app is zonder SMART-launch geopend. Start de app vanuit het EPD (of via de startpagina).",
    relaunch: "Opnieuw starten",
    noPatient: "Het EPD gaf geen patiënt mee bij de start. Open de app vanuit een patiëntdossier.",
    serviceError: "De ALK-service gaf een fout",
    ehrError: "Het EPD gaf een fout",
    partialData: "Niet alle gegevens konden uit het EPD worden gelezen",
    questionnaireMissing: "Deze vragenlijst is niet bekend bij de ALK-service",
    criterionMet: "Voldaan",
    more: "meer",
    gender: { male: "man", female: "vrouw", other: "anders", unknown: "onbekend" },
  },
  en: {
    appTitle: "Persistent ALK",
    language: "Language",
    tabs: "Sections",
    tabForms: "Questionnaires",
    tabResults: "Assessment and advice",
    tabModel: "Explanatory model",
    tabAmbit: "AMBIT grid",
    tabOverview: "Case overview",
    starting: "Starting the app…",
    loading: "Loading data…",
    born: "born",
    patientUnknown: "Unknown patient",
    chooseForm: "Choose a questionnaire",
    openForm: "Open questionnaire",
    submit: "Save to the record",
    saving: "Saving…",
    saved: "Saved to the record as",
    invalid: "Please answer the required questions first:",
    formLanguageNote: "An open questionnaire keeps its language; open it again to switch.",
    formPrefilled: "Where the record has data, answers are pre-filled; please check them.",
    assessment: "Persistent ALK assessment",
    overall: "Conclusion",
    criterion: "Criterion",
    status: "Status",
    evidence: "Evidence",
    features: "Additional features (profile sketch)",
    noFeatures: "No additional features found.",
    noEvidence: "—",
    advice: "Guideline advice that applies now",
    noAdvice: "No advice applies.",
    guideline: "Guideline",
    source: "Source",
    answeredOn: "answered on",
    questionnaireAnswer: "questionnaire answer",
    refresh: "Refresh",
    modelTitle: "Biopsychosocial explanatory model",
    scegsTitle: "SCEGS model",
    noModel: "No explanatory model has been recorded for this patient yet.",
    mainComplaint: "Complaint",
    sharedGoal: "Shared goal",
    agreement: "Agreement and differences",
    filledOn: "Recorded on",
    dimension: "Dimension",
    answer: "Answer",
    ambitTitle: "AMBIT grid: stakeholders and their perspective",
    noAmbit: "No AMBIT grid has been recorded for this patient yet.",
    stakeholder: "Stakeholder",
    sharedConclusion: "Shared provisional conclusion",
    overviewTitle: "Latest shared case overview",
    noOverview: "The record holds no shared case overview for this patient yet.",
    overviewUnsupported: "The EHR does not offer a search for case overviews (Bundle?composition.patient)",
    overviewRenderMissing: "This version of the ALK service cannot display case overviews yet.",
    overviewFrame: "Case overview",
    errorTitle: "Something went wrong",
    sessionExpired: "Your session with the EHR has expired. Please launch the app again from the EHR.",
    authDenied: "The EHR denied this app access. Without authorization the app cannot show any data.",
    noLaunch: "The app was opened without a SMART launch. Please start it from the EHR (or the launch page).",
    relaunch: "Launch again",
    noPatient: "The EHR did not pass a patient at launch. Open the app from a patient record.",
    serviceError: "The ALK service returned an error",
    ehrError: "The EHR returned an error",
    partialData: "Not all data could be read from the EHR",
    questionnaireMissing: "The ALK service does not know this questionnaire",
    criterionMet: "Met",
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

export function t(key) {
  return STRINGS[current][key] ?? STRINGS.nl[key] ?? key;
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

export function registerCodeSystem(cs) {
  const walk = (concepts) => {
    for (const c of concepts || []) {
      const en = (c.designation || []).find((d) => String(d.language || "").startsWith("en"))?.value;
      displays.set(`${cs.url}|${c.code}`, { nl: c.display, en: en || c.display });
      walk(c.concept);
    }
  };
  walk(cs.concept);
}

/** The display of a Coding in the current language. */
export function codingText(coding) {
  if (!coding) return "";
  const known = displays.get(`${coding.system}|${coding.code}`);
  if (known) return known[current] || known.nl;
  return tr(coding, "display") || coding.code || "";
}

/** The text of a CodeableConcept in the current language. */
export function conceptText(concept) {
  if (!concept) return "";
  const coded = (concept.coding || []).find((c) => displays.has(`${c.system}|${c.code}`));
  if (coded) return codingText(coded);
  return tr(concept, "text") || (concept.coding || []).map((c) => tr(c, "display") || c.code).find(Boolean) || "";
}

export function formatDate(value) {
  if (!value) return "";
  const day = String(value).slice(0, 10);
  const [y, m, d] = day.split("-");
  if (!d) return day;
  return current === "nl" ? `${Number(d)}-${Number(m)}-${y}` : day;
}
