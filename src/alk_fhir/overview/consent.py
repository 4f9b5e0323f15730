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

This is the one consent rule (:func:`why_not`: status, category, scope, permit, period, parties,
nested deny). The CLI sender applies it before sending (:func:`require_exchange_consent`); the
receiving store applies it to the document it is given (:func:`sharing_parties`: who the writer may
share this version with today, recorded with the version); the reader applies it again on every
read to the document's *current* version, on the day of the read, so an expired period or a
version that withdraws the consent cuts a former recipient off from every version.
``provision.period`` is inclusive at both ends, a partial ``end`` ("2027", "2027-03") up to the last
day it names.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from datetime import date
from typing import Any

from alk_fhir.context import PatientContext
from alk_fhir.context.fhirdata import JSON, codings, has_code, parse_date, reference_key, resource_key
from alk_fhir.overview.document import PARTICIPATION, OrgId, identifiers_of, is_exchange_consent, organization_ids

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
    period = provision.get("period")
    period = period if isinstance(period, dict) else {}
    start, end = parse_date(period.get("start")), last_day(period.get("end"))
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


def last_day(value: object) -> date | None:
    """The last calendar day a FHIR date/dateTime names: "2027" is up to 2027-12-31, "2027-02" up to
    2027-02-28 (an end of period includes the whole of what it names)."""
    day = parse_date(value)
    if day is None or not isinstance(value, str):
        return None
    if len(value) == 4:
        return date(day.year, 12, 31)
    if len(value) == 7:
        return date(day.year, day.month, calendar.monthrange(day.year, day.month)[1])
    return day


def _candidates(ctx: PatientContext) -> list[OrgId]:
    """Every organisation an exchange Consent in the context names as holder or recipient."""
    found: list[OrgId] = []
    for consent in ctx.of_type("Consent"):
        if not is_exchange_consent(consent):
            continue
        for holder in consent.get("organization") or []:
            found += organization_ids(ctx, holder)
        for ref in _recipients(consent.get("provision") or {}):
            found += organization_ids(ctx, ref)
    return list(dict.fromkeys(found))


def sharing_parties(ctx: PatientContext, *, writer: str, today: date) -> list[OrgId]:
    """The organisations ``writer`` (``system|value``) may share this document with on ``today``:
    each party of an exchange Consent in the document for which :func:`why_not` says yes, with
    ``writer`` as the sender. Empty when no Consent in force covers any exchange of the writer's."""
    consents = ctx.of_type("Consent")
    return [org for org in _candidates(ctx) if f"{org[0]}|{org[1]}" != writer
            and any(why_not(c, ctx, f"{org[0]}|{org[1]}", [writer], today) is None for c in consents)]


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
