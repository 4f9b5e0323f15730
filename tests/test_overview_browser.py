"""The rendered overview in a real browser: Debian chromium, headless, driven by playwright.

The page is opened from a file, as a clinician would open a saved overview; every section heading
and the case coordinator must be visible, on screen and in print layout, with nothing blocked or
failing on the console. Screenshots go to test-artifacts/ (kept by CI as artifacts). Chromium comes
from the distribution (scripts/ensure-chromium.sh), never from ``playwright install``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from alk_fhir.overview import build_overview, render_html, section_specs
from fixtures.overview.kit import REPO, T1, TODAY, gp_record, package

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = REPO / "test-artifacts"


def test_rendered_overview_in_headless_chromium(tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium (run scripts/ensure-chromium.sh as root)")
    sync_api: Any = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    page_file = tmp_path / "casusoverzicht.html"
    page_file.write_text(render_html(build_overview(gp_record(), package(), today=TODAY, timestamp=T1), package()),
                         encoding="utf-8")
    ARTIFACTS.mkdir(exist_ok=True)
    problems: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda msg: problems.append(msg.text) if msg.type in ("error", "warning") else None)
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.on("request", lambda req: problems.append(f"request {req.url}")
                    if not req.url.startswith("file://") else None)
            page.goto(page_file.as_uri())
            assert page.title().startswith("Casusoverzicht hardnekkige ALK")
            for media in ("screen", "print"):
                page.emulate_media(media=media)
                for spec in section_specs(package()):
                    heading = page.locator(f"section#{spec.key} h2")
                    assert heading.is_visible(), (media, spec.key)
                    assert spec.title in heading.inner_text() and f"§{spec.guideline}" in heading.inner_text()
                coordinator = page.locator("header p.coordinator")
                assert coordinator.is_visible() and "dr. Marieke Jansen" in coordinator.inner_text()
                team = page.locator("section#careTeam")
                assert "Casus-coördinator: dr. Marieke Jansen" in team.inner_text()
                assert page.locator("header p.banner").first.is_visible()  # polypharmacy
                page.screenshot(path=str(ARTIFACTS / f"overview-{media}.png"), full_page=True)
        finally:
            browser.close()
    assert problems == []
    assert (ARTIFACTS / "overview-screen.png").stat().st_size > 10_000
