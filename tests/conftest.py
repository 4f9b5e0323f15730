"""Shared fixtures: the package, the engine and the example data are loaded once per test session."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from alk_fhir.apply import Engine, load_engine
from alk_fhir.config import REPO_ROOT, Settings
from alk_fhir.knowledge import Package, corepkg, load_package

EXAMPLES = REPO_ROOT / "examples"


@pytest.fixture(scope="session")
def package() -> Package:
    return load_package(REPO_ROOT / "profiles")


@pytest.fixture(scope="session")
def engine(package: Package) -> Engine:
    return load_engine(package)


@pytest.fixture(scope="session")
def core_dir() -> Path:
    return corepkg.require(Settings.from_env().package_cache)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def patients() -> dict[str, dict[str, Any]]:
    return {p.stem: read_json(p) for p in sorted((EXAMPLES / "patients").glob("*.json"))}
