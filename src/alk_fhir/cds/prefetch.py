"""From the request's prefetch (and, where it falls short, the CDS client's FHIR server) to the
resources the engine reads.

CDS Hooks 2.0, "Providing FHIR Resources to a CDS Service":
- a key the client sent as ``null`` means it has no data for that template: no data, no fetch;
- a key it left out means "not provided": the service fetches it itself from ``fhirServer``
  (with the ``fhirAuthorization`` bearer token when given); when it cannot, and the data is
  needed, it answers **412 Precondition Failed**;
- a client reports prefetch errors with OperationOutcomes: such a value (or a searchset entry
  with ``search.mode = outcome``) is treated as no data and reported back;
- a client MAY paginate prefetch results: ``next`` links are followed on the client's FHIR
  server, for at most ``MAX_PAGES`` pages.

The access token is sent only to URLs under ``fhirServer``, only over https (or plain http to the
loopback interface, for tests), and never written to a log or an error.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import requests

from alk_fhir.cds.discovery import Service
from alk_fhir.cds.errors import CdsError
from alk_fhir.cds.request import HookRequest
from alk_fhir.fhir import is_secure_transport

log = logging.getLogger("alk_fhir.cds")

MAX_PAGES = 50
MAX_BYTES = 20 * 1024 * 1024
CONNECT_TIMEOUT = 3.05
READ_TIMEOUT = 10.0
FETCH_WORKERS = 8
_TOKEN = re.compile(r"\{\{\s*([A-Za-z.]+)\s*\}\}")
_UNREADABLE = "urn:alk-fhir:unreadable"  # a missing key with no FHIR server that may be read
_executor = ThreadPoolExecutor(max_workers=FETCH_WORKERS, thread_name_prefix="cds-fetch")


class FetchError(Exception):
    """The FHIR server did not give the data (the reason holds no token)."""


class FhirSource(Protocol):
    def get(self, url: str) -> Any:
        """The JSON at ``url`` (absolute, under the server's base); None for 404/410 on a read."""
        ...


SourceFactory = Callable[[str, str | None], FhirSource]


@dataclass
class Resolved:
    """Every resource found, and what could not be used (OperationOutcome issues)."""

    resources: list[Any] = field(default_factory=list)
    issues: list[dict[str, Any]] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)


def may_send_token(url: str) -> bool:
    """The bearer token goes only over https, or to the loopback interface (alk_fhir.fhir's rule)."""
    return is_secure_transport(url)


class HttpFhirSource:
    """Plain FHIR REST reads with ``requests``: bearer token, timeouts, a size limit."""

    def __init__(self, base: str, token: str | None) -> None:
        self.base = base.rstrip("/")
        self._token = token
        self._session = requests.Session()

    def get(self, url: str) -> Any:
        if not (url == self.base or url.startswith(self.base + "/")):
            raise FetchError(f"{_shown(url)} is not on the CDS client's FHIR server")
        if not may_send_token(url):
            raise FetchError(f"{_shown(url)}: the FHIR server must use https")
        headers = {"Accept": "application/fhir+json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            with self._session.get(url, headers=headers, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                                   stream=True, allow_redirects=False) as response:
                if response.status_code in (404, 410) and "?" not in url:
                    return None
                if response.status_code != 200:
                    raise FetchError(f"{_shown(url)} answered HTTP {response.status_code}")
                raw = b""
                for chunk in response.iter_content(64 * 1024):
                    raw += chunk
                    if len(raw) > MAX_BYTES:
                        raise FetchError(f"{_shown(url)}: response larger than {MAX_BYTES} bytes")
        except requests.RequestException as exc:
            raise FetchError(f"{_shown(url)}: {exc.__class__.__name__}") from None
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise FetchError(f"{_shown(url)}: the answer is not JSON") from None

    def close(self) -> None:
        self._session.close()


def http_source(base: str, token: str | None) -> FhirSource:
    return HttpFhirSource(base, token)


def _shown(url: str) -> str:
    """A URL for logs and errors: scheme, host and path (queries can hold patient identifiers)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def render(template: str, request: HookRequest) -> str | None:
    """The relative FHIR URL of a template, or None when a token has no value in this call."""
    missing = False

    def value(match: re.Match[str]) -> str:
        nonlocal missing
        found = request.token(match.group(1))
        if found is None:
            missing = True
            return ""
        return quote(found, safe="/-._~")

    url = _TOKEN.sub(value, template)
    return None if missing else url


def _outcome_issue(key: str, text: str) -> dict[str, Any]:
    return {"severity": "warning", "code": "incomplete", "diagnostics": text, "expression": [f"prefetch.{key}"]}


def _next_link(bundle: dict[str, Any]) -> str | None:
    for link in bundle.get("link", []) or []:
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return str(link["url"])
    return None


def _absorb(key: str, value: Any, out: Resolved) -> None:
    """Add one prefetch value (a resource, a Bundle page) to ``out``; OperationOutcomes become issues."""
    if value is None:
        return
    if not isinstance(value, dict):
        out.issues.append(_outcome_issue(key, "not a FHIR resource; ignored"))
        return
    if value.get("resourceType") == "OperationOutcome":
        out.issues.append(_outcome_issue(key, "the CDS client reported an error for this key (OperationOutcome); "
                                              "treated as no data"))
        return
    if value.get("resourceType") == "Bundle":
        entries = value.get("entry", []) or []
        for i, entry in enumerate(entries if isinstance(entries, list) else [entries]):
            res = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(res, dict) and res.get("resourceType") == "OperationOutcome":
                out.issues.append(_outcome_issue(key, "the search reported an OperationOutcome; treated as no data"))
            elif isinstance(res, dict):
                out.resources.append(res)
            elif res is not None or not isinstance(entry, dict):
                out.issues.append(_outcome_issue(key, f"entry[{i}] holds no FHIR resource (a JSON object); ignored"))
        return
    out.resources.append(value)


def _pages(key: str, first: Any, source: FhirSource | None, out: Resolved) -> None:
    page, count = first, 1
    _absorb(key, page, out)
    while isinstance(page, dict) and page.get("resourceType") == "Bundle" and (nxt := _next_link(page)):
        if source is None:
            raise FetchError(f"prefetch.{key} is paginated and no FHIR server was given to read the next page")
        if count >= MAX_PAGES:
            raise FetchError(f"prefetch.{key} has more than {MAX_PAGES} pages")
        page = source.get(nxt)
        count += 1
        _absorb(key, page, out)


def _fetch_key(key: str, url: str | None, given: Any, source: FhirSource | None) -> Resolved:
    """``url`` None: the prefetch value ``given``; else read ``url`` (``_UNREADABLE``: no server to read)."""
    out = Resolved()
    if url is not None:
        if source is None or url == _UNREADABLE:
            raise FetchError(f"prefetch.{key} is missing and no FHIR server (https) was given to read it")
        given = source.get(url)
        out.fetched.append(key)
    _pages(key, given, source, out)
    return out


def needs_network(request: HookRequest, service: Service) -> bool:
    """Whether resolving may read the FHIR server: a key is missing, or a prefetch page has a next one."""
    prefetch = request.prefetch or {}
    if any(key not in prefetch for key in service.prefetch_keys if service.required(key)):
        return True
    if request.fhir_server and any(key not in prefetch for key in service.prefetch_keys):
        return True
    return any(isinstance(v, dict) and _next_link(v) for v in prefetch.values())


def resolve(request: HookRequest, service: Service, open_source: SourceFactory) -> Resolved:
    """All resources of the service's templates; raises CdsError(412) when needed data cannot be had."""
    prefetch = request.prefetch or {}
    source: FhirSource | None = None
    if request.fhir_server and may_send_token(request.fhir_server):
        source = open_source(request.fhir_server, request.authorization.access_token
                             if request.authorization else None)
    elif request.fhir_server:
        log.warning("CDS %s: fhirServer %s is not https; it is not read", service.id, _shown(request.fhir_server))
    jobs: list[tuple[str, str | None, Any]] = []
    for key in service.prefetch_keys:
        if key in prefetch:
            jobs.append((key, None, prefetch[key]))
            continue
        relative = render(service.prefetch[key], request)
        if relative is None:  # e.g. {{userPractitionerId}} when the user is a PractitionerRole
            continue
        if source is None and not service.required(key):
            continue
        jobs.append((key, f"{request.fhir_server}/{relative}" if source is not None else _UNREADABLE, None))
    needs_network = source is not None and any(
        url is not None or _next_link(given or {}) for _, url, given in jobs)
    results: list[tuple[str, Resolved | FetchError]] = []
    if needs_network and len(jobs) > 1:
        futures = [(key, _executor.submit(_guarded, key, url, given, source)) for key, url, given in jobs]
        results = [(key, f.result()) for key, f in futures]
    else:
        results = [(key, _guarded(key, url, given, source)) for key, url, given in jobs]
    if source is not None and hasattr(source, "close"):
        source.close()
    out = Resolved()
    for key, found in results:
        if isinstance(found, FetchError):
            if service.required(key):
                log.warning("CDS %s: prefetch %s cannot be had: %s", service.id, key, found)
                raise CdsError(412, "incomplete", f"needed data cannot be had: {found}", f"prefetch.{key}")
            out.issues.append(_outcome_issue(key, str(found)))
            continue
        out.resources += found.resources
        out.issues += found.issues
        out.fetched += found.fetched
    for issue in out.issues:
        log.info("CDS %s: %s %s", service.id, issue["expression"][0], issue["diagnostics"])
    return out


def _guarded(key: str, url: str | None, given: Any, source: FhirSource | None) -> Resolved | FetchError:
    try:
        return _fetch_key(key, url, given, source)
    except FetchError as exc:
        return exc
