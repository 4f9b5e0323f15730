"""``alk-fhir overview send`` says what happened (issue 12): "stored as version N" when the partner
stored the document, "already there as version N" when it already had it; ``--format json`` for scripts.

Against the fake partner server (standard FHIR conditional create: 201 created, 200 when a Bundle with
the identifier exists). Against our own server, which keeps a version per changed content and codes
it in ``Prefer: return=OperationOutcome``, the same words are checked end to end in
test_overview_e2e.py, and the coding here with ``_send_result``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from alk_fhir.cli import main
from alk_fhir.exchange.backend_services import public_jwk
from alk_fhir.exchange.client import _send_result
from alk_fhir.fhir import operation_outcome
from alk_fhir.overview import build_overview
from fixtures.overview.kit import GGZ_ORG, T1, TODAY, gp_record, package
from test_exchange_fake import FakeFhirServer

CLIENT_ID = "gp-client"


@pytest.fixture
def fake() -> Iterator[FakeFhirServer]:
    server = FakeFhirServer()
    server.start()
    yield server
    server.stop()


def send(fake: FakeFhirServer, tmp_path: Path, *extra: str) -> tuple[int, str]:
    key_file = tmp_path / "gp.pem"
    if not key_file.exists():
        key = ec.generate_private_key(ec.SECP384R1())
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        fake.register_client(CLIENT_ID, key.public_key(), "ES384", str(public_jwk(key, "ES384")["kid"]))
    document = tmp_path / "overview.json"
    if not document.exists():
        document.write_text(json.dumps(build_overview(gp_record(), package(), today=TODAY, timestamp=T1)),
                            encoding="utf-8")
    result = CliRunner().invoke(main, [
        "overview", "send", str(document), "--recipient", GGZ_ORG, "--date", TODAY.isoformat(),
        "--server", fake.base, "--client-id", CLIENT_ID, "--private-key", str(key_file), "--max-wait", "5", *extra])
    return result.exit_code, result.stdout


def test_send_says_stored_then_already_there(fake: FakeFhirServer, tmp_path: Path) -> None:
    code, out = send(fake, tmp_path)
    assert code == 0, out
    assert "stored as version 1 (HTTP 201, Bundle/" in out
    code, out = send(fake, tmp_path)
    assert code == 0, out
    assert "already there as version 1 (HTTP 200, Bundle/" in out
    assert len(fake.state.documents) == 1
    prefer = {h.headers.get("Prefer") for h in fake.state.hits_for("POST", "/fhir/Bundle")}
    assert prefer == {"return=OperationOutcome"}  # how our own server tells a new version from no change


def test_send_format_json_for_scripts(fake: FakeFhirServer, tmp_path: Path) -> None:
    code, out = send(fake, tmp_path, "--format", "json")
    assert code == 0, out
    first = json.loads(out)
    doc_id = next(iter(fake.state.documents))
    assert first == {"document": str(tmp_path / "overview.json"), "server": fake.base, "result": "stored",
                     "status": 201, "id": doc_id, "versionId": "1",
                     "location": f"{fake.base}/Bundle/{doc_id}/_history/1"}
    again = json.loads(send(fake, tmp_path, "--format", "json")[1])
    assert (again["result"], again["status"], again["versionId"]) == ("already-there", 200, "1")


def _response(status: int, body: object, location: str) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.headers["Location"] = location
    response._content = json.dumps(body).encode()
    return response


def test_a_coded_outcome_tells_a_new_version_from_an_unchanged_one() -> None:
    base = "https://ggz.example/fhir"
    updated = operation_outcome("information", "informational", "stored as version 2",
                                details=("MSG_UPDATED", "existing resource updated"))
    result = _send_result(_response(200, updated, f"{base}/Bundle/d/_history/2"), base)
    assert (result.stored, result.created, result.version_id) == (True, False, "2")
    unchanged = operation_outcome("information", "informational", "already there as version 2")
    result = _send_result(_response(200, unchanged, f"{base}/Bundle/d/_history/2"), base)
    assert (result.stored, result.version_id) == (False, "2")
    created = operation_outcome("information", "informational", "stored as version 1",
                                details=("MSG_CREATED", "New resource created"))
    assert _send_result(_response(201, created, f"{base}/Bundle/d/_history/1"), base).stored
