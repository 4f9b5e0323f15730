// The form renderer's own texts in Dutch (and back to English), without changing its code.
//
// LHC-Forms (npm lforms 40.x) supports other languages through a language file in its locale
// format (src/languages/<locale>.json: placeholders, Yes/No/Not answered, date format, validation
// messages, ...) that its build inlines into lhc-forms.js as one JSON.parse('...') call; the npm
// package ships the English build only, and the maintainers state that language support works at
// build time only (LHNCBC/lforms issue #197). This classic script, loaded right before
// lhc-forms.js, supplies our language file at that moment: it watches JSON.parse until the parse
// that yields the renderer's language object (recognised by its keys), answers it with one
// object holding the current language's texts, and puts JSON.parse back. The renderer keeps a
// reference to that object, so switching language later only changes the object's texts.
//
// Texts the renderer writes without a language file (screen-reader messages, the date picker's
// buttons (ng-zorro's en_US texts) and its weekday and month names (Angular's "en" locale data),
// the answer list's footer) are translated in its output by renderer-texts.js. The picker's week
// starts on Monday through a build-time patch of lhc-forms.js (build.mjs, PATCHES). In English the
// renderer's own file is used with en-GB dates (EN_GB below) instead of its US MM/DD/YYYY.
(function () {
  "use strict";

  // Our language file for LHC-Forms, in its locale format (same keys as its en_US build).
  const NL = {
    helpTitle: "Toelichting",
    legalTitle: "juridisch",
    dateFormat: "dd-MM-yyyy",
    dateTimeFormat: "dd-MM-yyyy HH:mm:ss",
    timeFormat: "HH:mm:ss",
    decimalCharacter: ",",
    decimalRegex: "^\\s*[\\+-]?([\\+-]?\\d+[.,]?\\d*([eE]?[\\+|-]?\\d+)?|[\\+-]?\\d*[.,]?\\d+[eE]?([\\+|-]?\\d+)?)\\s*$",
    placeholderSearchMultiOptionsOrString: "Zoek of typ antwoorden",
    placeholderSearchSingleOptionsOrString: "Zoek of typ een antwoord",
    placeholderSelectMultiOptionsOrString: "Kies een of meer, of typ een antwoord",
    placeholderSelectSingleOptionsOrString: "Kies of typ een antwoord",
    placeholderSearchMulti: "Zoek antwoorden",
    placeholderSearchSingle: "Zoek een antwoord",
    placeholderSelectMulti: "Kies een of meer",
    placeholderSelectSingle: "Kies een antwoord",
    placeholderDate: "DD-MM-JJJJ",
    placeholderDateTime: "DD-MM-JJJJ UU:MM:SS",
    placeholderTime: "UU:MM:SS",
    placeholderTypeANumber: "Typ een getal",
    placeholderTypeAValue: "Typ uw antwoord",
    added: "Toegevoegd: ",
    removed: "Verwijderd: ",
    errorMessages: {
      BL: "moet ja of nee zijn.",
      INT: "moet een geheel getal zijn.",
      REAL: "moet een getal zijn.",
      ST: "moet tekst zijn.",
      TX: "moet tekst zijn.",
      BIN: "moet een bestand zijn.",
      DT: "moet een datum zijn (dd-mm-jjjj).",
      DTM: "moet een datum en tijd zijn.",
      TM: "moet een tijd zijn.",
      RTO: "moet een verhouding zijn.",
      QTY: "moet een getal zijn.",
      NR: "moet twee getallen zijn, gescheiden door ^ (één mag ontbreken, het ^-teken niet).",
      YEAR: "moet een jaartal zijn.",
      MONTH: "moet een maand zijn.",
      DAY: "moet een dag zijn.",
      URL: "moet een geldig webadres zijn.",
      EMAIL: "moet een geldig e-mailadres zijn.",
      PHONE: "moet een geldig telefoonnummer zijn.",
    },
    requiresAValue: "moet worden ingevuld",
    mustBeGreater: "moet groter zijn dan {lformsParam}.",
    mustBeGreaterOrEqual: "moet groter dan of gelijk aan {lformsParam} zijn.",
    mustBeLess: "moet kleiner zijn dan {lformsParam}.",
    mustBeLessOrEqual: "moet kleiner dan of gelijk aan {lformsParam} zijn.",
    mustHaveTotalLength: "moet precies {lformsParam} tekens lang zijn.",
    mustHaveTotalLengthLessOrEqual: "mag hooguit {lformsParam} tekens lang zijn.",
    mustHaveTotalLengthGreaterOrEqual: "moet minstens {lformsParam} tekens lang zijn.",
    mustMatchRegex: "heeft niet de juiste vorm ({lformsParam}).",
    mustNotHaveMoreDecimalPlaces: "mag hooguit {lformsParam} cijfers achter de komma hebben.",
    mustNotHaveMoreAnswers: "mag hooguit {lformsParam} antwoorden hebben.",
    mustNotHaveLessAnswers: "moet minstens {lformsParam} antwoorden hebben.",
    booleanYes: "Ja",
    booleanNo: "Nee",
    booleanNotAnswered: "Niet beantwoord",
    pleaseEnterInfoForTheBlank: "Vul eerst \"{lformsParam}\" in.",
    other: "Anders",
    parsedDateFormats: ["D-M-YYYY", "D-M-YY", "D-M", "D/M/YYYY", "D/M/YY", "D/M", "YYYY", "YYYY-M-D", "YYYY/M/D",
      "D-M-YYYY HH:mm", "D-M-YY HH:mm", "D-M HH:mm", "D/M/YYYY HH:mm", "D/M/YY HH:mm", "D/M HH:mm"],
  };
  // English dates as en-GB reads them, never the renderer's US MM/DD/YYYY ("08/01/2025" is 8 January
  // to a clinician in the Netherlands or the UK, 1 August in the shipped English file). The date item
  // draws ng-zorro's picker with nzFormat = this file's dateFormat (Angular DatePipe pattern, "en"
  // locale data): "d MMM yyyy" shows "1 Aug 2025", the way the rest of the English app writes a date,
  // so the month is never in doubt and a date typed month first ("08/01/2025") visibly reads as
  // "8 Jan 2025". What a GP types (dd/mm/yyyy, ISO, month names) is read by date-input.js, day first.
  // The rest of the English file stays the renderer's own.
  const EN_GB = {
    dateFormat: "d MMM yyyy",
    dateTimeFormat: "d MMM yyyy HH:mm:ss",
    placeholderDate: "DD/MM/YYYY",
    placeholderDateTime: "DD/MM/YYYY HH:MM:SS",
    errorMessages: { DT: "must be a date (dd/mm/yyyy).", DTM: "must be a date and time (dd/mm/yyyy hh:mm:ss)." },
    parsedDateFormats: ["D/M/YYYY", "D/M/YY", "D/M", "D-M-YYYY", "D-M-YY", "D-M", "D MMM YYYY", "YYYY", "YYYY-M-D",
      "YYYY/M/D", "D/M/YYYY HH:mm", "D/M/YY HH:mm", "D/M HH:mm", "D-M-YYYY HH:mm", "D-M-YY HH:mm", "D-M HH:mm",
      "D MMM YYYY HH:mm"],
  };
  const KEYS = ["booleanYes", "booleanNotAnswered", "requiresAValue", "placeholderSelectSingle"];

  function storedLanguage() {
    try {
      return sessionStorage.getItem("alk-app-lang") === "en" ? "en" : "nl";
    } catch (_) {
      return "nl";
    }
  }

  const state = { captured: false, english: null, active: null, language: storedLanguage(), missing: [] };

  /** Copy `source`'s texts into `target` in place (the renderer holds references to both levels). */
  function fill(target, source) {
    for (const [key, value] of Object.entries(source)) {
      if (key === "errorMessages") Object.assign(target.errorMessages, value);
      else target[key] = Array.isArray(value) ? value.slice() : value;
    }
  }

  const originalParse = JSON.parse;
  JSON.parse = function parse(text, reviver) {
    const value = originalParse.call(this, text, reviver);
    if (!state.captured && value && typeof value === "object" && !Array.isArray(value)
        && KEYS.every((k) => typeof value[k] === "string")) {
      state.captured = true;
      JSON.parse = originalParse;
      state.english = originalParse.call(JSON, text);
      state.missing = Object.keys(state.english).filter((k) => !(k in NL));
      state.active = originalParse.call(JSON, text);
      fill(state.active, state.language === "nl" ? NL : EN_GB);
      return state.active;
    }
    return value;
  };

  globalThis.alkRendererLocale = {
    NL,
    EN_GB,
    /** Whether the renderer's language object was found (false: the renderer changed; see README). */
    get captured() { return state.captured; },
    /** Keys of the renderer's language file that our Dutch file lacks (shown in English). */
    get missing() { return state.missing.slice(); },
    get language() { return state.language; },
    /** The renderer's own English texts, as shipped (the app's English is these with EN_GB's dates). */
    get english() { return state.english; },
    /** Switch the renderer's texts; forms rendered afterwards use them. */
    setLanguage(language) {
      state.language = language === "en" ? "en" : "nl";
      if (!state.active || !state.english) return;
      fill(state.active, state.english);
      fill(state.active, state.language === "nl" ? NL : EN_GB);
    },
    /** Put JSON.parse back if the renderer never parsed its language object (called by main.js). */
    release() {
      if (!state.captured) JSON.parse = originalParse;
    },
  };
})();
