"""The request head is bounded where HTTP is parsed (issue 25): a 100 MB header used to cost 373 MB and
12 s before any check ran (uvicorn's httptools parser has no cap). Now more than 32 kB of head or more
than 100 header fields is a 431 with an OperationOutcome and a closed connection, and a normal request
(or one right at the limits, or pipelined, or whose body arrives with its head) is untouched.

Most tests run uvicorn with the protocol around a tiny ASGI app in a thread (no package to load);
the last one runs ``alk-fhir serve`` itself, so that the command is known to use the protocol.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from alk_fhir.cli.http_limits import MAX_HEAD_BYTES, MAX_HEADER_FIELDS, BoundedHttpToolsProtocol

ALK_FHIR = [sys.executable, "-m", "alk_fhir.cli"] if not Path(sys.executable).with_name("alk-fhir").exists() \
    else [str(Path(sys.executable).with_name("alk-fhir"))]


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers how many header fields and body bytes it saw."""
    if scope["type"] != "http":
        return
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = json.dumps({"fields": len(scope["headers"]), "body": size, "path": scope["path"]}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    chosen = free_port()
    server = uvicorn.Server(uvicorn.Config(echo, host="127.0.0.1", port=chosen, http=BoundedHttpToolsProtocol,
                                           log_level="error", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield chosen
    server.should_exit = True
    thread.join(timeout=10)


def exchange(port: int, raw: bytes, *, chunk: int = 65536) -> bytes:
    """Send ``raw`` (stopping quietly when the server closes), then read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        try:
            for start in range(0, len(raw), chunk):
                sock.sendall(raw[start:start + chunk])
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        try:
            while True:
                more = sock.recv(65536)
                if not more:
                    break
                answer += more
        except (ConnectionResetError, TimeoutError):
            pass
        return answer


def request(path: str = "/", headers: list[tuple[str, str]] | None = None, body: bytes = b"") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers or []]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def outcome(answer: bytes) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    return result


def test_a_normal_request_passes(port: int) -> None:
    answer = exchange(port, request(headers=[("Authorization", "Bearer " + "a" * 2000)], body=b"x" * 100_000))
    assert status(answer) == 200 and outcome(answer) == {"fields": 4, "body": 100_000, "path": "/"}


@pytest.mark.parametrize("what", ["one huge header", "a huge URL", "many small headers"])
def test_a_head_beyond_the_limit_is_431(port: int, what: str) -> None:
    size = 10 * 1024 * 1024
    raw = {"one huge header": request(headers=[("Authorization", "Bearer " + "a" * size)]),
           "a huge URL": request("/" + "p" * size),
           "many small headers": request(headers=[(f"X-{i}", "v" * 600) for i in range(90)])}[what]
    answer = exchange(port, raw)
    assert status(answer) == 431, answer[:200]
    body = outcome(answer)
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["code"] == "too-long"
    assert f"longer than {MAX_HEAD_BYTES} bytes" in body["issue"][0]["diagnostics"]


def test_more_than_100_fields_is_431_and_100_pass(port: int) -> None:
    fixed = 3  # Host, Connection, Content-Length
    fits = exchange(port, request(headers=[(f"X-{i}", "v") for i in range(MAX_HEADER_FIELDS - fixed)]))
    assert status(fits) == 200 and outcome(fits)["fields"] == MAX_HEADER_FIELDS
    over = exchange(port, request(headers=[(f"X-{i}", "v") for i in range(MAX_HEADER_FIELDS - fixed + 1)]))
    assert status(over) == 431 and "more than 100 header fields" in outcome(over)["issue"][0]["diagnostics"]


def test_a_head_right_at_the_limit_with_its_body_in_the_same_read_passes(port: int) -> None:
    bare = len(request(headers=[("X-Fill", "")], body=b"b" * 50_000)) - 50_000
    raw = request(headers=[("X-Fill", "f" * (MAX_HEAD_BYTES - bare))], body=b"b" * 50_000)
    assert raw.index(b"\r\n\r\n") + 4 == MAX_HEAD_BYTES
    answer = exchange(port, raw, chunk=len(raw))  # head and body in one write
    assert status(answer) == 200 and outcome(answer)["body"] == 50_000
    over = request(headers=[("X-Fill", "f" * (MAX_HEAD_BYTES - bare + 1))], body=b"b" * 50_000)
    assert status(exchange(port, over, chunk=len(over))) == 431


def test_pipelined_requests_each_get_their_own_budget(port: int) -> None:
    one = request(headers=[("X-Fill", "f" * (MAX_HEAD_BYTES // 2))], body=b"abc").replace(
        b"Connection: close", b"Connection: keep-alive")
    answer = exchange(port, one * 3 + request(), chunk=1_000_000)
    assert answer.count(b"HTTP/1.1 200 OK") == 4


def test_alk_fhir_serve_answers_a_huge_header_with_431(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "ALK_FHIR_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "ALK_FHIR_CDS_AUTH": "off",
           "ALK_FHIR_BASE_URL": f"http://127.0.0.1:{port}", "ALK_FHIR_LOG_LEVEL": "warning"}
    proc = subprocess.Popen([*ALK_FHIR, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(600):  # up to about two minutes of 0.2 s waits on a loaded CI machine
            if proc.poll() is not None:
                pytest.fail("alk-fhir serve exited before it answered /healthz")
            try:
                if status(exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")) == 200:
                    break
            except (ConnectionRefusedError, IndexError):
                time.sleep(0.2)
        else:
            pytest.fail("alk-fhir serve did not answer /healthz")
        raw = request("/cds-services/alk-patient-view", headers=[("Authorization", "Bearer " + "a" * 8_000_000)])
        answer = exchange(port, raw)
        assert status(answer) == 431 and outcome(answer)["resourceType"] == "OperationOutcome"
        assert status(exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")) == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
