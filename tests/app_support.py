"""What the clinician-app browser tests share: the running stack, a page on the app, axe-core and
the language checks.

The stack: the alk-fhir service (serving /app/, the knowledge and $apply) and the test EHR
(tests/test_app_ehr.py: SMART authorization + FHIR server) on 127.0.0.1, in Debian's chromium
(playwright, never a browser download). The EHR holds three example patients; every test starts
from that record again (``fresh`` restores it), so no test sees another's answers.

axe-core comes from npm (devDependency of the app, exact version in its package-lock.json) and is
evaluated in the page by the test: nothing of it is served by the app.

The renderer's English texts are read from the renderer itself (vendor/lforms/lhc-forms.js: its
language file, the date picker's texts and weekday and month names, the answer list's template and
screen-reader messages), so that the check follows the renderer when it is upgraded.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from alk_fhir.api.app import create_app
from alk_fhir.api.app_routes import APP_DIR, VENDOR_DIR, build_problem
from alk_fhir.config import REPO_ROOT, Settings
from alk_fhir.knowledge import Package, load_package
from test_app_ehr import Served, TestEhr, serve, start_ehr

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = REPO_ROOT / "test-artifacts"
VIEWPORT = {"width": 1280, "height": 800}
BASE = "https://alk-fhir.org/fhir"
CRITERIA_Q = f"{BASE}/Questionnaire/alk-criteria"
MODEL_Q = f"{BASE}/Questionnaire/alk-explanatory-model"
AMBIT_Q = f"{BASE}/Questionnaire/alk-ambit-grid"
ANNA = "pat-anna"
CARLA = "pat-carla"
DIRK = "pat-dirk"
EXAMPLES = REPO_ROOT / "examples" / "patients"
PATIENT_FILES = {ANNA: "patient-criterion1-failed-cbt-physio.json", CARLA: "patient-bedridden-tube-feeding.json",
                 DIRK: "patient-polypharmacy-opioid-benzo.json"}
# The app may create what the plan proposes (Task, ServiceRequest, CarePlan, CareTeam) besides answers.
SCOPE = ("openid fhirUser patient/*.rs patient/QuestionnaireResponse.c patient/Task.c patient/ServiceRequest.c "
         "patient/CarePlan.c patient/CareTeam.c")
AXE = APP_DIR / "node_modules" / "axe-core" / "axe.min.js"
OVERVIEW_AGE_DAYS = 20
OVERVIEW_QUESTION = "Kunt u meedenken over de afbouw van de pijnmedicatie?"
OVERVIEW_CONTACT = "direct nummer 030-1234567 (dagelijks 12:00-13:00)"


def example(patient: str) -> list[dict[str, Any]]:
    bundle = json.loads((EXAMPLES / PATIENT_FILES[patient]).read_text(encoding="utf-8"))
    return [e["resource"] for e in bundle["entry"]]


def anna_record() -> list[dict[str, Any]]:
    """Anna's example record plus enough recent contacts for the 'very many care contacts' feature."""
    resources = example(ANNA)
    today = date.today()
    for i in range(10):
        day = (today - timedelta(days=20 + 30 * i)).isoformat()
        resources.append({"resourceType": "Encounter", "id": f"enc-extra-{i}", "status": "finished",
                          "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                          "subject": {"reference": f"Patient/{ANNA}"}, "period": {"start": day, "end": day}})
    return resources


@dataclasses.dataclass
class Stack:
    service: str
    ehr: TestEhr
    browser: Any
    package: Package
    records: dict[str, list[dict[str, Any]]]
    snapshot: dict[tuple[str, str], dict[str, Any]]

    def fresh(self) -> None:
        """The EHR as it was loaded: every test starts from the same record."""
        self.ehr.resources = copy.deepcopy(self.snapshot)

    def responses(self, patient: str, canonical: str) -> list[dict[str, Any]]:
        found = [r for (t, _), r in self.ehr.resources.items() if t == "QuestionnaireResponse"
                 and r.get("subject", {}).get("reference") == f"Patient/{patient}"
                 and str(r.get("questionnaire", "")).split("|")[0] == canonical]
        return sorted(found, key=lambda r: str(r.get("authored", "")))


def build_missing() -> str | None:
    if not CHROMIUM.exists():
        return "Debian chromium is not installed at /usr/bin/chromium (run scripts/ensure-chromium.sh as root)"
    problem = build_problem()
    if problem:
        return f"the app's npm build is missing ({problem}); run scripts/build-app.sh"
    return None


def start_stack(tmp: Path) -> Iterator[Stack]:
    reason = build_missing()
    if reason:
        pytest.skip(reason)
    sync_api: Any = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    from alk_fhir.overview import build_overview

    profiles = REPO_ROOT / "profiles"  # the package as shipped: its criteria form pre-populates (SDC)
    package = load_package(profiles)
    settings = dataclasses.replace(Settings.from_env(), database_url=f"sqlite:///{tmp / 'alk.sqlite3'}",
                                   package_dir=profiles, app_scope=SCOPE)
    service = serve(create_app(settings, package))
    ehr = TestEhr(redirect_uri=f"{service.base}/app/index.html", app_origin=service.base, default_patient=ANNA)
    records = {ANNA: anna_record(), CARLA: example(CARLA), DIRK: example(DIRK)}
    for resources in records.values():
        ehr.load(resources)
    # Anna's and Carla's shared case overviews, made some weeks ago, each with a question to the colleague.
    made = datetime.now(UTC) - timedelta(days=OVERVIEW_AGE_DAYS)
    for patient in (ANNA, CARLA):
        document = build_overview({"resourceType": "Bundle", "type": "collection",
                                   "entry": [{"resource": r} for r in records[patient]]}, package,
                                  today=made.date(), timestamp=made.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                  question=OVERVIEW_QUESTION, contact=OVERVIEW_CONTACT)
        document.setdefault("id", f"overview-{patient}-1")
        ehr.load([document])
    served_ehr: Served = start_ehr(ehr)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            yield Stack(service.base, ehr, browser, package, records, copy.deepcopy(ehr.resources))
        finally:
            browser.close()
            served_ehr.stop()
            service.stop()


def launch_url(stack: Stack, app_context: dict[str, str] | None = None, iss: str | None = None,
               patient: str = ANNA) -> str:
    launch = stack.ehr.new_launch(patient, json.dumps(app_context) if app_context else None)
    return f"{stack.service}/app/launch.html?{urlencode({'iss': iss or stack.ehr.iss, 'launch': launch})}"


class AppPage:
    """One fresh browser context (own sessionStorage) on the app, with console problems collected."""

    def __init__(self, stack: Stack, viewport: dict[str, int] | None = None) -> None:
        self.context = stack.browser.new_context(viewport=viewport or VIEWPORT, locale="nl-NL")
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("pageerror", lambda exc: self.problems.append(f"pageerror: {exc}"))
        self.page.on("console", lambda msg: self.problems.append(f"console: {msg.text}")
                     if msg.type == "error" and "status of 401" not in msg.text else None)

    def open(self, url: str) -> None:
        self.page.goto(url)
        self.ready()

    def ready(self) -> None:
        self.page.wait_for_selector("body[data-ready=true]", timeout=60_000)

    def unfold(self) -> None:
        """Open every folded part of the view (the results view folds the advice per chapter and the
        evidence): for the tests that read all of it, not only the first screen."""
        self.page.evaluate("() => document.querySelectorAll('main details').forEach((d) => { d.open = true; })")

    def tab(self, view: str) -> None:
        self.page.click(f"#tab-{view}")
        self.ready()

    def open_form(self, questionnaire_id: str) -> None:
        self.page.locator(f'button[data-questionnaire="{questionnaire_id}"]').click()
        self.ready()

    def pick(self, field_id: str, text: str) -> None:
        """Choose an answer in an LHC-Forms answer list (type, then click the match), and wait until the
        renderer has taken it: the list closes and the field shows the choice. (A step taken before that,
        such as switching the language, would otherwise read the form without the answer.)"""
        field = self.page.locator(f'[id="{field_id}"]')
        field.click()
        field.fill(text)
        self.page.locator("#lhc-tools-searchResults li", has_text=text).first.click()
        self.page.locator("#lhc-tools-searchResults").wait_for(state="hidden", timeout=10_000)
        for _ in range(100):  # (wait_for_function evaluates a string: the app's CSP forbids that)
            if field.input_value() == text:
                break
            self.page.wait_for_timeout(50)

    def fill(self, field_id: str, text: str) -> None:
        self.page.locator(f'[id="{field_id}"]').fill(text)

    def radio(self, field_id: str, value: str) -> None:
        self.page.locator(f'[id="{field_id}|{value}"]').click()

    def checked(self, field_id: str, value: str) -> bool:
        classes = self.page.locator(f'[id="{field_id}|{value}"]').get_attribute("class") or ""
        return "ant-radio-wrapper-checked" in classes

    def submit(self) -> str:
        self.page.click("#submit-form")
        status = self.page.wait_for_selector("#form-status[data-saved-id]", timeout=30_000)
        assert status is not None
        return str(status.get_attribute("data-saved-id"))

    def set_language(self, value: str) -> None:
        self.page.select_option("#lang-select", value)
        self.ready()

    def shot(self, name: str, full_page: bool = False) -> Path:
        path = ARTIFACTS / f"app-{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        assert path.stat().st_size > 5_000
        return path

    def close(self) -> None:
        self.context.close()


def answers(response: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """value[x] of every answer per linkId (codings by system and code), walking groups and answers."""
    out: dict[str, list[dict[str, Any]]] = {}

    def value(answer: dict[str, Any]) -> dict[str, Any]:
        found = {k: v for k, v in answer.items() if k.startswith("value")}
        if "valueCoding" in found:
            found["valueCoding"] = {"system": found["valueCoding"].get("system"), "code": found["valueCoding"]["code"]}
        return found

    def walk(items: list[dict[str, Any]]) -> None:
        for item in items:
            for answer in item.get("answer", []):
                out.setdefault(item["linkId"], []).append(value(answer))
                walk(answer.get("item", []))
            walk(item.get("item", []))

    walk(response.get("item", []))
    return out


# --- axe-core --------------------------------------------------------------------------------------

def axe_source() -> str:
    lock = json.loads((APP_DIR / "package-lock.json").read_text(encoding="utf-8"))
    locked = lock["packages"].get("node_modules/axe-core", {}).get("version")
    installed = APP_DIR / "node_modules" / "axe-core" / "package.json"
    if not locked or not AXE.is_file() or not installed.is_file():
        pytest.skip("axe-core is not installed from the app's package-lock.json (run scripts/build-app.sh)")
    version = json.loads(installed.read_text(encoding="utf-8"))["version"]
    assert version == locked, f"node_modules has axe-core {version}, the lock file {locked}: run npm ci"
    return AXE.read_text(encoding="utf-8")


def run_axe(page: Any, source: str) -> list[dict[str, Any]]:
    """axe-core's violations on the page once it has settled (WCAG 2.x A/AA and best practices): a pop-up
    still fading in or out is half transparent, which is no state a clinician reads."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(source)
    for _ in range(50):  # (wait_for_function evaluates a string: the app's CSP forbids that)
        if page.evaluate("document.getAnimations().every(a => a.playState !== 'running')"):
            break
        page.wait_for_timeout(100)
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [{"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]],
             "summary": v["nodes"][0].get("failureSummary", "") if v["nodes"] else ""} for v in result["violations"]]


# --- language --------------------------------------------------------------------------------------

# Keys of the renderer's language file that are formats or patterns, not texts a user reads.
FORMAT_KEYS = {"dateFormat", "dateTimeFormat", "timeFormat", "decimalCharacter", "decimalRegex", "parsedDateFormats"}
NOT_TEXT = {"locale", "yearFormat", "dateFormat", "dayFormat", "dateTimeFormat"}


def _js_string(literal: str) -> str:
    try:
        return str(json.loads(f'"{literal}"'))
    except ValueError:
        return literal


def renderer_english_texts() -> set[str]:
    """The English texts LHC-Forms 40.x can put on the page, read from its own bundle."""
    src = (VENDOR_DIR / "lforms" / "lhc-forms.js").read_text(encoding="utf-8")
    texts: set[str] = set()
    found = re.search(r"JSON\.parse\('(\{\"helpTitle\".*?\})'\)", src)
    assert found, "the renderer's language file is not where lforms 40.x keeps it (see web/js/lforms-locale.js)"
    language = json.loads(found.group(1).encode("utf-8").decode("unicode_escape"))
    for key, value in language.items():
        if key in FORMAT_KEYS:
            continue
        for text in (value.values() if isinstance(value, dict) else [value]):
            texts.add(str(text))
    picker = re.search(r'\{locale:"en",.*?DatePicker:\{lang:\{(.*?)\},timePickerLocale', src)
    assert picker, "the date picker's English texts were not found in the renderer"
    texts |= {value for key, value in re.findall(r'(\w+):"([^"]*)"', picker.group(1)) if key not in NOT_TEXT}
    for element in ("lhc-tools-moreResults", "lhc-tools-searchCount", "lhc-tools-searchHint"):
        template = re.search(rf'<div id="{element}">([^<]*)', src)
        if template:
            texts.add(template.group(1).strip())
    texts |= {_js_string(m) for m in re.findall(r'screenReaderLog\("((?:[^"\\]|\\.)+)"', src)}
    texts |= set(re.findall(r'"((?:Set values for|Hiding|Showing) )"', src))
    if '"title","Required"' in src or "title=\"Required\"" in src:
        texts.add("Required")
    # the date picker's weekday and month names (its date-fns en-US locale, inlined in the bundle)
    for names in re.findall(r'(?:short|abbreviated|wide):\[((?:"[A-Za-z]{2,}",){6,11}"[A-Za-z]{2,}")\]', src):
        texts |= set(json.loads(f"[{names}]"))
    clean = {text.split("\\x3c")[0].split("<")[0] for text in texts}
    return {part for text in clean for part in fragments(text) if len(part) >= 2}


def fragments(text: str) -> list[str]:
    """The fixed parts of a text with placeholders ({0}, {lformsParam}), long enough to be telling."""
    parts = [p.strip(" .:,") for p in re.split(r"\{\w+\}", text)]
    return [p for p in parts if p]


# Text on the page: visible text nodes, the user-facing attributes of visible elements, and the
# renderer's screen-reader log (not visible, but spoken). Content marked with another language
# (lang="nl" / lang="en" on an element) is left out: it is correctly labelled as such.
PAGE_TEXTS = """(language) => {
  const other = (el) => { const holder = el.closest('[lang]'); return holder && holder !== document.documentElement
                          && !String(holder.getAttribute('lang')).startsWith(language); };
  const shown = (el) => el.checkVisibility({visibilityProperty: true, opacityProperty: false});
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!el || !n.data.trim() || ['SCRIPT', 'STYLE', 'TEXTAREA'].includes(el.tagName)) continue;
    if (el.closest('#reader_log')) continue;
    if (!shown(el) || other(el)) continue;
    out.push(n.data.trim());
  }
  for (const el of document.body.querySelectorAll('[placeholder], [title], [aria-label], [alt]')) {
    if (!shown(el) || other(el)) continue;
    for (const name of ['placeholder', 'title', 'aria-label', 'alt']) {
      const v = el.getAttribute(name);
      if (v && v.trim()) out.push(v.trim());
    }
  }
  const log = document.getElementById('reader_log');
  if (log) for (const p of log.children) out.push(p.textContent.trim());
  return out;
}"""


def foreign_texts(page: Any, language: str, forbidden: set[str]) -> list[str]:
    """The texts of `forbidden` found on the page: a whole text, or inside a longer one when it has
    more than one word (one English word inside a Dutch sentence may be a name)."""
    shown = page.evaluate(PAGE_TEXTS, language)
    found = []
    for text in shown:
        for bad in forbidden:
            if text == bad or (" " in bad and len(bad) >= 8 and bad in text):
                found.append(f"{bad!r} in {text[:120]!r}")
    return sorted(set(found))


# What a GP must never read: our codes, FHIR ids and references, raw code-system codes.
BARE = re.compile(r"\b(?:criterion|feature)-[a-z0-9-]+\b|urn:uuid:|\bambulatory\b|\bAMB\b"
                  r"|\b(?:QuestionnaireResponse|Patient|Practitioner|Encounter|Condition|Procedure|MedicationStatement"
                  r"|MedicationRequest|Task|ServiceRequest|CarePlan|CareTeam|Bundle|Composition)/[A-Za-z0-9.-]+")


def bare_codes(page: Any) -> list[str]:
    """Texts on the page (any language) that show a bare code or id."""
    return sorted({text[:120] for text in page.evaluate(PAGE_TEXTS, "") if BARE.search(text)})


def app_strings(page: Any) -> dict[str, dict[str, Any]]:
    """The app's own texts per language (web/js/i18n.js, as loaded by the page)."""
    strings: dict[str, dict[str, Any]] = page.evaluate("import('./js/i18n.js').then((m) => m.STRINGS)")
    return strings


def flatten(strings: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in strings.items():
        if isinstance(value, dict):
            out.update({f"{key}.{k}": str(v) for k, v in flatten(value).items()})
        else:
            out[key] = str(value)
    return out


def language_lists(page: Any) -> tuple[set[str], set[str]]:
    """(English texts a Dutch page must not show, Dutch texts an English page must not show)."""
    strings = app_strings(page)
    nl, en = flatten(strings["nl"]), flatten(strings["en"])
    english = renderer_english_texts()
    dutch: set[str] = set()
    for key in en:
        if key in nl and nl[key] != en[key]:
            english |= {f for f in fragments(en[key]) if len(f) >= 6}
            dutch |= {f for f in fragments(nl[key]) if len(f) >= 6}
    renderer_nl = page.evaluate("alkRendererLocale.NL")
    for key, value in renderer_nl.items():
        if key in FORMAT_KEYS:
            continue
        for text in (value.values() if isinstance(value, dict) else [value]):
            dutch |= set(fragments(str(text)))
    dutch |= set(page.evaluate("import('./js/renderer-texts.js').then((m) => m.dutchRendererTexts())"))
    # A text that reads the same in both languages is in neither list.
    return english - dutch, dutch - english
