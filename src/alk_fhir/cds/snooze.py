"""Remembered overrides: a card a clinician overrode with a reason stays away for that patient a while.

CDS Hooks 2.0 feedback names only the card's uuid; an override carries ``overrideReason.reason``, one
of the Codings the card offered (CodeSystem alk-concepts, group ``override-reasons``). The package says
per reason how long the card stays away (``snooze-days``; ``snooze-until-change``: the maximum), the
maximum (``snooze-max-days`` on the group) and which cards are never kept away longer than the shortest
period (``snooze-capped-fact``: those whose conditions read that fact, the lasting wish to die). No
period is written here.

A call remembers, per card it returns, what a later override needs (``Offer``: the patient's keyed
pseudonym, the plan action, a digest of the finding behind the card), in memory for a day: an
override is remembered when its feedback reaches the process that showed the card (logged otherwise;
behind a load balancer, route ``/feedback`` like the call, e.g. by client).
The next calls for that patient leave the card out until its last day, unless the finding behind it
changed (the digest differs): then it is shown again, and the log says so. The store holds only the
pseudonym (HMAC-SHA256 of the patient id under the service's snooze key), the action id, the reason
code, the digest and the last day. A lookup that fails is logged and shows every card (it never fails
a hook call); a write that fails makes the feedback call a 503 that stores nothing, so the EHR retries.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Protocol

from alk_fhir.cds.cards import Catalog
from alk_fhir.context import PatientContext
from alk_fhir.knowledge import CONCEPTS_SYSTEM, Package

log = logging.getLogger("alk_fhir.cds.snooze")
OFFER_SECONDS = 24 * 3600  # how long a shown card can still be overridden into a snooze
MAX_OFFERS = 50_000
MIN_KEY_BYTES = 32
GROUP = "override-reasons"


class SnoozeRow(Protocol):
    @property
    def reason(self) -> str: ...

    @property
    def trigger(self) -> str: ...

    @property
    def until(self) -> str: ...


class SnoozeStore(Protocol):
    """What ``alk_fhir.store.Store`` offers for snoozes."""

    def save_snooze(self, subject: str, action_id: str, reason: str, trigger: str, until: str, today: str) -> None:
        ...

    def snoozes_for(self, subject: str, today: str) -> Mapping[str, SnoozeRow]:
        ...


@dataclass(frozen=True)
class _Row:
    reason: str
    trigger: str
    until: str


class MemorySnoozes:
    """Snoozes kept in the process: for an app created without a store."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], _Row] = {}
        self._lock = threading.Lock()

    def save_snooze(self, subject: str, action_id: str, reason: str, trigger: str, until: str, today: str) -> None:
        with self._lock:
            self.rows = {k: v for k, v in self.rows.items() if v.until >= today}
            self.rows[(subject, action_id)] = _Row(reason, trigger, until)

    def snoozes_for(self, subject: str, today: str) -> Mapping[str, SnoozeRow]:
        with self._lock:
            return {a: r for (s, a), r in self.rows.items() if s == subject and r.until >= today}


@dataclass(frozen=True)
class Policy:
    """The package's snooze periods (CodeSystem alk-concepts, group ``override-reasons``)."""

    days: Mapping[str, int] = field(default_factory=dict)  # reason code -> days
    maximum: int = 0
    capped_fact: str | None = None

    @property
    def shortest(self) -> int:
        return min(self.days.values(), default=0)

    def period(self, reason: str, capped: bool) -> int:
        """Days a card overridden for ``reason`` stays away (0: not at all)."""
        days = min(self.days.get(reason, 0), self.maximum)
        return min(days, self.shortest) if capped else days


def _properties(concept: Mapping[str, Any]) -> dict[str, Any]:
    return {str(p.get("code")): next((v for k, v in p.items() if k.startswith("value")), None)
            for p in concept.get("property", []) or [] if isinstance(p, dict)}


def policy_of(pkg: Package) -> Policy:
    system: Mapping[str, Any] = next((cs for cs in pkg.of_type("CodeSystem") if cs.get("url") == CONCEPTS_SYSTEM), {})
    group: Mapping[str, Any] = next((c for c in system.get("concept", []) if c.get("code") == GROUP), {})
    shared = _properties(group)
    maximum = int(shared.get("snooze-max-days") or 0)
    days: dict[str, int] = {}
    for concept in group.get("concept", []):
        props = _properties(concept)
        if props.get("snooze-until-change"):
            days[concept["code"]] = maximum
        elif isinstance(props.get("snooze-days"), int):
            days[concept["code"]] = int(props["snooze-days"])
    capped = shared.get("snooze-capped-fact")
    return Policy(days, maximum, capped if isinstance(capped, str) else None)


def load_key(path: str) -> bytes:
    """The snooze key from ``ALK_FHIR_SNOOZE_KEY_FILE``; a fresh one (with a warning) when unset."""
    if not path:
        log.warning("ALK_FHIR_SNOOZE_KEY_FILE is not set: snoozed cards are forgotten at a restart "
                    "and not shared between workers")
        return os.urandom(MIN_KEY_BYTES)
    try:
        key = Path(path).read_bytes().strip()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the snooze key (ALK_FHIR_SNOOZE_KEY_FILE): {exc.strerror}") from None
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"{path}: the snooze key must hold at least {MIN_KEY_BYTES} bytes")
    return key


def _one(value: Any) -> str:
    if type(value) is dict:
        if "resourceType" in value:
            meta = value.get("meta")
            version = f"{meta.get('versionId')}|{meta.get('lastUpdated')}" if type(meta) is dict else ""
            return f"{value.get('resourceType')}/{value.get('id')}|{value.get('status')}|{version}"
        return repr(sorted(value.items()))
    return repr(value)


def _plain(value: Any) -> Any:
    """A fact's value as it bears on the card: resources by key, status and version; lists as sets."""
    if type(value) is list:
        return tuple(sorted(_one(v) for v in value))
    return _one(value)


def finding(reads: Sequence[str], shown: Sequence[tuple[str, Mapping[str, str]]], ctx: PatientContext,
            seen: dict[str, Any] | None = None) -> str:
    """A digest of what a card rests on for this patient: the facts its action's conditions read, and
    the values and entries its trigger shows. The card comes back when it changes (another drug, a new
    form answer, a request cancelled). Only the cards of a call are digested; ``seen`` keeps each fact's
    plain form for the other cards of the same call."""
    plain = {} if seen is None else seen
    parts = []
    # the entries behind what holds; a fact read as absent (``.not()``) changes its own value when they change
    behind = (n for _, p in shown if p.get("expect") != "false" for n in (p.get("show"), p.get("evidence")) if n)
    for name in (*reads, *behind):
        if name not in plain:
            plain[name] = _plain(ctx.facts.get(name))
        parts.append((name, plain[name]))
    return hashlib.sha256(repr(parts).encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class Offer:
    subject: str
    action_id: str
    trigger: str
    capped: bool
    expires: float


class Snoozer:
    """Remembers overrides (``on_feedback``) and leaves snoozed cards out (``active`` + ``Offer``s)."""

    def __init__(self, policy: Policy, key: bytes, store: SnoozeStore,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self.store = store
        self._key = key
        self._clock = clock
        self._offers: OrderedDict[str, Offer] = OrderedDict()
        self._lock = threading.Lock()

    def subject(self, patient_id: str) -> str:
        return hmac.new(self._key, patient_id.encode("utf-8"), hashlib.sha256).hexdigest()

    def active(self, subject: str, today: date) -> Mapping[str, SnoozeRow]:
        try:
            return self.store.snoozes_for(subject, today.isoformat())
        except Exception as exc:  # the store is away: show every card rather than fail the call
            log.warning("snooze lookup failed, showing every card: %s", exc.__class__.__name__)
            return {}

    def offer(self, card_uuid: str, subject: str, action_id: str, trigger: str, capped: bool) -> None:
        now = self._clock()
        with self._lock:
            self._offers[card_uuid] = Offer(subject, action_id, trigger, capped, now + OFFER_SECONDS)
            self._offers.move_to_end(card_uuid)
            while self._offers and (len(self._offers) > MAX_OFFERS or next(iter(self._offers.values())).expires < now):
                self._offers.popitem(last=False)

    def on_feedback(self, items: Sequence[Mapping[str, Any]], today: date) -> int:
        """Snooze the cards overridden with one of the package's reasons; the number snoozed."""
        done = 0
        for item in items:
            reason = (item.get("overrideReason") or {}).get("reason") or {}
            if item.get("outcome") != "overridden" or reason.get("system") != CONCEPTS_SYSTEM:
                continue
            with self._lock:
                offer = self._offers.get(str(item.get("card")))
            if offer is None or offer.expires < self._clock():
                log.info("override of an unknown or old card: not remembered")
                continue
            days = self.policy.period(str(reason.get("code")), offer.capped)
            if days <= 0:
                continue
            until = (today + timedelta(days=days - 1)).isoformat()  # the last day it stays away
            self.store.save_snooze(offer.subject, offer.action_id, str(reason["code"]), offer.trigger, until,
                                   today.isoformat())
            log.info("card %s snoozed for %d days (reason %s, capped %s)", offer.action_id, days, reason["code"],
                     offer.capped)
            done += 1
        return done

    def present(self, cards: Sequence[tuple[str, dict[str, Any]]], patient_id: str, ctx: PatientContext,
                catalog: Catalog, today: date) -> list[dict[str, Any]]:
        """The cards to show: those with override reasons that are snoozed for this patient with the same
        finding behind them are left out; every other one is offered for a later override."""
        if not any("overrideReasons" in card for _, card in cards):
            return [card for _, card in cards]
        subject = self.subject(patient_id)
        active = self.active(subject, today)
        out = []
        seen: dict[str, Any] = {}
        for action_id, card in cards:
            if "overrideReasons" not in card:
                out.append(card)
                continue
            info = catalog.info(action_id)
            reads = info.reads
            trigger = finding(reads, info.shown, ctx, seen)
            row = active.get(action_id)
            if row is not None and row.trigger == trigger:
                continue
            if row is not None:
                log.info("card %s shown again before %s: the finding behind it changed", action_id, row.until)
            self.offer(str(card["uuid"]), subject, action_id, trigger, self.policy.capped_fact in reads)
            out.append(card)
        return out
