"""The clinician app end to end in headless Debian chromium (playwright, system browser).

A test EHR (tests/test_app_ehr.py: SMART authorization + FHIR server with the patient's data) and
the alk-fhir service (serving /app/, the knowledge and $apply) run on 127.0.0.1. The EHR launches
the app with appContext naming the criteria Questionnaire; the test fills the form (a dependent item
appears only after its trigger answer), submits, finds the QuestionnaireResponse on the EHR, and
sees the assessment and the advice; it fills the explanatory model and the AMBIT grid and sees
them as tables; it sees the shared case overview. Launch failures (bad iss, denied authorization,
expired token, no launch) must show a message, never a blank page. Screenshots at 1280×800 go to
test-artifacts/.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from alk_fhir.api.app import create_app
from alk_fhir.api.app_routes import build_problem
from alk_fhir.config import REPO_ROOT, Settings
from alk_fhir.knowledge import load_package
from test_app_ehr import Served, TestEhr, serve, start_ehr

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = REPO_ROOT / "test-artifacts"
VIEWPORT = {"width": 1280, "height": 800}
BASE = "https://alk-fhir.org/fhir"
CRITERIA_Q = f"{BASE}/Questionnaire/alk-criteria"
MODEL_Q = f"{BASE}/Questionnaire/alk-explanatory-model"
AMBIT_Q = f"{BASE}/Questionnaire/alk-ambit-grid"
PATIENT = "pat-anna"
EXAMPLE = REPO_ROOT / "examples" / "patients" / "patient-criterion1-failed-cbt-physio.json"



def patient_record() -> list[dict[str, Any]]:
    """Anna's example record plus enough recent contacts for the 'very many care contacts' feature."""
    bundle = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    resources = [e["resource"] for e in bundle["entry"]]
    today = date.today()
    for i in range(10):
        day = (today - timedelta(days=20 + 30 * i)).isoformat()
        resources.append({"resourceType": "Encounter", "id": f"enc-extra-{i}", "status": "finished",
                          "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                          "subject": {"reference": f"Patient/{PATIENT}"}, "period": {"start": day, "end": day}})
    return resources


@dataclasses.dataclass
class Stack:
    service: str
    ehr: TestEhr
    browser: Any


def _build_missing() -> str | None:
    if not CHROMIUM.exists():
        return "Debian chromium is not installed at /usr/bin/chromium (run scripts/ensure-chromium.sh as root)"
    problem = build_problem()
    if problem:
        return f"the app's npm build is missing ({problem}); run scripts/build-app.sh"
    return None


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    reason = _build_missing()
    if reason:
        pytest.skip(reason)
    sync_api: Any = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    from alk_fhir.overview import build_overview

    tmp = tmp_path_factory.mktemp("app")
    profiles = REPO_ROOT / "profiles"  # the package as shipped: its criteria form pre-populates (SDC)
    package = load_package(profiles)
    settings = dataclasses.replace(Settings.from_env(), database_url=f"sqlite:///{tmp / 'alk.sqlite3'}",
                                   package_dir=profiles)
    service = serve(create_app(settings, package))
    settings = dataclasses.replace(settings, base_url=service.base)
    ehr = TestEhr(redirect_uri=f"{service.base}/app/index.html", app_origin=service.base, default_patient=PATIENT)
    record = patient_record()
    ehr.load(record)
    document = build_overview({"resourceType": "Bundle", "type": "collection",
                               "entry": [{"resource": r} for r in record]}, package, today=date.today())
    document.setdefault("id", "overview-anna-1")
    ehr.load([document])
    served_ehr: Served = start_ehr(ehr)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            yield Stack(service.base, ehr, browser)
        finally:
            browser.close()
            served_ehr.stop()
            service.stop()


def launch_url(stack: Stack, app_context: dict[str, str] | None = None, iss: str | None = None) -> str:
    launch = stack.ehr.new_launch(PATIENT, json.dumps(app_context) if app_context else None)
    return f"{stack.service}/app/launch.html?{urlencode({'iss': iss or stack.ehr.iss, 'launch': launch})}"


class AppPage:
    """One fresh browser context (own sessionStorage) on the app, with console problems collected."""

    def __init__(self, stack: Stack) -> None:
        self.context = stack.browser.new_context(viewport=VIEWPORT, locale="nl-NL")
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

    def tab(self, view: str) -> None:
        self.page.click(f"#tab-{view}")
        self.ready()

    def pick(self, field_id: str, text: str) -> None:
        """Choose an answer in an LHC-Forms answer list (type, then click the match)."""
        field = self.page.locator(f'[id="{field_id}"]')
        field.click()
        field.fill(text)
        self.page.locator("#lhc-tools-searchResults li", has_text=text).first.click()

    def fill(self, field_id: str, text: str) -> None:
        self.page.locator(f'[id="{field_id}"]').fill(text)

    def submit(self) -> str:
        self.page.click("#submit-form")
        status = self.page.wait_for_selector("#form-status[data-saved-id]", timeout=30_000)
        assert status is not None
        return str(status.get_attribute("data-saved-id"))

    def shot(self, name: str, full_page: bool = False) -> Path:
        path = ARTIFACTS / f"app-{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        assert path.stat().st_size > 5_000
        return path

    def close(self) -> None:
        self.context.close()


@pytest.fixture()
def app(stack: Stack) -> Iterator[AppPage]:
    page = AppPage(stack)
    try:
        yield page
    finally:
        page.close()


def saved(stack: Stack, response_id: str) -> dict[str, Any]:
    found = stack.ehr.resources.get(("QuestionnaireResponse", response_id))
    assert found is not None, f"QuestionnaireResponse/{response_id} is not on the test EHR"
    return found


def answers(response: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}

    def walk(items: list[dict[str, Any]]) -> None:
        for item in items:
            for answer in item.get("answer", []):
                out.setdefault(item["linkId"], []).append(answer)
                walk(answer.get("item", []))
            walk(item.get("item", []))

    walk(response.get("item", []))
    return out


def test_ehr_launch_criteria_form_submit_assessment_and_advice(stack: Stack, app: AppPage) -> None:
    # The CDS card's smart link: appContext names the Questionnaire (format of alk_fhir.cds.cards).
    app_context = {"questionnaire": CRITERIA_Q, "patient": f"Patient/{PATIENT}"}
    app.open(launch_url(stack, app_context))
    page = app.page
    assert page.locator("#patient-banner").inner_text().startswith("Anna de Vries")
    assert page.locator("#tab-forms").get_attribute("aria-selected") == "true"
    # enableWhen: everything below the trigger question is hidden until ALK is answered "yes"
    assert page.locator('[id="criterion-1/1/1"]').count() == 0
    page.locator('[id="alk-present/1/1|true"]').click()
    # pre-population from the EHR (launchContext patient + x-fhir-query + initialExpression)
    assert page.locator('[id="main-complaints/1/1"]').input_value() == "Fibromyalgie"
    assert "ant-radio-wrapper-checked" in (page.locator('[id="feature-many-care-contacts/1/1|true"]')
                                           .get_attribute("class") or "")
    # three distinct active MedicationStatements in Anna's record (H §2.2 medication count)
    assert page.locator('[id="active-medication-count/1/1"]').input_value() == "3"
    # a dependent item appears only after its trigger answer
    assert page.locator('[id="criterion-1-treatments/1/1"]').count() == 0
    app.pick("criterion-1/1/1", "Voldaan")
    page.locator('[id="criterion-1-treatments/1/1"]').wait_for(state="visible")
    app.pick("criterion-2/1/1", "Niet voldaan")
    app.pick("criterion-3/1/1", "Onbekend")
    app.shot("criteria-form")
    response = saved(stack, app.submit())

    assert response["questionnaire"].split("|")[0] == CRITERIA_Q
    assert response["status"] == "completed" and response["subject"] == {"reference": f"Patient/{PATIENT}"}
    assert response["author"] == {"reference": "Practitioner/prac-gp-jansen"}  # fhirUser of the id_token
    found = answers(response)
    assert found["alk-present"] == [{"valueBoolean": True}]
    assert found["criterion-1"][0]["valueCoding"]["code"] == "criterion-met"
    assert found["criterion-2"][0]["valueCoding"]["code"] == "criterion-not-met"
    assert found["main-complaints"] == [{"valueString": "Fibromyalgie"}]
    assert found["feature-many-care-contacts"] == [{"valueBoolean": True}]
    assert found["active-medication-count"] == [{"valueInteger": 3}]
    assert any(line.startswith("create QuestionnaireResponse/") for line in stack.ehr.log)

    app.tab("results")
    criterion = page.locator('#assessment tr[data-criterion="criterion-1"]')
    assert criterion.locator(".badge").get_attribute("data-code") == "criterion-met"
    assert "antwoord in vragenlijst (criterion-1)" in criterion.inner_text()  # evidence: the new response
    assert "Cognitieve gedragstherapie" in criterion.inner_text()  # evidence: the record
    assert page.locator('#assessment tr[data-criterion="criterion-2"] .badge').get_attribute(
        "data-code") == "criterion-not-met"
    assert page.locator("#assessment .overall .badge").get_attribute("data-code") == "criterion-met"
    assert page.locator('#assessment li[data-feature="feature-many-care-contacts"]').is_visible()
    advice = page.locator('#advice li[data-action="persistent-alk"]')
    assert "Hardnekkige ALK: stappen om (opnieuw) te overwegen" in advice.inner_text()
    assert "Handreiking §2.5" in page.locator('#advice li[data-action="explanatory-model"]').inner_text()
    app.shot("results-nl")
    app.shot("results-nl-full", full_page=True)

    page.select_option("#lang-select", "en")
    app.ready()
    english = page.locator('#advice li[data-action="persistent-alk"]').inner_text()
    assert "Persistent ALK: steps to (re)consider" in english
    assert page.locator("#assessment .overall .badge").inner_text() == "Met"
    assert page.locator("#tab-results").inner_text() == "Assessment and advice"
    app.shot("results-en")
    # an advice's form opens from the advice (and back in Dutch for the rest of the tests)
    page.select_option("#lang-select", "nl")
    app.ready()
    page.locator('#advice li[data-action="explanatory-model"] button').click()
    app.ready()
    assert page.locator("#tab-forms").get_attribute("aria-selected") == "true"
    assert page.locator('[id="main-complaint/1"]').is_visible()
    assert app.problems == []


def test_explanatory_model_table_and_ambit_grid(stack: Stack, app: AppPage) -> None:
    app.open(launch_url(stack, {"questionnaire": MODEL_Q}))
    page = app.page
    app.fill("main-complaint/1", "Pijn in armen en benen")
    app.fill("shared-goal/1", "Weer een dag per week werken")
    app.fill("bps-bio-predisposing/1/1/1", "Hypermobiliteit")
    page.locator('[aria-controls="add-button-bps-bio-predisposing/1/1/1"]').click()
    app.fill("bps-bio-predisposing/1/1/2", "Slecht slapen")
    app.fill("bps-psycho-perpetuating/1/1/1", "Angst om te bewegen")
    app.fill("bps-social-precipitating/1/1/1", "Verlies van werk")
    app.shot("model-form")
    model = answers(saved(stack, app.submit()))
    assert [a["valueString"] for a in model["bps-bio-predisposing"]] == ["Hypermobiliteit", "Slecht slapen"]

    app.tab("model")
    table = page.locator("#bps-table")
    headers = table.locator("thead th").all_inner_texts()
    assert [h.split(" (")[0] for h in headers] == ["Kwetsbaarheidsfactoren", "Uitlokkende factoren",
                                                    "Instandhoudende/beïnvloedende factoren"]
    assert table.locator("tbody th").all_inner_texts() == ["Biologisch", "Psychologisch", "Sociaal"]
    assert table.locator('td[data-link="bps-bio-predisposing"] li').all_inner_texts() == ["Hypermobiliteit",
                                                                                           "Slecht slapen"]
    assert table.locator('td[data-link="bps-psycho-perpetuating"]').inner_text() == "Angst om te bewegen"
    assert table.locator('td[data-link="bps-social-precipitating"]').inner_text() == "Verlies van werk"
    assert table.locator('td[data-link="bps-social-perpetuating"]').inner_text() == "—"
    assert "Pijn in armen en benen" in page.locator("#panel-model dl.meta").inner_text()
    app.shot("model-table")

    app.tab("forms")
    page.locator('button[data-questionnaire="alk-ambit-grid"]').click()
    app.ready()
    app.pick("stakeholder-kind/1/1", "Patiënt")
    app.fill("stakeholder-name/1/1", "Anna de Vries")
    app.fill("problem/1/1", "Ik heb overal pijn")
    app.fill("expectations/1/1", "Een diagnose")
    page.locator('[aria-controls="add-button-stakeholder/1"]').click()
    assert page.locator('[id="stakeholder-discipline/2/1"]').count() == 0
    app.pick("stakeholder-kind/2/1", "Zorgverlener")
    app.fill("stakeholder-discipline/2/1", "Huisarts")  # enableWhen kind = professional
    app.fill("stakeholder-name/2/1", "dr. Marieke Jansen")
    app.fill("what-should-happen/2/1", "Samen een verklaringsmodel maken")
    app.fill("shared-conclusion/1", "Stappenplan met kleine doelen")
    app.shot("ambit-form")
    ambit = saved(stack, app.submit())
    assert len([i for i in ambit["item"] if i["linkId"] == "stakeholder"]) == 2

    app.tab("ambit")
    grid = page.locator("#ambit-grid")
    assert grid.locator("thead th").all_inner_texts() == [
        "Betrokkene", "Wat is volgens deze betrokkene het probleem?", "Wat is de verklaring?",
        "Wat moet er gebeuren?", "Wie moet het doen?", "Verwachtingen"]
    rows = grid.locator("tbody tr")
    assert rows.count() == 2
    assert rows.nth(0).locator("th").inner_text().splitlines() == ["Anna de Vries", "Patiënt"]
    assert rows.nth(0).locator('td[data-link="problem"]').inner_text() == "Ik heb overal pijn"
    assert rows.nth(0).locator('td[data-link="expectations"]').inner_text() == "Een diagnose"
    assert rows.nth(1).locator("th").inner_text().splitlines() == ["dr. Marieke Jansen", "Zorgverlener · Huisarts"]
    assert rows.nth(1).locator('td[data-link="what-should-happen"]').inner_text() == "Samen een verklaringsmodel maken"
    assert "Stappenplan met kleine doelen" in page.locator("#ambit-conclusion").inner_text()
    app.shot("ambit-grid")
    assert app.problems == []


def test_case_overview_is_rendered_from_the_ehr_document(stack: Stack, app: AppPage) -> None:
    app.open(launch_url(stack, {"view": "overview"}))
    frame = app.page.frame_locator("#overview-frame")
    assert "Anna de Vries" in frame.locator("h1").first.inner_text()
    assert frame.locator("section#complaints").inner_text().count("Fibromyalgie") >= 1
    assert app.page.locator("#overview-frame").get_attribute("sandbox") == ""  # no scripts in the document
    assert any(line.startswith("search Bundle ") and "composition.patient=Patient%2Fpat-anna" in line
               for line in stack.ehr.log)
    app.shot("overview")
    assert app.problems == []


def test_standalone_launch_and_keyboard_tabs(stack: Stack, app: AppPage) -> None:
    app.open(f"{stack.service}/app/launch.html?{urlencode({'iss': stack.ehr.iss})}")
    page = app.page
    assert page.locator("#tab-results").get_attribute("aria-selected") == "true"
    page.locator("#tab-results").focus()
    page.keyboard.press("ArrowRight")
    app.ready()
    assert page.locator("#tab-model").get_attribute("aria-selected") == "true"
    assert page.evaluate("document.activeElement.id") == "tab-model"
    page.keyboard.press("End")
    app.ready()
    assert page.locator("#tab-overview").get_attribute("aria-selected") == "true"
    assert app.problems == []


def test_launch_failures_show_a_message(stack: Stack, app: AppPage) -> None:
    page = app.page
    # bad iss: not https, not a URL, not a SMART server
    for iss, expected in ((("http://ehr.example.org/fhir"), "alleen https"), ("not a url", "geen geldig adres"),
                          (f"{stack.service}/nothing-here", "kon niet worden bereikt")):
        page.goto(f"{stack.service}/app/launch.html?{urlencode({'iss': iss, 'launch': 'x'})}")
        error = page.locator("#error")
        error.wait_for(state="visible", timeout=30_000)
        assert expected in error.inner_text(), (iss, error.inner_text())
    app.shot("launch-bad-iss")

    # denied authorization: the EHR redirects back with error=access_denied
    stack.ehr.deny = True
    try:
        page.goto(launch_url(stack))
        page.locator("#alert").wait_for(state="visible", timeout=30_000)
    finally:
        stack.ehr.deny = False
    assert "geweigerd" in page.locator("#alert").inner_text()
    assert page.locator("body").get_attribute("data-state") == "launch-failed"
    assert page.locator("#relaunch").is_visible()
    app.shot("launch-denied")

    # the redirect page opened without a launch
    fresh = AppPage(stack)
    try:
        fresh.page.goto(f"{stack.service}/app/index.html")
        fresh.page.locator("#alert").wait_for(state="visible", timeout=30_000)
        assert "zonder SMART-launch" in fresh.page.locator("#alert").inner_text()
    finally:
        fresh.close()

    # expired token: the next request gets 401 from the EHR
    app.open(launch_url(stack))
    stack.ehr.expire_tokens()
    app.tab("model")
    page.locator("#alert").wait_for(state="visible", timeout=30_000)
    assert "sessie bij het EPD is verlopen" in page.locator("#alert").inner_text()
    assert page.locator("body").get_attribute("data-state") == "expired"
    app.shot("launch-expired")
