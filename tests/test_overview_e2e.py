"""End to end: a GP and a GGz, two ``alk-fhir serve`` processes on 127.0.0.1, exchange the overview.

Each instance has its own database (an SQLite file; with ALK_FHIR_TEST_POSTGRES_URL also a
PostgreSQL schema) and its own partners file registering both clients with their public keys. All
traffic is real: SMART Backend Services tokens, ``alk-fhir overview send|fetch|diff`` as
subprocesses. The story: the GP builds the overview of the example patient and sends it; the GGz
lists it, adds a step to the plan and sends its version back; the GP's diff shows exactly that
step. Sending a document twice leaves one version. The GGz is stopped while the GP sends and
started again: the document arrives exactly once.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import create_engine, text

from alk_fhir.exchange import BackendServicesAuth, FhirClient, public_jwk
from alk_fhir.overview import add_step
from alk_fhir.store import open_store
from alk_fhir.store.db import normalise_url
from fixtures.overview.kit import BSN, GGZ_ORG, GP_ORG, GP_URA, PATIENT_BSN, T1, T2, T3, URA, gp_record, package

PG_URL = os.environ.get("ALK_FHIR_TEST_POSTGRES_URL", "")
BACKENDS = [
    "sqlite",
    pytest.param("postgresql", marks=[
        pytest.mark.postgres,
        pytest.mark.skipif(not PG_URL, reason="ALK_FHIR_TEST_POSTGRES_URL is not set")]),
]
ALK_FHIR = [sys.executable, "-c", "from alk_fhir.cli import main; main()"]
SCOPES = ["system/Bundle.read", "system/Bundle.write"]
PATIENT = f"{BSN}|{PATIENT_BSN}"
STARTUP_SECONDS = 90


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Instance:
    """One ``alk-fhir serve`` process; ``start`` again after ``stop`` reuses port and database."""

    name: str
    port: int
    database_url: str
    partners_file: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    handle: IO[bytes] | None = field(default=None, repr=False)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base(self) -> str:
        return self.origin + "/fhir"

    def start(self) -> None:
        env = {**os.environ, "ALK_FHIR_DATABASE_URL": self.database_url,
               "ALK_FHIR_PARTNERS_FILE": str(self.partners_file), "ALK_FHIR_BASE_URL": self.origin,
               "ALK_FHIR_CDS_AUTH": "off", "ALK_FHIR_LOG_LEVEL": "warning"}
        self.handle = self.log.open("ab")
        self.proc = subprocess.Popen([*ALK_FHIR, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                                     env=env, stdout=self.handle, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited at start-up:\n{self.log.read_text(errors='replace')}")
            try:
                if requests.get(self.origin + "/healthz", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{self.name} did not answer within {STARTUP_SECONDS} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        if self.handle is not None:
            self.handle.close()
        self.proc, self.handle = None, None


@dataclass
class Party:
    client_id: str
    organization: str  # system|value
    key_file: Path
    jwk: dict[str, Any]


def pem_key(path: Path) -> tuple[Path, dict[str, Any]]:
    key = ec.generate_private_key(ec.SECP384R1())
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path, public_jwk(key, "ES384")


def database_urls(backend: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'gp.sqlite3'}", f"sqlite:///{tmp_path / 'ggz.sqlite3'}"
        return
    schemas = [f"alk_e2e_{name}_{uuid.uuid4().hex[:10]}" for name in ("gp", "ggz")]
    admin = create_engine(normalise_url(PG_URL))
    with admin.begin() as conn:
        for schema in schemas:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        urls = [normalise_url(PG_URL).update_query_dict({"options": f"-csearch_path={s}"})
                .render_as_string(hide_password=False) for s in schemas]
        yield urls[0], urls[1]
    finally:
        with admin.begin() as conn:
            for schema in schemas:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@dataclass
class World:
    tmp: Path
    gp: Instance
    ggz: Instance
    gp_party: Party
    ggz_party: Party


@pytest.fixture(params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    gp_party = Party("gp-delinde", GP_ORG, *pem_key(tmp_path / "gp-key.pem"))
    ggz_party = Party("ggz-alkcentrum", GGZ_ORG, *pem_key(tmp_path / "ggz-key.pem"))
    partners = [{"client_id": p.client_id, "name": p.client_id,
                 "organization": {"system": URA, "value": p.organization.split("|")[1]},
                 "scopes": SCOPES, "jwks": {"keys": [p.jwk]}} for p in (gp_party, ggz_party)]
    partners_file = tmp_path / "partners.json"
    partners_file.write_text(json.dumps(partners), encoding="utf-8")
    for urls in database_urls(request.param, tmp_path):
        gp = Instance("GP", free_port(), urls[0], partners_file, tmp_path / "gp.log")
        ggz = Instance("GGz", free_port(), urls[1], partners_file, tmp_path / "ggz.log")
        try:
            gp.start()
            ggz.start()
            yield World(tmp_path, gp, ggz, gp_party, ggz_party)
        finally:
            gp.stop()
            ggz.stop()


def cli(*args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*ALK_FHIR, "overview", *args], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == expect, f"exit {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    return done


def exchange(party: Party, server: Instance) -> list[str]:
    return ["--server", server.base, "--client-id", party.client_id, "--private-key", str(party.key_file)]


def versions(party: Party, server: Instance) -> dict[str, list[dict[str, Any]]]:
    """Every Bundle about the patient on ``server`` with its whole history, read as ``party``."""
    auth = BackendServicesAuth(server.base, party.client_id, party.key_file.read_bytes(), scopes=SCOPES)
    with FhirClient(server.base, auth) as client:
        return {str(doc["id"]): client.history("Bundle", str(doc["id"]))
                for doc in client.fetch_documents(BSN, PATIENT_BSN)}


def step_texts(document: dict[str, Any]) -> list[str]:
    plan = next(e["resource"] for e in document["entry"] if e["resource"]["resourceType"] == "CarePlan")
    return [a["detail"]["description"] for a in plan["activity"]]


def test_gp_and_ggz_keep_the_overview_in_step(world: World) -> None:
    tmp, gp, ggz = world.tmp, world.gp, world.ggz
    record = tmp / "record.json"
    record.write_text(json.dumps(gp_record()), encoding="utf-8")

    # The GP builds the overview for the GGz (consent gate) and sends it, twice.
    gp_v1 = tmp / "gp-v1.json"
    cli("build", str(record), "--date", "2026-11-23", "--timestamp", T1, "--recipient", GGZ_ORG, "-o", str(gp_v1))
    provenance = tmp / "provenance.json"
    sent = cli("send", str(gp_v1), "--recipient", GGZ_ORG, "--date", "2026-11-23", "--provenance", str(provenance),
               *exchange(world.gp_party, ggz))
    assert "stored as version 1 (HTTP 201" in sent.stdout
    again = cli("send", str(gp_v1), "--recipient", GGZ_ORG, "--date", "2026-11-23", *exchange(world.gp_party, ggz))
    assert "already there as version 1 (HTTP 200" in again.stdout
    record_of_send = json.loads(provenance.read_text())
    assert record_of_send["resourceType"] == "Provenance"
    assert record_of_send["target"][0]["identifier"] == json.loads(gp_v1.read_text())["identifier"]
    assert record_of_send["agent"][0]["who"]["identifier"] == {"system": URA, "value": GP_URA}
    on_ggz = versions(world.ggz_party, ggz)
    assert [len(h) for h in on_ggz.values()] == [1]  # same document twice: one version

    # The GGz lists what it holds about the patient.
    inbox = tmp / "ggz-inbox"
    listed = cli("fetch", "--patient", PATIENT, "-o", str(inbox), *exchange(world.ggz_party, ggz))
    files = listed.stdout.split()
    assert len(files) == 1
    received = json.loads(Path(files[0]).read_text())
    assert received["identifier"] == json.loads(gp_v1.read_text())["identifier"]

    # The GGz adds a step to the plan and sends its version back to the GP.
    ggz_v2 = tmp / "ggz-v2.json"
    ggz_v2.write_text(json.dumps(add_step(
        received, package(), description="Stap 2: begeleide afbouw oxycodon door de GGz", start="2027-01-15",
        end="2027-06-15", performer="Organization/org-ggz-alkcentrum", goal="Oxycodon gestopt zonder terugval",
        timestamp=T2, author="Organization/org-ggz-alkcentrum", custodian=GGZ_ORG)), encoding="utf-8")
    back = cli("send", str(ggz_v2), "--recipient", GP_ORG, "--date", "2026-11-24", *exchange(world.ggz_party, gp))
    assert "HTTP 201" in back.stdout
    cli("send", str(ggz_v2), "--recipient", GP_ORG, "--date", "2026-11-24", *exchange(world.ggz_party, gp))
    on_gp = versions(world.gp_party, gp)
    assert [len(h) for h in on_gp.values()] == [1]

    # The GP fetches the GGz's version; its diff shows exactly that step.
    gp_inbox = tmp / "gp-inbox"
    fetched = cli("fetch", "--patient", PATIENT, "-o", str(gp_inbox), *exchange(world.gp_party, gp)).stdout.split()
    assert len(fetched) == 1
    changes = json.loads(cli("diff", str(gp_v1), fetched[0], "--format", "json").stdout)
    assert changes["changedSections"] == ["stepPlan"]
    plan = next(s for s in changes["sections"] if s["section"] == "stepPlan")
    assert [a["cells"][0] for a in plan["added"]] == ["Stap 2: begeleide afbouw oxycodon door de GGz"]
    assert plan["removed"] == [] and plan["changed"] == []
    assert all(not s["added"] and not s["removed"] and not s["changed"]
               for s in changes["sections"] if s["section"] != "stepPlan")
    text_diff = cli("diff", str(gp_v1), fetched[0]).stdout
    assert "+ toegevoegd: Stap 2: begeleide afbouw oxycodon door de GGz" in text_diff

    # The GGz goes down while the GP sends a newer version; it comes back; the version arrives once.
    gp_v3 = tmp / "gp-v3.json"
    cli("build", str(record), "--date", "2026-11-25", "--timestamp", T3, "--recipient", GGZ_ORG, "-o", str(gp_v3))
    ggz.stop()
    sender = subprocess.Popen([*ALK_FHIR, "overview", "send", str(gp_v3), "--recipient", GGZ_ORG, "--date",
                               "2026-11-25", *exchange(world.gp_party, ggz)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert sender.stderr is not None
    stderr_lines: list[str] = []
    retrying = threading.Event()

    def watch(stream: IO[str]) -> None:
        for line in stream:
            stderr_lines.append(line)
            if "retry" in line:
                retrying.set()

    watcher = threading.Thread(target=watch, args=(sender.stderr,), daemon=True)
    watcher.start()
    try:
        assert retrying.wait(timeout=120), "".join(stderr_lines)  # the sender met a closed port and waits
        ggz.start()
        out, _ = sender.communicate(timeout=240)
    finally:
        if sender.poll() is None:
            sender.kill()
    watcher.join(timeout=10)
    assert sender.returncode == 0, "".join(stderr_lines)
    assert "stored as version 2 (HTTP 200" in out  # a new version of a document the GGz already had
    resent = cli("send", str(gp_v3), "--recipient", GGZ_ORG, "--date", "2026-11-25", "--format", "json",
                 *exchange(world.gp_party, ggz))
    assert json.loads(resent.stdout)["result"] == "already-there" and json.loads(resent.stdout)["versionId"] == "2"
    history = next(iter(versions(world.ggz_party, ggz).values()))
    assert [h["timestamp"] for h in history] == [T3, T1]  # v3 exactly once, on top of v1

    # Everything was audited, in the GGz's own database.
    store = open_store(ggz.database_url)
    try:
        creates = store.list_audit(subtype="create", outcome="0", limit=100)
        assert len(creates) == 4  # v1 twice, v3 twice
        assert {e["agent"][0]["altId"] for e in creates} == {world.gp_party.client_id}
        assert store.list_audit(subtype="search", outcome="0", limit=100)
    finally:
        store.close()


def test_sending_without_consent_sends_nothing(world: World) -> None:
    tmp, ggz = world.tmp, world.ggz
    record = gp_record()
    record["entry"] = [e for e in record["entry"] if e["resource"]["resourceType"] != "Consent"]
    path = tmp / "record.json"
    path.write_text(json.dumps(record), encoding="utf-8")
    cli("build", str(path), "--date", "2026-11-23", "--recipient", GGZ_ORG, expect=3)
    doc = tmp / "doc.json"
    cli("build", str(path), "--date", "2026-11-23", "--timestamp", T1, "-o", str(doc))  # not for an exchange
    refused = cli("send", str(doc), "--recipient", GGZ_ORG, "--date", "2026-11-23", *exchange(world.gp_party, ggz),
                  expect=3)
    assert "no active Consent" in refused.stderr and "Nothing was sent" in refused.stderr
    store = open_store(ggz.database_url)
    try:
        logins = store.list_audit(subtype="110122", limit=100)
        assert logins == []  # not even a token was asked for
        assert store.search_by_patient_identifier(BSN, PATIENT_BSN) == []
    finally:
        store.close()
