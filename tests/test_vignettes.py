"""The vignette suite (tests/fixtures/vignettes.py): patients written from the seeds, each with the
actions it must and must not get and the seed sentence that says so."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from alk_fhir.apply import Engine, run
from alk_fhir.apply.engine import _walk
from fixtures.vignettes import VIGNETTES, Vignette

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"
TODAY = date(2026, 11, 23)


def test_there_are_at_least_thirty_vignettes() -> None:
    assert len(VIGNETTES) >= 30 and len({v.name for v in VIGNETTES}) == len(VIGNETTES)


def _texts(node: Any) -> list[str]:
    """Every string an action carries (title, description, documentation, translations), whitespace-normalised."""
    if isinstance(node, str):
        return [" ".join(node.split())]
    if isinstance(node, dict):
        return [t for value in node.values() for t in _texts(value)]
    if isinstance(node, list):
        return [t for value in node for t in _texts(value)]
    return []


@pytest.mark.parametrize("vignette", VIGNETTES, ids=lambda v: v.name)
def test_vignette(engine: Engine, vignette: Vignette) -> None:
    result = run(engine, vignette.record(), TODAY, hook=vignette.hook, draft_orders=list(vignette.draft) or None,
                 practitioner={"reference": "Practitioner/gp"})
    actions = {a["id"] for a in _walk(result.requestgroup.get("action", []))}
    assert vignette.must <= actions, (vignette.seed, sorted(actions))
    assert not (vignette.must_not & actions), (vignette.seed, sorted(actions))
    said = [t.lower() for t in _texts(result.requestgroup.get("action", []))]
    claimed = sorted(p for p in vignette.not_say if any(p.lower() in t for t in said))
    assert not claimed, (vignette.seed, claimed)


@pytest.mark.skipif(not SEEDS.is_dir(), reason="the seeds are in ../shared/seeds beside the repository")
@pytest.mark.parametrize("vignette", VIGNETTES, ids=lambda v: v.name)
def test_every_vignette_quotes_its_seed(vignette: Vignette) -> None:
    text = " ".join(p.read_text(encoding="utf-8") for p in SEEDS.glob("*.txt"))
    plain = re.sub(r"\*|\[|\]\(#\)", "", " ".join(text.split()))  # the seeds' Markdown emphasis and links
    assert vignette.seed in plain


def test_only_the_case_coordinator_is_urgent(package: Any) -> None:
    """Priorities follow the seed's wording: "Het allerbelangrijkste is dat één zorgverlener zich
    verantwoordelijk voelt" (H §3.1) is the only step the Handreiking marks as most important."""
    (plan,) = package.of_type("PlanDefinition")
    stack, urgent = list(plan["action"]), []
    while stack:
        action = stack.pop()
        stack += action.get("action", [])
        if action.get("priority") == "urgent":
            urgent.append(action["id"])
    assert urgent == ["case-coordinator"]


def test_cards_state_our_numbers_and_follow_the_library(engine: Engine, tmp_path: Path) -> None:
    """Every number the seeds leave open is shown as ours ("hier: …"), from the Library: changing it there
    changes the card (H §2.2 "Bij hardnekkige ALK is er vaak sprake van polyfarmacie")."""
    import json
    import shutil

    from alk_fhir.apply import load_engine
    from alk_fhir.cds.cards import CardOptions, build_cards, compile_catalog
    from alk_fhir.knowledge import load_package

    vignette = Vignette("five", "polyfarmacie", (*VIGNETTES[1].resources, *(
        {"resourceType": "MedicationStatement", "id": f"m{i}", "status": "active",
         "subject": {"reference": "Patient/vig"}, "medicationCodeableConcept": {"text": f"middel {i}"}}
        for i in range(6))), frozenset())

    def review_card(eng: Engine) -> str:
        result = run(eng, vignette.record(), TODAY)
        cards = build_cards(result, compile_catalog(eng), CardOptions(lang="nl", hook_instance="x"))
        return next(c["detail"] for c in cards if c["summary"].startswith("Polyfarmacie"))

    assert "_hier: vijf of meer actieve geneesmiddelen_" in review_card(engine)
    copy = tmp_path / "profiles"
    shutil.copytree(Path(__file__).resolve().parents[1] / "profiles", copy)
    lib = json.loads((copy / "Library-alk-facts.json").read_text(encoding="utf-8"))
    (param,) = [p for p in lib["parameter"] if p["name"] == "polypharmacyThreshold"]
    for ext in param["extension"]:
        if ext["url"].endswith("alk-operationalisation"):
            ext["extension"][0]["valueString"] = "hier: zes of meer actieve geneesmiddelen"
        else:
            ext["valueExpression"]["expression"] = "6"
    (copy / "Library-alk-facts.json").write_text(json.dumps(lib, ensure_ascii=False), encoding="utf-8")
    assert "_hier: zes of meer actieve geneesmiddelen_" in review_card(load_engine(load_package(copy)))
