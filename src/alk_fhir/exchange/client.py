"""A small FHIR R4 REST client for case-overview documents, safe to retry.

Sending is a *conditional create* (FHIR R4 http.html#ccreate): ``POST [base]/Bundle`` with
``If-None-Exist: identifier=<system>|<value>``. The server creates the document when no Bundle
has that identifier (201), does nothing and answers 200 when exactly one has (so a retry after a
lost answer, or a second send of the same document, leaves one copy), and answers 412 when
several have. That is the only reason a POST may be retried here.

The send asks for ``Prefer: return=OperationOutcome`` (http.html#ops): the id and version come
from ``Location``/``ETag``, and a server that keeps versions per document identifier (ours) says
in the outcome whether it stored a new version (``MSG_CREATED``/``MSG_UPDATED`` of the R4
``operation-outcome`` codes). 201 always means stored; a 200 without such a code is the standard
"already there" of a conditional create.

Fetching is a search (http.html#search) on the Bundle ``composition`` chain
(``composition.patient.identifier=system|value``), following the searchset's ``next`` links.
Those links are followed only on the server's own origin: SMART Backend Services (Access FHIR
API) says a client SHOULD NOT send its access token to another server a response points at.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import requests

from alk_fhir.exchange.errors import ExchangeError, error_from_response, response_json
from alk_fhir.exchange.retry import DEFAULT_STATUSES, RetryPolicy, call_with_retries
from alk_fhir.fhir import (
    FHIR_ID,
    RESOURCE_TYPE,
    document_identifier,
    outcome_details,
    parse_reference,
    require_secure_transport,
)

log = logging.getLogger("alk_fhir.exchange")

FHIR_JSON = "application/fhir+json"
TokenProvider = Callable[[], str]
Timeout = float | tuple[float, float]
STORED_CODES = frozenset({"MSG_CREATED", "MSG_UPDATED"})


@dataclass(frozen=True)
class SendResult:
    """What the server said about a sent document. ``created``: the server made a new logical
    resource (201); ``stored``: this send stored a new version (always so when ``created``); when
    ``stored`` is False the server already had the document and kept it as ``version_id``."""

    status: int
    location: str | None
    id: str | None
    version_id: str | None
    created: bool
    stored: bool = False


class _BearerAuth(requests.auth.AuthBase):
    """Asks the provider on every attempt, so a retry after a long wait carries a fresh token."""

    def __init__(self, provider: TokenProvider) -> None:
        self.provider = provider

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.provider()}"
        return request


def check_transport(url: str, allow_http: bool = False) -> None:
    """Refuse plain HTTP except to this machine: tokens and patient data travel over TLS only
    (the one rule, ``alk_fhir.fhir.require_secure_transport``)."""
    require_secure_transport(url, allow_http=allow_http)


def token_param(system: str, value: str) -> str:
    """A ``system|value`` token search value, with the search-escaping of FHIR R4 search.html#escaping."""
    def esc(text: str) -> str:
        return text.replace("\\", "\\\\").replace("|", "\\|").replace(",", "\\,").replace("$", "\\$")
    return f"{esc(system)}|{esc(value)}"


class FhirClient:
    """One partner FHIR server. Thread-compatible like ``requests.Session``; close it when done."""

    def __init__(
        self,
        base_url: str,
        token_provider: TokenProvider | None = None,
        *,
        timeout: Timeout = (5.0, 30.0),
        retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_total: float = 120.0,
        retry_statuses: frozenset[int] = DEFAULT_STATUSES,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        allow_http: bool = False,
    ) -> None:
        check_transport(base_url, allow_http)
        self.base_url = base_url.rstrip("/")
        self.token_provider = token_provider
        self.timeout = timeout
        self.policy = RetryPolicy(retries=retries, backoff=backoff, max_backoff=max_backoff,
                                  max_total=max_total, statuses=frozenset(retry_statuses))
        self.session = session or requests.Session()
        self._sleep = sleep
        self._auth = _BearerAuth(token_provider) if token_provider else None

    def __enter__(self) -> FhirClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.session.close()

    # -- interactions -------------------------------------------------------------------------

    def send_document(self, bundle: dict[str, Any]) -> SendResult:
        """Conditionally create the document; sending it again changes nothing on the server."""
        system, value = document_identifier(bundle)
        url = f"{self.base_url}/Bundle"
        condition = "identifier=" + quote(token_param(system, value), safe=":/|")
        response = self._request("POST", url, json_body=bundle,
                                 headers={"If-None-Exist": condition, "Prefer": "return=OperationOutcome"})
        if not 200 <= response.status_code < 300:
            raise error_from_response("POST", url, response)
        result = _send_result(response, self.base_url)
        log.info("sent Bundle %s|%s to %s: HTTP %d, %s%s", system, value, url, result.status,
                 "stored" if result.stored else "already there",
                 f" as Bundle/{result.id}" if result.id else "")
        return result

    def fetch_documents(self, patient_identifier_system: str, value: str) -> list[dict[str, Any]]:
        """All document Bundles about the patient with this identifier, every page of the search."""
        params = {"composition.patient.identifier": token_param(patient_identifier_system, value)}
        return [r for r in self.search("Bundle", params) if r.get("resourceType") == "Bundle"]

    def search(self, resource_type: str, params: dict[str, str]) -> list[dict[str, Any]]:
        """The ``match`` entries of a search, following ``next`` links on this server only."""
        _check_type(resource_type)
        return list(self._entries(f"{self.base_url}/{resource_type}", params, matches_only=True))

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        _check_type(resource_type)
        _check_id(resource_id)
        return self._get_json(f"{self.base_url}/{resource_type}/{resource_id}")

    def history(self, resource_type: str, resource_id: str) -> list[dict[str, Any]]:
        """Every version the server keeps, newest first (R4 http.html#history), deleted ones left out."""
        _check_type(resource_type)
        _check_id(resource_id)
        url = f"{self.base_url}/{resource_type}/{resource_id}/_history"
        return list(self._entries(url, None, matches_only=False))

    # -- plumbing -----------------------------------------------------------------------------

    def _entries(self, url: str, params: dict[str, str] | None,
                 *, matches_only: bool) -> Iterator[dict[str, Any]]:
        seen: set[str] = set()
        next_url: str | None = url
        while next_url:
            page = self._get_json(next_url, params)
            params = None  # a next link carries the whole query
            if page.get("resourceType") != "Bundle":
                raise ExchangeError("GET", next_url, 200,
                                    f"expected a Bundle, got {page.get('resourceType')}")
            for entry in page.get("entry") or []:
                resource = entry.get("resource") if isinstance(entry, dict) else None
                mode = (entry.get("search") or {}).get("mode", "match") if isinstance(entry, dict) else None
                if isinstance(resource, dict) and (not matches_only or mode == "match"):
                    yield resource
            seen.add(next_url)
            next_url = self._next_link(page, next_url, seen)

    def _next_link(self, page: dict[str, Any], current: str, seen: set[str]) -> str | None:
        for link in page.get("link") or []:
            if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
                target = urljoin(current, link["url"])
                if _origin(target) != _origin(self.base_url):
                    other = urlsplit(target).netloc
                    raise ExchangeError("GET", current, 200,
                                        f"refusing to follow a next link to another server ({other})")
                return None if target in seen else target
        return None

    def _get_json(self, url: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        response = self._request("GET", url, params=params)
        if response.status_code != 200:
            raise error_from_response("GET", url, response)
        body = response_json(response)
        if not isinstance(body, dict):
            raise ExchangeError("GET", url, 200, "response is not a FHIR JSON resource")
        return body

    def _request(self, method: str, url: str, *, json_body: Any = None,
                 params: dict[str, str] | None = None,
                 headers: dict[str, str] | None = None) -> requests.Response:
        all_headers = {"Accept": FHIR_JSON, **(headers or {})}
        data: bytes | None = None
        if json_body is not None:
            data = json.dumps(json_body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            all_headers["Content-Type"] = f"{FHIR_JSON}; charset=utf-8"

        def attempt() -> requests.Response:
            return self.session.request(method, url, params=params, data=data, headers=all_headers,
                                        auth=self._auth, timeout=self.timeout)

        response = call_with_retries(attempt, method, url, self.policy, sleep=self._sleep)
        invalidate = getattr(self.token_provider, "invalidate", None)
        if response.status_code == 401 and callable(invalidate):
            # A cached token the server no longer accepts (revoked, clock skew): one fresh try.
            log.info("%s %s: HTTP 401, renewing the access token once", method, url)
            response.close()
            invalidate()
            response = call_with_retries(attempt, method, url, self.policy, sleep=self._sleep)
        return response


def _send_result(response: requests.Response, base_url: str) -> SendResult:
    location = response.headers.get("Location") or response.headers.get("Content-Location")
    rid = vid = None
    if location:
        location = urljoin(base_url + "/", location)  # servers may answer a relative Location
        parts = urlsplit(location)
        found = parse_reference(parts._replace(query="", fragment="").geturl().rstrip("/"))
        if found is not None and found.type == "Bundle":
            rid, vid = found.id, found.version
    body = response_json(response)
    if isinstance(body, dict) and body.get("resourceType") == "Bundle":
        rid = rid or body.get("id")
        vid = vid or (body.get("meta") or {}).get("versionId")
    etag = response.headers.get("ETag", "")
    if not vid and etag:
        vid = etag.removeprefix("W/").strip('"') or None
    created = response.status_code == 201
    return SendResult(status=response.status_code, location=location, id=rid, version_id=vid,
                      created=created, stored=created or bool(outcome_details(body) & STORED_CODES))


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(scheme)


def _check_type(resource_type: str) -> None:
    if not RESOURCE_TYPE.fullmatch(resource_type):
        raise ValueError(f"not a FHIR resource type: {resource_type!r}")


def _check_id(resource_id: str) -> None:
    if not FHIR_ID.fullmatch(resource_id):
        raise ValueError(f"not a FHIR id: {resource_id!r}")
