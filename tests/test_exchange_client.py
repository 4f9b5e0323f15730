"""FhirClient against a real HTTP server on 127.0.0.1: idempotent sends, search, retries, errors."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from urllib.parse import parse_qs, unquote

import pytest
import requests

from alk_fhir.exchange import ExchangeError, FhirClient, SendResult
from alk_fhir.exchange.client import _send_result
from test_exchange_fake import BSN, DOC_SYSTEM, Failure, FakeFhirServer, make_document


@pytest.fixture
def fake() -> Iterator[FakeFhirServer]:
    server = FakeFhirServer()
    server.start()
    yield server
    server.stop()


def client_for(fake: FakeFhirServer, **kwargs: object) -> FhirClient:
    options: dict[str, object] = {"timeout": (1.0, 1.0), "retries": 8, "backoff": 0.02, "max_backoff": 0.2,
                                  "max_total": 20.0}
    options.update(kwargs)
    return FhirClient(fake.base, **options)  # type: ignore[arg-type]


def posts(fake: FakeFhirServer) -> int:
    return len(fake.state.hits_for("POST", "/fhir/Bundle"))


def test_send_creates_then_duplicate_send_changes_nothing(fake: FakeFhirServer) -> None:
    doc = make_document("doc-1", "999911120")
    with client_for(fake) as client:
        first = client.send_document(doc)
        second = client.send_document(doc)
    assert first.status == 201 and first.created
    assert first.id in fake.state.documents
    assert first.version_id == "1"
    assert first.location == f"{fake.base}/Bundle/{first.id}/_history/1"
    assert second.status == 200 and not second.created
    assert second.id == first.id
    assert len(fake.state.documents) == 1


def test_send_uses_conditional_create_on_the_document_identifier(fake: FakeFhirServer) -> None:
    with client_for(fake) as client:
        client.send_document(make_document("a|b,c", "999911120"))
    hit = fake.state.hits_for("POST", "/fhir/Bundle")[0]
    condition = parse_qs(hit.headers["If-None-Exist"])
    # the FHIR search escaping keeps the '|' inside the value apart from the system separator
    assert condition == {"identifier": [f"{DOC_SYSTEM}|a\\|b\\,c"]}
    assert hit.headers["Content-Type"].startswith("application/fhir+json")
    assert hit.headers["Accept"] == "application/fhir+json"
    stored = next(iter(fake.state.documents.values()))
    assert stored["identifier"]["value"] == "a|b,c"


def test_retry_after_is_honoured_and_one_document_is_stored(fake: FakeFhirServer) -> None:
    fake.state.fail("POST", "/fhir/Bundle", Failure("status", 503, retry_after="1"),
                    Failure("status", 503, retry_after="1"))
    with client_for(fake) as client:
        result = client.send_document(make_document("doc-1", "999911120"))
    assert result.created
    times = [h.at for h in fake.state.hits_for("POST", "/fhir/Bundle")]
    assert len(times) == 3
    assert times[1] - times[0] >= 1.0
    assert times[2] - times[1] >= 1.0
    assert len(fake.state.documents) == 1


def test_429_is_retried(fake: FakeFhirServer) -> None:
    fake.state.fail("POST", "/fhir/Bundle", Failure("status", 429, retry_after="0"))
    with client_for(fake) as client:
        assert client.send_document(make_document("doc-1", "999911120")).created
    assert [h.status for h in fake.state.hits_for("POST", "/fhir/Bundle")] == [429, 201]


def test_connection_reset_is_retried(fake: FakeFhirServer) -> None:
    fake.state.fail("POST", "/fhir/Bundle", Failure("reset"), Failure("reset"))
    with client_for(fake) as client:
        assert client.send_document(make_document("doc-1", "999911120")).created
    assert posts(fake) == 3
    assert len(fake.state.documents) == 1


def test_answer_slower_than_the_timeout_is_retried_without_a_duplicate(fake: FakeFhirServer) -> None:
    # the server stores the document but answers after the client has given up waiting
    fake.state.fail("POST", "/fhir/Bundle", Failure("slow", delay=1.5))
    with client_for(fake, timeout=(1.0, 0.3)) as client:
        result = client.send_document(make_document("doc-1", "999911120"))
    assert not result.created and result.status == 200
    assert posts(fake) == 2
    assert len(fake.state.documents) == 1


def test_server_stopped_during_send_then_restarted_delivers_exactly_once(
        fake: FakeFhirServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="alk_fhir.exchange")
    port = fake.port
    fake.state.fail("POST", "/fhir/Bundle", Failure("crash", delay=0.5))
    with client_for(fake, max_backoff=0.1, retries=30) as client:
        result = client.send_document(make_document("doc-1", "999911120"))
    assert fake.port == port and len(fake.state.restarts) == 1
    hits = fake.state.hits_for("POST", "/fhir/Bundle")
    assert len(hits) == 2  # the crashed one (stored) and the one after the restart
    assert hits[1].at > fake.state.restarts[0]
    assert result.status == 200 and not result.created
    assert len(fake.state.documents) == 1
    assert result.id in fake.state.documents
    refused = [r for r in caplog.records if "ConnectionError" in r.getMessage()]
    assert len(refused) >= 2  # the reset, then at least one refused connection while it was down


def test_retries_exhausted_raises_with_the_last_status(fake: FakeFhirServer) -> None:
    fake.state.fail("POST", "/fhir/Bundle", *[Failure("status", 503) for _ in range(5)])
    with client_for(fake, retries=2) as client, pytest.raises(ExchangeError) as info:
        client.send_document(make_document("doc-1", "999911120"))
    assert info.value.status == 503
    assert "gave up after 3 attempt(s)" in str(info.value)
    assert "try again later" in info.value.diagnostics
    assert posts(fake) == 3
    assert fake.state.documents == {}


def test_retry_after_beyond_the_time_budget_fails_at_once(fake: FakeFhirServer) -> None:
    fake.state.fail("POST", "/fhir/Bundle", Failure("status", 503, retry_after="3600"))
    with client_for(fake, max_total=5.0) as client, pytest.raises(ExchangeError) as info:
        client.send_document(make_document("doc-1", "999911120"))
    assert info.value.status == 503
    assert "time budget" in str(info.value)
    assert posts(fake) == 1


def test_500_is_not_retried(fake: FakeFhirServer) -> None:
    fake.state.fail("POST", "/fhir/Bundle", Failure("status", 500, body={
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "fatal", "code": "exception", "diagnostics": "database is locked"}]}))
    with client_for(fake) as client, pytest.raises(ExchangeError) as info:
        client.send_document(make_document("doc-1", "999911120"))
    assert info.value.status == 500
    assert "fatal exception: database is locked" in info.value.diagnostics
    assert posts(fake) == 1


def test_unreachable_server_gives_no_answer_error() -> None:
    fake = FakeFhirServer()
    fake.start()
    fake.stop()  # the port is now closed
    with client_for(fake, retries=2) as client, pytest.raises(ExchangeError) as info:
        client.read("Bundle", "x")
    assert info.value.status is None
    assert "ConnectionError" in info.value.diagnostics


def test_422_carries_the_operation_outcome(fake: FakeFhirServer) -> None:
    with client_for(fake) as client, pytest.raises(ExchangeError) as info:
        client.send_document(make_document("doc-1", "999911120", timestamp=False))
    error = info.value
    assert error.status == 422
    assert error.outcome is not None and error.outcome["issue"][0]["code"] == "invariant"
    assert error.diagnostics == "error invariant: bdl-10: A document must have a date (at Bundle.timestamp)"
    assert "HTTP 422" in str(error)
    assert posts(fake) == 1  # a refusal is final


def test_400_carries_the_operation_outcome(fake: FakeFhirServer) -> None:
    issue = {"severity": "error", "code": "invalid", "details": {"text": "Bundle.entry[0] bad"}}
    outcome = {"resourceType": "OperationOutcome", "issue": [issue]}
    fake.state.fail("POST", "/fhir/Bundle", Failure("status", 400, body=outcome))
    with client_for(fake) as client, pytest.raises(ExchangeError) as info:
        client.send_document(make_document("doc-1", "999911120"))
    assert info.value.status == 400
    assert info.value.diagnostics == "error invalid: Bundle.entry[0] bad"
    assert posts(fake) == 1


def test_412_when_several_documents_share_the_identifier(fake: FakeFhirServer) -> None:
    doc = make_document("doc-1", "999911120")
    fake.state.documents["a"] = dict(doc, id="a", meta={"versionId": "1"})
    fake.state.documents["b"] = dict(doc, id="b", meta={"versionId": "1"})
    with client_for(fake) as client, pytest.raises(ExchangeError) as info:
        client.send_document(doc)
    assert info.value.status == 412
    assert "2 Bundles match" in info.value.diagnostics


@pytest.mark.parametrize("bundle, message", [
    ({"resourceType": "Patient"}, "not a Bundle"),
    ({"resourceType": "Bundle", "type": "collection"}, "Bundle.type"),
    ({"resourceType": "Bundle", "type": "document"}, "Bundle.identifier is missing"),
    ({"resourceType": "Bundle", "type": "document", "identifier": {"value": "x"}},
     "Bundle.identifier.system"),
    ({"resourceType": "Bundle", "type": "document", "identifier": {"system": "urn:x"}},
     "Bundle.identifier.value"),
])
def test_bad_document_is_refused_before_sending(fake: FakeFhirServer, bundle: dict[str, object],
                                                message: str) -> None:
    with client_for(fake) as client, pytest.raises(ValueError, match=message):
        client.send_document(bundle)
    assert fake.state.hits == []


def test_fetch_follows_next_links_and_returns_only_the_patients_documents(fake: FakeFhirServer) -> None:
    fake.state.page_size = 1
    with client_for(fake) as client:
        for value, bsn in [("d1", "111"), ("d2", "222"), ("d3", "111"), ("d4", "111")]:
            client.send_document(make_document(value, bsn))
        found = client.fetch_documents(BSN, "111")
    assert sorted(d["identifier"]["value"] for d in found) == ["d1", "d3", "d4"]
    assert all(d["resourceType"] == "Bundle" for d in found)  # the outcome entries are left out
    searches = fake.state.hits_for("GET", "/fhir/Bundle")
    assert len(searches) == 3
    first_query = parse_qs(searches[0].path.split("?", 1)[1])
    assert first_query == {"composition.patient.identifier": [f"{BSN}|111"]}


def test_fetch_with_no_documents_is_empty(fake: FakeFhirServer) -> None:
    with client_for(fake) as client:
        assert client.fetch_documents(BSN, "000") == []


def test_next_link_to_another_server_is_refused(fake: FakeFhirServer) -> None:
    fake.state.page_size = 1
    fake.state.foreign_next = "http://127.0.0.2:9"
    with client_for(fake) as client:
        client.send_document(make_document("d1", "111"))
        client.send_document(make_document("d2", "111"))
        with pytest.raises(ExchangeError, match="another server"):
            client.fetch_documents(BSN, "111")


def test_read_and_history(fake: FakeFhirServer) -> None:
    with client_for(fake) as client:
        sent = client.send_document(make_document("doc-1", "999911120"))
        assert sent.id is not None
        read = client.read("Bundle", sent.id)
        versions = client.history("Bundle", sent.id)
        with pytest.raises(ExchangeError) as info:
            client.read("Bundle", "does-not-exist")
    assert read["identifier"] == {"system": DOC_SYSTEM, "value": "doc-1"}
    assert [v["meta"]["versionId"] for v in versions] == ["1"]
    assert info.value.status == 404
    assert "Bundle/does-not-exist not found" in info.value.diagnostics


@pytest.mark.parametrize("rtype, rid", [("Bundle", "../x"), ("bundle", "1"), ("Bundle", "a" * 65)])
def test_read_refuses_bad_type_or_id(fake: FakeFhirServer, rtype: str, rid: str) -> None:
    with client_for(fake) as client, pytest.raises(ValueError):
        client.read(rtype, rid)
    assert fake.state.hits == []


def test_plain_http_only_to_this_machine() -> None:
    with pytest.raises(ValueError, match="not an https URL"):
        FhirClient("ftp://example.org/fhir")
    with pytest.raises(ValueError, match="not an https URL"):
        FhirClient("http://partner.example/fhir")
    assert FhirClient("http://partner.example/fhir", allow_http=True).base_url == "http://partner.example/fhir"
    assert FhirClient("https://partner.example/fhir/").base_url == "https://partner.example/fhir"
    assert FhirClient("http://localhost:8080/fhir").base_url == "http://localhost:8080/fhir"


def test_log_names_the_request_but_not_the_body(fake: FakeFhirServer,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake.state.fail("POST", "/fhir/Bundle", Failure("status", 503, retry_after="0"))
    with client_for(fake) as client:
        client.send_document(make_document("doc-1", "999911120"))
    text = caplog.text
    assert "HTTP 503; retry 1/8" in text
    assert "999911120" not in unquote(text)  # no patient data (BSN) in logs


def _response(status: int, headers: dict[str, str], body: bytes = b"") -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r.headers.update(headers)
    r._content = body
    return r


def test_send_result_from_relative_location_or_etag_or_body() -> None:
    relative = _send_result(_response(201, {"Location": "Bundle/7/_history/3"}), "https://p.example/fhir")
    assert relative == SendResult(201, "https://p.example/fhir/Bundle/7/_history/3", "7", "3", True, True)
    etag_only = _send_result(_response(200, {"Location": "https://p.example/fhir/Bundle/7", "ETag": 'W/"4"'}),
                             "https://p.example/fhir")
    assert (etag_only.id, etag_only.version_id, etag_only.created) == ("7", "4", False)
    body = b'{"resourceType":"Bundle","id":"8","meta":{"versionId":"2"}}'
    body_only = _send_result(_response(200, {}, body), "https://p.example/fhir")
    assert (body_only.location, body_only.id, body_only.version_id) == (None, "8", "2")
