"""The clinician app's quality as a GP and a screen-reader user meet it, in headless Debian chromium:

- axe-core (npm, exact version from the app's package-lock.json) on every view and state, Dutch and
  English, at 1280 and 390 px: no violation of any impact (content outside landmarks included); the
  results are written to test-artifacts/axe-report.json;
- one h1 per view, visible focus on every element the keyboard reaches;
- the Dutch app shows none of the renderer's English texts (read from the renderer itself, see
  tests/app_support.py) nor the app's own English ones, in any state (lists open, date picker open,
  errors shown, after a save, screen-reader messages); the English app none of the Dutch ones;
- usable at 800 and 390 px: no sideways scrolling, the overview inline (no inner scroll frame).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from app_support import (
    AMBIT_Q,
    ARTIFACTS,
    CARLA,
    CRITERIA_Q,
    MODEL_Q,
    AppPage,
    Stack,
    axe_source,
    bare_codes,
    foreign_texts,
    language_lists,
    launch_url,
    run_axe,
    start_stack,
)

pytestmark = pytest.mark.browser
REPORT: dict[str, Any] = {}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from start_stack(tmp_path_factory.mktemp("app-quality"))
    (ARTIFACTS / "axe-report.json").write_text(json.dumps(REPORT, indent=2, ensure_ascii=False) + "\n",
                                               encoding="utf-8")


@pytest.fixture()
def app(stack: Stack) -> Iterator[AppPage]:
    stack.fresh()
    page = AppPage(stack)
    try:
        yield page
    finally:
        page.close()


def states(app: AppPage, stack: Stack) -> Iterator[str]:
    """Walk the app through every view and the states a form goes through; yield a name per state."""
    page = app.page
    stack.fresh()
    app.open(launch_url(stack, {"view": "results"}))
    yield "results"
    page.locator("#conclusion a").click()
    yield "results, evidence"
    app.tab("forms")
    yield "forms, none open"
    app.open_form("alk-criteria")
    yield "criteria form"
    page.click("#submit-form")
    page.locator("#form-errors").wait_for(state="visible")
    yield "criteria form, errors"
    page.locator('[id="alk-present/1/1|true"]').click()
    page.locator('[id="criterion-1/1/1"]').click()
    page.locator("#lhc-tools-searchResults").wait_for(state="visible")
    yield "criteria form, answer list open"
    page.keyboard.press("Escape")
    page.locator('[id="last-somatic-workup/1/1"]').click()
    page.locator(".ant-picker-dropdown").first.wait_for(state="visible")
    # its opening animation has ended (colours are measured as they stay)
    page.wait_for_function("""() => { const w = document.querySelector('.ant-picker-dropdown .ant-picker-wrapper')
        || document.querySelector('.ant-picker-dropdown');
      const s = w && getComputedStyle(w); return s && s.opacity === '1' && (s.transform === 'none'
        || s.transform === 'matrix(1, 0, 0, 1, 0, 0)'); }""")
    yield "criteria form, date picker open"
    page.keyboard.press("Escape")
    page.locator("#form-title").click()
    page.click("#submit-form")
    page.wait_for_selector("#form-status[data-saved-id]")
    yield "criteria form, saved"
    app.open_form("alk-explanatory-model")
    yield "explanatory-model form"
    app.tab("model")
    yield "explanatory model, none yet"
    app.tab("ambit")
    yield "AMBIT grid, none yet"
    app.tab("forms")
    app.open_form("alk-explanatory-model")
    app.fill("main-complaint/1", "Pijn")
    app.fill("bps-bio-predisposing/1/1/1", "Hypermobiliteit")
    app.submit()
    yield "explanatory-model form, saved"
    app.open_form("alk-ambit-grid")
    page.locator('[id="add-stakeholder/1"]').wait_for()
    yield "AMBIT form"
    app.pick("stakeholder-kind/1/1", "Patiënt" if page.evaluate("document.documentElement.lang") == "nl" else "Patient")
    app.fill("stakeholder-name/1/1", "Anna de Vries")
    app.fill("problem/1/1", "Pijn")
    app.submit()
    app.open_form("alk-admission-goals")
    yield "admission-goals form"
    app.tab("model")
    yield "explanatory model"
    app.tab("ambit")
    yield "AMBIT grid"
    app.tab("overview")
    yield "case overview"


def carla_states(app: AppPage, stack: Stack) -> Iterator[str]:
    stack.fresh()
    app.open(launch_url(stack, {"questionnaire": CRITERIA_Q}, patient=CARLA))
    yield "Carla: criteria form with earlier answers"
    app.tab("results")
    yield "Carla: results"


def guideline_states(app: AppPage, stack: Stack, language: str) -> Iterator[str]:
    app.page.goto(f"{stack.service}/app/guideline.html?lang={language}")
    yield "guideline page"


def launch_states(stack: Stack, viewport: dict[str, int] | None = None) -> Iterator[tuple[Any, str]]:
    """The launch page (bilingual: both languages marked with lang) and a launch that failed, each
    in a new browser context (no SMART state of an earlier launch)."""
    for path, wait, name in (("launch.html", "#standalone", "launch page, standalone form"),
                             ("index.html", "#alert", "app opened without launch")):
        fresh = AppPage(stack, viewport)
        try:
            fresh.page.goto(f"{stack.service}/app/{path}")
            fresh.page.locator(wait).wait_for(state="visible")
            yield fresh.page, name
        finally:
            fresh.close()


@pytest.mark.parametrize("width", [1280, 390])
def test_axe_finds_no_violation_in_any_view(stack: Stack, width: int) -> None:
    source = axe_source()
    viewport = {"width": width, "height": 800 if width > 500 else 844}
    stack.fresh()
    app = AppPage(stack, viewport)
    failures: list[str] = []

    def check(page: Any, name: str) -> None:
        violations = run_axe(page, source)
        REPORT[name] = {"critical": sum(v["impact"] == "critical" for v in violations),
                        "serious": sum(v["impact"] == "serious" for v in violations),
                        "violations": violations}
        failures.extend(f"{name}: {v['impact']} {v['id']} at {v['nodes'][:3]}: {v['summary'][:160]}"
                        for v in violations)
        # one h1 per view (the failure alert has its own), visible
        h1s = page.locator("h1:visible").count()
        if h1s != 1:
            failures.append(f"{name}: {h1s} visible h1")

    try:
        for language in ("nl", "en"):
            walks: list[Callable[[str], Iterator[str]]] = [lambda _: states(app, stack),
                                                           lambda _: carla_states(app, stack),
                                                           lambda lang: guideline_states(app, stack, lang)]
            for walk in walks:
                first = True
                for state in walk(language):
                    if first and language == "en" and app.page.locator("#lang-select").count():
                        app.set_language("en")
                    first = False
                    check(app.page, f"{width} px, {language}: {state}")
        for page, state in launch_states(stack, viewport):
            check(page, f"{width} px, nl/en: {state}")
        app.shot(f"axe-last-state-{width}")
    finally:
        app.close()
    assert failures == [], "\n".join(failures)


def test_dutch_app_shows_no_english_and_english_app_no_dutch(stack: Stack, app: AppPage) -> None:
    found: list[str] = []
    english: set[str] = set()
    dutch: set[str] = set()
    for state in itertools.chain(states(app, stack), carla_states(app, stack)):
        if not english:
            english, dutch = language_lists(app.page)
            assert {"Yes", "Not Answered", "Select one", "MM/DD/YYYY", "Today", "requires a value"} <= english
        found += [f"nl, {state}: {text}" for text in foreign_texts(app.page, "nl", english)]
        found += [f"nl, {state}: bare code or id: {text}" for text in bare_codes(app.page)]
    for state in guideline_states(app, stack, "nl"):
        found += [f"nl, {state}: {text}" for text in foreign_texts(app.page, "nl", english)]
    # the form's screen-reader messages of a form left behind are gone
    app.open(launch_url(stack, {"questionnaire": CRITERIA_Q}))
    app.page.locator('[id="alk-present/1/1|true"]').click()
    app.tab("results")
    assert app.page.locator("#reader_log").inner_text() == ""

    english_app = AppPage(stack)
    try:
        for state in states(english_app, stack):
            if state == "results":
                english_app.set_language("en")
            found += [f"en, {state}: {text}" for text in foreign_texts(english_app.page, "en", dutch)]
            found += [f"en, {state}: bare code or id: {text}" for text in bare_codes(english_app.page)]
        for state in guideline_states(english_app, stack, "en"):
            found += [f"en, {state}: {text}" for text in foreign_texts(english_app.page, "en", dutch)]
    finally:
        english_app.close()
    assert found == [], "\n".join(found)


def test_dates_read_dd_mm_jjjj_in_dutch(stack: Stack, app: AppPage) -> None:
    app.open(launch_url(stack, {"questionnaire": CRITERIA_Q}, patient=CARLA))
    page = app.page
    # Carla's last somatic work-up, 2025-08-01, as the form shows it
    assert page.locator('[id="last-somatic-workup/1/1"] input').input_value() == "01-08-2025"
    assert page.locator('[id="last-somatic-workup/1/1"] input').get_attribute("placeholder") == "DD-MM-JJJJ"
    app.tab("results")
    text = page.locator("#panel-results").inner_text()
    assert "12-11-2026" in text
    for iso in ("2026-11-12", "11/12/2026"):
        assert iso not in text


def test_focus_is_visible_on_everything_the_keyboard_reaches(stack: Stack, app: AppPage) -> None:
    app.open(launch_url(stack, {"view": "results"}))
    page = app.page
    unseen: list[str] = []

    def walk(stops: int) -> None:
        page.locator("body").focus()
        for _ in range(stops):
            page.keyboard.press("Tab")
            info = page.evaluate("""() => {
              const el = document.activeElement;
              if (!el || el === document.body) return null;
              const s = getComputedStyle(el);
              const ring = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2;
              const name = (el.textContent || '').trim().slice(0, 40);
              return {ring, what: el.tagName + (el.id ? '#' + el.id : '') + ' ' + name};
            }""")
            if info and not info["ring"]:
                unseen.append(info["what"])

    walk(40)
    app.tab("forms")
    app.open_form("alk-criteria")
    page.locator('[id="alk-present/1/1|true"]').click()
    walk(40)
    assert unseen == [], unseen


@pytest.mark.parametrize("width", [800, 390])
def test_usable_at_800_and_390_px(stack: Stack, width: int) -> None:
    stack.fresh()
    app = AppPage(stack, viewport={"width": width, "height": 844 if width < 500 else 800})
    try:
        page = app.page
        too_wide: list[str] = []

        def check(name: str) -> None:
            # LHC-Forms switches a form to its narrow layout a moment after drawing it (up to about a
            # second on a loaded machine): what must fit is the layout once it has settled
            for _ in range(40):
                scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
                if scroll <= inner:
                    return
                page.wait_for_timeout(100)
            too_wide.append(f"{name}: {scroll} px content in {inner} px")

        app.open(launch_url(stack, {"view": "results"}, patient=CARLA))
        check("results")
        # the conclusion and the first advice are on the first screen
        assert page.locator("#conclusion").evaluate("e => e.getBoundingClientRect().bottom") < 844
        app.shot(f"results-{width}")
        app.tab("forms")
        app.open_form("alk-criteria")
        check("criteria form")
        box = page.locator('[id="main-complaints/1/1"]').bounding_box()
        assert box is not None and box["height"] >= 40  # the complaints box is more than one line
        app.shot(f"criteria-form-{width}")
        app.open_form("alk-ambit-grid")
        check("AMBIT form")
        app.tab("overview")
        check("overview")
        app.tab("model")
        check("model")
        stack.fresh()
        app.open(launch_url(stack, {"view": "overview"}))
        check("overview with document")
        assert page.locator("iframe").count() == 0
        height = page.locator("#overview").evaluate("e => [e.scrollHeight, e.clientHeight]")
        assert height[0] <= height[1] + 1  # no inner scroll frame
        app.shot(f"overview-{width}", full_page=True)
        app.open(launch_url(stack, {"questionnaire": MODEL_Q}))
        check("model form")
        # the AMBIT grid with two stakeholders: six columns become blocks on a phone
        app.open(launch_url(stack, {"questionnaire": AMBIT_Q}))
        for row, (kind, name) in enumerate((("Patiënt", "Anna de Vries"), ("Zorgverlener", "dr. Jansen")), start=1):
            if row > 1:
                page.locator('[id="add-stakeholder/1"]').click()
            app.pick(f"stakeholder-kind/{row}/1", kind)
            app.fill(f"stakeholder-name/{row}/1", name)
            app.fill(f"problem/{row}/1", "Overal pijn, al jaren, en niemand die het overzicht houdt")
        app.submit()
        app.tab("ambit")
        check("AMBIT grid")
        app.shot(f"ambit-grid-{width}", full_page=True)
        assert too_wide == [], too_wide
        assert app.problems == []
    finally:
        app.close()
