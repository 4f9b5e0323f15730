"""The summary for the colleague in the case overview (alk_fhir.overview.summary, issue #24): what the
sender concluded and asks, in the Composition's attested narrative, and shown first on the page."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

from alk_fhir.overview import build_overview, render_html
from alk_fhir.overview.summary import SUMMARY_CLASS
from fixtures.overview.kit import REPO, T1, TODAY, package

XHTML = "{http://www.w3.org/1999/xhtml}"


def build(name: str, **options: Any) -> dict[str, Any]:
    record = json.loads((REPO / "examples" / "patients" / f"{name}.json").read_text(encoding="utf-8"))
    return build_overview(record, package(), today=TODAY, timestamp=T1, **options)


def summary_text(doc: dict[str, Any]) -> str:
    root = ET.fromstring(doc["entry"][0]["resource"]["text"]["div"])
    found = [el for el in root.iter() if SUMMARY_CLASS in str(el.get("class") or "").split()]
    assert len(found) == 1
    return " ".join(" ".join(found[0].itertext()).split())


def section_text(doc: dict[str, Any], concept: str) -> str:
    for sec in doc["entry"][0]["resource"]["section"]:
        if any(c.get("code") == concept for c in sec["code"]["coding"]):
            return " ".join(" ".join(ET.fromstring(sec["text"]["div"]).itertext()).split())
    raise AssertionError(concept)


def test_summary_states_conclusion_evidence_features_wish_to_die_and_consent() -> None:
    doc = build("patient-bedridden-tube-feeding", question="Wilt u meedenken over <de> opname?",
                contact="tel. 030-1234567")
    text = summary_text(doc)
    assert "Conclusie hardnekkige ALK: criterium 2 en 3 voldaan" in text
    # each criterion with its status and evidence in words (no codes)
    assert "Klachten breiden uit of functioneren verslechtert" in text and "Voldaan" in text
    assert "Multidisciplinaire revalidatie, 01-01-2019" in text
    assert "outcome-" not in text and "criterion-" not in text
    assert "Profielschets, aanvullende kenmerken:" in text and "Bedlegerig" in text
    assert "Let op: duurzame doodswens vastgelegd" in text
    assert "Toestemming van de patiënt voor consultatie: ja" in text
    assert "Vraag aan de collega: Wilt u meedenken over <de> opname?" in text  # as text, escaped in the XHTML
    assert "<de>" not in doc["entry"][0]["resource"]["text"]["div"]
    assert "Contact afzender: Huisartsenpraktijk De Linde, tel. 030-1234567" in text
    # the consultations section says the same about consent as the summary
    consultations = section_text(doc, "overview-consultations")
    assert "Toestemming van de patiënt voor consultatie: ja" in consultations
    assert "geen toestemming" not in consultations


def test_summary_of_a_patient_without_criteria_form_and_without_a_question() -> None:
    text = summary_text(build("patient-no-alk"))
    assert "nog niet beoordeeld" in text
    assert "duurzame doodswens" not in text
    assert "Vraag aan de collega: geen vraag gesteld." in text


def test_rendered_page_shows_the_summary_first_and_no_raw_codes() -> None:
    page = render_html(build("patient-polypharmacy-opioid-benzo"), package())
    main = page.split("<main>", 1)[1]
    assert main.lstrip().startswith('<section id="summary" class="summary"><h2>Samenvatting voor de collega</h2>')
    assert "(ATC " not in page and "(ICD-10 " not in page
    assert "BSN 999911156" in page and "@media print" in page
