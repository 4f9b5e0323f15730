"""pyproject.toml declares what the code imports, and nothing it does not (issue 12: ``cryptography``
was imported but only arrived through ``PyJWT[crypto]``; ``pydantic`` was declared but never imported).

The imports are read with ``ast`` from ``src/alk_fhir`` (runtime dependencies) and from ``tests`` and
``benchmarks`` (which may also use the ``dev`` extra); each top-level module is mapped to the
distribution that installs it with ``importlib.metadata``.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from alk_fhir.config import REPO_ROOT

# Declared on purpose without being imported by name: the driver SQLAlchemy loads for postgresql:// URLs.
INDIRECT = {"psycopg"}
# Imported by the test and benchmark scripts of this repository itself (not distributions).
LOCAL = {"alk_fhir", "fixtures", "apply", "app_support", "test_app_ehr", "test_auth_token_limits", "test_cds_examples",
         "test_exchange_fake", "test_facts", "test_overview_api", "test_overview_send_cli", "test_register",
         "test_store", "test_cds_closed_loop", "test_validation_fhirpath"}


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-").replace(".", "-")


def declared() -> tuple[set[str], set[str]]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = {_name(r) for r in project["dependencies"]}
    extras = {_name(r) for group in project["optional-dependencies"].values() for r in group}
    return runtime, extras


def imported(*roots: Path) -> set[str]:
    """Distributions (normalised names) of the third-party top-level modules imported under ``roots``."""
    modules: set[str] = set()
    for root in roots:
        for path in root.rglob("*.py"):
            if "node_modules" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    modules.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules.add(node.module.split(".")[0])
    modules -= set(sys.stdlib_module_names) | LOCAL | {"__future__"}
    owners = packages_distributions()
    missing = sorted(m for m in modules if m not in owners)
    assert not missing, f"imported but installed by no distribution: {missing}"
    return {_name(dist) for m in modules for dist in owners[m]}


def test_every_runtime_import_is_declared_and_every_declaration_imported() -> None:
    runtime, _ = declared()
    used = imported(REPO_ROOT / "src" / "alk_fhir")
    assert sorted(used - runtime) == [], "imported by src/alk_fhir but not in [project.dependencies]"
    assert sorted(runtime - used) == [], "declared in [project.dependencies] but imported nowhere in src/alk_fhir"


def test_tests_and_benchmarks_import_only_declared_distributions() -> None:
    runtime, extras = declared()
    used = imported(REPO_ROOT / "tests", REPO_ROOT / "benchmarks")
    assert sorted(used - runtime - extras) == []
    assert extras >= INDIRECT
