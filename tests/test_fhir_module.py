"""``alk_fhir.fhir``: the plumbing every face shares (issue 12).

The body reader is driven through bare ASGI ``receive`` callables that count what was pulled, so the
tests see exactly how much of a body the reader takes: a declared Content-Length above the cap is
refused before a single byte is read, and a chunked body (no length) is cut off at the cap.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import Request

from alk_fhir.fhir import (
    FHIR_ID,
    REFERENCE,
    RESOURCE_TYPE,
    BodyError,
    document_identifier,
    is_secure_transport,
    issue_code,
    operation_outcome,
    outcome_details,
    parse_reference,
    read_body,
    read_json,
    reference_schema_pattern,
    require_secure_transport,
)
from alk_fhir.fhir import body as body_module

MB = 1024 * 1024
SRC = Path(__file__).resolve().parents[1] / "src" / "alk_fhir"


class Source:
    """An ASGI ``receive`` that hands out ``total`` bytes in ``chunk``-sized messages, counting them."""

    def __init__(self, total: int, chunk: int = MB, payload: bytes | None = None, disconnect_after: int = -1) -> None:
        self.data = payload
        self.total = len(payload) if payload is not None else total
        self.chunk = chunk
        self.sent = 0
        self.calls = 0
        self.disconnect_after = disconnect_after

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        if self.calls - 1 == self.disconnect_after:
            return {"type": "http.disconnect"}
        size = min(self.chunk, self.total - self.sent)
        # JSON whitespace when no payload is given: a huge body that would even parse
        piece = self.data[self.sent:self.sent + size] if self.data is not None else b" " * size
        self.sent += size
        return {"type": "http.request", "body": piece, "more_body": self.sent < self.total}


def request(receive: Callable[[], Awaitable[dict[str, Any]]], headers: dict[str, str]) -> Request:
    scope = {"type": "http", "method": "POST", "path": "/", "query_string": b"", "http_version": "1.1",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    return Request(scope, receive)


def refused(coroutine: Awaitable[Any]) -> BodyError:
    with pytest.raises(BodyError) as info:
        asyncio.run(coroutine)  # type: ignore[arg-type]
    return info.value


# --- the body reader ------------------------------------------------------------------------------

def test_an_oversized_content_length_is_refused_before_reading() -> None:
    source = Source(400 * MB)
    error = refused(read_json(request(source, {"content-type": "application/fhir+json",
                                               "content-length": str(400 * MB)})))
    assert (error.status, error.code) == (413, "too-long")
    assert source.calls == 0 and source.sent == 0  # not one byte pulled from the connection


def test_a_chunked_body_is_cut_off_at_the_cap() -> None:
    source = Source(400 * MB, chunk=64 * 1024)
    error = refused(read_json(request(source, {"content-type": "application/json"})))  # no Content-Length
    assert error.status == 413
    assert body_module.MAX_BODY < source.sent <= body_module.MAX_BODY + source.chunk  # the cap, plus one chunk


def test_a_lying_content_length_does_not_lift_the_cap() -> None:
    source = Source(3 * MB, chunk=64 * 1024)
    error = refused(read_body(request(source, {"content-length": "10"}), limit=MB))
    assert error.status == 413 and source.sent <= MB + source.chunk


def test_the_cap_is_read_when_called(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(body_module, "MAX_BODY", 1000)
    error = refused(read_json(request(Source(2000), {"content-length": "2000"})))
    assert error.status == 413 and "larger than 1000 bytes" in error.diagnostics


def test_a_body_within_the_cap_is_parsed() -> None:
    payload = json.dumps({"resourceType": "Patient", "id": "p1", "name": [{"text": "Zoë"}]}).encode()
    source = Source(0, chunk=7, payload=payload)
    assert asyncio.run(read_json(request(source, {"content-type": "application/fhir+json; charset=utf-8",
                                                  "content-length": str(len(payload))}))) == json.loads(payload)
    assert source.sent == len(payload)


@pytest.mark.parametrize(("payload", "ctype", "status", "code", "words"), [
    (b"{}", "text/plain", 415, "not-supported", "unsupported Content-Type text/plain"),
    (b"{not json", "application/json", 400, "structure", "not JSON"),
    (b"\xff\xfe", "application/json", 400, "structure", "not JSON"),
    (b"[" * 129 + b"]" * 129, "application/json", 400, "structure", "nests deeper than 128"),
    (b"[" * 5000 + b"]" * 5000, "application/json", 400, "structure", "nests deeper than 128"),
])
def test_refusals(payload: bytes, ctype: str, status: int, code: str, words: str) -> None:
    error = refused(read_json(request(Source(0, payload=payload), {"content-type": ctype})))
    assert (error.status, error.code) == (status, code) and words in error.diagnostics
    assert error.outcome()["issue"][0] == {"severity": "error", "code": code, "diagnostics": error.diagnostics}


def test_a_body_of_empty_objects_is_refused_before_parsing() -> None:
    """``[{},{},…]``: 3 bytes per dict of about 70; without the count 19 MB of it parsed into ~500 MB."""
    payload = b"[" + b"{}," * body_module.MAX_VALUES + b"[]]"
    error = refused(read_json(request(Source(0, chunk=MB, payload=payload), {"content-type": "application/json"})))
    assert (error.status, error.code) == (413, "too-costly") and "JSON values" in error.diagnostics
    count = body_module.MAX_VALUES // 2 - 1  # each {} counts as a value and a comma
    fits = b"[" + b"{}," * (count - 1) + b"{}]"
    assert len(asyncio.run(read_json(request(Source(0, chunk=MB, payload=fits), {})))) == count


def test_depth_128_is_accepted() -> None:
    payload = b"[" * 128 + b"]" * 128
    assert asyncio.run(read_json(request(Source(0, payload=payload), {})))  # no Content-Type counts as JSON


def test_a_client_that_goes_away_mid_body_is_a_400_not_a_stack_trace() -> None:
    error = refused(read_json(request(Source(10 * MB, disconnect_after=2), {"content-type": "application/json"})))
    assert (error.status, error.code) == (400, "incomplete")


def test_every_endpoint_reads_bodies_through_the_one_reader() -> None:
    """No module reads a request body on its own: ``request.body()``, ``request.json()``,
    ``request.form()`` and ``request.stream()`` appear only in alk_fhir/fhir/body.py."""
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.parts[-2:] == ("fhir", "body.py"):
            continue
        text = path.read_text(encoding="utf-8")
        for call in ("request.body()", "request.json()", "request.form()", "request.stream()"):
            if call in text:
                offenders.append(f"{path.relative_to(SRC)}: {call}")
    assert offenders == []


# --- ids, references, outcome, transport, document identifier ---------------------------------------

def test_id_type_and_reference_patterns() -> None:
    assert FHIR_ID.fullmatch("a-B.9" + "x" * 59) and not FHIR_ID.fullmatch("x" * 65)
    assert not FHIR_ID.fullmatch("a_b") and not FHIR_ID.fullmatch("")
    assert RESOURCE_TYPE.fullmatch("PlanDefinition") and not RESOURCE_TYPE.fullmatch("patient")
    ref = parse_reference("https://ggz.example/fhir/Bundle/abc/_history/2")
    assert ref is not None and (ref.base, ref.type, ref.id, ref.version) == ("https://ggz.example/fhir/", "Bundle",
                                                                             "abc", "2")
    ref = parse_reference("Patient/p1")
    assert ref is not None and (ref.base, ref.type, ref.id, ref.version) == ("", "Patient", "p1", None)
    for bad in ("Patient", "Patient/", "patient/p1", "Patient/p 1", "urn:uuid:1234", "https://x/Patient/p1?x=1"):
        assert parse_reference(bad) is None, bad
    assert REFERENCE.fullmatch("http://127.0.0.1:8080/fhir/Organization/o-1")
    assert reference_schema_pattern("Patient", "Practitioner") == r"^(Patient|Practitioner)/[A-Za-z0-9\-.]{1,64}$"


def test_no_other_copy_of_the_id_pattern_in_the_modules_this_issue_cleaned() -> None:
    copies = []
    for name in ("cds/request.py", "cds/openapi.py", "exchange/client.py", "exchange/provenance.py",
                 "validation/bundle.py", "context/fhirdata.py", "api/overview_routes.py", "auth/jwks.py",
                 "store/documents.py"):
        text = (SRC / name).read_text(encoding="utf-8")
        if "{1,64}" in text or "def document_identifier" in text or '"::1"' in text:
            copies.append(name)
    assert copies == []


def test_operation_outcome_and_its_codes() -> None:
    outcome = operation_outcome("information", "informational", "stored as version 2", "Bundle",
                                details=("MSG_UPDATED", "existing resource updated"))
    assert outcome["issue"][0]["expression"] == ["Bundle"]
    assert outcome_details(outcome) == {"MSG_UPDATED"}
    assert outcome_details(operation_outcome("error", "invalid", "x")) == set()
    assert outcome_details({"resourceType": "Bundle"}) == set() and outcome_details(None) == set()
    assert [issue_code(s) for s in (400, 404, 413, 415, 418)] == ["invalid", "not-found", "too-long",
                                                                   "not-supported", "exception"]


@pytest.mark.parametrize(("url", "allowed"), [
    ("https://partner.example/fhir", True),
    ("http://127.0.0.1:8080/fhir", True),
    ("http://localhost/jwks.json", True),
    ("http://[::1]:9000/x", True),
    ("http://partner.example/fhir", False),
    ("https:///nohost", False),
    ("ftp://partner.example/x", False),
    ("http://127.0.0.1.evil.example/", False),
    ("http://[::1/broken", False),
    ("", False),
])
def test_the_transport_rule(url: str, allowed: bool) -> None:
    assert is_secure_transport(url) is allowed
    if not allowed:
        with pytest.raises(ValueError, match="not an https URL"):
            require_secure_transport(url)
    assert is_secure_transport("http://partner.example/fhir", allow_http=True)


def test_document_identifier() -> None:
    doc = {"resourceType": "Bundle", "type": "document", "identifier": {"system": "urn:ietf:rfc:3986", "value": "x"}}
    assert document_identifier(doc) == ("urn:ietf:rfc:3986", "x")
    for broken, words in [({"resourceType": "Patient"}, "not a Bundle"),
                          ({**doc, "type": "collection"}, "expected 'document'"),
                          ({**doc, "identifier": None}, "Bundle.identifier is missing"),
                          ({**doc, "identifier": {"value": "x"}}, "system is missing"),
                          ({**doc, "identifier": {"system": "s", "value": ""}}, "value is missing")]:
        with pytest.raises(ValueError, match=words):
            document_identifier(broken)
