"""Hostile JSON within the body cap (issue 25): scalar floods, huge numbers, NaN and lone surrogates.

Each used to cost memory or a 500: 19 MB of ``["ab","ab",…]`` parsed into 500 MB (the count covered
only objects and arrays); an integer of more than 4,300 digits made the fallback ``json.loads``
raise a ``ValueError`` nobody caught; ``"\\ud800"`` parsed, then failed in ``dump_json`` and in the
store's ``content_hash``. Now each is a 4xx naming where it is, on every endpoint that takes JSON.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request

from alk_fhir.fhir import BodyError, dump_json, parse_json, read_json
from alk_fhir.fhir import body as body_module
from alk_fhir.store import InvalidRecord, content_hash
from test_cds_examples import cds_app

HUGE_INT = b'{"resourceType": "Patient", "id": "p", "extension": [{"url": "x", "valueInteger": ' \
           + b"9" * 5000 + b"}]}"
LONE = b'{"resourceType": "Patient", "id": "p", "name": [{"text": "ab\\ud800"}]}'


def refused(raw: bytes | str) -> BodyError:
    with pytest.raises(BodyError) as caught:
        parse_json(raw)
    return caught.value


@pytest.mark.parametrize(("raw", "where", "words"), [
    (HUGE_INT, "$.extension[0].valueInteger", "integer of 5000 characters"),
    (b"[1, -" + b"1" * 4301 + b"]", "$[1]", "at most 4300 digits"),
    (LONE, "$.name[0].text", "lone UTF-16 surrogate"),
    (b'{"a": {"\\udfff": 1}}', "$.a", "member name with a lone UTF-16 surrogate"),
    (b'{"a": [NaN]}', "$.a[0]", "NaN is not a JSON number"),
    (b'{"a": -Infinity}', "$.a", "-Infinity is not a JSON number"),
    (b'{"a": 1e400}', "$.a", "beyond the range of a double"),
])
def test_unusable_values_are_a_400_naming_their_place(raw: bytes, where: str, words: str) -> None:
    error = refused(raw)
    assert (error.status, error.code) == (400, "value")
    assert f"at {where}:" in error.diagnostics and words in error.diagnostics
    assert refused(raw.decode("utf-8")).diagnostics == error.diagnostics  # str bodies take the same road


def test_usable_values_beside_them_still_parse() -> None:
    assert parse_json(b'[18446744073709551616, "\\ud83d\\ude00", 1e300, "\\u00e9"]') == \
        [18446744073709551616, "\U0001F600", 1e300, "é"]
    assert parse_json(b"[" + b"9" * 4300 + b"]") == [int("9" * 4300)]


def test_a_scalar_flood_is_refused_before_parsing() -> None:
    """``["ab","ab",…]``: the container count alone let 19 MB of it through (500 MB parsed)."""
    flood = b"[" + b'"ab",' * body_module.MAX_VALUES + b'"ab"]'
    error = refused(flood)
    assert (error.status, error.code) == (413, "too-costly") and "JSON values" in error.diagnostics
    fits = b"[" + b"1," * (body_module.MAX_VALUES - 2) + b"1]"  # one array, MAX_VALUES - 1 numbers
    assert len(parse_json(fits)) == body_module.MAX_VALUES - 1


def test_read_json_refuses_them_too() -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": LONE, "more_body": False}

    request = Request({"type": "http", "method": "POST", "headers": [(b"content-type", b"application/json")]},
                      receive)
    with pytest.raises(BodyError) as caught:
        asyncio.run(read_json(request))
    assert caught.value.status == 400 and "$.name[0].text" in caught.value.diagnostics


def test_dump_json_never_fails_on_a_lone_surrogate() -> None:
    written = dump_json({"text": "ab\ud800", "big": 2 ** 70})
    assert json.loads(written) == {"text": "ab\ud800", "big": 2 ** 70}
    assert dump_json({"é": 2 ** 70}) == '{"é":1180591620717411303424}'.encode()  # UTF-8 where it can


def test_content_hash_refuses_what_has_no_utf8_with_invalid_record() -> None:
    bundle = {"resourceType": "Bundle", "type": "document", "identifier": {"system": "s", "value": "v\udc00"}}
    with pytest.raises(InvalidRecord, match="cannot be stored"):
        content_hash(bundle)
    with pytest.raises(InvalidRecord):
        content_hash({"resourceType": "Bundle", "total": float("nan")})
    valid = {"resourceType": "Bundle", "id": "x", "type": "document", "identifier": {"value": "é"}}
    canonical = '{"identifier":{"value":"é"},"resourceType":"Bundle","type":"document"}'
    assert content_hash(valid) == hashlib.sha256(canonical.encode("utf-8")).hexdigest()  # unchanged for text


# --- every JSON endpoint of the app, over HTTP -----------------------------------------------------------

JSON_POSTS = ["/fhir/$validate", "/fhir/Patient/$validate", "/fhir/PlanDefinition/$apply",
              "/fhir/PlanDefinition/alk-guideline/$apply", "/cds-services/alk-patient-view",
              "/cds-services/alk-patient-view/feedback", "/app/api/render-overview", "/app/api/safety"]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    return TestClient(cds_app(tmp_path_factory.mktemp("security")))


def test_the_list_of_json_endpoints_is_complete(client: TestClient) -> None:
    """Every POST of the OpenAPI description that takes JSON is in JSON_POSTS (or is /fhir/Bundle and
    /auth/token, tested with a token in test_security_documents.py / a form body)."""
    spec = client.get("/openapi.json").json()
    fill = {"{resource_type}": "Patient", "{plan_id}": "alk-guideline", "{service_id}": "alk-patient-view"}
    posts = set()
    for template, operations in spec["paths"].items():
        if "post" in operations:
            for name, value in fill.items():
                template = template.replace(name, value)
            posts.add(template)
    assert posts - {"/fhir/Bundle", "/auth/token"} <= set(JSON_POSTS), posts


@pytest.mark.parametrize("path", JSON_POSTS)
@pytest.mark.parametrize(("body", "words"), [
    (HUGE_INT, "integer of 5000 characters"),
    (LONE, "lone UTF-16 surrogate"),
    (b'{"resourceType": "Parameters", "parameter": [{"name": "x", "valueDecimal": NaN}]}', "NaN"),
    (b"[" + b'"ab",' * body_module.MAX_VALUES + b'"ab"]', "JSON values"),
])
def test_no_json_endpoint_answers_500(client: TestClient, path: str, body: bytes, words: str) -> None:
    response = client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code in (400, 413), (path, response.status_code, response.text[:300])
    answer = response.json()
    text = json.dumps(answer, ensure_ascii=False)
    assert words in text, (path, text[:300])
    if path.startswith("/fhir") or path.startswith("/app"):
        assert answer["resourceType"] == "OperationOutcome"



def test_a_str_body_holding_a_surrogate_character_itself_is_refused() -> None:
    error = refused('{"a": ["x\ud800"]}')
    assert (error.status, error.code) == (400, "value") and "at $.a[0]:" in error.diagnostics

