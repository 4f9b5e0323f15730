"""Checking a CDS Hooks 2.0 service call ("Calling a CDS Service", HTTP Request) before any work.

Request fields: ``hook`` and ``hookInstance`` (a UUID) and ``context`` are required;
``fhirServer`` is required when ``fhirAuthorization`` is given; ``fhirAuthorization`` holds
``access_token``, ``token_type`` (Bearer), ``expires_in``, ``scope`` and ``subject`` (all
required) and optionally ``patient``; ``prefetch`` maps keys to a resource or ``null``.
Context fields per hook follow the hook definitions (patient-view 1.0, order-select 1.0,
order-sign 1.0): ``userId`` and ``patientId`` always, ``encounterId`` optional, ``selections``
(ids of entries in ``draftOrders``) and ``draftOrders`` (a Bundle) for order-select, and
``draftOrders`` for order-sign. Unknown members are tolerated (the ``extension`` member is
reserved for exactly that); anything required that is missing or of the wrong type is a 400 that
names the member.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from alk_fhir.cds.discovery import Service
from alk_fhir.cds.errors import CdsError
from alk_fhir.fhir import FHIR_ID, RESOURCE_TYPE

# hook -> (allowed user resource types, required context fields beyond userId/patientId)
HOOK_CONTEXT: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "patient-view": (("Practitioner", "PractitionerRole", "Patient", "RelatedPerson"), ()),
    "order-select": (("Practitioner", "PractitionerRole"), ("selections", "draftOrders")),
    "order-sign": (("Practitioner", "PractitionerRole"), ("draftOrders",)),
}


@dataclass(frozen=True)
class FhirAuthorization:
    access_token: str = field(repr=False)  # never in a log line or an error
    token_type: str
    expires_in: int
    scope: str
    subject: str


@dataclass(frozen=True)
class HookRequest:
    hook: str
    hook_instance: str
    user_type: str
    user_id: str
    patient_id: str
    encounter_id: str | None
    fhir_server: str | None
    authorization: FhirAuthorization | None
    prefetch: dict[str, Any] | None
    draft_orders: dict[str, Any] | None = None
    selections: tuple[str, ...] = ()

    @property
    def user_reference(self) -> str:
        return f"{self.user_type}/{self.user_id}"

    def token(self, name: str) -> str | None:
        """The value of a prefetch token (CDS Hooks 2.0 "Prefetch tokens"), None when it has none."""
        context = {"context.patientId": self.patient_id, "context.userId": self.user_reference,
                   "context.encounterId": self.encounter_id}
        if name in context:
            return context[name]
        users = {"userPractitionerId": "Practitioner", "userPractitionerRoleId": "PractitionerRole",
                 "userPatientId": "Patient", "userRelatedPersonId": "RelatedPerson"}
        if name in users:
            return self.user_id if users[name] == self.user_type else None
        return None


def _bad(diagnostics: str, expression: str) -> CdsError:
    return CdsError(400, "invalid", diagnostics, expression)


def _string(obj: dict[str, Any], key: str, where: str, *, required: bool = True) -> str | None:
    value = obj.get(key)
    if value is None and not required and key not in obj:
        return None
    if not isinstance(value, str) or not value:
        raise _bad(f"{where}.{key} must be a non-empty string", f"{where}.{key}")
    return value


def _fhir_id(value: str, where: str) -> str:
    if not FHIR_ID.fullmatch(value):
        raise _bad(f"{where} must be a FHIR id ({FHIR_ID.pattern})", where)
    return value


def _reference(value: str, where: str) -> tuple[str, str]:
    rtype, _, rid = value.partition("/")
    if not RESOURCE_TYPE.fullmatch(rtype) or not FHIR_ID.fullmatch(rid):
        raise _bad(f"{where} must be a relative reference 'Type/id'", where)
    return rtype, rid


def _url(value: str, where: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise _bad(f"{where} must be an absolute http(s) base URL without query or fragment", where)
    return value.rstrip("/")


def _authorization(raw: Any) -> FhirAuthorization | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise _bad("fhirAuthorization must be an object", "fhirAuthorization")
    where = "fhirAuthorization"
    token = _string(raw, "access_token", where)
    token_type = _string(raw, "token_type", where)
    if str(token_type).lower() != "bearer":
        raise _bad("fhirAuthorization.token_type must be 'Bearer'", "fhirAuthorization.token_type")
    expires = raw.get("expires_in")
    if not isinstance(expires, int) or isinstance(expires, bool) or expires < 0:
        raise _bad("fhirAuthorization.expires_in must be a non-negative integer", "fhirAuthorization.expires_in")
    scope = _string(raw, "scope", where)
    subject = _string(raw, "subject", where)
    if "patient" in raw:
        _string(raw, "patient", where)
    return FhirAuthorization(str(token), "Bearer", expires, str(scope), str(subject))


def _draft_orders(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict) or raw.get("resourceType") != "Bundle":
        raise _bad("context.draftOrders must be a FHIR Bundle", "context.draftOrders")
    entries = raw.get("entry", [])
    if not isinstance(entries, list) or not all(
            isinstance(e, dict) and isinstance(e.get("resource"), dict) for e in entries):
        raise _bad("context.draftOrders.entry must be a list of entries with a resource", "context.draftOrders.entry")
    return raw


def _selections(raw: Any, drafts: dict[str, Any]) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw or not all(isinstance(s, str) for s in raw):
        raise _bad("context.selections must be a non-empty array of 'Type/id' strings", "context.selections")
    present = {f"{e['resource'].get('resourceType')}/{e['resource'].get('id')}" for e in drafts.get("entry", [])}
    for i, sel in enumerate(raw):
        _reference(sel, f"context.selections[{i}]")
        if sel not in present:
            raise _bad(f"context.selections[{i}] ({sel}) is not an entry of context.draftOrders",
                       f"context.selections[{i}]")
    return tuple(raw)


def _prefetch(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise _bad("prefetch must be an object of key -> resource or null", "prefetch")
    for key, value in raw.items():
        if value is not None and not (isinstance(value, dict) and isinstance(value.get("resourceType"), str)):
            raise _bad(f"prefetch.{key} must be a FHIR resource or null", f"prefetch.{key}")
    return raw


def parse_hook_request(body: Any, service: Service) -> HookRequest:
    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object", "$")
    hook = _string(body, "hook", "$")
    if hook != service.hook:
        raise _bad(f"service {service.id} answers hook {service.hook!r}, not {hook!r}", "hook")
    instance = str(_string(body, "hookInstance", "$"))
    try:
        uuid.UUID(instance)
    except ValueError as exc:
        raise _bad("hookInstance must be a UUID", "hookInstance") from exc
    authorization = _authorization(body.get("fhirAuthorization"))
    server = body.get("fhirServer")
    if server is not None:
        if not isinstance(server, str):
            raise _bad("fhirServer must be a URL string", "fhirServer")
        server = _url(server, "fhirServer")
    elif authorization is not None:
        raise _bad("fhirServer is required when fhirAuthorization is given", "fhirServer")
    context = body.get("context")
    if not isinstance(context, dict):
        raise _bad("context must be an object", "context")
    user_types, extra = HOOK_CONTEXT[service.hook]
    user_type, user_id = _reference(str(_string(context, "userId", "context")), "context.userId")
    if user_type not in user_types:
        raise _bad(f"context.userId must reference one of {', '.join(user_types)} for {service.hook}",
                   "context.userId")
    patient_id = _fhir_id(str(_string(context, "patientId", "context")), "context.patientId")
    encounter = _string(context, "encounterId", "context", required=False)
    if encounter is not None:
        _fhir_id(encounter, "context.encounterId")
    drafts = _draft_orders(context.get("draftOrders")) if "draftOrders" in extra else None
    selections = _selections(context.get("selections"), drafts or {}) if "selections" in extra else ()
    return HookRequest(
        hook=service.hook, hook_instance=instance, user_type=user_type, user_id=user_id, patient_id=patient_id,
        encounter_id=encounter, fhir_server=server, authorization=authorization,
        prefetch=_prefetch(body.get("prefetch")), draft_orders=drafts, selections=selections,
    )


def selected_orders(request: HookRequest) -> dict[str, Any] | None:
    """The orders decision support is about: the selected ones for order-select (hook definition:
    "Decision support should focus on the 'selected' orders"), all unsigned ones for order-sign."""
    if request.draft_orders is None:
        return None
    if not request.selections:
        return request.draft_orders
    chosen = set(request.selections)
    return {"resourceType": "Bundle", "type": "collection", "entry": [
        e for e in request.draft_orders.get("entry", [])
        if f"{e['resource'].get('resourceType')}/{e['resource'].get('id')}" in chosen]}
