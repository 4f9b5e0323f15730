"""The package as a read-only FHIR knowledge repository over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from alk_fhir.api.app import create_app
from alk_fhir.config import Settings
from alk_fhir.knowledge import Package


@pytest.fixture(scope="module")
def client(package: Package, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    db = tmp_path_factory.mktemp("db") / "k.sqlite3"
    settings = Settings(database_url=f"sqlite:///{db}", cds_auth="off")
    with TestClient(create_app(settings, package)) as c:
        yield c


def test_metadata_is_an_r4_capability_statement(client: TestClient) -> None:
    r = client.get("/fhir/metadata")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/fhir+json")
    cs = r.json()
    assert cs["resourceType"] == "CapabilityStatement" and cs["fhirVersion"] == "4.0.1"
    types = {res["type"] for res in cs["rest"][0]["resource"]}
    assert {"PlanDefinition", "Questionnaire", "ValueSet", "CodeSystem", "StructureDefinition"} <= types
    ops = {o["name"] for o in cs["rest"][0].get("operation", [])}
    assert "apply" in ops


def test_read_and_canonical_search(client: TestClient) -> None:
    r = client.get("/fhir/Questionnaire/alk-criteria")
    assert r.status_code == 200 and r.json()["url"] == "https://alk-fhir.org/fhir/Questionnaire/alk-criteria"
    url = "https://alk-fhir.org/fhir/PlanDefinition/alk-guideline"
    for query in ({"url": url}, {"url": url, "version": "0.1.0"}, {"url": f"{url}|0.1.0"}):
        bundle = client.get("/fhir/PlanDefinition", params=query).json()
        assert bundle["type"] == "searchset" and bundle["total"] == 1
        assert bundle["entry"][0]["resource"]["id"] == "alk-guideline"
    assert client.get("/fhir/PlanDefinition", params={"url": url, "version": "9.9"}).json()["total"] == 0
    everything = client.get("/fhir/ActivityDefinition").json()
    assert everything["total"] == len(everything["entry"]) >= 12


def test_expand_our_valueset(client: TestClient) -> None:
    vs = client.get("/fhir/ValueSet/alk-treatments/$expand").json()
    codes = [c["code"] for c in vs["expansion"]["contains"]]
    # our eight (H §1.1) and SNOMED CT CBT 228557008 and physiotherapy 91251008 (terminology.md)
    assert "treatment-cbt" in codes and "228557008" in codes and vs["expansion"]["total"] == len(codes) == 10
    by_url = client.get("/fhir/ValueSet/$expand", params={"url": "https://alk-fhir.org/fhir/ValueSet/alk-treatments"})
    assert by_url.json()["expansion"]["contains"] == vs["expansion"]["contains"]


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/fhir/Questionnaire/nope", 404, "not-found"),
        ("/fhir/Patient/1", 404, "not-supported"),
        ("/fhir/PlanDefinition?foo=bar", 400, "not-supported"),
        ("/fhir/ValueSet/alk-risk-medication/$expand", 422, "too-costly"),
        ("/fhir/ValueSet/$expand", 400, "required"),
    ],
)
def test_errors_are_operation_outcomes(client: TestClient, path: str, status: int, code: str) -> None:
    r = client.get(path)
    assert r.status_code == status
    body = r.json()
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["code"] == code
