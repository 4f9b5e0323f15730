"""The one reader of JSON request bodies, used by every endpoint that takes one, and the one writer
of JSON response bodies (:func:`dump_json`).

Bounded before anything is buffered: a declared ``Content-Length`` above the limit is refused
before a byte is read, and the body is streamed with the limit applied as it arrives (a chunked
body has no length to check), so a 400 MB request costs the server at most the limit plus one
chunk. JSON nested deeper than :data:`MAX_DEPTH` is refused too: the recursive walks of
validation, rules and rendering would otherwise hit Python's recursion limit on it. So is a body
with more than :data:`MAX_VALUES` JSON values, counted before parsing: memory per byte depends on
what the bytes say, not on how many there are. ``[{},{},…]`` turns 20 MB into about 500 MB of
Python dicts and ``["ab","ab",…]`` 19 MB into some 260 MB of strings, where FHIR JSON of 20 MB
parses into about 115 MB (it holds some 43,000 values per MB), so the cap on bytes alone would not
bound memory; every value, scalar or container, costs 60-70 bytes once parsed, so the count does.
Bodies are parsed on the event loop, one at a time: parsed in threads, four bodies just within the
value cap at once held four trees (379 MB in the shared pool, 346 MB on one dedicated thread, against
271 MB here). The price: while the largest body is parsed, the loop answers no one else (1.2-1.7 s
for 17.7 MB of FHIR JSON on the shared, loaded 2-core machine of issue 25).

Every parse error is a 400 naming where it is (a JSON path, or the line and column of the text):
an integer of more digits than Python converts (:data:`MAX_INT_DIGITS`, 4,300: ``int()`` raises a
``ValueError`` beyond it), ``NaN``/``Infinity`` (not JSON, RFC 8259 §6) and a lone UTF-16 surrogate
escape (``"\\ud800"``: RFC 8259 §8.2 calls such strings unpredictable, and no UTF-8 encoder
writes them back, so it would fail in every later hash, response or database write).

Refusals are :class:`BodyError` (413 too large, 415 not JSON by its Content-Type, 400 not JSON
or too deep, 400 when the client went away mid-body). Each face renders them in its own error
shape on top: ``api.outcome.read_json_body`` as a FHIR OperationOutcome, ``cds.routes`` as the
CDS error body.
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request

from alk_fhir.fhir.outcome import operation_outcome

MAX_BODY = 20 * 1024 * 1024  # bytes; module-level so that tests can lower it
MAX_DEPTH = 128  # a Bundle of QuestionnaireResponses with ten levels of nested items stays under 60
MAX_VALUES = 900_000  # JSON values (objects, arrays and scalars) per body; 20 MB of FHIR JSON holds 850,000
MAX_INT_DIGITS = sys.get_int_max_str_digits() or 4300  # what int() converts (CPython's limit, 4,300 digits)
_SURROGATE = re.compile("[\ud800-\udfff]")
# Where a lone surrogate can come from: a \u escape of one (raw UTF-8 or UTF-16 holding one does not
# decode), or, in a str body, the character itself.
_SURROGATE_ESCAPE = re.compile("\\\\u[dD][89a-fA-F]|[\ud800-\udfff]")
_SURROGATE_ESCAPE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]")
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
    """The JSON value of ``raw`` with the value-count and depth guards; BodyError 400 for anything that
    is not usable JSON (naming where), 413 for more than :data:`MAX_VALUES` values."""
    marks: tuple[Any, Any, Any] = ("{", "[", ",") if isinstance(raw, str) else (b"{", b"[", b",")
    # An upper bound at memchr speed (microseconds per 100 kB; brackets and commas inside strings count
    # too): every value but the first is an element of a container, and a container of n elements
    # holds n - 1 commas.
    containers = raw.count(marks[0]) + raw.count(marks[1])
    if containers + raw.count(marks[2]) + 1 > MAX_VALUES:
        raise BodyError(413, "too-costly", f"request body holds more than {MAX_VALUES} JSON values: more than "
                        "this server parses in one request; split it")
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
    (UTF-16, a number beyond a double, a lone surrogate, nesting past its limit) goes to
    ``json.loads``, so what is accepted, and the message of a syntax error, is the standard
    library's, except for what no later step could write back: NaN and Infinity, integers of more
    than :data:`MAX_INT_DIGITS` digits and lone surrogates are refused with the JSON path of the
    first one (:func:`unusable_value`)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        hooks = _Hooks()
        value = json.loads(raw, parse_int=hooks.parse_int, parse_float=hooks.parse_float,
                           parse_constant=hooks.parse_constant)
    escaped = _SURROGATE_ESCAPE.search(raw) if isinstance(raw, str) else _SURROGATE_ESCAPE_BYTES.search(raw)
    if hooks.marked or escaped:  # the walk costs as much as the parse: only when it can find something
        where = unusable_value(value)
        if where is not None:
            raise BodyError(400, "value", f"request body is not usable JSON at {where[0]}: {where[1]}")
    return value


class _Unusable:
    """Stands in for a number that parsed but cannot be used, so the walk can name its place."""

    def __init__(self, why: str) -> None:
        self.why = why


class _Hooks:
    """``json.loads`` hooks for one parse: numbers no later step can use become :class:`_Unusable`
    (``marked`` says whether any did)."""

    def __init__(self) -> None:
        self.marked = False

    def _mark(self, why: str) -> _Unusable:
        self.marked = True
        return _Unusable(why)

    def parse_int(self, text: str) -> int | _Unusable:
        if len(text) - text.startswith("-") > MAX_INT_DIGITS:
            return self._mark(f"an integer of {len(text)} characters (at most {MAX_INT_DIGITS} digits)")
        return int(text)

    def parse_float(self, text: str) -> float | _Unusable:
        number = float(text)
        if math.isinf(number):
            return self._mark(f"a number beyond the range of a double ({text[:20]}…)")
        return number

    def parse_constant(self, text: str) -> _Unusable:
        return self._mark(f"{text} is not a JSON number (RFC 8259 §6)")


def unusable_value(node: Any) -> tuple[str, str] | None:
    """(JSON path, why) of the first value in ``node`` that no later step can use: a lone surrogate in
    a string or a key, or a number :func:`_loads` marked; None when there is none. Iterative, like
    :func:`shallow_enough` (it runs only on what orjson refused)."""
    stack: list[tuple[str, Any]] = [("$", node)]
    while stack:
        path, item = stack.pop()
        kind = type(item)
        if kind is str:
            if _SURROGATE.search(item):
                return path, "a string with a lone UTF-16 surrogate (RFC 8259 §8.2), not text"
        elif kind is dict:
            for key, value in reversed(item.items()):
                if _SURROGATE.search(key):
                    return path, f"a member name with a lone UTF-16 surrogate ({key!r})"
                stack.append((f"{path}.{key}", value))
        elif kind is list:
            stack.extend((f"{path}[{i}]", value) for i, value in reversed(list(enumerate(item))))
        elif kind is _Unusable:
            return path, item.why
    return None


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
    refuses (an integer beyond 64 bits, a non-string key, a lone surrogate) goes through
    ``json.dumps``, and text UTF-8 cannot hold (a lone surrogate: the body reader refuses them, but an
    answer must never fail on one) is written as a ``\\u`` escape rather than raising."""
    try:
        return orjson.dumps(content)
    except TypeError:
        text = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")
