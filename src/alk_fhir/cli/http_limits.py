"""Bounds on the request head (request line and header fields), applied where HTTP is parsed.

uvicorn's default parser (httptools, llhttp) puts no limit on the head: it gathers a header value
until its line ends, and uvicorn gathers the URL and every field. A 100 MB header cost 12 s and
373 MB, a 200 MB ``Authorization`` 48 s and 1,173 MB, before any authentication, and the event
loop stalled other clients meanwhile (issue 25). uvicorn offers a cap only for its pure-Python h11
parser (``h11_max_incomplete_event_size``); h11 parses a CDS call's 100 kB body several times slower
than httptools, on the hot path of every hook call. So this protocol keeps httptools and counts:

- the bytes of the head as they arrive: more than :data:`MAX_HEAD_BYTES` before the blank line
  that ends the head, and the request is answered ``431 Request Header Fields Too Large``
  (RFC 6585 §5) and the connection closed; the parser never holds more than the limit plus one read
  (a pipelined request whose head starts in the same read as the one before it is counted from
  where that read ends, so its head may reach twice the limit: still bounded);
- the header fields: more than :data:`MAX_HEADER_FIELDS` is a 431 too.

Both limits are well above what a partner sends (a CDS client JWT is about 1 kB, a SMART access
token under 2 kB; nginx answers 400 beyond 4 × 8 kB, Node.js 431 beyond 16 kB). The answer is a
FHIR OperationOutcome like every other refusal of the service. ``alk-fhir serve`` runs uvicorn
with this protocol (``http=BoundedHttpToolsProtocol``).
"""

from __future__ import annotations

import logging
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from alk_fhir.fhir import dump_json, operation_outcome

MAX_HEAD_BYTES = 32 * 1024
MAX_HEADER_FIELDS = 100

log = logging.getLogger("alk_fhir.http")


class HeadTooLarge(Exception):
    """The request head broke a limit; the message says which (for the answer and the log)."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the head bounded in bytes and in fields."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._fields = 0
        self._in_head = True
        self._began = False

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # What follows is the head of the next request (pipelined or on the kept-alive connection).
        self._head_bytes, self._fields, self._in_head, self._began = 0, 0, True, True

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields += 1
        if self._fields > MAX_HEADER_FIELDS:
            raise HeadTooLarge(f"more than {MAX_HEADER_FIELDS} header fields")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        while data:
            if not self._in_head:
                self._feed(data)  # a body (a pipelined head that starts in it is counted from the next read)
                return
            # Only what still fits goes to the parser: the head must end within it. What follows the
            # head in the same read (a body, a pipelined request with its own budget) goes next.
            room = max(MAX_HEAD_BYTES - self._head_bytes, 0)
            piece, data = data[:room], data[room:]
            self._head_bytes += len(piece)
            self._began = False
            self._feed(piece)
            if self.transport.is_closing():
                return
            if data and self._in_head and not self._began:
                self._refuse(f"request line and header fields longer than {MAX_HEAD_BYTES} bytes")
                return

    def _feed(self, data: bytes) -> None:
        """``HttpToolsProtocol.data_received`` without its keep-alive reset, with 431 for our limits."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, HeadTooLarge):
                self._refuse(str(exc.__context__))
            else:
                self._bad_request()
        except httptools.HttpParserError:
            self._bad_request()
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()

    def _bad_request(self) -> None:
        msg = "Invalid HTTP request received."
        self.logger.warning(msg)
        self.send_400_response(msg)

    def _refuse(self, why: str) -> None:
        log.warning("request from %s refused before it reached the service: %s", self.client, why)
        body = dump_json(operation_outcome("error", "too-long", f"request head refused: {why}"))
        head = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/fhir+json\r\n"
                b"connection: close\r\ncontent-length: " + str(len(body)).encode("ascii") + b"\r\n\r\n")
        self.transport.write(head + body)
        self.transport.close()
