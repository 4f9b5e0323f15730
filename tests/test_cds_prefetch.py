"""Prefetch resolution against a FHIR server the test starts on 127.0.0.1 (CDS Hooks 2.0, "Providing
FHIR Resources to a CDS Service" and "FHIR Resource Access"): missing keys fetched with the bearer
token, pagination followed, 412 when data cannot be had, and the token never in a log or an answer."""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from alk_fhir.cds import SERVICES_BY_ID, prefetch
from alk_fhir.cds.prefetch import render
from alk_fhir.cds.request import parse_hook_request
from test_cds_examples import cds_app, example

JSON = dict[str, Any]
TOKEN = "secret-access-token-7f3a9c"
PV = "/cds-services/alk-patient-view"
NAME = "patient-view-criterion1-failed-cbt-physio"


@dataclass
class Answer:
    status: int = 200
    body: Any = None
    raw: bytes | None = None
    delay: float = 0.0


@dataclass
class FakeFhir:
    """Answers by (path, sorted query) and records every request with its Authorization header."""

    answers: dict[tuple[str, tuple[tuple[str, str], ...]], Answer] = field(default_factory=dict)
    seen: list[tuple[str, str | None]] = field(default_factory=list)
    base: str = ""

    def key(self, url: str) -> tuple[str, tuple[tuple[str, str], ...]]:
        parts = urlsplit(url)
        return parts.path, tuple(sorted(parse_qsl(parts.query)))

    def put(self, relative_or_absolute: str, answer: Answer) -> None:
        absolute = relative_or_absolute.startswith(("http://", "https://"))
        url = relative_or_absolute if absolute else f"{self.base}/{relative_or_absolute}"
        self.answers[self.key(url)] = answer


@contextmanager
def fake_fhir() -> Iterator[FakeFhir]:
    state = FakeFhir()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.seen.append((self.path, self.headers.get("Authorization")))
            answer = state.answers.get(state.key(self.path), Answer(404, {"resourceType": "OperationOutcome"}))
            if answer.delay:
                time.sleep(answer.delay)
            body = answer.raw if answer.raw is not None else json.dumps(answer.body).encode()
            try:
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 64  # the service fetches keys in parallel; the default backlog of 5 drops SYNs

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{server.server_address[1]}/fhir"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    return cds_app(tmp_path_factory.mktemp("prefetch"))


@pytest.fixture(scope="module")
def client(app: FastAPI) -> TestClient:
    return TestClient(app)


@pytest.fixture
def server() -> Iterator[FakeFhir]:
    with fake_fhir() as fake:
        yield fake


def serve_example(fake: FakeFhir, body: JSON) -> None:
    """The FHIR server answers every template of the example with what its prefetch holds."""
    service = SERVICES_BY_ID["alk-patient-view"]
    hook = parse_hook_request(body, service)
    for key, value in body["prefetch"].items():
        relative = render(service.prefetch[key], hook)
        assert relative is not None
        missing = Answer(404, {"resourceType": "OperationOutcome"})
        fake.put(relative, Answer(200, value) if value is not None else missing)


def request_without_prefetch(fake: FakeFhir, *, token: bool = True, keep: tuple[str, ...] = ()) -> JSON:
    body = copy.deepcopy(example(NAME))
    body["hookInstance"] = str(uuid.uuid4())
    body["fhirServer"] = fake.base
    if token:
        body["fhirAuthorization"] = {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300,
                                     "scope": "user/*.read", "subject": "alk-fhir"}
    body["prefetch"] = {k: v for k, v in body["prefetch"].items() if k in keep}
    return body


def topics(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [c["source"]["topic"]["code"] for c in response.json()["cards"]]


def test_missing_keys_are_fetched_with_the_bearer_token(client: TestClient, server: FakeFhir) -> None:
    full = example(NAME)
    serve_example(server, full)
    expected = topics(client.post(PV, json=full))
    fetched = topics(client.post(PV, json=request_without_prefetch(server)))
    assert fetched == expected and expected
    assert len(server.seen) == len(full["prefetch"])
    assert {auth for _, auth in server.seen} == {f"Bearer {TOKEN}"}
    paths = {server.key(path) for path, _ in server.seen}
    assert (urlsplit(server.base).path + "/Condition", (("patient", "pat-anna"),)) in paths
    assert (urlsplit(server.base).path + "/Practitioner/prac-gp-jansen", ()) in paths


def test_only_missing_keys_are_fetched(client: TestClient, server: FakeFhir) -> None:
    serve_example(server, example(NAME))
    body = request_without_prefetch(server, keep=tuple(k for k in example(NAME)["prefetch"] if k != "conditions"))
    assert topics(client.post(PV, json=body))
    assert [server.key(p)[0].rsplit("/", 1)[-1] for p, _ in server.seen] == ["Condition"]


def test_open_fhir_server_is_read_without_a_token(client: TestClient, server: FakeFhir) -> None:
    serve_example(server, example(NAME))
    assert topics(client.post(PV, json=request_without_prefetch(server, token=False)))
    assert server.seen and {auth for _, auth in server.seen} == {None}


def test_paginated_prefetch_is_followed_on_the_fhir_server(client: TestClient, server: FakeFhir) -> None:
    full = example(NAME)
    body = copy.deepcopy(full)
    body["hookInstance"] = str(uuid.uuid4())
    body["fhirServer"] = server.base
    body["fhirAuthorization"] = {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300,
                                 "scope": "user/*.read", "subject": "alk-fhir"}
    conditions = full["prefetch"]["conditions"]["entry"]
    page2 = f"{server.base}/Condition?patient=pat-anna&_page=2"
    body["prefetch"]["conditions"] = {"resourceType": "Bundle", "type": "searchset",
                                      "link": [{"relation": "next", "url": page2}], "entry": conditions[:1]}
    server.put(page2, Answer(200, {"resourceType": "Bundle", "type": "searchset", "entry": conditions[1:]}))
    assert topics(client.post(PV, json=body)) == topics(client.post(PV, json=full))
    assert server.seen == [("/fhir/Condition?patient=pat-anna&_page=2", f"Bearer {TOKEN}")]


def test_next_link_to_another_server_is_not_followed(client: TestClient, server: FakeFhir) -> None:
    body = copy.deepcopy(example(NAME))
    body["hookInstance"] = str(uuid.uuid4())
    body["fhirServer"] = server.base
    body["fhirAuthorization"] = {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300,
                                 "scope": "s", "subject": "alk-fhir"}
    body["prefetch"]["conditions"]["link"] = [{"relation": "next", "url": "https://elsewhere.invalid/fhir/p2"}]
    response = client.post(PV, json=body)
    assert response.status_code == 412 and "not on the CDS client's FHIR server" in response.text
    assert server.seen == []


def test_too_many_pages_is_412(client: TestClient, server: FakeFhir, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prefetch, "MAX_PAGES", 2)
    serve_example(server, example(NAME))
    pages = [f"{server.base}/Encounter?patient=pat-anna&_page={i}" for i in (2, 3)]
    server.put("Encounter?patient=pat-anna", Answer(200, {"resourceType": "Bundle", "type": "searchset",
                                                          "link": [{"relation": "next", "url": pages[0]}]}))
    server.put(pages[0], Answer(200, {"resourceType": "Bundle", "type": "searchset",
                                      "link": [{"relation": "next", "url": pages[1]}]}))
    server.put(pages[1], Answer(200, {"resourceType": "Bundle", "type": "searchset"}))
    response = client.post(PV, json=request_without_prefetch(server))
    assert response.status_code == 412 and "more than 2 pages" in response.text


@pytest.mark.parametrize(("answer", "fragment"), [
    (Answer(500, {"resourceType": "OperationOutcome"}), "HTTP 500"),
    (Answer(401, {"resourceType": "OperationOutcome"}), "HTTP 401"),
    (Answer(200, raw=b"<html>login</html>"), "not JSON"),
], ids=["server error", "token refused", "not json"])
def test_required_key_that_cannot_be_had_is_412_and_the_token_stays_secret(
        client: TestClient, server: FakeFhir, caplog: pytest.LogCaptureFixture, answer: Answer,
        fragment: str) -> None:
    serve_example(server, example(NAME))
    server.put("Condition?patient=pat-anna", answer)
    with caplog.at_level(logging.DEBUG):
        response = client.post(PV, json=request_without_prefetch(server))
    assert response.status_code == 412
    outcome = response.json()
    assert outcome["issue"][0]["expression"] == ["prefetch.conditions"] and fragment in response.text
    assert TOKEN not in response.text
    assert all(TOKEN not in record.getMessage() for record in caplog.records)
    assert any("prefetch conditions" in record.getMessage() for record in caplog.records)


def test_slow_fhir_server_times_out_into_412(client: TestClient, server: FakeFhir,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prefetch, "READ_TIMEOUT", 0.2)
    serve_example(server, example(NAME))
    server.put("Condition?patient=pat-anna", Answer(200, {"resourceType": "Bundle"}, delay=1.0))
    response = client.post(PV, json=request_without_prefetch(server))
    assert response.status_code == 412 and "Timeout" in response.text


def test_oversized_answer_is_412(client: TestClient, server: FakeFhir, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prefetch, "MAX_BYTES", 1000)
    serve_example(server, example(NAME))
    response = client.post(PV, json=request_without_prefetch(server))
    assert response.status_code == 412 and "larger than 1000 bytes" in response.text


def test_optional_key_that_fails_is_reported_not_fatal(client: TestClient, server: FakeFhir) -> None:
    serve_example(server, example(NAME))
    server.put("Practitioner/prac-gp-jansen", Answer(503, {"resourceType": "OperationOutcome"}))
    response = client.post(PV, json=request_without_prefetch(server))
    assert response.status_code == 200
    issues = response.json()["extension"]["org.alk-fhir.data-issues"]["issue"]
    assert [i["expression"] for i in issues] == [["prefetch.user"]]


def test_patient_not_found_on_a_read_is_no_data(client: TestClient, server: FakeFhir) -> None:
    serve_example(server, example(NAME))
    server.put("Patient/pat-anna", Answer(404, {"resourceType": "OperationOutcome"}))
    assert topics(client.post(PV, json=request_without_prefetch(server)))


def test_operation_outcome_in_a_fetched_searchset_is_reported(client: TestClient, server: FakeFhir) -> None:
    serve_example(server, example(NAME))
    server.put("Encounter?patient=pat-anna", Answer(200, {"resourceType": "Bundle", "type": "searchset", "entry": [
        {"resource": {"resourceType": "OperationOutcome", "issue": [{"severity": "warning", "code": "too-costly"}]},
         "search": {"mode": "outcome"}}]}))
    response = client.post(PV, json=request_without_prefetch(server))
    assert response.status_code == 200
    issues = response.json()["extension"]["org.alk-fhir.data-issues"]["issue"]
    assert any(i["expression"] == ["prefetch.encounters"] for i in issues)


def test_the_token_goes_only_to_the_fhir_server(server: FakeFhir) -> None:
    source = prefetch.HttpFhirSource(server.base, TOKEN)
    with pytest.raises(prefetch.FetchError, match="not on the CDS client's FHIR server"):
        source.get("http://127.0.0.1:1/elsewhere")
    with pytest.raises(prefetch.FetchError, match="not on the CDS client's FHIR server"):
        source.get(server.base + "evil.example.org/x")  # a prefix that is not a path boundary
    plain = prefetch.HttpFhirSource("http://ehr.example.org/fhir", TOKEN)
    with pytest.raises(prefetch.FetchError, match="https"):
        plain.get("http://ehr.example.org/fhir/Patient/1")
    assert server.seen == []
