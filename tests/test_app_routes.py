"""/app/ on the service: the npm build served with safe headers, the install page without it, the
configuration the launch page reads, and the overview renderer's refusals."""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from alk_fhir.api import app_routes
from alk_fhir.api.app import create_app
from alk_fhir.config import REPO_ROOT, Settings
from alk_fhir.knowledge import Package
from alk_fhir.overview import build_overview


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, package: Package) -> Iterator[TestClient]:
    db = tmp_path_factory.mktemp("db") / "alk.sqlite3"
    settings = Settings(database_url=f"sqlite:///{db}", cds_auth="off")
    with TestClient(create_app(settings, package)) as test_client:
        yield test_client


@pytest.fixture()
def fake_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A vendor/ directory with a manifest, standing in for scripts/build-app.sh's output."""
    vendor = tmp_path / "vendor"
    (vendor / "lib").mkdir(parents=True)
    (vendor / "lib" / "x.js").write_text("window.X = 1;\n", encoding="utf-8")
    (vendor / "manifest.json").write_text(json.dumps({"packages": {"x": {"version": "1", "files": ["lib/x.js"]}}}),
                                          encoding="utf-8")
    monkeypatch.setattr(app_routes, "VENDOR_DIR", vendor)
    monkeypatch.setattr(app_routes, "MANIFEST", vendor / "manifest.json")
    return vendor


def test_app_pages_and_assets_are_served_with_security_headers(client: TestClient, fake_build: Path) -> None:
    page = client.get("/app/launch.html")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer" and page.headers["cache-control"] == "no-store"
    assert 'src="vendor/fhirclient/fhir-client.min.js"' in page.text
    assert client.get("/app/").text == client.get("/app/index.html").text
    redirect = client.get("/app", follow_redirects=False)
    assert redirect.status_code == 308 and redirect.headers["location"] == "/app/"
    script = client.get("/app/js/main.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert script.headers["x-content-type-options"] == "nosniff"
    assert client.get("/app/vendor/lib/x.js").text == "window.X = 1;\n"
    assert client.get("/app/css/app.css").headers["content-type"].startswith("text/css")


@pytest.mark.parametrize("path", ["/app/../pyproject.toml", "/app/js/../../../../config.py", "/app/vendor/../web/x",
                                  "/app/nothing.js", "/app/vendor/%2e%2e/build.mjs"])
def test_app_never_serves_outside_its_directories(client: TestClient, fake_build: Path, path: str) -> None:
    resp = client.get(path)
    assert resp.status_code == 404
    assert resp.json()["resourceType"] == "OperationOutcome"


def test_without_the_npm_build_app_pages_say_how_to_install(client: TestClient, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_routes, "VENDOR_DIR", tmp_path / "vendor")
    monkeypatch.setattr(app_routes, "MANIFEST", tmp_path / "vendor" / "manifest.json")
    for path in ("/app/", "/app/index.html", "/app/launch.html"):
        resp = client.get(path)
        assert resp.status_code == 503
        assert "scripts/build-app.sh" in resp.text and "npm ci" in resp.text
    assert client.get("/healthz").status_code == 200  # the service itself runs


def test_a_build_with_missing_files_is_not_served(client: TestClient, fake_build: Path) -> None:
    (fake_build / "lib" / "x.js").unlink()
    resp = client.get("/app/index.html")
    assert resp.status_code == 503 and "lib/x.js" in resp.text


def test_config_names_the_public_client_and_v2_scopes(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    body = client.get("/app/config.json").json()
    assert body == {"clientId": "alk-fhir-app", "scope": app_routes.DEFAULT_SCOPE, "redirectPath": "index.html"}
    assert "patient/QuestionnaireResponse.c" in body["scope"].split()
    monkeypatch.setenv("ALK_FHIR_APP_CLIENT_ID", "ehr-registered-id")
    monkeypatch.setenv("ALK_FHIR_APP_SCOPE", "openid fhirUser patient/*.rs")
    settings = Settings.from_env()
    assert (settings.app_client_id, settings.app_scope) == ("ehr-registered-id", "openid fhirUser patient/*.rs")
    assert app_routes.app_config(settings)["clientId"] == "ehr-registered-id"


def test_render_overview_returns_the_readable_page(client: TestClient, package: Package,
                                                   patients: dict[str, dict[str, object]]) -> None:
    record = patients["patient-criterion1-failed-cbt-physio"]
    document = build_overview(record, package, today=date(2026, 11, 1))
    resp = client.post("/app/api/render-overview", json=document)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    assert "Anna de Vries" in resp.text and "<script" not in resp.text


@pytest.mark.parametrize(("body", "status"), [
    ({"resourceType": "Bundle", "type": "collection", "entry": []}, 422),
    ({"resourceType": "Patient"}, 422),
    ([1, 2], 422),
])
def test_render_overview_refuses_what_is_not_a_document(client: TestClient, body: object, status: int) -> None:
    resp = client.post("/app/api/render-overview", json=body)
    assert resp.status_code == status
    assert resp.json()["resourceType"] == "OperationOutcome"
    assert any(i["severity"] in ("error", "fatal") for i in resp.json()["issue"])


def _broken(document: dict[str, Any], where: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(json.dumps(document))
    composition = doc["entry"][0]["resource"]
    if where == "sections":
        composition["section"] = "x"
    elif where == "section":
        composition["section"][0] = "x"
    elif where == "section-code":
        composition["section"][0]["code"] = "x"
    else:
        entry = next(e for e in doc["entry"] if e["resource"]["resourceType"] == where)
        key = "medicationCodeableConcept" if where == "MedicationStatement" else "code"
        entry["resource"][key] = "x"
    return doc


@pytest.mark.parametrize("where", ["sections", "section", "section-code", "MedicationStatement", "Condition"])
def test_render_overview_refuses_malformed_documents_with_the_outcome(
        client: TestClient, package: Package, patients: dict[str, dict[str, object]], where: str) -> None:
    document = build_overview(patients["patient-criterion1-failed-cbt-physio"], package, today=date(2026, 11, 1))
    resp = client.post("/app/api/render-overview", json=_broken(document, where))
    assert resp.status_code == 422, resp.text[:300]
    issues = resp.json()["issue"]
    assert any(i["severity"] == "error" and i.get("expression") for i in issues)


def test_render_overview_refuses_non_json(client: TestClient) -> None:
    resp = client.post("/app/api/render-overview", content=b"<html/>", headers={"Content-Type": "text/html"})
    assert resp.status_code == 415


def test_the_app_documents_the_app_context_format_the_cds_cards_use() -> None:
    readme = (REPO_ROOT / "src" / "alk_fhir" / "app" / "README.md").read_text(encoding="utf-8")
    assert '{"questionnaire": "<canonical>' in readme
    cards = (REPO_ROOT / "src" / "alk_fhir" / "cds" / "cards.py").read_text(encoding="utf-8")
    assert '"appContext": json.dumps({"questionnaire": canonical' in cards


def _guideline_codes(package: Package) -> list[dict[str, Any]]:
    cs = package.resolve("https://alk-fhir.org/fhir/CodeSystem/alk-guideline")
    assert cs is not None
    out: list[dict[str, Any]] = []

    def walk(concepts: list[dict[str, Any]]) -> None:
        for concept in concepts:
            out.append(concept)
            walk(concept.get("concept", []))

    walk(cs["concept"])
    return out


def test_guideline_page_has_an_anchor_per_section_code_with_what_the_plan_advises(
        client: TestClient, package: Package, fake_build: Path) -> None:
    resp = client.get("/app/guideline.html")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in resp.headers["content-security-policy"]
    page = resp.text
    assert page.count("<h1>") == 1 and '<html lang="nl">' in page and "<script" not in page
    for concept in _guideline_codes(package):
        assert f'id="section-{concept["code"]}"' in page, concept["code"]
        assert html.escape(concept["display"]) in page
    plan = package.resolve("https://alk-fhir.org/fhir/PlanDefinition/alk-guideline")
    assert plan is not None
    first = plan["action"][0]
    code = first["code"][0]["coding"][0]["code"]
    section = page.split(f'id="section-{code}"')[1].split("</section>")[0]
    assert html.escape(first["title"]) in section
    assert 'href="https://www.nalk.info/"' in page  # the published text


def test_guideline_page_in_english_uses_the_designations(client: TestClient, package: Package,
                                                          fake_build: Path) -> None:
    page = client.get("/app/guideline.html", params={"lang": "en"}).text
    assert '<html lang="en">' in page
    for concept in _guideline_codes(package):
        english = next(d["value"] for d in concept["designation"] if d["language"].startswith("en"))
        assert html.escape(english) in page, concept["code"]
    unknown = client.get("/app/guideline.html", params={"lang": "xx"}).text
    assert unknown.startswith('<!doctype html>\n<html lang="nl">')


def test_guideline_page_without_the_build_says_how_to_install(client: TestClient, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_routes, "MANIFEST", tmp_path / "vendor" / "manifest.json")
    resp = client.get("/app/guideline.html")
    assert resp.status_code == 503 and "scripts/build-app.sh" in resp.text


def _safety(client: TestClient, example_file: str, **extra: Any) -> Any:
    record = json.loads((REPO_ROOT / "examples" / "patients" / example_file).read_text(encoding="utf-8"))
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "today", "valueDate": "2026-12-05"}, {"name": "data", "resource": record},
        *[{"name": k, "valueString": v} for k, v in extra.items()]]}
    return client.post("/app/api/safety", json=body)


def _trigger(param: dict[str, Any]) -> dict[str, Any]:
    ext = next(e for e in param["extension"] if e["url"].endswith("/alk-trigger"))
    out: dict[str, Any] = {"evidence": []}
    for part in ext["extension"]:
        if part["url"] == "evidence":
            out["evidence"].append(part["valueReference"]["reference"])
        else:
            out[part["url"]] = next(v for k, v in part.items() if k.startswith("value"))
    return out


def test_safety_names_risk_medication_and_the_wish_to_die_from_the_librarys_facts(client: TestClient) -> None:
    dirk = _safety(client, "patient-polypharmacy-opioid-benzo.json")
    assert dirk.status_code == 200
    [risk] = [_trigger(p) for p in dirk.json()["parameter"]]
    assert risk["fact"] == "riskMedicationCount" and risk["label"] == "Risicomedicatie" and risk["value"] == 5
    assert sorted(risk["evidence"]) == [f"MedicationStatement/med-dirk-{i}" for i in (1, 2, 3, 4, 5)]
    carla = [_trigger(p) for p in _safety(client, "patient-bedridden-tube-feeding.json").json()["parameter"]]
    assert [(t["fact"], t["value"]) for t in carla] == [("wishToDie", True)]
    assert carla[0]["evidence"] == ["QuestionnaireResponse/qr-carla-criteria"]
    assert _safety(client, "patient-no-alk.json").json()["parameter"] == []


def test_safety_refuses_what_is_not_a_record(client: TestClient) -> None:
    bad = client.post("/app/api/safety", json={"resourceType": "Patient"})
    assert bad.status_code == 400 and bad.json()["resourceType"] == "OperationOutcome"
    missing = client.post("/app/api/safety", json={"resourceType": "Parameters", "parameter": []})
    assert missing.status_code == 400 and "data" in missing.json()["issue"][0]["diagnostics"]
    wrong_subject = _safety(client, "patient-no-alk.json", subject="Observation/1")
    assert wrong_subject.status_code == 400
