"""The validator's two faces: ``alk-fhir validate`` and ``POST /fhir/{type}/$validate``."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from alk_fhir.api.app import create_app
from alk_fhir.cli import main
from alk_fhir.config import REPO_ROOT, Settings
from alk_fhir.knowledge import Package
from alk_fhir.knowledge.canonical import canonical

EXAMPLES = REPO_ROOT / "examples"
VALID = EXAMPLES / "profiles" / "alk-careteam-example.json"
INVALID = EXAMPLES / "invalid" / "careteam-without-coordinator.json"
CARETEAM = canonical("StructureDefinition", "alk-careteam")


def read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


# ---- command line ---------------------------------------------------------------------------------
def run(*args: str) -> Any:
    return CliRunner().invoke(main, ["validate", *args])


def test_cli_valid_file_exits_0() -> None:
    result = run(str(VALID))
    assert result.exit_code == 0, result.output
    assert "1 file: 1 valid, 0 invalid (0 errors, 0 warnings)" in result.output


def test_cli_invalid_file_names_file_and_path() -> None:
    result = run(str(VALID), str(INVALID))
    assert result.exit_code == 1
    assert f"{INVALID}: ERROR CareTeam.participant: slice 'coordinator': minimum required = 1" in result.output
    assert "2 files: 1 valid, 1 invalid (1 errors, 0 warnings)" in result.output


def test_cli_directory_with_progress_and_bad_json(tmp_path: Path) -> None:
    for path in sorted((EXAMPLES / "invalid").glob("*.json"))[:12]:
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "kapot.json").write_text("{not json", encoding="utf-8")
    result = run(str(tmp_path))
    assert result.exit_code == 2  # unusable input wins over invalid files
    assert "validating" in result.output  # the progress bar (stderr; the runner mixes the streams)
    assert f"{tmp_path / 'kapot.json'}: FATAL -: {tmp_path / 'kapot.json'}: not JSON" in result.output
    assert "13 files: 0 valid, 13 invalid" in result.output


def test_cli_json_output_is_fhir() -> None:
    single = run("--format", "json", str(INVALID))
    outcome = json.loads(single.stdout)
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["expression"] == ["CareTeam.participant"]
    several = run("--format", "json", str(VALID), str(INVALID))
    bundle = json.loads(several.stdout)
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    assert [e["fullUrl"] for e in bundle["entry"]] == [VALID.resolve().as_uri(), INVALID.resolve().as_uri()]


def test_cli_profile_strict_and_usage(tmp_path: Path) -> None:
    team = read(VALID)
    del team["meta"]
    team["participant"] = team["participant"][1:]
    plain = tmp_path / "team.json"
    plain.write_text(json.dumps(team), encoding="utf-8")
    assert run(str(plain)).exit_code == 0
    assert run("--profile", CARETEAM, str(plain)).exit_code == 1
    unknown = run("--profile", "https://example.org/nope", str(plain))
    assert unknown.exit_code == 1 and "is not known to this server" in unknown.output
    consent = EXAMPLES / "profiles" / "alk-exchange-consent-example.json"  # valid, with one extensible-binding warning
    assert run(str(consent)).exit_code == 0
    assert run("--strict", str(consent)).exit_code == 1
    assert "WARNING" not in run("-q", str(consent)).stdout
    missing = run(str(tmp_path / "weg.json"))
    assert missing.exit_code == 2 and "weg.json" in missing.output
    (tmp_path / "lijst.json").write_text("[1, 2]", encoding="utf-8")
    not_a_resource = run(str(tmp_path / "lijst.json"))
    assert not_a_resource.exit_code == 2 and "not a FHIR resource" in not_a_resource.output
    (tmp_path / "latin1.json").write_bytes('{"resourceType": "Patient", "name": [{"text": "Zoë"}]}'.encode("latin-1"))
    unreadable = run(str(tmp_path / "latin1.json"))
    assert unreadable.exit_code == 2 and "latin1.json: cannot read the file" in unreadable.output
    (tmp_path / "deep.json").write_text("[" * 1200 + "]" * 1200, encoding="utf-8")
    too_deep = run(str(tmp_path / "deep.json"))  # json.loads raises RecursionError: no stack trace
    assert too_deep.exit_code == 2 and isinstance(too_deep.exception, SystemExit)
    assert "deep.json: cannot be decoded: the content is nested too deeply" in too_deep.output


# ---- HTTP --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, package: Package) -> Iterator[TestClient]:
    db = tmp_path_factory.mktemp("db") / "alk.sqlite3"
    with TestClient(create_app(Settings(database_url=f"sqlite:///{db}", cds_auth="off"), package)) as c:
        yield c


def post(client: TestClient, path: str, body: Any, **params: str) -> Any:
    return client.post(path, params=params, content=json.dumps(body),
                       headers={"content-type": "application/fhir+json"})


def test_http_valid_and_invalid_both_answer_200(client: TestClient) -> None:
    ok = post(client, "/fhir/CareTeam/$validate", read(VALID))
    assert ok.status_code == 200 and ok.headers["content-type"].startswith("application/fhir+json")
    assert [i["severity"] for i in ok.json()["issue"]] == ["information"]
    bad = post(client, "/fhir/CareTeam/$validate", read(INVALID))
    assert bad.status_code == 200
    assert bad.json()["issue"][0]["expression"] == ["CareTeam.participant"]


def test_http_parameters_and_profile(client: TestClient) -> None:
    team = read(VALID)
    del team["meta"]
    team["participant"] = team["participant"][1:]
    assert post(client, "/fhir/CareTeam/$validate", team).json()["issue"][0]["severity"] == "information"
    by_query = post(client, "/fhir/CareTeam/$validate", team, profile=CARETEAM).json()
    assert by_query["issue"][0]["severity"] == "error"
    params = {"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": team}, {"name": "profile", "valueUri": CARETEAM},
        {"name": "mode", "valueCode": "create"}]}
    assert post(client, "/fhir/CareTeam/$validate", params).json() == by_query


def test_http_system_level_validate_reads_the_type_from_the_content(client: TestClient) -> None:
    bad = post(client, "/fhir/$validate", read(INVALID))
    assert bad.status_code == 200 and bad.json()["issue"][0]["expression"] == ["CareTeam.participant"]
    assert post(client, "/fhir/$validate", read(VALID)).json()["issue"][0]["severity"] == "information"
    document = read(EXAMPLES / "profiles" / "alk-case-overview-document-example.json")
    params = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": document}]}
    outcome = post(client, "/fhir/$validate", params).json()
    assert not [i for i in outcome["issue"] if i["severity"] in ("error", "fatal")]
    not_fhir = post(client, "/fhir/$validate", {"name": "no resourceType"})
    assert not_fhir.status_code == 200
    assert any(i["severity"] == "error" and "resourceType" in i["diagnostics"] for i in not_fhir.json()["issue"])


@pytest.mark.parametrize(("path", "body", "status", "words"), [
    ("/fhir/CareTeam/$validate", {"resourceType": "Patient"}, 400, "this is CareTeam/$validate"),
    ("/fhir/Zorgteam/$validate", {"resourceType": "Zorgteam"}, 404, "not an R4 resource type"),
    ("/fhir/CareTeam/$validate", {"resourceType": "Parameters", "parameter": [{"name": "mode", "valueCode": "update"}]},
     400, "needs a stored instance"),
    ("/fhir/CareTeam/$validate", {"resourceType": "Parameters", "parameter": [{"name": "x", "valueString": "y"}]},
     400, "unknown parameter"),
    ("/fhir/CareTeam/$validate", {"resourceType": "Parameters", "parameter": []}, 400, "no resource to validate"),
    ("/fhir/$validate", {"resourceType": "Parameters", "parameter": []}, 400, "no resource to validate"),
    ("/fhir/$validate", [1, 2], 400, "no resource to validate"),
])
def test_http_refusals(client: TestClient, path: str, body: Any, status: int, words: str) -> None:
    response = post(client, path, body)
    assert response.status_code == status
    assert response.json()["resourceType"] == "OperationOutcome"
    assert words in response.json()["issue"][0]["diagnostics"]


def test_http_unknown_profile_and_broken_json(client: TestClient) -> None:
    response = post(client, "/fhir/CareTeam/$validate", read(VALID), profile="https://example.org/nope")
    assert response.status_code == 400 and "cannot validate against profile" in response.text
    broken = client.post("/fhir/CareTeam/$validate", content=b"{kapot",
                         headers={"content-type": "application/fhir+json"})
    assert broken.status_code == 400 and broken.json()["resourceType"] == "OperationOutcome"


def test_capability_statement_announces_validate(client: TestClient) -> None:
    operations = client.get("/fhir/metadata").json()["rest"][0]["operation"]
    assert {"name": "validate", "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate"} in operations


def test_require_valid_document(client: TestClient) -> None:
    from fastapi import Request

    from alk_fhir.api.outcome import FHIRError
    from alk_fhir.api.validate_routes import require_valid_document

    request = Request({"type": "http", "app": client.app})
    good = read(EXAMPLES / "profiles" / "alk-case-overview-document-example.json")
    assert require_valid_document(request, good)["resourceType"] == "OperationOutcome"
    with pytest.raises(FHIRError) as caught:
        require_valid_document(request, read(EXAMPLES / "invalid" / "document-patient-missing.json"))
    assert caught.value.status == 422
    assert caught.value.outcome is not None and any(
        i["expression"] == ["Bundle.entry[0].resource.subject"] for i in caught.value.outcome["issue"])
