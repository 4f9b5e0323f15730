"""What a newcomer meets (issue 12): ``GET /`` answers a page for browsers and an OperationOutcome for
FHIR clients (it used to be a JSON 404), and ``make serve`` lets the public CDS Hooks sandbox call the
service from the browser (its CORS preflight used to be a 405) while production defaults stay closed."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from alk_fhir.api.app import create_app
from alk_fhir.config import REPO_ROOT, Settings
from alk_fhir.knowledge import Package

SANDBOX = "https://sandbox.cds-hooks.org"
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
PV = "/cds-services/alk-patient-view"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, package: Package) -> Iterator[TestClient]:
    db = tmp_path_factory.mktemp("home") / "alk.sqlite3"
    with TestClient(create_app(Settings(database_url=f"sqlite:///{db}"), package)) as c:
        yield c


def test_a_browser_gets_a_page_with_the_way_in(client: TestClient) -> None:
    for accept in (BROWSER_ACCEPT, "*/*", None):  # a browser, curl, a client that says nothing
        response = client.get("/", headers={"Accept": accept} if accept else {})
        assert response.status_code == 200, accept
        assert response.headers["content-type"].startswith("text/html")
        for link in ('href="/app/"', 'href="/docs"', 'href="/cds-services"', 'href="/fhir/metadata"'):
            assert link in response.text, (accept, link)
        assert "CDS Hooks" in response.text and "FHIR R4" in response.text
    assert client.head("/", headers={"Accept": BROWSER_ACCEPT}).status_code == 200


@pytest.mark.parametrize(("headers", "params"), [
    ({"Accept": "application/fhir+json"}, {}),
    ({"Accept": "application/json"}, {}),
    ({"Accept": "application/fhir+json;q=1.0, text/html;q=0.5"}, {}),
    ({"Accept": BROWSER_ACCEPT}, {"_format": "json"}),
])
def test_a_fhir_client_gets_an_outcome_pointing_at_the_capability_statement(
        client: TestClient, headers: dict[str, str], params: dict[str, str]) -> None:
    response = client.get("/", headers=headers, params=params)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    issue = outcome["issue"][0]
    assert (issue["severity"], issue["code"]) == ("information", "informational")
    assert "http://127.0.0.1:8080/fhir/metadata" in issue["diagnostics"]
    assert response.headers["link"] == '<http://127.0.0.1:8080/fhir/metadata>; rel="describedby"'
    metadata = client.get("/fhir/metadata", headers={"Accept": "application/fhir+json"})
    assert metadata.json()["resourceType"] == "CapabilityStatement"


def test_html_wins_a_tie_and_an_unknown_preference(client: TestClient) -> None:
    for accept in ("text/html, application/fhir+json", "application/xml", "text/*;q=0.9, application/json;q=0.5"):
        assert client.get("/", headers={"Accept": accept}).headers["content-type"].startswith("text/html"), accept


# --- CORS: the CDS Hooks sandbox against make serve ---------------------------------------------------

def preflight(client: TestClient, path: str, method: str = "POST") -> Any:
    return client.options(path, headers={"Origin": SANDBOX, "Access-Control-Request-Method": method,
                                         "Access-Control-Request-Headers": "authorization,content-type"})


def make_serve_environment(tmp_path: Path, **env: str) -> dict[str, str]:
    """Run the ``serve`` recipe of the Makefile with a stand-in ``alk-fhir`` that prints its
    environment (``-o install -o app``: nothing is installed or built)."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir(exist_ok=True)
    script = fake_bin / "alk-fhir"
    script.write_text("#!/bin/sh\nenv\n", encoding="utf-8")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ALK_FHIR_")}
    result = subprocess.run(["make", "-s", "-o", "install", "-o", "app", "serve", f"BIN={fake_bin}"],
                            cwd=REPO_ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=60,
                            check=True)
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if line.startswith("ALK_FHIR_"))


def test_make_serve_allows_the_sandbox_and_can_be_closed(tmp_path: Path) -> None:
    env = make_serve_environment(tmp_path)
    assert env["ALK_FHIR_CDS_AUTH"] == "off"
    assert env["ALK_FHIR_CORS_ORIGINS"] == SANDBOX
    assert make_serve_environment(tmp_path, ALK_FHIR_CORS_ORIGINS="")["ALK_FHIR_CORS_ORIGINS"] == ""
    other = "https://ehr.example.org"
    assert make_serve_environment(tmp_path, ALK_FHIR_CORS_ORIGINS=other)["ALK_FHIR_CORS_ORIGINS"] == other


def test_the_sandbox_can_call_what_make_serve_starts(tmp_path: Path, package: Package,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in make_serve_environment(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ALK_FHIR_DATABASE_URL", f"sqlite:///{tmp_path / 'serve.sqlite3'}")
    with TestClient(create_app(Settings.from_env(), package)) as client:
        for path, method in ((PV, "POST"), ("/cds-services", "GET"), (PV + "/feedback", "POST")):
            response = preflight(client, path, method)
            assert response.status_code == 200, (path, response.text)
            assert response.headers["access-control-allow-origin"] == SANDBOX
            assert "authorization" in response.headers["access-control-allow-headers"].lower()
        discovery = client.get("/cds-services", headers={"Origin": SANDBOX})
        assert discovery.status_code == 200 and discovery.headers["access-control-allow-origin"] == SANDBOX
        evil = client.options(PV, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in evil.headers


def test_production_defaults_allow_no_origin(client: TestClient) -> None:
    response = preflight(client, PV)
    assert "access-control-allow-origin" not in response.headers
    assert response.status_code == 405
    assert Settings().cors_origins == () and Settings().cds_auth == "jwt"
