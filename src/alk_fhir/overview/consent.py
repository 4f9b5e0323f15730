"""The consent gate: no overview is built for, or sent to, an organisation the patient did not allow.

Handreiking §4.3: information is shared and consultation asked *with the patient's consent*. The
Consent is profiled as alk-exchange-consent: status ``active``, category LOINC 59284-0 (Patient
Consent), scope ``patient-privacy``, ``organization`` = the organisation that holds and sends the
data, ``provision.type`` = permit within ``provision.period``, and the receiving organisation(s)
as ``provision.actor`` with role v3-ParticipationType IRCP (information recipient).

The profile describes the consent as permission to share "between GP and mental-health care". So
it covers two directions: from the holding organisation to a named recipient, and back from that
recipient to the holding organisation (the GGz returning its version of the overview). It never
covers a third organisation. A nested ``provision`` of type ``deny`` naming the recipient wins.
Organisations are matched by identifier (``system|value``, URA or AGB) or by reference
(``Organization/id``), never by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from alk_fhir.context import PatientContext
from alk_fhir.context.fhirdata import JSON, codings, has_code, parse_date, reference_key, resource_key
from alk_fhir.overview.document import PARTICIPATION, OrgId, identifiers_of, organization_ids

LOINC = "http://loinc.org"
PATIENT_CONSENT = "59284-0"
SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"


class ConsentRefused(Exception):
    """No active Consent covers the exchange; the message says why, per Consent considered."""


def _matches(ctx: PatientContext, ref: object, organisation: str) -> bool:
    """Does the Reference ``ref`` mean ``organisation`` (``system|value`` or ``Organization/id``)?"""
    if not isinstance(ref, dict):
        return False
    if "|" in organisation:
        system, value = organisation.split("|", 1)
        if (system, value) in organization_ids(ctx, ref):
            return True
        target = ctx.resolve(ref)
        return (system, value) in identifiers_of(target)
    target = ctx.resolve(ref)
    return reference_key(ref) == organisation or (target is not None and resource_key(target) == organisation)


def _any(ctx: PatientContext, refs: object, organisations: Sequence[str]) -> bool:
    items = refs if isinstance(refs, list) else [refs]
    return any(_matches(ctx, r, o) for r in items for o in organisations)


def _recipients(provision: JSON) -> list[Any]:
    return [a.get("reference") for a in provision.get("actor") or []
            if isinstance(a, dict) and has_code(a.get("role"), PARTICIPATION, "IRCP")]


def why_not(consent: JSON, ctx: PatientContext, recipient: str, senders: Sequence[str], today: date) -> str | None:
    """None when ``consent`` covers sending to ``recipient`` (from one of ``senders``, if known)."""
    if consent.get("status") != "active":
        return f"status is {consent.get('status')!r}, not 'active'"
    patient = ctx.patient
    if patient is not None and reference_key(consent.get("patient")) not in (resource_key(patient), None):
        return "it is about another patient"
    if not has_code(consent.get("category"), LOINC, PATIENT_CONSENT):
        return f"its category is not LOINC {PATIENT_CONSENT} (Patient Consent)"
    if not any(c.get("system") == SCOPE_SYSTEM and c.get("code") == "patient-privacy"
               for c in codings(consent.get("scope"))):
        return "its scope is not patient-privacy"
    provision = consent.get("provision") or {}
    if provision.get("type", "permit") != "permit":
        return "its provision does not permit"
    period = provision.get("period") or {}
    start, end = parse_date(period.get("start")), parse_date(period.get("end"))
    if start is not None and today < start:
        return f"it starts on {start.isoformat()}"
    if end is not None and today > end:
        return f"it ended on {end.isoformat()}"
    recipients = _recipients(provision)
    holders = consent.get("organization") or []
    forward = _any(ctx, recipients, [recipient]) and (not senders or _any(ctx, holders, senders))
    reply = _any(ctx, holders, [recipient]) and bool(senders) and _any(ctx, recipients, senders)
    if not (forward or reply):
        return f"it does not allow sharing with {recipient}" + (
            f" by {', '.join(senders)}" if senders and _any(ctx, recipients, [recipient]) else "")
    for nested in provision.get("provision") or []:
        if isinstance(nested, dict) and nested.get("type") == "deny" and _any(
                ctx, [a.get("reference") for a in nested.get("actor") or [] if isinstance(a, dict)], [recipient]):
            return f"a nested provision denies sharing with {recipient}"
    return None


def org_strings(orgs: Sequence[OrgId]) -> list[str]:
    return [f"{s}|{v}" for s, v in orgs]


def find_exchange_consent(ctx: PatientContext, *, recipient: str, senders: Sequence[str] = (),
                          today: date) -> JSON | None:
    for consent in ctx.of_type("Consent"):
        if why_not(consent, ctx, recipient, senders, today) is None:
            return consent
    return None


def require_exchange_consent(ctx: PatientContext, *, recipient: str, senders: Sequence[str] = (),
                             today: date) -> JSON:
    """The covering Consent, or :class:`ConsentRefused` with one reason per Consent considered."""
    if not recipient or not isinstance(recipient, str):
        raise ConsentRefused("no receiving organisation given: the consent gate needs one (system|value)")
    reasons = []
    for consent in ctx.of_type("Consent"):
        reason = why_not(consent, ctx, recipient, senders, today)
        if reason is None:
            return consent
        reasons.append(f"Consent/{consent.get('id')}: {reason}")
    detail = "; ".join(reasons) if reasons else "the record holds no Consent at all"
    raise ConsentRefused(
        f"refused: no active Consent of the patient covers sharing the case overview with {recipient} "
        f"on {today.isoformat()} (Handreiking §4.3; profile alk-exchange-consent) — {detail}. Nothing was sent.")
