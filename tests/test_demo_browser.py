"""A newcomer's path (issue 23): ``alk-fhir serve --demo`` on a free port, from ``/`` to the app with
an example patient's advice, and to the EHR-style CDS view with that patient's cards; accepting a
suggestion and dismissing a card with a reason change what the next call shows. In Debian's chromium."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from app_support import ARGS, CHROMIUM, axe_source, build_missing, run_axe

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    reason = build_missing()
    if reason:
        pytest.skip(reason)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALK_FHIR_")}
    env["ALK_FHIR_DATABASE_URL"] = f"sqlite:///{tmp_path_factory.mktemp('demo') / 'alk.sqlite3'}"
    command = [str(Path(sys.executable).parent / "alk-fhir"), "serve", "--demo", "--port", str(port)]
    proc = subprocess.Popen(command,
                            env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        else:
            pytest.fail("alk-fhir serve --demo did not start")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (make browser)")
    sync_api: Any = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield chromium
        chromium.close()


def test_capability_statement_names_the_port_served(served: str) -> None:
    metadata = requests.get(f"{served}/fhir/metadata", timeout=10).json()
    assert metadata["implementation"]["url"] == f"{served}/fhir"
    demo_fhir = requests.get(f"{served}/demo/fhir/.well-known/smart-configuration", timeout=10).json()
    assert demo_fhir["issuer"] == f"{served}/demo/fhir"


def test_from_the_start_page_to_the_app_with_advice_and_to_the_cards(served: str, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="nl-NL")
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.goto(f"{served}/")
    page.click('a[href="/demo/"]')
    page.wait_for_selector("table.patients")
    assert run_axe(page, axe_source()) == []
    row = page.locator("tr", has_text="Dirk")
    row.locator("a", has_text="Open in de app").click()
    page.wait_for_selector("body[data-ready=true]", timeout=60_000)
    assert page.locator("#tab-results").get_attribute("aria-selected") == "true"
    assert "Polyfarmacie" in page.locator("#panel-results").inner_text()
    page.goto(f"{served}/demo/")
    page.locator("tr", has_text="Dirk").locator("a", has_text="Toon de CDS-kaarten").click()
    page.wait_for_selector("article.card")
    summaries = page.locator("article.card h3").all_inner_texts()
    assert any("Polyfarmacie" in s for s in summaries), summaries
    assert run_axe(page, axe_source()) == []
    # dismiss the first card that offers reasons: the next call is made, and the view says so
    first = page.locator("article.card", has=page.locator("form.override")).first
    first.locator("select").select_option(index=1)
    first.locator("button[type=submit]").click()
    page.wait_for_selector("#status:has-text('Genegeerd')")
    # order-select for lorazepam names the order's risk
    page.select_option("#drug", "lorazepam")
    page.click("#order")
    page.wait_for_selector("#status:has-text('kaart')")
    assert page.locator("article.card").count() >= 1
    # English
    page.click("#lang-switch")
    page.wait_for_selector("#status:has-text('card')")
    assert page.locator("html").get_attribute("lang") == "en"
    assert problems == []
    context.close()


def test_the_demo_works_by_keyboard_at_phone_width(served: str, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 800}, locale="nl-NL")
    page = context.new_page()
    page.goto(f"{served}/demo/cds/pat-anna")
    page.wait_for_selector("#status:not(:empty)")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "open-chart"
    assert run_axe(page, axe_source()) == []
    context.close()
