"""Cards that say it (issue 21): a patient-view card names its trigger in the detail (the count and the
entries, as the app's "Aanleiding"), lists only the notes on our numbers that apply to this patient, and
a suggestion says it prepares a draft for the clinician to complete."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from test_cds_examples import cds_app, example

JSON = dict[str, Any]
RISK_NOTE = "afhankelijkheid van medicatie"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    yield TestClient(cds_app(tmp_path_factory.mktemp("text")))


def cards(client: TestClient, name: str, lang: str = "nl") -> list[JSON]:
    response = client.post("/cds-services/alk-patient-view", json=example(name), headers={"Accept-Language": lang})
    assert response.status_code == 200
    found: list[JSON] = response.json()["cards"]
    return found


def card(found: list[JSON], section: str) -> JSON:
    return next(c for c in found if c["source"]["topic"]["code"] == section and "overrideReasons" in c)


def test_the_polypharmacy_card_names_the_count_and_the_drugs(client: TestClient) -> None:
    review = card(cards(client, "patient-view-polypharmacy-opioid-benzo"), "2.2")
    trigger = next(block for block in review["detail"].split("\n\n") if block.startswith("**Aanleiding:**"))
    assert trigger.startswith("**Aanleiding:** Actieve geneesmiddelen: 12 (")
    assert "oxycodon 10 mg 2dd (2026-10-01)" in trigger and "; …)" in trigger  # entries with dates, capped


def test_a_screening_card_shows_the_risk_note_only_with_risk_medication(client: TestClient) -> None:
    jan = card(cards(client, "patient-view-gp-icpc-gstandaard"), "1.1")
    assert "Risicomedicatie: 3 (OXAZEPAM" in jan["detail"] and RISK_NOTE in jan["detail"]
    none = card(cards(client, "patient-view-possible-persistent-alk"), "1.1")
    assert "Risicomedicatie" not in none["detail"] and RISK_NOTE not in none["detail"]
    assert "twee of meer kenmerken uit de Profielschets" in none["detail"]  # the note that does apply


def test_english_cards_say_what_triggered_them(client: TestClient) -> None:
    review = card(cards(client, "patient-view-polypharmacy-opioid-benzo", "en"), "2.2")
    assert "**Triggered by:** Active medications: 12 (" in review["detail"]


def test_every_suggestion_prepares_a_draft_for_the_clinician(client: TestClient) -> None:
    for name in ("patient-view-bedridden-tube-feeding", "patient-view-criterion1-failed-cbt-physio"):
        for found in cards(client, name):
            for suggestion in found.get("suggestions", []):
                assert suggestion["label"].startswith("Als concept klaarzetten: ")
                for action in suggestion["actions"]:
                    assert action["resource"]["status"] == "draft"
                    assert action["extension"]["davinci-crd.if-none-exist"].startswith("identifier=")
