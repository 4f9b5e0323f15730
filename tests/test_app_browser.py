"""The clinician app end to end in headless Debian chromium (playwright, system browser).

A test EHR (tests/test_app_ehr.py: SMART authorization + FHIR server with three example patients)
and the alk-fhir service (serving /app/, the knowledge and $apply) run on 127.0.0.1 (see
tests/app_support.py). The EHR launches the app with appContext naming a Questionnaire or a view;
the tests answer forms as a GP would and read what the EHR received and what the app shows:
- a form opens with the patient's latest answers, pre-population fills only what they leave open
  (marked "uit het dossier"), and a save is a new version that keeps every earlier answer;
- validation errors are Dutch, next to the field, with focus moved there; the confirmation of a
  save is next to the button, in a live region, with a link to the updated view;
- the results view starts with a one-line conclusion and the urgent advice, then the advice in
  guideline order; each advice links to its section of the guideline page and offers its action;
- the explanatory model and the AMBIT grid as tables; the case overview inline with its date;
- launch failures show a message, never a blank page.
Screenshots go to test-artifacts/. tests/test_app_quality.py checks axe, language and layout.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date
from typing import Any
from urllib.parse import urlencode

import pytest
import requests

from app_support import (
    ANNA,
    CARLA,
    CRITERIA_Q,
    DIRK,
    MODEL_Q,
    AppPage,
    Stack,
    answers,
    launch_url,
    start_stack,
)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from start_stack(tmp_path_factory.mktemp("app"))


@pytest.fixture()
def app(stack: Stack) -> Iterator[AppPage]:
    stack.fresh()
    page = AppPage(stack)
    try:
        yield page
    finally:
        page.close()


def saved(stack: Stack, response_id: str) -> dict[str, Any]:
    found = stack.ehr.resources.get(("QuestionnaireResponse", response_id))
    assert found is not None, f"QuestionnaireResponse/{response_id} is not on the test EHR"
    return found


def dutch_day(value: str) -> str:
    y, m, d = value[:10].split("-")
    return f"{d}-{m}-{y}"


def items_of(stack: Stack, canonical: str) -> dict[str, dict[str, Any]]:
    q = stack.package.resolve(canonical)
    assert q is not None
    out: dict[str, dict[str, Any]] = {}

    def walk(items: list[dict[str, Any]]) -> None:
        for item in items:
            out[item["linkId"]] = item
            walk(item.get("item", []))

    walk(q["item"])
    return out


def apply_for(stack: Stack, patient: str) -> dict[str, Any]:
    """$apply on the service for a patient's record as the EHR holds it (what the app sends)."""
    record = [r for (_, _), r in stack.ehr.resources.items()
              if r.get("resourceType") != "Bundle" and stack.ehr.in_compartment(r, patient)]
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "subject", "valueString": f"Patient/{patient}"},
        {"name": "today", "valueDate": date.today().isoformat()},
        {"name": "practitioner", "valueString": "Practitioner/prac-gp-jansen"},
        {"name": "data", "resource": {"resourceType": "Bundle", "type": "collection",
                                      "entry": [{"resource": r} for r in record]}}]}
    resp = requests.post(f"{stack.service}/fhir/PlanDefinition/$apply", json=body, timeout=30)
    assert resp.status_code == 200, resp.text[:300]
    return dict(resp.json())


def actions_of(careplan: dict[str, Any]) -> list[dict[str, Any]]:
    group = next(r for r in careplan["contained"] if r["resourceType"] == "RequestGroup")
    out: list[dict[str, Any]] = []

    def walk(actions: list[dict[str, Any]]) -> None:
        for action in actions:
            out.append(action)
            walk(action.get("action", []))

    walk(group.get("action", []))
    return out


def test_first_criteria_form_prefills_marks_and_saves_with_one_criterion(stack: Stack, app: AppPage) -> None:
    # The CDS card's smart link: appContext names the Questionnaire (format of alk_fhir.cds.cards).
    app.open(launch_url(stack, {"questionnaire": CRITERIA_Q, "patient": f"Patient/{ANNA}"}))
    page = app.page
    assert page.locator("#patient-banner").inner_text().startswith("Anna de Vries")
    assert "12-03-1978" in page.locator("#patient-banner").inner_text()  # dd-mm-jjjj
    assert page.locator("#tab-forms").get_attribute("aria-selected") == "true"
    assert page.evaluate("document.activeElement.id") == "form-title"  # focus moved to the opened form
    assert page.locator("#form-origin").inner_text() == "Nog niet eerder ingevuld voor deze patiënt."
    # enableWhen: everything below the trigger question is hidden until ALK is answered "yes"
    assert page.locator('[id="criterion-1/1/1"]').count() == 0
    app.radio("alk-present/1/1", "true")
    # pre-population from the EHR (launchContext patient + x-fhir-query + initialExpression), marked
    assert page.locator('[id="main-complaints/1/1"]').input_value() == "Fibromyalgie"
    assert app.checked("feature-many-care-contacts/1/1", "true")
    assert page.locator('[id="active-medication-count/1/1"]').input_value() == "3"
    for element in ("main-complaints/1/1", "feature-many-care-contacts/1/1", "active-medication-count/1/1"):
        badge = page.locator(f'[id="from-record-{element}"]')
        assert badge.inner_text() == "uit het dossier", element
        assert f"from-record-{element}" in (page.locator(f'[id="item-{element}"] input, [id="item-{element}"] textarea')
                                            .first.get_attribute("aria-describedby") or "")
    assert page.locator("#prefill-note").is_visible()
    assert page.locator('[id="from-record-feature-duration/1/1"]').count() == 0  # not pre-populated
    # answering one criterion is enough: the package asks for no criterion in particular
    items = items_of(stack, CRITERIA_Q)
    assert not any(items[f"criterion-{n}"].get("required") for n in (1, 2, 3))
    assert page.locator('[id="criterion-1-treatments/1/1"]').count() == 0
    app.pick("criterion-2/1/1", "Voldaan")
    page.locator('[id="criterion-2-treatments/1/1"]').wait_for(state="visible")
    # changing a pre-filled answer takes away its mark
    app.fill("main-complaints/1/1", "Fibromyalgie; moeheid")
    page.locator('[id="from-record-main-complaints/1/1"]').wait_for(state="detached")
    app.shot("criteria-form")
    response = saved(stack, app.submit())

    assert response["questionnaire"].split("|")[0] == CRITERIA_Q
    assert response["status"] == "completed" and response["subject"] == {"reference": f"Patient/{ANNA}"}
    assert response["author"] == {"reference": "Practitioner/prac-gp-jansen"}  # fhirUser of the id_token
    found = answers(response)
    assert found["alk-present"] == [{"valueBoolean": True}]
    assert found["criterion-2"][0]["valueCoding"]["code"] == "criterion-met"
    assert "criterion-1" not in found and "criterion-3" not in found
    assert found["main-complaints"] == [{"valueString": "Fibromyalgie; moeheid"}]
    assert found["feature-many-care-contacts"] == [{"valueBoolean": True}]
    assert found["active-medication-count"] == [{"valueInteger": 3}]
    assert any(line.startswith("create QuestionnaireResponse/") for line in stack.ehr.log)

    # the confirmation sits next to the button, in a live region, and links to the updated view
    status = page.locator("#form-status")
    assert status.get_attribute("role") == "status"
    assert re.fullmatch(r"Opgeslagen in het dossier op \d\d-\d\d-\d{4} om \d\d:\d\d\.", status.inner_text())
    assert page.locator(".actions #submit-form + #form-status").count() == 1
    assert "QuestionnaireResponse" not in page.locator("#panel-forms").inner_text()  # never an id
    page.locator("#view-updated").click()
    app.ready()
    app.unfold()
    assert page.locator("#tab-results").get_attribute("aria-selected") == "true"
    assert page.locator("#conclusion").inner_text().startswith("Hardnekkige ALK: criterium ")
    criterion = page.locator('#assessment tr[data-criterion="criterion-2"]')
    assert criterion.locator(".badge").get_attribute("data-code") == "criterion-met"
    today = date.today().strftime("%d-%m-%Y")
    assert f"Antwoord in de vragenlijst: ‘Voldaan’, gegeven op {today}" in criterion.inner_text()
    assert "(criterion-2)" not in criterion.inner_text()
    assert app.problems == []


def test_required_answer_missing_error_in_dutch_next_to_the_field_with_focus(stack: Stack, app: AppPage) -> None:
    app.open(launch_url(stack, {"questionnaire": CRITERIA_Q}))
    page = app.page
    items = items_of(stack, CRITERIA_Q)
    assert items["alk-present"].get("required") is True
    page.click("#submit-form")
    error = page.locator('[id="error-alk-present/1/1"]')
    error.wait_for(state="visible")
    assert error.inner_text().strip() == "Beantwoord deze vraag."
    # next to the field: inside the question's own row, and the field points at it
    assert page.locator('[id="item-alk-present/1/1"] [id="error-alk-present/1/1"]').count() == 1
    focused = page.evaluate("document.activeElement.closest('lhc-item')?.id")
    assert focused == "item-alk-present/1/1"
    assert page.evaluate("document.activeElement.getAttribute('aria-invalid')") == "true"
    assert "error-alk-present/1/1" in page.evaluate("document.activeElement.getAttribute('aria-describedby')")
    summary = page.locator("#form-errors")
    assert summary.inner_text().startswith("Nog niet opgeslagen. Vul eerst in:")
    assert items["alk-present"]["text"] in summary.inner_text()
    assert "requires a value" not in page.locator("body").inner_text()
    assert not any(line.startswith("create QuestionnaireResponse/") for line in stack.ehr.log[-5:])
    app.shot("criteria-form-error")
    # answering the question takes the error away; the save then goes through
    app.radio("alk-present/1/1", "false")
    error.wait_for(state="detached")
    assert answers(saved(stack, app.submit()))["alk-present"] == [{"valueBoolean": False}]
    assert app.problems == []


def test_reopening_and_resaving_keeps_every_earlier_answer(stack: Stack, app: AppPage) -> None:
    earlier = stack.responses(CARLA, CRITERIA_Q)
    assert len(earlier) == 1
    before = answers(earlier[0])
    assert len([k for k in before if k.startswith("feature-")]) >= 8
    app.open(launch_url(stack, {"questionnaire": CRITERIA_Q}, patient=CARLA))
    page = app.page
    assert page.locator("#form-origin").inner_text().startswith(
        f"Geopend met de laatste antwoorden, van {dutch_day(earlier[0]['authored'])}.")
    # every earlier answer is in the form
    assert app.checked("alk-present/1/1", "true")
    for link, values in before.items():
        value = values[0]
        element = page.locator(f'[id^="item-{link}/"]').first
        assert element.count() == 1, f"{link} is not shown"
        if "valueBoolean" in value:
            field = str(element.get_attribute("id")).removeprefix("item-")
            assert app.checked(field, str(value["valueBoolean"]).lower()), link
    assert page.locator('[id^="criterion-2/"]').first.input_value() == "Voldaan"
    # pre-population only where the earlier response has no answer; those items are marked
    marked = {m.split("/")[0].removeprefix("from-record-")
              for m in page.locator(".from-record").evaluate_all("els => els.map(e => e.id)")}
    assert marked and not marked & set(before)
    # change one answer, save: the new version holds that change and every other earlier answer
    app.pick(page.locator('[id^="criterion-1/"]').first.get_attribute("id"), "Voldaan")
    first = saved(stack, app.submit())
    after = answers(first)
    for link, values in before.items():
        if link != "criterion-1":
            assert after.get(link) == values, f"{link}: {values} became {after.get(link)}"
    assert after["criterion-1"][0]["valueCoding"]["code"] == "criterion-met"
    assert len(stack.responses(CARLA, CRITERIA_Q)) == 2
    app.shot("criteria-form-reopened")

    # open it again from a new launch and save without a change: nothing is lost either
    again = AppPage(stack)
    try:
        again.open(launch_url(stack, {"questionnaire": CRITERIA_Q}, patient=CARLA))
        assert again.page.locator("#form-origin").inner_text().startswith(
            f"Geopend met de laatste antwoorden, van {date.today().strftime('%d-%m-%Y')}.")
        second = saved(stack, again.submit())
        assert answers(second) == after
        # the results view shows which answers came from which date
        again.page.locator("#view-updated").click()
        again.ready()
        again.unfold()
        dates = again.page.locator("#answer-dates").inner_text()
        assert dutch_day(earlier[0]["authored"]) in dates and date.today().strftime("%d-%m-%Y") in dates
        row = again.page.locator('#assessment tr[data-criterion="criterion-3"]').inner_text()
        assert f"gegeven op {dutch_day(earlier[0]['authored'])}" in row  # unchanged since the first version
        row = again.page.locator('#assessment tr[data-criterion="criterion-1"]').inner_text()
        assert f"gegeven op {date.today().strftime('%d-%m-%Y')}" in row
        assert again.problems == []
    finally:
        again.close()
    assert app.problems == []


def test_a_refused_prefill_query_leaves_the_earlier_answers_and_says_so(stack: Stack, app: AppPage) -> None:
    def refuse(route: Any) -> None:
        route.fulfill(status=403, content_type="application/fhir+json", body=json.dumps(
            {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "forbidden",
                                                            "diagnostics": "Encounter is not shared with this app"}]}))

    app.page.route("**/fhir/Encounter?*", refuse)
    app.open(launch_url(stack, {"questionnaire": CRITERIA_Q}, patient=CARLA))
    page = app.page
    assert app.checked("alk-present/1/1", "true")
    assert page.locator('[id^="criterion-2/"]').first.input_value() == "Voldaan"
    problem = page.locator("#prefill-problems")
    assert problem.is_visible() and problem.inner_text().startswith("Niet alles kon uit het dossier worden ingevuld")
    # what the other queries give is still filled in and marked
    assert page.locator('[id^="from-record-main-complaints/"]').count() == 1
    # the refused request itself, and the renderer's note that it could not load it
    app.problems = [p for p in app.problems if "403" not in p and "from Encounter?" not in p]
    assert app.problems == []


def test_results_conclusion_first_then_urgent_advice_then_guideline_order(stack: Stack, app: AppPage) -> None:
    urgent_by_patient = {p: [a["id"] for a in actions_of(apply_for(stack, p)) if a.get("priority") in
                             ("urgent", "asap", "stat")] for p in (ANNA, CARLA, DIRK)}
    patient = next((p for p, ids in urgent_by_patient.items() if ids), None)
    if patient is None:
        pytest.skip("no example patient gets an urgent advice from the package as it is now")
    app.open(launch_url(stack, {"view": "results"}, patient=patient))
    app.unfold()
    page = app.page
    first = page.locator("main article.advice").first
    assert first.get_attribute("data-priority") in ("urgent", "asap", "stat")
    assert first.get_attribute("data-action") in urgent_by_patient[patient]
    order = page.evaluate("""() => [...document.querySelectorAll(
        '#panel-results h1, #conclusion, #urgent, #advice, #assessment')].map((e) => e.id || e.tagName)""")
    assert order == ["view-title", "conclusion", "urgent", "advice", "assessment"]
    shown_urgent = page.locator("#urgent article.advice").evaluate_all("els => els.map(e => e.dataset.action)")
    assert sorted(shown_urgent) == sorted(urgent_by_patient[patient])
    assert page.locator("#advice article.advice[data-priority=urgent]").count() == 0  # not twice
    # advice titles are headings; the rest follows the guideline's section order
    for article in page.locator("article.advice").all():
        assert article.locator(":scope > .advice-title").evaluate("e => /^H[3-6]$/.test(e.tagName)")
    sections = page.locator("#advice details.advice-group > article.advice").evaluate_all(
        "els => els.map(e => e.querySelector(':scope > .source a')?.getAttribute('href')?.split('#section-')[1])")
    keys = [tuple(int(x) for x in s.split(".")) for s in sections if s]
    assert keys == sorted(keys)
    app.shot("results-urgent-first")
    assert app.problems == []


def test_conclusion_line_names_the_criteria_met(stack: Stack, app: AppPage) -> None:
    app.open(launch_url(stack, {"view": "results"}, patient=CARLA))
    app.unfold()
    page = app.page
    # Carla's criteria form: criteria 2 and 3 met, criterion 1 unknown
    assert page.locator("#conclusion strong").inner_text() == "Hardnekkige ALK: criterium 2 en 3 voldaan"
    advice = page.locator('article.advice[data-action="persistent-alk"]')
    assert "Aanleiding: Hardnekkige ALK: criterium 2 en 3 voldaan" in advice.locator(":scope > .trigger").inner_text()
    page.select_option("#lang-select", "en")
    app.ready()
    app.unfold()
    assert page.locator("#conclusion strong").inner_text() == "Persistent ALK: criteria 2 and 3 met"
    assert page.locator("#tab-results").inner_text() == "Assessment and advice"
    english = page.locator('article.advice[data-action="persistent-alk"]').inner_text()
    assert "Persistent ALK: steps to (re)consider" in english
    app.shot("results-en")
    assert app.problems == []


def test_every_advice_links_to_its_section_and_offers_its_action(stack: Stack, app: AppPage) -> None:
    app.open(launch_url(stack, {"view": "results"}))
    app.unfold()
    page = app.page
    articles = page.locator("article.advice").all()
    assert articles
    guideline = requests.get(f"{stack.service}/app/guideline.html?lang=nl", timeout=10)
    assert guideline.status_code == 200 and "script-src 'self'" in guideline.headers["content-security-policy"]
    for article in articles:
        link = article.locator(":scope > .source a")
        assert link.count() == 1, article.get_attribute("data-action")
        href = link.get_attribute("href") or ""
        assert href.startswith("guideline.html?lang=nl#section-")
        code = href.split("#section-")[1]
        assert f'id="section-{code}"' in guideline.text
        assert link.inner_text().startswith(("Handreiking §", "§"))
        assert link.get_attribute("target") == "_blank" and "nieuw venster" in link.inner_text()
    # the form an advice names opens from the advice, with focus on the form
    model = page.locator('article.advice[data-action="explanatory-model"] .open-form')
    model_form = stack.package.resolve(MODEL_Q)
    assert model_form is not None
    assert model.inner_text() == f"Open vragenlijst: {model_form['title']}"
    # a proposed request is created in the EHR from the advice (the case coordinator: one draft Task for the
    # clinician to complete; no CareTeam that appoints the user, issue 21)
    coordinator = page.locator('article.advice[data-action="case-coordinator"]')
    coordinator.locator("button", has_text="Maak aan in het dossier").click()
    coordinator.locator(".action-status", has_text="Aangemaakt in het dossier").wait_for()
    tasks = [r for (t, _), r in stack.ehr.resources.items()
             if t == "Task" and r["for"] == {"reference": f"Patient/{ANNA}"}]
    teams = [r for (t, _), r in stack.ehr.resources.items() if t == "CareTeam"
             and r.get("subject") == {"reference": f"Patient/{ANNA}"}]
    assert len(tasks) == 1 and teams == []
    assert tasks[0]["intent"] == "proposal" and tasks[0]["status"] == "draft"
    assert '"reference": "#' not in json.dumps(tasks)  # nothing points into the $apply result
    model.click()
    app.ready()
    assert page.locator("#tab-forms").get_attribute("aria-selected") == "true"
    assert page.evaluate("document.activeElement.id") == "form-title"
    assert page.locator('[id="main-complaint/1"]').is_visible()
    # the guideline page itself: one h1, a section per code, in Dutch and English
    app.page.goto(f"{stack.service}/app/guideline.html?lang=en#section-3.1")
    assert app.page.locator("h1").count() == 1
    assert "Case coordinator" in app.page.locator('[id="section-3.1"]').inner_text()
    assert app.problems == []


def test_advice_names_the_facts_that_triggered_it(stack: Stack, app: AppPage) -> None:
    """The engine's $apply names, per advice, the facts its condition read (extension alk-trigger on the
    RequestGroup action): the polypharmacy advice says how many drugs and which."""
    statements = [r for r in stack.records[DIRK] if r["resourceType"] == "MedicationStatement"][:2]
    app.open(launch_url(stack, {"view": "results"}, patient=DIRK))
    app.unfold()
    text = app.page.locator('article.advice[data-action="medication-review"] > .trigger').inner_text()
    names = [s["medicationCodeableConcept"].get("text") or s["medicationCodeableConcept"]["coding"][0]["display"]
             for s in statements]
    assert text.startswith("Aanleiding: Actieve geneesmiddelen: 12 (")
    for name in names:
        assert name in text
    assert "MedicationStatement/" not in text
    assert app.problems == []


def _walk(actions: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for action in actions:
        yield action
        yield from _walk(action.get("action", []))


def test_explanatory_model_table_and_ambit_grid(stack: Stack, app: AppPage) -> None:
    app.open(launch_url(stack, {"questionnaire": MODEL_Q}))
    page = app.page
    app.fill("main-complaint/1", "Pijn in armen en benen")
    app.fill("shared-goal/1", "Weer een dag per week werken")
    app.fill("bps-bio-predisposing/1/1/1", "Hypermobiliteit")
    page.locator('[id="add-bps-bio-predisposing/1/1/1"]').click()
    app.fill("bps-bio-predisposing/1/1/2", "Slecht slapen")
    app.fill("bps-psycho-perpetuating/1/1/1", "Angst om te bewegen")
    app.fill("bps-social-precipitating/1/1/1", "Verlies van werk")
    app.shot("model-form")
    model = answers(saved(stack, app.submit()))
    assert [a["valueString"] for a in model["bps-bio-predisposing"]] == ["Hypermobiliteit", "Slecht slapen"]
    assert page.locator("#view-updated").inner_text() == "Bekijk het bijgewerkte verklaringsmodel"
    page.locator("#view-updated").click()
    app.ready()
    app.unfold()
    assert page.locator("#tab-model").get_attribute("aria-selected") == "true"
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

    # the model form reopens with these answers; the AMBIT grid is new
    app.tab("forms")
    app.open_form("alk-explanatory-model")
    assert page.locator('[id="bps-bio-predisposing/1/1/2"]').input_value() == "Slecht slapen"
    app.open_form("alk-ambit-grid")
    app.pick("stakeholder-kind/1/1", "Patiënt")
    app.fill("stakeholder-name/1/1", "Anna de Vries")
    app.fill("problem/1/1", "Ik heb overal pijn")
    app.fill("expectations/1/1", "Een diagnose")
    page.locator('[id="add-stakeholder/1"]').click()
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
    # the AMBIT form reopens with both stakeholders (a repeating group)
    app.tab("forms")
    app.open_form("alk-ambit-grid")
    assert page.locator('[id="stakeholder-name/2/1"]').input_value() == "dr. Marieke Jansen"
    assert app.problems == []


def test_language_switch_keeps_the_unsaved_answers_of_an_open_form(stack: Stack, app: AppPage) -> None:
    app.open(launch_url(stack, {"questionnaire": CRITERIA_Q}))
    page = app.page
    app.radio("alk-present/1/1", "true")
    app.pick("criterion-3/1/1", "Voldaan")
    app.set_language("en")
    assert page.locator("#form-title").inner_text() == "Persistent ALK: criteria, features and situation"
    assert app.checked("alk-present/1/1", "true")
    assert page.locator('[id="criterion-3/1/1"]').input_value() == "Met"
    assert page.locator('[id="item-alk-present/1/1"]').inner_text().count("Yes") == 1
    assert page.locator('[id="from-record-main-complaints/1/1"]').inner_text() == "from the record"
    response = answers(saved(stack, app.submit()))
    assert response["criterion-3"][0]["valueCoding"]["code"] == "criterion-met"
    assert response["alk-present"] == [{"valueBoolean": True}]
    assert app.problems == []


def test_case_overview_is_inline_with_its_date_and_a_notice_when_answers_are_newer(stack: Stack, app: AppPage) -> None:
    app.open(launch_url(stack, {"view": "overview"}))
    page = app.page
    document = next(r for (t, _), r in stack.ehr.resources.items() if t == "Bundle")
    made = document["entry"][0]["resource"]["date"]
    assert page.locator("#overview-date").inner_text().startswith(f"Overzicht van {dutch_day(made)}")
    assert page.locator("iframe").count() == 0
    overview = page.locator("#overview")
    assert overview.get_attribute("lang") == "nl"
    assert "Fibromyalgie" in page.locator("#overview-complaints").inner_text()
    assert overview.evaluate("e => getComputedStyle(e).overflowY") == "visible"
    assert page.locator("#overview-newer").count() == 0
    assert "urn:uuid" not in page.locator("#panel-overview").inner_text()
    assert any(line.startswith("search Bundle ") and "composition.patient=Patient%2Fpat-anna" in line
               for line in stack.ehr.log)
    app.shot("overview")
    # answers saved after the overview was made: the view says the overview is older
    app.tab("forms")
    app.open_form("alk-criteria")
    app.radio("alk-present/1/1", "true")
    app.submit()
    app.tab("overview")
    notice = page.locator("#overview-newer").inner_text()
    assert notice.startswith("Dit overzicht is ouder dan de laatste antwoorden in het dossier")
    criteria_form = stack.package.resolve(CRITERIA_Q)
    assert criteria_form is not None
    assert f"{criteria_form['title']} ({date.today().strftime('%d-%m-%Y')})" in notice
    assert app.problems == []


def test_standalone_launch_and_keyboard_tabs(stack: Stack, app: AppPage) -> None:
    app.open(f"{stack.service}/app/launch.html?{urlencode({'iss': stack.ehr.iss})}")
    page = app.page
    assert page.locator("#tab-results").get_attribute("aria-selected") == "true"
    page.locator("#tab-results").focus()
    page.keyboard.press("ArrowRight")
    app.ready()
    assert page.locator("#tab-forms").get_attribute("aria-selected") == "true"
    assert page.evaluate("document.activeElement.id") == "tab-forms"
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
