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

A big body (more than :data:`BIG_BODY` bytes) is parsed, and its request handled
(:func:`run_body_work`), in a worker thread, and only :data:`BIG_BODIES_AT_ONCE` of them per process
at a time (:class:`BodyGate`): a request whose body turns out big waits for the place before the
rest of its body is read (a waiting body costs at most :data:`BIG_BODY` here, the socket holds the
rest) and keeps it until its answer is sent; once it has the place, the rest must arrive within
:data:`BIG_BODY_SECONDS` (408 otherwise), so a client that stops sending cannot keep it. Why both:
parsed and validated on the event loop, 17.7 MB of FHIR JSON kept every other client waiting
1.2-1.7 s on the loaded 2-core machine of issue 25; in threads without a bound, four such bodies at
once held four trees (346-379 MB). A small body (a CDS call is about 100 kB) is parsed on the loop
as before: no thread hop on the hot path.

Every parse error is a 400 naming where it is (a JSON path, or the line and column of the text):
an integer of more digits than Python converts (:data:`MAX_INT_DIGITS`, 4,300: ``int()`` raises a
``ValueError`` beyond it), ``NaN``/``Infinity`` (not JSON, RFC 8259 §6) and a lone UTF-16 surrogate
escape (``"\\ud800"``: RFC 8259 §8.2 calls such strings unpredictable, and no UTF-8 encoder
writes them back, so it would fail in every later hash, response or database write).

Refusals are :class:`BodyError` (413 too large, 415 not JSON by its Content-Type, 400 not JSON
or too deep, 400 when the client went away mid-body, 408 when a big body stalls). Each face
renders them in its own error shape on top: ``api.outcome.read_json_body`` as a FHIR
OperationOutcome, ``cds.routes`` as the CDS error body.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import sys
import uuid
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import orjson
from anyio import to_thread
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from alk_fhir.fhir.outcome import operation_outcome

# Bytes; module-level so that tests can lower it and `alk-fhir serve` can set it (ALK_FHIR_MAX_BODY_MB).
# FHIR JSON costs about 6 times its size while it is handled: the body itself and the Python tree
# (about 5 times; orjson's intermediate document, twice the body, is avoided for Bundles by
# _loads_in_pieces). A serving process idles at ~160 MB and settles at 200-230 MB after floods and big
# bodies (memory freed in pieces stays mapped: fragmentation, not retention), so 15 MB keeps the
# largest body under 300 MB; a 19 MB Bundle peaks at 275 MB alone, 291-297 MB after others.
MAX_BODY = 15 * 1024 * 1024
MAX_DEPTH = 128  # a Bundle of QuestionnaireResponses with ten levels of nested items stays under 60
MAX_VALUES = 900_000  # JSON values (objects, arrays and scalars) per body; 20 MB of FHIR JSON holds 850,000
MAX_INT_DIGITS = sys.get_int_max_str_digits() or 4300  # what int() converts (CPython's limit, 4,300 digits)
_SURROGATE = re.compile("[\ud800-\udfff]")
# Where a lone surrogate can come from: a \u escape of one (raw UTF-8 or UTF-16 holding one does not
# decode), or, in a str body, the character itself.
_SURROGATE_ESCAPE = re.compile("\\\\u[dD][89a-fA-F]|[\ud800-\udfff]")
_SURROGATE_ESCAPE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]")
BIG_BODY = 1024 * 1024  # bytes: a larger body is parsed and handled in a worker thread, behind the gate
BIG_BODIES_AT_ONCE = 1  # big bodies handled at once per process (each costs up to ~8 times its size meanwhile)
BIG_BODY_SECONDS = 60  # once a big body holds the gate, the rest of it must arrive within this (else 408)
SLOT = "alk_fhir.body_slot"  # the request scope's key of its _Slot (set by BodyGate)
T = TypeVar("T")
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


class _Slot:
    """A request's claim on one of the gate's places: taken when its body turns out big, given back
    when the request is done (by :class:`BodyGate`, whatever happened)."""

    __slots__ = ("held", "limiter")

    def __init__(self, limiter: anyio.CapacityLimiter) -> None:
        self.limiter = limiter
        self.held = False

    async def take(self) -> None:
        if not self.held:
            await self.limiter.acquire_on_behalf_of(self)
            self.held = True

    def give_back(self) -> None:
        if self.held:
            self.held = False
            self.limiter.release_on_behalf_of(self)


class BodyGate:
    """ASGI middleware giving each HTTP request a :class:`_Slot` of one shared limiter of
    :data:`BIG_BODIES_AT_ONCE` places, which :func:`read_body` takes when the body is big and this
    gives back once the response is sent. One limiter per event loop (tests run apps on several)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = \
            weakref.WeakKeyDictionary()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        limiter = self.limiters.get(loop)
        if limiter is None:
            limiter = self.limiters[loop] = anyio.CapacityLimiter(BIG_BODIES_AT_ONCE)
        slot = scope[SLOT] = _Slot(limiter)
        try:
            await self.app(scope, receive, send)
        finally:
            slot.give_back()


def holds_big_body(request: Request) -> bool:
    """Whether this request's body was big (it holds a place of the gate)."""
    slot = request.scope.get(SLOT)
    return slot is not None and slot.held


async def run_body_work(request: Request, work: Callable[..., T], *args: Any) -> T:
    """``work(*args)``, in a worker thread when the request's body was big (the event loop keeps
    answering other clients meanwhile), inline otherwise (a thread hop costs a small request more
    than its work)."""
    if holds_big_body(request):
        return await to_thread.run_sync(work, *args)
    return work(*args)


async def read_body(request: Request, limit: int | None = None) -> bytearray:
    """The raw body, at most ``limit`` bytes (default :data:`MAX_BODY`); BodyError 413 beyond it,
    decided from ``Content-Length`` before reading when the client declared one. A body of more than
    :data:`BIG_BODY` bytes waits for a place of the :class:`BodyGate` before more of it is read."""
    cap = MAX_BODY if limit is None else limit
    declared = request.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > cap:
        raise _too_large(cap)
    slot: _Slot | None = request.scope.get(SLOT)
    deadline = None
    if slot is not None and declared.isdigit() and int(declared) > BIG_BODY:
        await slot.take()
        deadline = anyio.current_time() + BIG_BODY_SECONDS
    body = bytearray()
    chunks = request.stream().__aiter__()
    try:
        while True:
            try:
                if deadline is None:
                    chunk = await chunks.__anext__()
                else:
                    with anyio.fail_after(max(0.0, deadline - anyio.current_time())):
                        chunk = await chunks.__anext__()
            except StopAsyncIteration:
                break
            if len(body) + len(chunk) > cap:
                raise _too_large(cap)
            if slot is not None and deadline is None and len(body) + len(chunk) > BIG_BODY:
                await slot.take()
                deadline = anyio.current_time() + BIG_BODY_SECONDS
            body += chunk
    except ClientDisconnect:
        raise BodyError(400, "incomplete", "the client closed the connection before the body was complete") \
            from None
    except TimeoutError:
        raise BodyError(408, "timeout", f"the rest of a body of more than {BIG_BODY} bytes did not arrive within "
                        f"{BIG_BODY_SECONDS} seconds") from None
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
    raw = await read_body(request, limit)
    if len(raw) > BIG_BODY:  # orjson holds the GIL for its part (about 0.1 s per 10 MB); the walks do not
        return await to_thread.run_sync(parse_json, raw)
    return parse_json(raw)


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
        if not isinstance(raw, str) and len(raw) > 2 * PIECE:
            pieced = _loads_in_pieces(raw)
            if pieced is not _NOT_PIECED:
                return pieced
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


PIECE = 512 * 1024  # bytes of a big body's array elements orjson parses at once (_loads_in_pieces)
# Where one element of an array of objects ends and the next begins, when the next one's first member
# is a Bundle entry's fullUrl or resource. In valid JSON these bytes can only be structure: a '"'
# that closed a string cannot be followed by a letter, so this '"' opens one, and the '{' and ',' and
# '}' before it stand outside any string. (At which depth is not known: see _loads_in_pieces.)
_NEXT_ENTRY = re.compile(rb'\}\s*(,)\s*\{\s*"(?:fullUrl|resource)"\s*:')
_NOT_PIECED = object()


def _loads_in_pieces(raw: bytes | bytearray) -> Any:
    """``orjson.loads(raw)`` for a body whose bulk is one array of entries (a Bundle, also inside a
    Parameters), its entries parsed :data:`PIECE` bytes at a time; :data:`_NOT_PIECED` when the body
    does not split that way (the caller then parses it whole). Why: orjson builds an intermediate
    document of about twice its input before the Python objects, so a 19 MB Bundle cost 38 MB more
    than its tree for the length of the parse, and held the GIL (the event loop) for all of it.

    The first and last entry stay in a skeleton (the rest of the body, with a sentinel string in
    place of the middle entries); each piece is ``[`` + consecutive middle entries + ``]``. Every
    piece must parse as an array and the skeleton must hold the sentinel exactly once as an array
    item, which holds only when every split is between elements of that one array: a split inside a
    nested array (a Bundle in an entry) leaves some piece unbalanced, and the body is parsed whole.
    Whatever orjson refuses in a piece (a lone surrogate, a huge integer) raises as it would whole."""
    cuts = [m.start(1) for m in _NEXT_ENTRY.finditer(raw)]
    if len(cuts) < 3:
        return _NOT_PIECED
    sentinel = f"alk-fhir-entries-{uuid.uuid4()}"
    if raw.find(sentinel.encode("ascii")) >= 0:  # pragma: no cover - a fresh uuid4
        return _NOT_PIECED
    view = memoryview(raw)
    try:
        skeleton = orjson.loads(b"".join((view[:cuts[0]], f',"{sentinel}"'.encode("ascii"), view[cuts[-1]:])))
    except orjson.JSONDecodeError:
        return _NOT_PIECED
    holder = _holding(skeleton, sentinel)
    if holder is None:
        return _NOT_PIECED
    middle: list[Any] = []
    start = cuts[0]
    for i, cut in enumerate(cuts[1:], 1):
        if cut - start >= PIECE or i == len(cuts) - 1:
            try:
                piece = orjson.loads(b"".join((b"[", view[start + 1:cut], b"]")))
            except orjson.JSONDecodeError:
                return _NOT_PIECED
            middle.extend(piece)
            start = cut
    at = holder.index(sentinel)
    holder[at:at + 1] = middle
    return skeleton


def _holding(node: Any, sentinel: str) -> list[Any] | None:
    """The one list in ``node`` that has ``sentinel`` as an item (None if none, or more than one)."""
    found: list[list[Any]] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if type(item) is dict:
            stack.extend(item.values())
        elif type(item) is list:
            found.extend([item] * item.count(sentinel))
            stack.extend(item)
    return found[0] if len(found) == 1 else None


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
