// The app shell at the redirect URI: completes the SMART authorization (fhirclient), shows the
// patient banner, and switches between the views. Every failure ends in a readable message (never a
// blank page): denied authorization, a page opened without launch, an expired token (HTTP 401),
// an EHR or service error.
//
// appContext (SMART App Launch 2.0, token response; CDS Hooks 2.0 Link.appContext is passed
// through by the EHR): a JSON object string {"questionnaire": "<canonical>[|version]"} opens that
// form; {"view": "results"|"model"|"ambit"|"overview"|"forms"} opens a view. A bare canonical URL is
// accepted as {"questionnaire": url}. Anything else is ignored (the results view opens).
import { $, h, show } from "./dom.js";
import { formLanguage, renderForms, unsavedAnswers } from "./forms.js";
import { formatDate, lang, registerCodeSystem, setLang, t } from "./i18n.js";
import { renderOverviewView } from "./overview.js";
import { forget } from "./record.js";
import { startRendererRepairs } from "./renderer-a11y.js";
import { clearReaderLog, setRendererTextLanguage } from "./renderer-texts.js";
import { renderResults } from "./results.js";
import { codeSystems } from "./service.js";
import { renderAmbit, renderModel } from "./tables.js";

const VIEWS = ["results", "forms", "model", "ambit", "overview"];
let client = null;
let currentView = null;
let currentForm = null;
let opening = 0;

export function parseAppContext(raw) {
  if (!raw || typeof raw !== "string") return {};
  const text = raw.trim();
  if (text.startsWith("{")) {
    try {
      const value = JSON.parse(text);
      if (value && typeof value === "object") {
        return {
          questionnaire: typeof value.questionnaire === "string" ? value.questionnaire : undefined,
          view: VIEWS.includes(value.view) ? value.view : undefined,
        };
      }
    } catch (_) { /* fall through */ }
    return {};
  }
  return /^https?:\/\/\S+\/Questionnaire\/\S+$/.test(text) ? { questionnaire: text } : {};
}

function isExpired(err) {
  if (err && err.status === 401) return true;
  const expiresAt = client?.state?.expiresAt;
  const canRefresh = Boolean(client?.state?.tokenResponse?.refresh_token);
  return Boolean(expiresAt && !canRefresh && expiresAt < Date.now() / 1000);
}

/** A launch that cannot go on: only the message and the way back remain on the page. */
function launchFailed(title, detail) {
  fatal(title, detail, true);
  document.body.dataset.state = "launch-failed";
  $("#tabs").hidden = true;
  for (const name of VIEWS) $(`#panel-${name}`).hidden = true;
}

function fatal(title, detail, offerRelaunch) {
  const box = $("#alert");
  show(box, h("h1", { class: "alert-title" }, title), detail ? h("p", {}, detail) : null,
    offerRelaunch ? h("p", {}, h("a", { href: "launch.html", id: "relaunch" }, t("relaunch"))) : null);
  box.hidden = false;
  $("#status").textContent = "";
}

/** Show an error where it happened; an expired session is app-wide. */
function reportError(err, where) {
  console.error(err);
  if (isExpired(err)) {
    fatal(t("sessionExpired"), null, true);
    document.body.dataset.state = "expired";
    if (where) show(where, h("p", { class: "muted" }, t("sessionExpired")));
    return;
  }
  const source = err?.source === "service" ? t("serviceError") : t("ehrError");
  const message = `${source}: ${String(err?.message || err).split("\n")[0]}`;
  if (where) {
    show(where, h("p", { class: "error", role: "alert" }, message));
    where.hidden = false;
  } else {
    fatal(t("errorTitle"), message, false);
  }
}

function labelShell() {
  for (const tab of document.querySelectorAll("[role=tab]")) tab.textContent = t(tab.dataset.label);
  $("#tabs").setAttribute("aria-label", t("tabs"));
  $("#tablist").setAttribute("aria-label", t("tabs"));
  $("#lang-label").textContent = t("language");
  $("#app-title").textContent = t("appTitle");
  $("#skip-link").textContent = t("skip");
  document.title = t("appTitle");
}

let patientResource = null;

function banner(patient) {
  patientResource = patient;
  const name = (patient.name || [])[0];
  const text = name ? (name.text || [...(name.given || []), name.family].filter(Boolean).join(" ")) : t("patientUnknown");
  show($("#patient-banner"), h("span", { class: "name" }, text),
    patient.birthDate ? h("span", {}, ` · ${t("born")} ${formatDate(patient.birthDate)}`) : null,
    patient.gender ? h("span", {}, ` · ${t("gender")[patient.gender] || patient.gender}`) : null);
}

const hooks = {
  openForm: (canonical) => openView("forms", { questionnaire: canonical, focus: true }),
  openView: (view) => openView(view, { focus: true }),
  onSaved: () => forget(),
  onError: (err, where) => reportError(err, where),
};

async function openView(view, options = {}) {
  if (isExpired()) {
    reportError({ status: 401 });
    return;
  }
  const token = ++opening;
  if (currentView === "forms" && view !== "forms") clearReaderLog();
  currentView = view;
  for (const tab of document.querySelectorAll("[role=tab]")) {
    const selected = tab.dataset.view === view;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
  }
  for (const name of VIEWS) {
    const other = $(`#panel-${name}`);
    other.hidden = name !== view;
    if (name !== view) other.replaceChildren();
  }
  const panel = $(`#panel-${view}`);
  document.body.dataset.view = view;
  document.body.dataset.ready = "false";
  show(panel, h("p", { class: "muted" }, t("loading")));
  forget(); // each view reads the record afresh: another user may have written to it meanwhile
  try {
    if (view === "forms") {
      currentForm = options.questionnaire ?? currentForm;
      await renderForms(client, panel, { questionnaire: currentForm, unsaved: options.unsaved,
        focus: options.focus !== false && Boolean(options.questionnaire) }, hooks);
    } else if (view === "results") {
      await renderResults(client, panel, hooks);
    } else if (view === "model") {
      await renderModel(client, panel, hooks);
    } else if (view === "ambit") {
      await renderAmbit(client, panel, hooks);
    } else if (view === "overview") {
      await renderOverviewView(client, panel);
    }
    if (options.focus && view !== "forms") panel.querySelector("h1")?.focus();
  } catch (err) {
    reportError(err, panel);
  } finally {
    if (token === opening) document.body.dataset.ready = "true";
  }
}

function wireTabs() {
  const tabs = [...document.querySelectorAll("[role=tab]")];
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => openView(tab.dataset.view));
    tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      let next = null;
      if (step) next = tabs[(i + step + tabs.length) % tabs.length];
      if (event.key === "Home") next = tabs[0];
      if (event.key === "End") next = tabs[tabs.length - 1];
      if (next) {
        event.preventDefault();
        next.focus();
        openView(next.dataset.view);
      }
    });
  });
}

function applyLanguage(value) {
  setLang(value);
  globalThis.alkRendererLocale?.setLanguage(value);
  setRendererTextLanguage(value);
  labelShell();
}

function wireLanguage() {
  const select = $("#lang-select");
  select.value = lang();
  select.addEventListener("change", () => {
    const unsaved = currentView === "forms" && formLanguage() && formLanguage() !== select.value
      ? unsavedAnswers(client) : null;
    applyLanguage(select.value);
    if (patientResource) banner(patientResource);
    if (!currentView) return;
    // An open form is reopened in the new language with its answers as they are now (not lost).
    if (unsaved) openView("forms", { questionnaire: unsaved.canonical, unsaved, focus: false });
    else openView(currentView);
  });
}

async function start() {
  globalThis.alkRendererLocale?.release();
  if (globalThis.alkRendererLocale && !globalThis.alkRendererLocale.captured) {
    console.warn("LHC-Forms' language file was not found: its own texts stay English (see app README)");
  }
  startRendererRepairs();
  applyLanguage(lang());
  wireTabs();
  wireLanguage();
  $("#status").textContent = t("starting");
  try {
    client = await FHIR.oauth2.ready();
  } catch (err) {
    const message = String(err?.message || err);
    if (/access_denied|denied/i.test(message)) launchFailed(t("authDenied"), message);
    else if (/No 'state'|No state found/i.test(message)) launchFailed(t("noLaunch"), null);
    else launchFailed(t("errorTitle"), message);
    return;
  }
  if (!client.patient.id) {
    launchFailed(t("noPatient"), null);
    return;
  }
  try {
    for (const cs of await codeSystems()) registerCodeSystem(cs);
    banner(await client.patient.read());
  } catch (err) {
    reportError(err);
    if (isExpired(err)) return;
  }
  $("#status").textContent = "";
  document.body.dataset.state = "ready";
  const context = parseAppContext(client.state.tokenResponse?.appContext);
  if (context.questionnaire) await openView("forms", { questionnaire: context.questionnaire, focus: true });
  else await openView(context.view || "results");
}

start();
