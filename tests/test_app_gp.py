"""The clinician app as a GP uses it (issue #24), in headless Debian chromium, in Dutch and English, at
1280 and 390 px wide. One test per finding of the issue, worst first:

1. a lasting wish to die is on the first screen ("Let op"), with the advice that answers it;
2. typed dates are never lost: the Dutch and English forms are read, anything unreadable stays in
   the field with a message and nothing is saved; what is saved is checked against the Questionnaire;
3. risk medication is on the GP's screen, with the word "Risicomedicatie" and the drugs;
4. the first screen is what this patient needs: conclusion, safety, urgent advice with its reason,
   the rest folded per chapter of the guideline;
5. the case overview is worth sending: header, summary (conclusion and evidence, profile features,
   wish to die, consent as the results view says it, question, the sender's contact), no raw codes,
   a print button and a print stylesheet;
6. nothing scrolls sideways at 390 px;
7. texts: no trigger without a value, contacts newest first with their kind, "not assessed yet" for a
   patient never assessed, "H §" explained;
8. forms: guideline order, one name for the AMBIT grid, a short way to the save button, no "1:" in
   answer lists, the date picker's week from Monday, focus after saving, aria-describedby only to
   ids that exist.
The stack is tests/app_support.py's (service + test EHR with Anna, Carla and Dirk); screenshots go
to test-artifacts/. axe runs in tests/test_app_quality.py and here on the new states.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from app_support import (
    AMBIT_Q,
    ANNA,
    CARLA,
    CRITERIA_Q,
    DIRK,
    EXAMPLES,
    MODEL_Q,
    OVERVIEW_CONTACT,
    OVERVIEW_QUESTION,
    AppPage,
    Stack,
    answers,
    axe_source,
    launch_url,
    run_axe,
    start_stack,
)

pytestmark = pytest.mark.browser

WIDTHS = {1280: 800, 390: 844}  # width -> height of the screen
LANGS = ("nl", "en")
TEXT = {
    "nl": {"wish": "Duurzame doodswens: ja", "risk": "Risicomedicatie: 5", "safety": "Let op",
           "urgent": "Eerst doen", "trigger": "Aanleiding: ", "consent": "Toestemming voor consultatie: ja",
           "view-updated": "Bekijk de bijgewerkte beoordeling"},
    "en": {"wish": "Lasting wish to die: yes", "risk": "Risk medication: 5", "safety": "Take note",
           "urgent": "Do first", "trigger": "Why: ", "consent": "Consent to consultation: yes",
           "view-updated": "View the updated assessment"},
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from start_stack(tmp_path_factory.mktemp("app-gp"))


def page_for(stack: Stack, language: str, width: int) -> AppPage:
    stack.fresh()
    app = AppPage(stack, viewport={"width": width, "height": WIDTHS[width]})
    if language == "en":
        app.page.add_init_script("sessionStorage.setItem('alk-app-lang', 'en')")
    return app


@pytest.fixture(params=[(lang, width) for lang in LANGS for width in WIDTHS], ids=lambda p: f"{p[0]}-{p[1]}")
def app(stack: Stack, request: pytest.FixtureRequest) -> Iterator[AppPage]:
    language, width = request.param
    page = page_for(stack, language, width)
    page.language, page.width = language, width  # type: ignore[attr-defined]
    try:
        yield page
    finally:
        page.close()


def lang_of(app: AppPage) -> str:
    return str(app.language)  # type: ignore[attr-defined]


def no_sideways_scroll(app: AppPage) -> None:
    # the renderer switches a form to its narrow layout a moment after drawing it: wait for it to settle
    for _ in range(40):
        scroll, inner = app.page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        if scroll <= inner:
            return
        app.page.wait_for_timeout(100)
    raise AssertionError(f"{scroll} px of content in a {inner} px wide window")


def top_of(app: AppPage, selector: str) -> float:
    return float(app.page.locator(selector).evaluate("e => e.getBoundingClientRect().top"))


# 1 + 3 + 4 ---------------------------------------------------------------------------------------

def test_wish_to_die_is_on_the_first_screen_with_the_advice_that_answers_it(stack: Stack, app: AppPage) -> None:
    text = TEXT[lang_of(app)]
    app.open(launch_url(stack, {"view": "results"}, patient=CARLA))
    page = app.page
    safety = page.locator("#safety")
    assert safety.locator("h2").inner_text() == text["safety"]
    item = safety.locator('li[data-fact="wishToDie"]')
    assert item.inner_text().startswith(text["wish"])
    # first screen: right under the conclusion, above every advice, inside the window
    assert top_of(app, "#conclusion") < top_of(app, "#safety") < top_of(app, "#advice")
    assert top_of(app, '#safety li[data-fact="wishToDie"]') < WIDTHS[app.width]  # type: ignore[attr-defined]
    # the advice on the wish to die opens from there, folded or not
    link = item.locator("a").last
    target = (link.get_attribute("href") or "").removeprefix("#")
    assert target.startswith("advice-")
    link.click()
    title = page.locator(f'[id="{target}-title"]')
    assert title.is_visible()
    assert page.evaluate("document.activeElement.id") == f"{target}-title"
    no_sideways_scroll(app)
    app.shot(f"gp-wish-to-die-{lang_of(app)}-{app.width}")  # type: ignore[attr-defined]
    assert app.problems == []


def test_risk_medication_is_on_the_first_screen_by_name(stack: Stack, app: AppPage) -> None:
    text = TEXT[lang_of(app)]
    app.open(launch_url(stack, {"view": "results"}, patient=DIRK))
    item = app.page.locator('#safety li[data-fact="riskMedicationCount"]')
    shown = item.inner_text()
    assert shown.startswith(text["risk"])
    for drug in ("oxycodon", "tramadol", "oxazepam", "zolpidem", "pregabaline"):
        assert drug in shown.lower()
    for other in ("paracetamol", "omeprazol"):  # not risk medication
        assert other not in shown.lower()
    if lang_of(app) == "nl":
        assert "Risicomedicatie" in app.page.locator("#panel-results").inner_text()
    # with polypharmacy the medication review covers the risk medication: the item leads there
    link = item.locator('a[href="#advice-medication-review"]')
    assert link.count() == 1
    link.click()
    assert app.page.evaluate("document.activeElement.id") == "advice-medication-review-title"
    assert top_of(app, '#safety li[data-fact="riskMedicationCount"]') < WIDTHS[app.width]  # type: ignore[attr-defined]
    assert app.problems == []


def test_first_screen_is_conclusion_safety_urgent_then_folded_chapters(stack: Stack, app: AppPage) -> None:
    text = TEXT[lang_of(app)]
    app.open(launch_url(stack, {"view": "results"}, patient=DIRK))
    page = app.page
    order = page.evaluate("""() => [...document.querySelectorAll(
        '#panel-results h1, #conclusion, #safety, #urgent, #advice, #assessment')].map((e) => e.id)""")
    assert order == ["view-title", "conclusion", "safety", "urgent", "advice", "assessment"]
    assert page.locator("#urgent-title").inner_text() == text["urgent"]
    # every urgent advice says why, with a value
    for trigger in page.locator("#urgent article.advice > .trigger").all_inner_texts():
        assert trigger.startswith(text["trigger"]) and re.search(r": \S", trigger.removeprefix(text["trigger"]))
    assert page.locator("#urgent article.advice").count() >= 1
    # the rest: one folded group per chapter of the guideline, in guideline order, each naming its advice
    groups = page.locator("#advice details.advice-group")
    assert groups.count() >= 1
    chapters = groups.evaluate_all("els => els.map(e => e.dataset.chapter)")
    assert chapters == sorted(chapters, key=lambda c: int(c) if c else 99)
    assert all(not g.get_attribute("open") for g in groups.all())
    assert page.locator("#assessment").get_attribute("open") is None
    visible_words = len(page.locator("main").inner_text().split())
    assert visible_words < 400, visible_words  # was about 1,000 words before the GP could start
    # a group opens with a click and shows its advice with its source
    groups.first.locator("summary").click()
    assert groups.first.locator("article.advice").first.is_visible()
    assert page.locator("#guideline-note").inner_text().count("§2.2") == 1
    no_sideways_scroll(app)
    app.shot(f"gp-first-screen-{lang_of(app)}-{app.width}")  # type: ignore[attr-defined]
    assert app.problems == []


# 2 -------------------------------------------------------------------------------------------------

DATE_FIELD = '[id="last-somatic-workup/1/1"] input'
READABLE = {"nl": ["15-03-2024", "15-3-2024", "15032024", "2024-03-15"],
            "en": ["15/03/2024", "15-3-2024", "15 Mar 2024", "2024-03-15"]}
UNREADABLE = {"nl": ["31-02-2024", "12603-12-10", "15 maart"], "en": ["12/10/20263", "03/15/2024", "soon"]}
# 2024-03-15 as the form shows it: dd-mm-jjjj in Dutch; in English en-GB with the month's name, never
# the renderer's US MM/DD/YYYY (08/01/2025 reads 8 January in the Netherlands and the UK)
SHOWN = {"nl": "15-03-2024", "en": "15 Mar 2024"}


def type_date(app: AppPage, text: str, key: str) -> None:
    field = app.page.locator(DATE_FIELD)
    field.click()
    field.press("Control+a")
    field.type(text)
    field.press(key)


def test_typed_dates_are_read_and_saved(stack: Stack, app: AppPage) -> None:
    language = lang_of(app)
    for i, typed in enumerate(READABLE[language]):
        stack.fresh()
        app.open(launch_url(stack, {"questionnaire": CRITERIA_Q}, patient=CARLA))
        type_date(app, typed, "Tab" if i % 2 == 0 else "Enter")
        shown = app.page.locator(DATE_FIELD).input_value()
        assert shown == SHOWN[language], typed
        saved = answers(stack.ehr.resources[("QuestionnaireResponse", app.submit())])
        assert saved["last-somatic-workup"] == [{"valueDate": "2024-03-15"}], typed
        # the confirmation leads on: focus on the link to the updated view, not on <body>
        assert app.page.evaluate("document.activeElement.id") == "view-updated"
    # that link opens the assessment the saved date feeds
    assert app.page.locator("#view-updated").inner_text() == TEXT[language]["view-updated"]
    app.page.keyboard.press("Enter")
    app.ready()
    assert app.page.locator("#tab-results").get_attribute("aria-selected") == "true"
    assert app.problems == []


def test_typing_after_an_existing_date_is_refused_not_saved(stack: Stack, app: AppPage) -> None:
    """The English form once saved valueDate "12603-12-10" after a digit was typed behind the date it
    showed: a digit typed behind the date now stays in the field, refused, and nothing is written."""
    before = len(stack.responses(CARLA, CRITERIA_Q))
    app.open(launch_url(stack, {"questionnaire": CRITERIA_Q}, patient=CARLA))
    page = app.page
    field = page.locator(DATE_FIELD)
    shown = field.input_value()
    assert shown == ("01-08-2025" if lang_of(app) == "nl" else "1 Aug 2025")  # Carla's record, 2025-08-01
    field.click()
    field.press("End")
    field.type("3")
    field.press("Tab")
    page.wait_for_timeout(200)  # the picker puts its own text back a moment after the field is left
    assert field.input_value() == shown + "3"
    assert field.get_attribute("aria-invalid") == "true"
    assert shown + "3" in page.locator('[id="date-error-last-somatic-workup/1/1"]').inner_text()
    page.click("#submit-form")
    page.locator("#form-errors").wait_for()
    assert len(stack.responses(CARLA, CRITERIA_Q)) == before  # nothing written
    assert app.problems == []


def test_an_unreadable_date_stays_with_a_message_and_nothing_is_saved(stack: Stack, app: AppPage) -> None:
    language = lang_of(app)
    for typed in UNREADABLE[language]:
        stack.fresh()
        before = len(stack.responses(CARLA, CRITERIA_Q))
        app.open(launch_url(stack, {"questionnaire": CRITERIA_Q}, patient=CARLA))
        type_date(app, typed, "Tab")
        page = app.page
        field = page.locator(DATE_FIELD)
        page.wait_for_timeout(200)  # the picker puts its own text back a moment after the field is left
        assert field.input_value() == typed
        assert field.get_attribute("aria-invalid") == "true"
        message = page.locator('[id="date-error-last-somatic-workup/1/1"]')
        assert typed in message.inner_text()
        assert "date-error-last-somatic-workup/1/1" in (field.get_attribute("aria-describedby") or "")
        page.click("#submit-form")
        page.locator("#form-errors").wait_for()
        assert page.locator("#form-status").inner_text() == ""
        assert len(stack.responses(CARLA, CRITERIA_Q)) == before, typed  # nothing written
        assert page.evaluate("document.activeElement.closest('nz-date-picker')?.id") == "last-somatic-workup/1/1"
        # corrected: saved as typed, the message gone
        type_date(app, READABLE[language][0], "Tab")
        assert message.count() == 0
        saved = answers(stack.ehr.resources[("QuestionnaireResponse", app.submit())])
        assert saved["last-somatic-workup"] == [{"valueDate": "2024-03-15"}]
    assert app.problems == []


@pytest.mark.parametrize("width", list(WIDTHS))
def test_english_dates_are_day_first_and_a_us_date_is_refused_in_place(stack: Stack, width: int) -> None:
    """English reads dates as en-GB, day first, like the rest of the English app ("1 Aug 2025"): the
    form asks for DD/MM/YYYY, "15/03/2024" is saved as 2024-03-15 and shown with the month's name, and
    the US "03/15/2024" (no month 15) stays in the field, refused with a message, nothing written."""
    app = page_for(stack, "en", width)
    try:
        page = app.page
        app.open(launch_url(stack, {"questionnaire": CRITERIA_Q}, patient=CARLA))
        field = page.locator(DATE_FIELD)
        assert field.get_attribute("placeholder") == "DD/MM/YYYY"
        assert field.input_value() == "1 Aug 2025"  # Carla's record, 2025-08-01; not "08/01/2025"
        before = len(stack.responses(CARLA, CRITERIA_Q))
        type_date(app, "03/15/2024", "Tab")
        page.wait_for_timeout(200)  # the picker puts its own text back a moment after the field is left
        assert field.input_value() == "03/15/2024"
        assert field.get_attribute("aria-invalid") == "true"
        message = page.locator('[id="date-error-last-somatic-workup/1/1"]')
        assert "03/15/2024" in message.inner_text() and "15/03/2024" in message.inner_text()
        page.click("#submit-form")
        page.locator("#form-errors").wait_for()
        assert len(stack.responses(CARLA, CRITERIA_Q)) == before  # nothing written
        # typed day first, read day first: 15 March, not refused, shown with the month's name
        type_date(app, "15/03/2024", "Tab")
        assert message.count() == 0 and field.get_attribute("aria-invalid") is None
        assert field.input_value() == "15 Mar 2024"
        saved = answers(stack.ehr.resources[("QuestionnaireResponse", app.submit())])
        assert saved["last-somatic-workup"] == [{"valueDate": "2024-03-15"}]
        # reopened, the form shows what was saved; a day of 12 or less is read day first too, and
        # the field then shows which month that is
        app.open(launch_url(stack, {"questionnaire": CRITERIA_Q}, patient=CARLA))
        assert field.input_value() == "15 Mar 2024"
        type_date(app, "08/01/2025", "Tab")
        assert field.input_value() == "8 Jan 2025"
        saved = answers(stack.ehr.resources[("QuestionnaireResponse", app.submit())])
        assert saved["last-somatic-workup"] == [{"valueDate": "2025-01-08"}]
        no_sideways_scroll(app)
        assert app.problems == []
    finally:
        app.close()


def test_date_format_follows_a_language_switch_both_ways(stack: Stack) -> None:
    """The renderer keeps one language object: switching to English gives en-GB dates (not the
    shipped US format), switching back gives dd-mm-jjjj again, for the field and its placeholder."""
    app = page_for(stack, "nl", 1280)
    try:
        app.open(launch_url(stack, {"questionnaire": CRITERIA_Q}, patient=CARLA))
        field = app.page.locator(DATE_FIELD)
        for language, shown, placeholder in (("nl", "01-08-2025", "DD-MM-JJJJ"), ("en", "1 Aug 2025", "DD/MM/YYYY"),
                                             ("nl", "01-08-2025", "DD-MM-JJJJ")):
            if app.page.locator("#lang-select").input_value() != language:
                app.set_language(language)
            assert (field.input_value(), field.get_attribute("placeholder")) == (shown, placeholder), language
        assert app.problems == []
    finally:
        app.close()


def test_saved_answers_are_checked_against_the_questionnaire(stack: Stack) -> None:
    app = page_for(stack, "nl", 1280)
    try:
        app.open(launch_url(stack, {"questionnaire": CRITERIA_Q}, patient=CARLA))
        problems = app.page.evaluate("""async () => {
            const { checkResponse } = await import('./js/response-check.js');
            const q = {item: [{linkId: 'g', type: 'group', item: [
              {linkId: 'd', type: 'date'}, {linkId: 'n', type: 'integer'}, {linkId: 'b', type: 'boolean'}]}]};
            const qr = (answers) => ({item: [{linkId: 'g', item: answers}]});
            return {
              good: checkResponse(qr([{linkId: 'd', answer: [{valueDate: '2024-03-15'}]},
                                      {linkId: 'n', answer: [{valueInteger: 3}]}]), q),
              year: checkResponse(qr([{linkId: 'd', answer: [{valueDate: '12603-12-10'}]}]), q),
              day: checkResponse(qr([{linkId: 'd', answer: [{valueDate: '2024-02-31'}]}]), q),
              type: checkResponse(qr([{linkId: 'b', answer: [{valueString: 'ja'}]}]), q),
              unknown: checkResponse(qr([{linkId: 'x', answer: [{valueString: 'ja'}]}]), q),
            };
        }""")
        assert problems["good"] == []
        assert [p["problem"] for p in problems["year"]] == ["date"]
        assert [p["problem"] for p in problems["day"]] == ["date"]
        assert [p["problem"] for p in problems["type"]] == ["type"]
        assert [p["problem"] for p in problems["unknown"]] == ["unknown"]
    finally:
        app.close()


# 5 -------------------------------------------------------------------------------------------------

def test_case_overview_is_worth_sending(stack: Stack, app: AppPage) -> None:
    app.open(launch_url(stack, {"view": "overview"}, patient=CARLA))
    page = app.page
    doc = page.locator("#overview")
    assert doc.get_attribute("lang") == "nl"  # a Dutch document, in English too
    header = doc.locator("dl.facts").inner_text()
    for label in ("Patiënt", "BSN 999911144", "Datum", "Status", "Opgesteld door"):
        assert label in header
    summary = page.locator("#overview-summary").inner_text()
    assert "Conclusie hardnekkige ALK: criterium 2 en 3 voldaan" in summary
    assert "Profielschets, aanvullende kenmerken:" in summary and "Bedlegerig" in summary
    assert "Let op: duurzame doodswens vastgelegd" in summary
    assert "Toestemming van de patiënt voor consultatie: ja" in summary
    assert f"Vraag aan de collega: {OVERVIEW_QUESTION}" in summary
    assert "Contact afzender: Huisartsenpraktijk De Linde" in summary and OVERVIEW_CONTACT in summary
    consultations = page.locator("#overview-consultations").inner_text()
    assert "geen toestemming" not in consultations.lower() and "consultatie: ja" in consultations
    shown = page.locator("#panel-overview").inner_text()
    assert not re.search(r"\((?:ICD-10|ATC) [A-Z0-9.]+\)", shown), "raw codes in the overview"
    assert "outcome-" not in shown
    # printing: the button, and a print stylesheet that leaves only the document
    assert page.locator("#overview-print").is_visible()
    page.emulate_media(media="print")
    assert page.locator("header.top").is_hidden() and page.locator("#tabs").is_hidden()
    assert page.locator("#overview-print").is_hidden() and doc.is_visible()
    page.emulate_media(media="screen")
    no_sideways_scroll(app)
    app.shot(f"gp-overview-{lang_of(app)}-{app.width}", full_page=True)  # type: ignore[attr-defined]
    assert app.problems == []


def test_results_view_and_overview_state_consent_from_the_same_fact(stack: Stack, app: AppPage) -> None:
    app.open(launch_url(stack, {"view": "results"}, patient=CARLA))
    app.unfold()
    triggers = " ".join(app.page.locator(".trigger").all_inner_texts())
    assert TEXT[lang_of(app)]["consent"] in triggers
    app.tab("overview")
    # the overview is a Dutch document in either language
    assert "Toestemming van de patiënt voor consultatie: ja" in app.page.locator("#overview-summary").inner_text()
    assert app.problems == []


# 6 -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("language", LANGS)
def test_nothing_scrolls_sideways_at_390_px(stack: Stack, language: str) -> None:
    app = page_for(stack, language, 390)
    try:
        for view in ("results", "forms", "model", "ambit", "overview"):
            app.open(launch_url(stack, {"view": view}, patient=CARLA))
            app.page.evaluate("() => document.querySelectorAll('details').forEach((d) => { d.open = true; })")
            no_sideways_scroll(app)
        for form in (CRITERIA_Q, MODEL_Q, AMBIT_Q, "https://alk-fhir.org/fhir/Questionnaire/alk-admission-goals"):
            app.open(launch_url(stack, {"questionnaire": form}, patient=CARLA))
            no_sideways_scroll(app)
        # the SCEGS model, with a repeated answer: still one column
        app.open(launch_url(stack, {"questionnaire": MODEL_Q}, patient=ANNA))
        app.page.locator('[id="add-bps-bio-predisposing/1/1/1"]').click()
        no_sideways_scroll(app)
        assert app.problems == []
    finally:
        app.close()


# 7 -------------------------------------------------------------------------------------------------

def test_texts_a_gp_reads(stack: Stack, app: AppPage) -> None:
    language = lang_of(app)
    text = TEXT[language]
    app.open(launch_url(stack, {"view": "results"}, patient=ANNA))
    page = app.page
    app.unfold()
    # every advice says why it applies to this patient (one without a condition of its own gives the
    # reason of the advice it belongs to: "Uitgangspunt" under persistent ALK)
    without = page.locator("article.advice").evaluate_all(
        "els => els.filter((e) => !e.querySelector(':scope > .trigger')).map((e) => e.id)")
    assert without == []
    assert "advice-starting-point" in page.locator("article.advice").evaluate_all("els => els.map((e) => e.id)")
    # never "Aanleiding: Laatste somatische diagnostiek" without a value
    for trigger in page.locator(".trigger").all_inner_texts():
        for part in trigger.removeprefix(text["trigger"]).split("; "):
            assert re.search(r": \S", part), trigger
    # Anna has no criteria form, but the record meets criterion 1: assessed (from the record)
    overall = page.locator("#assessment .overall").inner_text()
    assert ("Nog niet beoordeeld" if language == "nl" else "Not assessed yet") not in overall
    # contacts newest first, each with its kind
    contacts = page.locator('[data-feature="feature-many-care-contacts"] li').all_inner_texts()
    assert contacts  # Anna's record has a dozen (tests/app_support.py)
    kind = "Spreekuurcontact" if language == "nl" else "Surgery consultation"
    dated = [c for c in contacts if c.startswith(kind)]
    assert dated, contacts
    days = [re.findall(r"\d{2}-\d{2}-\d{4}|\d{1,2} [A-Z][a-z]{2,3} \d{4}", c)[-1] for c in dated]
    assert len(days) > 1 and days == sorted(days, key=_day, reverse=True)
    assert "H §2.2" in page.locator("#guideline-note").inner_text()
    # Gerda (ALK, many contacts, no criteria form, nothing settled by the record): never assessed,
    # not "unknown (assessed on today)"
    gerda = json.loads((EXAMPLES / "patient-possible-persistent-alk.json").read_text(encoding="utf-8"))
    stack.ehr.load([e["resource"] for e in gerda["entry"]])
    app.open(launch_url(stack, {"view": "results"}, patient="pat-gerda"))
    app.unfold()
    conclusion = page.locator("#conclusion strong").inner_text()
    assert conclusion == ("Hardnekkige ALK: nog niet beoordeeld" if language == "nl"
                          else "Persistent ALK: not assessed yet")
    overall = page.locator("#assessment .overall").inner_text()
    assert ("Nog niet beoordeeld" if language == "nl" else "Not assessed yet") in overall
    assert ("beoordeeld op" if language == "nl" else "assessed on") not in overall
    no_sideways_scroll(app)
    assert app.problems == []


def _day(text: str) -> tuple[int, int, int]:
    if "-" in text:
        d, m, y = (int(x) for x in text.split("-"))
        return y, m, d
    from datetime import datetime
    parsed = datetime.strptime(text.replace("Sept", "Sep"), "%d %b %Y")  # en-GB writes "Sept"
    return parsed.year, parsed.month, parsed.day


# 8 -------------------------------------------------------------------------------------------------

def test_forms_in_guideline_order_one_ambit_name_short_way_to_save(stack: Stack, app: AppPage) -> None:
    app.open(launch_url(stack, {"questionnaire": CRITERIA_Q}, patient=CARLA))
    page = app.page
    order = page.locator("button.form-button").evaluate_all("els => els.map(e => e.dataset.questionnaire)")
    assert order[:2] == ["alk-criteria", "alk-explanatory-model"]
    assert order.index("alk-admission-goals") > order.index("alk-criteria")
    ambit = stack.package.resolve(AMBIT_Q)
    assert ambit is not None
    tab = page.locator("#tab-ambit").inner_text()
    if lang_of(app) == "nl":
        assert tab == "AMBIT-desintegratierooster" and "desintegratierooster" in ambit["title"]
    else:
        assert tab == "AMBIT disintegration grid"
    # from the form's title to the save button in two key presses
    page.locator("#form-title").focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "to-save"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "submit-form"
    # answer lists without sequence numbers ("1: Voldaan")
    field = page.locator('[id="criterion-1/1/1"]')
    field.click()
    page.locator("#lhc-tools-searchResults li").first.wait_for()
    assert not any(re.match(r"^\d+:", t) for t in page.locator("#lhc-tools-searchResults li").all_inner_texts())
    page.keyboard.press("Escape")
    assert app.problems == []


WEEKDAYS = {"nl": ["ma", "di", "wo", "do", "vr", "za", "zo"], "en": ["Mo", "Tu", "We", "Th", "Fr", "Sa", "Su"]}
FIELD_DATE = {"nl": "%d-%m-%Y", "en": "%d %b %Y"}  # the form's date format (en-GB with the month's name)


def test_date_picker_week_starts_on_monday_and_a_picked_day_is_saved(stack: Stack, app: AppPage) -> None:
    """The picker's week runs Monday to Sunday (Dutch custom and ISO 8601; en-GB too), in its header and
    in its rows of days; its dates are in the form's format; a day picked in it fills the field in
    that format and is what is saved."""
    language = lang_of(app)
    fmt = FIELD_DATE[language]
    app.open(launch_url(stack, {"questionnaire": CRITERIA_Q}, patient=CARLA))
    page = app.page
    field = page.locator(DATE_FIELD)
    before = field.input_value()
    field.click()
    picker = page.locator(".ant-picker-dropdown")
    picker.wait_for()
    assert [h.strip() for h in picker.locator("thead th").all_inner_texts()] == WEEKDAYS[language]
    # every row of days begins on a Monday (a cell's title is its date in the form's format)
    firsts = picker.locator("tbody tr").evaluate_all("rows => rows.map((r) => r.querySelector('td').title)")
    assert len(firsts) >= 5
    assert [datetime.strptime(day, fmt).weekday() for day in firsts] == [0] * len(firsts), firsts
    # the "Today" button's title is today in the form's format too, not ng-zorro's US M/D/YYYY
    title = picker.locator(".ant-picker-today-btn").get_attribute("title") or ""
    assert datetime.strptime(title, fmt).date() == datetime.now().date(), title
    no_sideways_scroll(app)
    app.shot(f"gp-date-picker-{language}-{app.width}")  # type: ignore[attr-defined]
    # pick the 15th of the month shown (Carla's record holds the 1st)
    cell = picker.locator("td.ant-picker-cell-in-view", has_text=re.compile(r"^\s*15\s*$"))
    picked = datetime.strptime(cell.get_attribute("title") or "", fmt).date()
    cell.click()
    picker.wait_for(state="hidden")
    shown = field.input_value()
    assert shown == picked.strftime(fmt) != before
    if language == "nl":
        assert re.fullmatch(r"\d{2}-\d{2}-\d{4}", shown)  # dd-mm-jjjj
    saved = answers(stack.ehr.resources[("QuestionnaireResponse", app.submit())])
    assert saved["last-somatic-workup"] == [{"valueDate": picked.isoformat()}]
    assert app.problems == []


def test_aria_describedby_names_only_elements_that_exist(stack: Stack, app: AppPage) -> None:
    source = axe_source()
    for form in (MODEL_Q, AMBIT_Q, CRITERIA_Q):
        app.open(launch_url(stack, {"questionnaire": form}, patient=ANNA))
        app.page.wait_for_timeout(300)
        missing: list[Any] = app.page.evaluate("""() => [...document.querySelectorAll('[aria-describedby]')]
            .flatMap((e) => e.getAttribute('aria-describedby').split(/\\s+/).filter(Boolean)
            .filter((id) => !document.getElementById(id)).map((id) => id))""")
        assert missing == [], (form, missing)
    # the new states stay free of axe violations (any impact): a refused date, the date picker open,
    # the first screen with safety facts, the overview with its summary
    app.open(launch_url(stack, {"questionnaire": CRITERIA_Q}, patient=CARLA))
    type_date(app, "31-02-2024", "Tab")
    assert run_axe(app.page, source) == []
    app.page.locator(DATE_FIELD).click()
    app.page.locator(".ant-picker-dropdown").wait_for()
    assert run_axe(app.page, source) == []
    app.page.keyboard.press("Escape")
    for patient, view in ((CARLA, "results"), (DIRK, "results"), (CARLA, "overview")):
        app.open(launch_url(stack, {"view": view}, patient=patient))
        assert run_axe(app.page, source) == [], (patient, view)
    assert app.problems == []


def test_a_count_of_nothing_is_not_filled_in_from_the_record(stack: Stack, app: AppPage) -> None:
    """'0 geneesmiddelen, uit het dossier' for a record without medication: the question stays open."""
    for key in [k for k in stack.ehr.resources if k[0] in ("MedicationStatement", "MedicationRequest")
                and stack.ehr.in_compartment(stack.ehr.resources[k], ANNA)]:
        del stack.ehr.resources[key]
    app.open(launch_url(stack, {"questionnaire": CRITERIA_Q}, patient=ANNA))
    app.radio("alk-present/1/1", "true")  # the situation questions show once ALK is present
    count = app.page.locator('[id="active-medication-count/1/1"]')
    assert count.input_value() == ""
    assert app.page.locator('[id="from-record-active-medication-count/1/1"]').count() == 0
    # what the record does hold is still filled in and marked
    assert app.page.locator('[id="from-record-main-complaints/1/1"]').count() == 1
    assert app.page.locator('[id="main-complaints/1/1"]').input_value() != ""
    assert app.problems == []


def test_the_model_takes_the_complaint_the_record_holds(stack: Stack, app: AppPage) -> None:
    """The explanatory model opens with the main complaint already known (SDC pre-population, as the
    criteria form takes it), marked 'uit het dossier'."""
    app.open(launch_url(stack, {"questionnaire": CRITERIA_Q}, patient=DIRK))
    app.radio("alk-present/1/1", "true")
    known = app.page.locator('[id="main-complaints/1/1"]').input_value()
    assert known
    app.open(launch_url(stack, {"questionnaire": MODEL_Q}, patient=DIRK))
    assert app.page.locator('[id="main-complaint/1"]').input_value() == known
    badge = app.page.locator('[id="from-record-main-complaint/1"]')
    assert badge.is_visible()
    assert badge.inner_text() == ("uit het dossier" if lang_of(app) == "nl" else "from the record")
    no_sideways_scroll(app)
    assert app.problems == []


def test_results_say_so_when_the_safety_check_fails(stack: Stack) -> None:
    app = page_for(stack, "nl", 1280)
    try:
        app.page.route("**/app/api/safety", lambda route: route.fulfill(
            status=500, content_type="application/fhir+json",
            body='{"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "exception"}]}'))
        app.open(launch_url(stack, {"view": "results"}, patient=CARLA))
        warning = app.page.locator("#safety-unavailable").inner_text()
        assert warning.startswith("De ALK-service kon niet nagaan of er een doodswens of risicomedicatie")
        assert app.page.locator("#urgent, #advice").count() >= 1  # the advice is still there
        app.problems.clear()  # the browser logs the 500 itself
    finally:
        app.close()
