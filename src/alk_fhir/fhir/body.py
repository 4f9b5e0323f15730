"""The one reader of JSON request bodies, used by every endpoint that takes one, and the one writer
of JSON response bodies (:func:`dump_json`).

Bounded before anything is buffered: a declared ``Content-Length`` above the limit is refused
before a byte is read, and the body is streamed with the limit applied as it arrives (a chunked
body has no length to check), so a 400 MB request costs the server at most the limit plus one
chunk. JSON nested deeper than :data:`MAX_DEPTH` is refused too: the recursive walks of
validation, rules and rendering would otherwise hit Python's recursion limit on it. So is a body
with more than :data:`MAX_CONTAINERS` objects and arrays, counted before parsing: ``[{},{},…]``
turns 20 MB into about 500 MB of Python dicts (FHIR JSON of that size parses into about 115 MB, at
some 19,000 objects and arrays per MB), so the cap on bytes alone would not bound memory.

Refusals are :class:`BodyError` (413 too large, 415 not JSON by its Content-Type, 400 not JSON
or too deep, 400 when the client went away mid-body). Each face renders them in its own error
shape on top: ``api.outcome.read_json_body`` as a FHIR OperationOutcome, ``cds.routes`` as the
CDS error body.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request

from alk_fhir.fhir.outcome import operation_outcome

MAX_BODY = 20 * 1024 * 1024  # bytes; module-level so that tests can lower it
MAX_DEPTH = 128  # a Bundle of QuestionnaireResponses with ten levels of nested items stays under 60
MAX_CONTAINERS = 1_000_000  # JSON objects + arrays per body; 20 MB of FHIR JSON holds about 400,000
JSON_TYPES = frozenset({"application/fhir+json", "application/json", "application/json+fhir", ""})


class BodyError(Exception):
    """Why a request body was refused: an HTTP status, an R4 IssueType and a text for the caller."""

    def __init__(self, status: int, code: str, diagnostics: str) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.code = code
        self.diagnostics = diagnostics

    def outcome(self) -> dict[str, Any]:
        return operation_outcome("error", self.code, self.diagnostics)


def _too_large(limit: int) -> BodyError:
    return BodyError(413, "too-long", f"request body larger than {limit} bytes")


async def read_body(request: Request, limit: int | None = None) -> bytearray:
    """The raw body, at most ``limit`` bytes (default :data:`MAX_BODY`); BodyError 413 beyond it,
    decided from ``Content-Length`` before reading when the client declared one."""
    cap = MAX_BODY if limit is None else limit
    declared = request.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > cap:
        raise _too_large(cap)
    body = bytearray()
    try:
        async for chunk in request.stream():
            if len(body) + len(chunk) > cap:
                raise _too_large(cap)
            body += chunk
    except ClientDisconnect:
        raise BodyError(400, "incomplete", "the client closed the connection before the body was complete") \
            from None
    return body


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_json(request: Request, *, limit: int | None = None, send: str = "application/fhir+json") -> Any:
    """The body as JSON; BodyError 415 for a Content-Type other than JSON (none counts as JSON),
    413 when too large, 400 when it is not JSON or nests deeper than :data:`MAX_DEPTH`.
    ``send`` is the media type the 415 text recommends."""
    ctype = media_type(request)
    if ctype not in JSON_TYPES:
        raise BodyError(415, "not-supported", f"unsupported Content-Type {ctype}; send {send}")
    return parse_json(await read_body(request, limit))


def parse_json(raw: bytes | bytearray | str) -> Any:
    """``json.loads`` with the container and depth guards; BodyError 400 for anything that is not
    usable JSON, 413 for more than :data:`MAX_CONTAINERS` objects and arrays."""
    opening: tuple[Any, Any] = ("{", "[") if isinstance(raw, str) else (b"{", b"[")
    # An upper bound (brackets inside strings count too), at memchr speed: microseconds per 100 kB.
    containers = raw.count(opening[0]) + raw.count(opening[1])
    if containers > MAX_CONTAINERS:
        raise BodyError(413, "too-costly", f"request body holds more than {MAX_CONTAINERS} JSON objects and "
                        "arrays: more than this server parses in one request; split it")
    try:
        value = _loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BodyError(400, "structure", f"request body is not JSON: {exc}") from None
    except RecursionError:
        raise _too_deep() from None
    if containers > MAX_DEPTH and not shallow_enough(value):
        raise _too_deep()  # (fewer brackets than levels cannot nest too deep)
    return value


def _loads(raw: bytes | bytearray | str) -> Any:
    """orjson parses a request body in about half the time of ``json.loads``; whatever orjson refuses
    (NaN, UTF-16, integers beyond 64 bits, nesting past its limit) goes to ``json.loads``, so what is
    accepted, and every error message, is the standard library's."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def _too_deep() -> BodyError:
    return BodyError(400, "structure", f"request body nests deeper than {MAX_DEPTH} levels: not a FHIR resource "
                     "we accept (the recursive walks of validation, rules and rendering stop there)")


def shallow_enough(node: Any, max_depth: int = MAX_DEPTH) -> bool:
    """True when no JSON array or object in ``node`` is nested deeper than ``max_depth`` (iterative,
    level by level: the check itself must not recurse, and it runs on every request body)."""
    level = [node] if type(node) is dict or type(node) is list else []
    depth = 1
    while level:
        if depth > max_depth:
            return False
        deeper = []
        for item in level:
            for value in (item.values() if type(item) is dict else item):
                kind = type(value)
                if kind is dict or kind is list:
                    deeper.append(value)
        level = deeper
        depth += 1
    return True


def dump_json(content: Any) -> bytes:
    """Compact UTF-8 JSON for a response body. orjson writes a CDS answer (about 20 kB of cards)
    in a tenth of the time ``json.dumps`` takes, on the hot path of every hook call; what orjson
    refuses (an integer beyond 64 bits, a non-string key) goes through ``json.dumps`` as before."""
    try:
        return orjson.dumps(content)
    except TypeError:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
