"""The example CDS Hooks requests (examples/hooks/) and the helpers every CDS test shares.

Each example is what a CDS client would send for one example patient: the prefetch holds, per key,
exactly what the discovery template would return from a FHIR server holding that patient's bundle
(same filters). ``python tests/test_cds_examples.py`` rewrites the files; a test keeps them in sync.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from alk_fhir.api.app import create_app
from alk_fhir.cds import SERVICES_BY_ID, cds_state
from alk_fhir.cds.feedback import MemoryFeedbackSink
from alk_fhir.config import REPO_ROOT, Settings
from fixtures.fhirsearch import search

HOOKS_DIR = REPO_ROOT / "examples" / "hooks"
PATIENTS_DIR = REPO_ROOT / "examples" / "patients"
TODAY = date(2026, 11, 23)
BASE = "https://alk.example.org"
ATC = "http://www.whocc.no/atc"
_NS = uuid.UUID("5d3f8a8e-1d2b-4c7e-9a41-6f0d2c9b7e15")

JSON = dict[str, Any]


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def patient_bundle(name: str) -> JSON:
    data: JSON = read_json(PATIENTS_DIR / f"{name}.json")
    return data


def resources(bundle: JSON) -> list[JSON]:
    return [e["resource"] for e in bundle.get("entry", [])]


def prefetch_for(bundle: JSON, service: Any, user: str) -> JSON:
    """Per key what the EHR's server answers to the rendered template (tests/fixtures/fhirsearch.py)."""
    record = resources(bundle)
    pid = patient_id(bundle)
    out: JSON = {}
    for key, template in service.prefetch.items():
        if "{{userPractitionerRoleId}}" in template:
            continue  # the example users are Practitioners: no PractitionerRole to read
        relative = template.replace("{{context.patientId}}", pid).replace("{{userPractitionerId}}",
                                                                           user.split("/", 1)[1])
        out[key] = search(record, relative)
    return out


def first_practitioner(bundle: JSON) -> str:
    return next((f"Practitioner/{r['id']}" for r in resources(bundle) if r["resourceType"] == "Practitioner"),
                "Practitioner/example-gp")


def patient_id(bundle: JSON) -> str:
    return str(next(r["id"] for r in resources(bundle) if r["resourceType"] == "Patient"))


def hook_request(service_id: str, bundle: JSON, name: str, draft_orders: list[JSON] | None = None) -> JSON:
    service = SERVICES_BY_ID[service_id]
    user = first_practitioner(bundle)
    pid = patient_id(bundle)
    context: JSON = {"userId": user, "patientId": pid}
    if draft_orders is not None:
        context["draftOrders"] = {"resourceType": "Bundle", "type": "collection",
                                  "entry": [{"resource": r} for r in draft_orders]}
        if service.hook == "order-select":
            context["selections"] = [f"{r['resourceType']}/{r['id']}" for r in draft_orders[-1:]]
    return {
        "hookInstance": str(uuid.uuid5(_NS, name)),
        "hook": service.hook,
        "context": context,
        "prefetch": prefetch_for(bundle, service, user),
    }


def draft(pid: str, rx_id: str, atc: str, text: str, user: str) -> JSON:
    return {"resourceType": "MedicationRequest", "id": rx_id, "status": "draft", "intent": "order",
            "medicationCodeableConcept": {"coding": [{"system": ATC, "code": atc}], "text": text},
            "subject": {"reference": f"Patient/{pid}"}, "requester": {"reference": user},
            "dosageInstruction": [{"text": text}]}


def order_examples() -> dict[str, JSON]:
    dirk = patient_bundle("patient-polypharmacy-opioid-benzo")
    anna = patient_bundle("patient-criterion1-failed-cbt-physio")
    none = patient_bundle("patient-no-alk")
    out = {}
    for name, bundle, rx in (
            ("order-select-polypharmacy-oxycodone", dirk, [("N02AA05", "oxycodon 5 mg 4dd zo nodig")]),
            ("order-sign-polypharmacy-oxycodone", dirk, [("N02BE01", "paracetamol 1000 mg 3dd"),
                                                         ("N02AA05", "oxycodon 5 mg 4dd zo nodig")]),
            ("order-select-criterion1-paracetamol", anna, [("N02BE01", "paracetamol 1000 mg 3dd")]),
            ("order-select-criterion1-diazepam", anna, [("N05BA01", "diazepam 5 mg 2dd")]),
            ("order-select-no-alk-oxycodone", none, [("N02AA05", "oxycodon 5 mg 4dd zo nodig")])):
        pid, user = patient_id(bundle), first_practitioner(bundle)
        drafts = [draft(pid, f"draft-{i + 1}", atc, text, user) for i, (atc, text) in enumerate(rx)]
        service = "alk-order-sign" if name.startswith("order-sign") else "alk-order-select"
        out[name] = hook_request(service, bundle, name, drafts)
    return out


def all_examples() -> dict[str, JSON]:
    out = {f"patient-view-{p.stem.removeprefix('patient-')}": hook_request(
        "alk-patient-view", read_json(p), f"patient-view-{p.stem}") for p in sorted(PATIENTS_DIR.glob("*.json"))}
    out.update(order_examples())
    return out


def write_examples() -> None:
    HOOKS_DIR.mkdir(parents=True, exist_ok=True)
    for name, body in all_examples().items():
        (HOOKS_DIR / f"{name}.json").write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n",
                                                 encoding="utf-8")


def example(name: str) -> JSON:
    data: JSON = read_json(HOOKS_DIR / f"{name}.json")
    return data


def cds_app(tmp_path: Path, **settings: Any) -> FastAPI:
    """The real app (auth off unless asked), its date pinned and feedback kept in memory."""
    options: dict[str, Any] = {"base_url": BASE, "cds_auth": "off",
                               "database_url": f"sqlite:///{tmp_path / 'cds.sqlite3'}"}
    options.update(settings)
    app = create_app(Settings(**options))
    state = cds_state(app)
    state.today = lambda: TODAY
    state.feedback = MemoryFeedbackSink()
    return app


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    yield TestClient(cds_app(tmp_path_factory.mktemp("cds")))


# ------------------------------------------------------------------------------------------ tests

def test_example_requests_are_in_sync_with_the_patient_bundles() -> None:
    expected = all_examples()
    stored = {p.stem: read_json(p) for p in HOOKS_DIR.glob("*.json")}
    assert sorted(stored) == sorted(expected), "run: python tests/test_cds_examples.py"
    for name, body in expected.items():
        assert stored[name] == body, f"examples/hooks/{name}.json is stale: run python tests/test_cds_examples.py"


def test_examples_fill_every_prefetch_key_of_their_service() -> None:
    for name, body in all_examples().items():
        service = next(s for s in SERVICES_BY_ID.values() if s.hook == body["hook"])
        assert set(body["prefetch"]) == set(service.prefetch_keys) - {"userRole"}, name


def test_every_example_is_answered_with_200(client: TestClient) -> None:
    for path in sorted(HOOKS_DIR.glob("*.json")):
        body = read_json(path)
        service = "alk-patient-view" if body["hook"] == "patient-view" else f"alk-{body['hook']}"
        response = client.post(f"/cds-services/{service}", json=body)
        assert response.status_code == 200, (path.name, response.text)
        assert isinstance(response.json()["cards"], list)


if __name__ == "__main__":
    write_examples()
    sys.stdout.write(f"wrote {len(all_examples())} hook requests to {HOOKS_DIR}\n")
