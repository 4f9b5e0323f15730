// The demo EHR's CDS view: calls the alk-fhir CDS services as an EHR does (CDS Hooks 2.0) and shows
// the cards in the manner of the public CDS Hooks sandbox: indicator, summary, source, detail,
// suggestions (accepting one creates its resources in the demo record and reports the feedback),
// links and override reasons (reported as feedback). Dutch first; the switch re-renders in English.
const data = JSON.parse(document.body.dataset.demo);
let lang = data.lang === "en" ? "en" : "nl";
let lastService = null;

const TEXT = {
  nl: {
    title: (n) => `Demo-EPD: ${n}`, back: "Alle voorbeeldpatiënten", other: "English", otherLang: "en",
    intro: "Zo ziet een EPD de kaarten van de service. Accepteer een suggestie of negeer een kaart met een reden; de kaarten worden daarna opnieuw opgevraagd.",
    open: "Dossier openen (patient-view)", drug: "Geneesmiddel", order: "Voorschrijven (order-select)",
    actions: "Acties", cards: "Kaarten", none: "Geen kaarten: de service heeft voor deze situatie geen advies.",
    calling: "De service wordt aangeroepen…", got: (n) => `${n} kaart(en) ontvangen.`,
    failed: (s) => `De service antwoordde met een fout: ${s}`, source: "Bron", accept: "Accepteren",
    override: "Negeren met reden", reason: "Reden om te negeren", noReason: "Kies een reden",
    accepted: (l) => `Geaccepteerd: ${l}. Aangemaakt in het demo-dossier; de kaarten zijn vernieuwd.`,
    overridden: "Genegeerd; de reden is teruggemeld aan de service en de kaarten zijn vernieuwd.",
    indicator: { info: "Informatie", warning: "Waarschuwing", critical: "Urgent" }, links: "Links",
  },
  en: {
    title: (n) => `Demo EHR: ${n}`, back: "All example patients", other: "Nederlands", otherLang: "nl",
    intro: "This is how an EHR shows the service's cards. Accept a suggestion or dismiss a card with a reason; the cards are then requested again.",
    open: "Open the chart (patient-view)", drug: "Drug", order: "Order (order-select)",
    actions: "Actions", cards: "Cards", none: "No cards: the service has no advice for this situation.",
    calling: "Calling the service…", got: (n) => `${n} card(s) received.`,
    failed: (s) => `The service answered with an error: ${s}`, source: "Source", accept: "Accept",
    override: "Dismiss with reason", reason: "Reason to dismiss", noReason: "Choose a reason",
    accepted: (l) => `Accepted: ${l}. Created in the demo record; the cards were refreshed.`,
    overridden: "Dismissed; the reason was reported to the service and the cards were refreshed.",
    indicator: { info: "Information", warning: "Warning", critical: "Urgent" }, links: "Links",
  },
};

const $ = (sel) => document.querySelector(sel);
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null) continue;
    if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

/** Card detail is GitHub-flavoured Markdown (CDS Hooks 2.0): shown as paragraphs and list items,
 * with **strong** and _emphasis_, never as HTML. */
function markdown(text) {
  const box = el("div", { class: "detail" });
  let list = null;
  for (const line of String(text || "").split("\n")) {
    const item = line.match(/^\s*[-*]\s+(.*)$/);
    if (item) {
      if (!list) { list = el("ul"); box.append(list); }
      list.append(el("li", {}, ...inline(item[1])));
      continue;
    }
    list = null;
    if (line.trim()) box.append(el("p", {}, ...inline(line)));
  }
  return box;
}

function inline(text) {
  const out = [];
  const re = /(\*\*[^*]+\*\*|_[^_]+_)/g;
  let last = 0;
  for (const m of text.matchAll(re)) {
    out.push(text.slice(last, m.index));
    const inner = m[0].startsWith("**") ? m[0].slice(2, -2) : m[0].slice(1, -1);
    out.push(el(m[0].startsWith("**") ? "strong" : "em", {}, inner));
    last = m.index + m[0].length;
  }
  out.push(text.slice(last));
  return out;
}

function status(text) { $("#status").textContent = text; }

async function getJson(url) {
  const res = await fetch(url, { headers: { Accept: "application/json" } });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return res.json();
}

async function callService(service, drug) {
  lastService = { service, drug };
  status(TEXT[lang].calling);
  const query = new URLSearchParams({ service });
  if (drug) query.set("drug", drug);
  try {
    const call = await getJson(`/demo/api/patients/${encodeURIComponent(data.patient)}/hook-request?${query}`);
    const headers = { "Content-Type": "application/json", Accept: "application/json", "Accept-Language": lang };
    if (call.jwt) headers.Authorization = `Bearer ${call.jwt}`;
    const res = await fetch(call.url, { method: "POST", headers, body: JSON.stringify(call.request) });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) {
      status(TEXT[lang].failed(`HTTP ${res.status} ${body.error?.message || body.message || ""}`.trim()));
      return;
    }
    render(service, body.cards || []);
    status(body.cards?.length ? TEXT[lang].got(body.cards.length) : TEXT[lang].none);
  } catch (err) {
    status(TEXT[lang].failed(String(err.message || err)));
  }
}

async function feedback(service, entry) {
  const { jwt } = await getJson(`/demo/api/cds-jwt?service=${encodeURIComponent(service)}&feedback=true`);
  const headers = { "Content-Type": "application/json" };
  if (jwt) headers.Authorization = `Bearer ${jwt}`;
  const res = await fetch(`/cds-services/${service}/feedback`, {
    method: "POST", headers, body: JSON.stringify({ feedback: [{ ...entry, outcomeTimestamp: new Date().toISOString() }] }),
  });
  if (!res.ok) throw new Error(`feedback: HTTP ${res.status}`);
}

async function accept(service, card, suggestion) {
  const res = await fetch(`/demo/api/patients/${encodeURIComponent(data.patient)}/accept`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(suggestion.actions || []),
  });
  if (!res.ok) {
    const body = await res.json().catch(() => ({}));
    status(TEXT[lang].failed(`HTTP ${res.status} ${(body.issue || [])[0]?.diagnostics || ""}`));
    return;
  }
  await feedback(service, { card: card.uuid, outcome: "accepted", acceptedSuggestions: [{ id: suggestion.uuid }] });
  await callService(lastService.service, lastService.drug);
  status(TEXT[lang].accepted(suggestion.label));
}

async function override(service, card, reason) {
  const overrideReason = { reason };
  await feedback(service, { card: card.uuid, outcome: "overridden", overrideReason });
  await callService(lastService.service, lastService.drug);
  status(TEXT[lang].overridden);
}

function render(service, cards) {
  const t = TEXT[lang];
  const box = $("#cards");
  box.replaceChildren();
  cards.forEach((card, index) => {
    const id = `card-${index}`;
    const indicator = card.indicator || "info";
    const article = el("article", { class: `card ${indicator}`, "aria-labelledby": `${id}-summary` });
    article.append(
      el("p", { class: "indicator" }, t.indicator[indicator] || indicator),
      el("h3", { id: `${id}-summary` }, card.summary),
    );
    if (card.source) {
      const src = el("p", { class: "source" }, `${t.source}: `);
      src.append(card.source.url ? el("a", { href: card.source.url }, card.source.label) : card.source.label);
      if (card.source.topic?.display) src.append(` — ${card.source.topic.display}`);
      article.append(src);
    }
    if (card.detail) article.append(markdown(card.detail));
    const buttons = el("div", { class: "suggestions" });
    for (const suggestion of card.suggestions || []) {
      const button = el("button", { type: "button" }, `${t.accept}: ${suggestion.label}`);
      button.addEventListener("click", () => { button.disabled = true; accept(service, card, suggestion); });
      buttons.append(button);
    }
    if (buttons.childElementCount) article.append(buttons);
    if (card.links?.length) {
      const list = el("ul", { class: "links", "aria-label": t.links });
      for (const link of card.links) list.append(el("li", {}, el("a", { href: link.url }, link.label)));
      article.append(list);
    }
    if (card.overrideReasons?.length) {
      const form = el("form", { class: "override" });
      const select = el("select", { id: `${id}-reason`, required: "" }, el("option", { value: "" }, t.noReason));
      card.overrideReasons.forEach((r, i) => select.append(el("option", { value: String(i) }, r.display || r.code)));
      form.append(el("label", { for: `${id}-reason` }, t.reason), select,
        el("button", { type: "submit" }, t.override));
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        if (select.value === "") { select.focus(); return; }
        override(service, card, card.overrideReasons[Number(select.value)]);
      });
      article.append(form);
    }
    box.append(article);
  });
}

function applyLanguage() {
  const t = TEXT[lang];
  document.documentElement.lang = lang;
  document.title = t.title(data.name);
  $("#title").textContent = t.title(data.name);
  $("#back").textContent = t.back;
  $("#back").href = `/demo/?lang=${lang}`;
  $("#lang-switch").textContent = t.other;
  $("#lang-switch").setAttribute("lang", t.otherLang);
  $("#intro").textContent = t.intro;
  $("#open-chart").textContent = t.open;
  $("#drug-label").textContent = t.drug;
  $("#order").textContent = t.order;
  $("#actions-title").textContent = t.actions;
  $("#cards-title").textContent = t.cards;
}

function main() {
  const select = $("#drug");
  for (const [key, label] of Object.entries(data.drugs)) select.append(el("option", { value: key }, label));
  applyLanguage();
  $("#open-chart").addEventListener("click", () => callService("alk-patient-view"));
  $("#order").addEventListener("click", () => callService("alk-order-select", select.value));
  $("#lang-switch").addEventListener("click", () => {
    lang = lang === "nl" ? "en" : "nl";
    applyLanguage();
    if (lastService) callService(lastService.service, lastService.drug);
  });
  callService("alk-patient-view");  // an EHR fires patient-view when the chart opens
}

main();
