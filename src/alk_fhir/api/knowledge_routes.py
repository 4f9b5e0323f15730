"""The package served read-only as a FHIR knowledge repository (public: no patient data here)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request

from alk_fhir.api.outcome import FHIRError, FHIRResponse, fhir_response
from alk_fhir.knowledge import Package
from alk_fhir.knowledge.valuesets import NotExpandable

router = APIRouter(tags=["knowledge"])

KNOWLEDGE_TYPES = (
    "CodeSystem", "ValueSet", "Questionnaire", "PlanDefinition", "ActivityDefinition",
    "StructureDefinition", "Library",
)
SEARCH_PARAMS = ("url", "version", "name", "status", "_id")


def package_of(request: Request) -> Package:
    pkg: Package = request.app.state.package
    return pkg


def _check_type(resource_type: str) -> None:
    if resource_type not in KNOWLEDGE_TYPES:
        raise FHIRError(404, "not-supported", f"resource type {resource_type} is not served here")


def searchset(request: Request, resources: list[dict[str, Any]]) -> dict[str, Any]:
    base = str(request.app.state.settings.base_url) + "/fhir"
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "searchset",
        "total": len(resources),
        "link": [{"relation": "self", "url": str(request.url)}],
        "entry": [
            {"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}}
            for r in resources
        ],
    }


@router.get("/fhir/ValueSet/$expand", response_class=FHIRResponse)
def expand_by_url(request: Request, url: str | None = None) -> FHIRResponse:
    if not url:
        raise FHIRError(400, "required", "parameter 'url' is required for ValueSet/$expand")
    vs = package_of(request).resolve(url)
    if vs is None or vs["resourceType"] != "ValueSet":
        raise FHIRError(404, "not-found", f"no ValueSet with url {url}")
    return _expand(request, vs)


@router.get("/fhir/ValueSet/{vs_id}/$expand", response_class=FHIRResponse)
def expand_by_id(request: Request, vs_id: str) -> FHIRResponse:
    vs = package_of(request).get("ValueSet", vs_id)
    if vs is None:
        raise FHIRError(404, "not-found", f"ValueSet/{vs_id} not found")
    return _expand(request, vs)


def _expand(request: Request, vs: dict[str, Any]) -> FHIRResponse:
    try:
        contains = package_of(request).terminology.expand(vs["url"])
    except NotExpandable as exc:
        raise FHIRError(422, "too-costly", str(exc)) from exc
    expanded = {k: v for k, v in vs.items() if k not in ("compose", "text")}
    expanded["expansion"] = {
        "identifier": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, vs['url'] + '|' + vs['version'])}",
        "timestamp": vs.get("date", "2026-01-01"),
        "total": len(contains),
        "contains": contains,
    }
    return fhir_response(expanded)


@router.get("/fhir/{resource_type}", response_class=FHIRResponse)
def search(request: Request, resource_type: str) -> FHIRResponse:
    _check_type(resource_type)
    params = dict(request.query_params)
    unknown = sorted(set(params) - set(SEARCH_PARAMS) - {"_format", "_count"})
    if unknown:
        raise FHIRError(400, "not-supported", f"unsupported search parameter(s): {', '.join(unknown)}")
    wanted = {k: v for k, v in params.items() if k in SEARCH_PARAMS}
    url = wanted.get("url", "")
    if "|" in url:  # url=canonical|version is the canonical-search shorthand
        wanted["url"], wanted["version"] = url.split("|", 1)
    return fhir_response(searchset(request, package_of(request).search(resource_type, **wanted)))


@router.get("/fhir/{resource_type}/{resource_id}", response_class=FHIRResponse)
def read(request: Request, resource_type: str, resource_id: str) -> FHIRResponse:
    _check_type(resource_type)
    res = package_of(request).get(resource_type, resource_id)
    if res is None:
        raise FHIRError(404, "not-found", f"{resource_type}/{resource_id} not found")
    return fhir_response(res)
