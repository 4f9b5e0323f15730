"""The vignette suite (tests/fixtures/vignettes.py): patients written from the seeds, each with the
actions it must and must not get and the seed sentence that says so."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from alk_fhir.apply import Engine, run
from alk_fhir.apply.engine import _walk
from fixtures.vignettes import VIGNETTES, Vignette

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"
TODAY = date(2026, 11, 23)


def test_there_are_at_least_twelve_vignettes() -> None:
    assert len(VIGNETTES) >= 12 and len({v.name for v in VIGNETTES}) == len(VIGNETTES)


@pytest.mark.parametrize("vignette", VIGNETTES, ids=lambda v: v.name)
def test_vignette(engine: Engine, vignette: Vignette) -> None:
    result = run(engine, vignette.record(), TODAY, hook=vignette.hook, draft_orders=list(vignette.draft) or None,
                 practitioner={"reference": "Practitioner/gp"})
    actions = {a["id"] for a in _walk(result.requestgroup.get("action", []))}
    assert vignette.must <= actions, (vignette.seed, sorted(actions))
    assert not (vignette.must_not & actions), (vignette.seed, sorted(actions))


@pytest.mark.skipif(not SEEDS.is_dir(), reason="the seeds are in ../shared/seeds beside the repository")
@pytest.mark.parametrize("vignette", VIGNETTES, ids=lambda v: v.name)
def test_every_vignette_quotes_its_seed(vignette: Vignette) -> None:
    text = " ".join(p.read_text(encoding="utf-8") for p in SEEDS.glob("*.txt"))
    plain = re.sub(r"\*|\[|\]\(#\)", "", " ".join(text.split()))  # the seeds' Markdown emphasis and links
    assert vignette.seed in plain
