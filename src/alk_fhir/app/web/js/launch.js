// SMART App Launch 2.0, the launch URL (https://hl7.org/fhir/smart-app-launch/app-launch.html):
// - EHR launch: the EHR opens launch.html?iss=<FHIR base>&launch=<opaque>; we add scope `launch`.
// - Standalone launch: no `launch`; the user names the FHIR server (or passes ?iss=) and we ask for
//   `launch/patient` so the EHR lets the user pick the patient.
// Public client with PKCE S256 ("required": a server that does not announce S256 is refused).
import { $ } from "./dom.js";

function showError(title, detail) {
  const box = $("#error");
  box.replaceChildren();
  const strong = document.createElement("strong");
  strong.textContent = title;
  const p = document.createElement("p");
  p.textContent = detail;
  box.append(strong, p);
  box.hidden = false;
  $("#status").textContent = "";
}

/** SMART requires TLS; plain http is accepted only for a server on this machine (development). */
export function checkIss(iss) {
  let url;
  try {
    url = new URL(iss);
  } catch (_) {
    return `"${iss}" is geen geldig adres / is not a valid URL.`;
  }
  const local = ["localhost", "127.0.0.1", "[::1]"].includes(url.hostname);
  if (url.protocol !== "https:" && !(url.protocol === "http:" && local)) {
    return `"${iss}": alleen https is toegestaan / only https is allowed (SMART requires TLS).`;
  }
  return null;
}

async function config() {
  const res = await fetch("config.json", { cache: "no-store" });
  if (!res.ok) throw new Error(`config.json: HTTP ${res.status}`);
  return res.json();
}

async function launch(iss, launchToken) {
  const problem = checkIss(iss);
  if (problem) {
    showError("Ongeldige FHIR-server (iss) / Invalid FHIR server (iss)", problem);
    return;
  }
  const cfg = await config();
  const scope = `${cfg.scope} ${launchToken ? "launch" : "launch/patient"}`;
  try {
    await FHIR.oauth2.authorize({
      clientId: cfg.clientId,
      scope,
      iss,
      launch: launchToken || undefined,
      redirectUri: cfg.redirectPath,
      pkceMode: "required",
      completeInTarget: true,
    });
  } catch (err) {
    showError(
      "Het EPD kon niet worden bereikt of ondersteunt SMART niet / The EHR could not be reached or does not support SMART",
      `${iss}: ${err && err.message ? err.message : err}`,
    );
  }
}

function main() {
  const params = new URL(location.href).searchParams;
  const iss = params.get("iss");
  const launchToken = params.get("launch");
  if (params.get("error")) {
    showError("Aanmelden mislukt / Authorization failed",
      [params.get("error"), params.get("error_description")].filter(Boolean).join(": "));
  }
  if (iss && launchToken) {
    launch(iss, launchToken);
    return;
  }
  const form = $("#standalone");
  form.hidden = false;
  $("#status").textContent = "";
  if (iss) $("#iss").value = iss;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    $("#error").hidden = true;
    launch($("#iss").value.trim(), null);
  });
  if (iss && !params.get("error")) launch(iss, null);
}

main();
