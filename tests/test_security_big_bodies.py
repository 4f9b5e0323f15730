"""Big request bodies (issue 25): handled in a worker thread, one at a time, so that the event loop
keeps answering everyone else and memory stays bounded when several arrive at once.

Parsed and validated on the event loop, a 17.7 MB Bundle kept other clients waiting 1.2-1.7 s; parsed
in threads without a bound, four bodies at once held four trees. ``BIG_BODY`` is lowered here so
that a few kB count as big; the work is held at a ``threading.Event`` rather than timed.
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.requests import Request

from alk_fhir.fhir import BodyError, read_body
from alk_fhir.fhir import body as body_module
from alk_fhir.validation import Validator, has_errors
from alk_fhir.validation.outcome import MAX_ISSUES, Issue, to_outcome
from alk_fhir.validation.run import Run
from test_cds_examples import cds_app

BIG = 4096  # bytes: what counts as a big body in these tests
WAIT = 30  # seconds a held piece of work waits for its signal before it gives up (a failing test, not a hang)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    return cds_app(tmp_path_factory.mktemp("big"))


@pytest.fixture(autouse=True)
def small_big_body(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(body_module, "BIG_BODY", BIG)


def big_patient() -> bytes:
    """A valid Patient of more than BIG bytes (many names)."""
    patient = {"resourceType": "Patient", "id": "p",
               "name": [{"family": f"Jansen{i}", "given": ["Anna"]} for i in range(200)]}
    raw = json.dumps(patient).encode()
    assert len(raw) > BIG
    return raw


class HeldValidator:
    """Stands in for ``Validator.validate``: for the big Patient, records which thread ran it and how
    many ran at once, and holds each call until ``release`` is set (or WAIT passes)."""

    def __init__(self, real: Validator) -> None:
        self.real_validate = real.validate  # bound before the test puts this class's method in its place
        self.release = threading.Event()
        self.started = threading.Event()
        self.lock = threading.Lock()
        self.running = self.most = self.calls = 0
        self.threads: set[int] = set()

    def validate(self, resource: Any, profile: str | None = None) -> dict[str, Any]:
        if resource.get("id") != "p":  # only the big Patient is held and counted
            return self.real_validate(resource, profile)
        with self.lock:
            self.running += 1
            self.calls += 1
            self.most = max(self.most, self.running)
            self.threads.add(threading.get_ident())
        self.started.set()
        try:
            self.release.wait(WAIT)
            return self.real_validate(resource, profile)
        finally:
            with self.lock:
                self.running -= 1


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def big_document() -> bytes:
    """A Bundle of type document of more than BIG bytes (not a valid case overview: a 422 once validated)."""
    entries = [{"fullUrl": f"urn:uuid:00000000-0000-4000-8000-{i:012d}",
                "resource": {"resourceType": "Basic", "id": f"b{i}", "code": {"text": "x"}}} for i in range(100)]
    return json.dumps({"resourceType": "Bundle", "id": "p", "type": "document", "entry": entries}).encode()


@pytest.mark.parametrize(("path", "body", "status"), [
    ("/fhir/$validate", big_patient, 200),
    ("/app/api/render-overview", big_document, 422),  # validated on the event loop before issue 25
])
def test_a_small_request_is_answered_while_a_big_body_is_being_validated(
        app: FastAPI, monkeypatch: pytest.MonkeyPatch, path: str, body: Any, status: int) -> None:
    held = HeldValidator(app.state.validator)
    monkeypatch.setattr(app.state.validator, "validate", held.validate)
    order: list[str] = []

    async def scenario() -> None:
        async with client(app) as http:
            async def big() -> None:
                response = await http.post(path, content=body(),
                                           headers={"Content-Type": "application/fhir+json"})
                order.append(f"big {response.status_code}")

            task = asyncio.create_task(big())
            while not held.started.is_set():  # the big body is parsed and its validation has begun
                await asyncio.sleep(0.01)
            small = await http.get("/fhir/metadata")  # served by the event loop meanwhile
            order.append(f"small {small.status_code}")
            held.release.set()
            await task

    asyncio.run(scenario())
    assert order == ["small 200", f"big {status}"]
    assert threading.get_ident() not in held.threads  # the big body's work ran in a worker thread


def test_big_bodies_are_handled_one_at_a_time(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    held = HeldValidator(app.state.validator)
    monkeypatch.setattr(app.state.validator, "validate", held.validate)
    statuses: list[int] = []

    async def scenario() -> None:
        async with client(app) as http:
            async def big() -> None:
                response = await http.post("/fhir/$validate", content=big_patient(),
                                           headers={"Content-Type": "application/fhir+json"})
                statuses.append(response.status_code)

            tasks = [asyncio.create_task(big()) for _ in range(3)]
            while not held.started.is_set():
                await asyncio.sleep(0.01)
            for _ in range(20):  # the other two had every chance to start meanwhile
                await asyncio.sleep(0.01)
            assert held.calls == 1
            small = await http.post("/fhir/$validate", json={"resourceType": "Patient", "id": "s"})
            assert small.status_code == 200  # a small body does not wait for the gate
            held.release.set()
            await asyncio.gather(*tasks)

    asyncio.run(scenario())
    assert statuses == [200, 200, 200]
    assert held.calls == 3 and held.most == 1  # the three big ones, one after another


def test_a_big_body_waits_for_the_gate_before_the_rest_of_it_is_read(app: FastAPI) -> None:
    """While one big body holds the gate, another is read no further than BIG_BODY."""

    async def scenario() -> tuple[int, int]:
        gate = body_module.BodyGate(app)
        delivered = 0

        async def endpoint(scope: Any, receive: Any, send: Any) -> None:
            await read_body(Request(scope, receive))

        inner = body_module.BodyGate(endpoint)
        inner.limiters = gate.limiters  # one limiter for both requests, as in one app
        first_has_it = asyncio.Event()
        finish_first = asyncio.Event()

        async def first(scope: Any, receive: Any, send: Any) -> None:
            await read_body(Request(scope, receive))
            first_has_it.set()
            await finish_first.wait()

        holder = body_module.BodyGate(first)
        holder.limiters = gate.limiters
        piece = b" " * 1024

        async def chunks_of(count: int, counting: bool) -> Any:
            sent = 0

            async def receive() -> dict[str, Any]:
                nonlocal sent, delivered
                sent += 1
                if counting:
                    delivered += len(piece)
                return {"type": "http.request", "body": piece, "more_body": sent < count}
            return receive

        scope = {"type": "http", "method": "POST", "headers": []}
        one = asyncio.create_task(holder(dict(scope), await chunks_of(8, False), None))
        await first_has_it.wait()
        two = asyncio.create_task(inner(dict(scope), await chunks_of(8, True), None))
        for _ in range(20):
            await asyncio.sleep(0)
        read_while_waiting = delivered
        finish_first.set()
        await one
        await two
        return read_while_waiting, delivered

    waiting, total = asyncio.run(scenario())
    assert waiting <= BIG + 1024 < total == 8 * 1024


def test_a_big_body_that_stops_arriving_gives_the_gate_back_with_408(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(body_module, "BIG_BODY_SECONDS", 0.05)
    errors: list[BodyError] = []

    async def endpoint(scope: Any, receive: Any, send: Any) -> None:
        try:
            await read_body(Request(scope, receive))
        except BodyError as exc:
            errors.append(exc)

    async def scenario() -> bool:
        gate = body_module.BodyGate(endpoint)
        sent = 0

        async def receive() -> dict[str, Any]:
            nonlocal sent
            sent += 1
            if sent > 5:
                await asyncio.Event().wait()  # the client stops sending
            return {"type": "http.request", "body": b" " * 1024, "more_body": True}

        await gate({"type": "http", "method": "POST", "headers": []}, receive, None)
        limiter = next(iter(gate.limiters.values()))
        return limiter.borrowed_tokens == 0

    assert asyncio.run(scenario())
    assert errors and errors[0].status == 408 and "did not arrive" in errors[0].diagnostics


# --- issues are bounded too --------------------------------------------------------------------------------

def test_an_issue_per_json_value_is_bounded(app: FastAPI) -> None:
    """890,000 integers where strings belong gave 890,001 issues and 780 MB; an outcome lists at most
    MAX_ISSUES and counts the rest."""
    count = MAX_ISSUES * 3
    patient = {"resourceType": "Patient", "id": "p", "name": [{"given": [1] * count}]}
    outcome = app.state.validator.validate(patient)
    issues = outcome["issue"]
    assert len(issues) == MAX_ISSUES + 1
    assert all(i["severity"] == "error" and i["code"] == "value" for i in issues[:MAX_ISSUES])
    assert issues[0]["expression"] == ["Patient.name[0].given[0]"]
    last = issues[-1]
    assert (last["severity"], last["code"]) == ("information", "too-costly")
    assert f"{count - MAX_ISSUES:,} errors" in last["diagnostics"]


def test_errors_found_late_are_kept_before_warnings() -> None:
    """The bound keeps the most severe: has_errors on the outcome is what it would be on every issue."""
    run = Run()
    for i in range(3 * MAX_ISSUES):
        run.warning("invariant", "a warning", f"Patient.name[{i}]")
    run.error("value", "the one error", "Patient.gender")
    outcome = to_outcome(run.issues, run.dropped)
    assert has_errors(outcome)
    assert outcome["issue"][0]["diagnostics"] == "the one error"
    assert "30,000 further issues not listed" not in outcome["issue"][-1]["diagnostics"]
    assert f"{3 * MAX_ISSUES - (MAX_ISSUES - 1):,} warnings" in outcome["issue"][-1]["diagnostics"]
    few = [Issue("warning", "invariant", "w", "Patient")] * 3
    assert len(to_outcome(few)["issue"]) == 1  # duplicates removed, nothing said about a bound


def test_the_realistic_big_bundle_shape_is_what_the_benchmark_sends() -> None:
    """benchmarks/body_memory.py builds its Bundle from the example patients; they must stay there."""
    root = Path(__file__).resolve().parents[1] / "examples" / "patients"
    assert any(root.glob("*.json"))


def test_the_served_app_takes_its_body_cap_from_the_settings(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ALK_FHIR_MAX_BODY_MB (default 15: any body under 300 MB, README "Security") reaches the reader."""
    from alk_fhir.api.app import create_served_app
    from alk_fhir.config import Settings

    monkeypatch.setattr(body_module, "MAX_BODY", body_module.MAX_BODY)  # restored after the test
    monkeypatch.setenv("ALK_FHIR_MAX_BODY_MB", "3")
    monkeypatch.setenv("ALK_FHIR_DATABASE_URL", f"sqlite:///{tmp_path / 'cap.sqlite3'}")
    settings = Settings.from_env()
    assert settings.max_body_mb == 3 and Settings().max_body_mb == 15
    create_served_app(settings)
    assert body_module.MAX_BODY == 3 * 1024 * 1024
    monkeypatch.setenv("ALK_FHIR_MAX_BODY_MB", "0")
    with pytest.raises(ValueError):
        Settings.from_env()


# --- a big Bundle is parsed in pieces ---------------------------------------------------------------------

def entries_bundle(count: int, inner: bool = False) -> dict[str, Any]:
    entries: list[dict[str, Any]] = [
        {"fullUrl": f"urn:uuid:00000000-0000-4000-8000-{i:012d}",
         "resource": {"resourceType": "Basic", "id": f"b{i}", "code": {"text": "x},{\"fullUrl\": é" * 3}}}
        for i in range(count)]
    if inner:  # a Bundle inside an entry: its entries split too, at another depth
        entries[count // 2]["resource"] = {"resourceType": "Bundle", "type": "collection",
                                           "entry": entries_bundle(50)["entry"]}
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


@pytest.mark.parametrize("inner", [False, True])
@pytest.mark.parametrize("wrapped", [False, True])
def test_a_big_bundle_parsed_in_pieces_is_the_bundle(monkeypatch: pytest.MonkeyPatch, inner: bool,
                                                     wrapped: bool) -> None:
    """orjson's intermediate document is about twice its input: a body whose bulk is a Bundle's entries is
    parsed a piece at a time, and gives the same value as parsed whole (a nested Bundle: parsed whole)."""
    monkeypatch.setattr(body_module, "PIECE", 2048)
    value: Any = entries_bundle(300, inner)
    if wrapped:
        value = {"resourceType": "Parameters", "parameter": [{"name": "data", "resource": value}]}
    raw = json.dumps(value, ensure_ascii=False).encode("utf-8")
    pieced = body_module._loads_in_pieces(bytearray(raw))
    assert (pieced is body_module._NOT_PIECED) is inner
    assert body_module.parse_json(bytearray(raw)) == value


def test_what_orjson_refuses_in_a_piece_is_refused_with_its_place(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(body_module, "PIECE", 2048)
    raw = json.dumps(entries_bundle(300)).encode("utf-8").replace(b'"b150"', b'"b\\ud800"')
    with pytest.raises(BodyError) as caught:
        body_module.parse_json(raw)
    assert caught.value.status == 400 and "$.entry[150].resource.id" in caught.value.diagnostics
