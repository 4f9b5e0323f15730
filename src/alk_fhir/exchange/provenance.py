"""The sender's own record of a sent document: a FHIR R4 Provenance (provenance.html).

Who sent what when, in R4 terms:
- ``target``: the document Bundle, by its identifier (and by the server's location once known);
- ``recorded`` / ``occurredDateTime``: when it was sent (an instant);
- ``activity``: v3-DataOperation ``CREATE`` (the send is a create on the recipient's server), in the
  extensible ``provenance-activity-type`` ValueSet, with the local word ("send") as text;
- ``agent``: the sending organisation as ``author`` and the recipient as ``custodian`` (it now keeps
  a copy), codes from ``provenance-participant-type`` (``provenance-agent-type`` ValueSet);
- ``entity``: the document's Composition with role ``source`` (``provenance-entity-role``).
All codes are in the HL7 R4 core package; tests check them there.
"""

from __future__ import annotations

import re
from typing import Any

from alk_fhir.fhir import REFERENCE, document_identifier

AGENT_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
DATA_OPERATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
URI_SYSTEM = "urn:ietf:rfc:3986"

# activity word -> v3-DataOperation code and display, all in ValueSet provenance-activity-type
ACTIVITIES = {
    "send": ("CREATE", "create"),
    "create": ("CREATE", "create"),
    "update": ("UPDATE", "revise"),
    "delete": ("DELETE", "delete"),
}

# R4 instant (datatypes.html#instant): seconds and a time zone are required
_INSTANT = re.compile(
    r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))")


def document_provenance(
    bundle: dict[str, Any],
    *,
    sender_org: dict[str, Any],
    recipient: str,
    when: str,
    activity: str = "send",
    location: str | None = None,
) -> dict[str, Any]:
    """A Provenance for one sent document.

    ``sender_org``: the sending organisation's Identifier (e.g. URA ``{"system", "value"}``) or a
    Reference to it. ``recipient``: ``system|value`` of the receiving organisation, a reference
    (``Organization/x`` or an absolute resource URL), or the receiving FHIR server's base URL (then
    recorded as that system, a Device identified by its URL). ``when``: an instant.
    ``location``: the server's ``Location`` for the stored copy, when the send returned one.
    """
    system, value = document_identifier(bundle)
    if not isinstance(when, str) or not _INSTANT.fullmatch(when):
        raise ValueError(f"when must be a FHIR instant with seconds and time zone, got {when!r}")
    if activity not in ACTIVITIES:
        raise ValueError(f"activity must be one of {', '.join(ACTIVITIES)}, not {activity!r}")
    code, display = ACTIVITIES[activity]
    target: dict[str, Any] = {"type": "Bundle", "identifier": {"system": system, "value": value}}
    if location:
        target["reference"] = location
    return {
        "resourceType": "Provenance",
        "target": [target],
        "occurredDateTime": when,
        "recorded": when,
        "activity": {"coding": [{"system": DATA_OPERATION_SYSTEM, "code": code, "display": display}],
                     "text": activity},
        "agent": [
            {"type": _agent_type("author", "Author"), "who": _organization(sender_org)},
            {"type": _agent_type("custodian", "Custodian"), "who": _recipient(recipient)},
        ],
        "entity": [{"role": "source", "what": _composition(bundle, value)}],
    }


def _agent_type(code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": AGENT_TYPE_SYSTEM, "code": code, "display": display}]}


def _organization(org: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(org, dict):
        raise ValueError("sender_org must be an Identifier or a Reference (a JSON object)")
    if isinstance(org.get("system"), str) and isinstance(org.get("value"), str):
        return {"type": "Organization", "identifier": {"system": org["system"], "value": org["value"]}}
    if isinstance(org.get("identifier"), dict) or isinstance(org.get("reference"), str):
        return {"type": "Organization", **org}
    raise ValueError("sender_org needs system and value (an Identifier) "
                     "or identifier/reference (a Reference)")


def _recipient(recipient: str) -> dict[str, Any]:
    if not isinstance(recipient, str) or not recipient.strip():
        raise ValueError("recipient is required")
    recipient = recipient.strip()
    if "|" in recipient:  # system|value; identifier systems are often http URLs themselves
        system, _, value = recipient.partition("|")
        if not system or not value:
            raise ValueError(f"recipient identifier must be system|value, got {recipient!r}")
        return {"type": "Organization", "identifier": {"system": system, "value": value}}
    if REFERENCE.fullmatch(recipient):
        return {"reference": recipient}
    if recipient.startswith(("http://", "https://")):
        return {"type": "Device", "identifier": {"system": URI_SYSTEM, "value": recipient},
                "display": recipient}
    raise ValueError(f"recipient must be system|value, a reference or a FHIR base URL, got {recipient!r}")


def _composition(bundle: dict[str, Any], document_value: str) -> dict[str, Any]:
    entries = bundle.get("entry") or []
    first = entries[0].get("resource") if entries and isinstance(entries[0], dict) else None
    if not isinstance(first, dict) or first.get("resourceType") != "Composition":
        raise ValueError("Bundle.entry[0].resource must be the document's Composition")
    what: dict[str, Any] = {"type": "Composition"}
    identifier = first.get("identifier")
    if isinstance(identifier, dict) and identifier.get("value"):
        what["identifier"] = identifier
    what["display"] = first.get("title") or f"Composition of document {document_value}"
    return what
