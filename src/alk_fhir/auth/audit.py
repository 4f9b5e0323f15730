"""AuditEvents: every access to patient data, allowed or refused, leaves a FHIR R4 record.

Shape (FHIR R4 AuditEvent, http://hl7.org/fhir/R4/auditevent.html): ``type`` = audit-event-type
``rest`` with ``subtype`` from restful-interaction (read / create / search) for FHIR interactions,
and DICOM 110114 "User Authentication" / 110122 "Login" for token requests; ``action`` R / C / E
(a search is an Execute, as the R4 AuditEvent notes say); ``outcome`` 0 success, 4 minor failure
(refused: a client error), 8 serious failure (our error); one requesting ``agent`` identified by
its organisation (URA/AGB) with the OAuth ``client_id`` as ``altId``; ``source.observer`` = this
service; ``entity`` = the document Bundle. Builders return plain dicts; the sink decides where they
go (the store module writes them to the database).
"""

from __future__ import annotations

import base64
import threading
import uuid
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

Interaction = Literal["read", "create", "search", "login"]
Outcome = Literal["0", "4", "8"]

RESTFUL_INTERACTION = "http://hl7.org/fhir/restful-interaction"
AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
SECURITY_SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
AUDIT_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"

_ACTIONS: dict[str, str] = {"read": "R", "create": "C", "search": "E", "login": "E"}
_INTERACTION_DISPLAY = {"read": "read", "create": "create", "search": "search"}


class AuditSink(Protocol):
    def record(self, event: dict[str, Any]) -> None: ...


class MemoryAuditSink:
    """Keeps the most recent events in memory: tests and single-process development only."""

    def __init__(self, maxlen: int = 10_000) -> None:
        self._events: deque[dict[str, Any]] = deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def record(self, event: dict[str, Any]) -> None:
        with self._lock:
            self._events.append(event)

    @property
    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._events)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self._events)


def _type_and_subtype(interaction: Interaction) -> tuple[dict[str, str], dict[str, str]]:
    if interaction == "login":
        return ({"system": DCM, "code": "110114", "display": "User Authentication"},
                {"system": DCM, "code": "110122", "display": "Login"})
    return ({"system": AUDIT_EVENT_TYPE, "code": "rest", "display": "RESTful Operation"},
            {"system": RESTFUL_INTERACTION, "code": interaction,
             "display": _INTERACTION_DISPLAY[interaction]})


def audit_event(*, interaction: Interaction, outcome: Outcome, observer: str, client_id: str | None = None,
                organization: tuple[str, str] | None = None, agent_name: str | None = None,
                address: str | None = None, entity_reference: str | None = None,
                entity_identifier: tuple[str, str] | None = None, query: str | None = None,
                description: str | None = None, recorded: datetime | None = None) -> dict[str, Any]:
    """One AuditEvent as a FHIR R4 JSON dict.

    ``organization`` and ``entity_identifier`` are (system, value) pairs; ``client_id`` may be the
    one a refused caller *claimed*; ``description`` becomes ``outcomeDesc``.
    """
    event_type, subtype = _type_and_subtype(interaction)
    agent: dict[str, Any] = {"requestor": True}
    if organization is not None:
        who: dict[str, Any] = {"type": "Organization",
                               "identifier": {"system": organization[0], "value": organization[1]}}
        if agent_name:
            who["display"] = agent_name
        agent["who"] = who
    if client_id:
        agent["altId"] = client_id
    agent["name"] = agent_name or client_id or "unauthenticated client"
    if address:
        agent["network"] = {"address": address, "type": "2"}  # 2 = IP address
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(uuid.uuid4()),
        "type": event_type,
        "subtype": [subtype],
        "action": _ACTIONS[interaction],
        "recorded": (recorded or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "outcome": outcome,
        "agent": [agent],
        "source": {
            "observer": {"identifier": {"system": "urn:ietf:rfc:3986", "value": observer},
                         "display": "alk-fhir"},
            "type": [{"system": SECURITY_SOURCE_TYPE, "code": "4", "display": "Application Server"}],
        },
    }
    if description:
        event["outcomeDesc"] = description
    entity: dict[str, Any] = {}
    if entity_reference or entity_identifier:
        what: dict[str, Any] = {}
        if entity_reference:
            what["reference"] = entity_reference
        if entity_identifier:
            what["identifier"] = {"system": entity_identifier[0], "value": entity_identifier[1]}
        entity["what"] = what
        entity["type"] = {"system": AUDIT_ENTITY_TYPE, "code": "2", "display": "System Object"}
        entity["role"] = {"system": OBJECT_ROLE, "code": "3", "display": "Report"}
    if query:
        entity["query"] = base64.b64encode(query.encode("utf-8")).decode("ascii")
    if entity:
        event["entity"] = [entity]
    return event
