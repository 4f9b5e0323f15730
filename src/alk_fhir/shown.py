"""Cards shown by CDS calls, handed to the store off the hot path (issue 13, the learning loop).

A CDS call hands its cards to :func:`record_shown` (the one call in ``cds/routes.py``): that appends
each card's uuid and section to an in-process queue and returns (a lock and a deque append: no I/O). A
daemon thread, started on first use, collects for up to ``interval`` seconds and then writes one
batch: per card its service, uuid, guideline section (the card's ``source.topic`` code in the
``alk-guideline`` system), plan action and month (UTC). The action comes from the card's uuid, which
the card builder derives from a per-process secret, the hookInstance and the action id (so nobody
outside the process can link a uuid to a hookInstance): ``actions_of(hookInstance, sections)``
(given by whoever wires the recorder, ``api``) maps the uuids the call's cards can have back to action
ids (only the actions of the sections the cards cite need hashing). The
hookInstance is used for that and dropped; nothing about the patient, the user or the EHR is kept.

When the queue is full (the store is down or far behind) further cards are dropped and counted rather
than slowing the CDS answer; a batch the store refuses is logged and counted. ``flush`` waits until
everything queued is written (tests, shutdown). Imports nothing else from alk_fhir, so any face may
call it; ``api`` wires a recorder to the store as ``app.state.cds_shown``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

log = logging.getLogger("alk_fhir.shown")
GUIDELINE_SYSTEM = "https://alk-fhir.org/fhir/CodeSystem/alk-guideline"
CAPACITY = 10_000  # calls waiting to be written before new ones are dropped
MAX_BATCH = 500  # calls taken from the queue at once
ROWS_PER_WRITE = 100  # rows per transaction: short, so a CDS call's own write (its jti) never waits long
YIELD_EVERY = 20  # calls mapped between two voluntary releases of the GIL
Row = dict[str, str | None]
ActionsOf = Callable[[str, Iterable[str | None]], Mapping[str, str]]


class ShownSink(Protocol):
    def save_shown_cards(self, rows: Sequence[Mapping[str, str | None]]) -> object:
        """Store the rows in one transaction (``alk_fhir.store.Store`` does)."""
        ...


def month_of(epoch_seconds: float) -> str:
    stamp = time.gmtime(epoch_seconds)
    return f"{stamp.tm_year:04d}-{stamp.tm_mon:02d}"


def section_of(card: Mapping[str, Any]) -> str | None:
    source = card.get("source")
    topic = source.get("topic") if isinstance(source, dict) else None
    if isinstance(topic, dict) and topic.get("system") == GUIDELINE_SYSTEM and isinstance(topic.get("code"), str):
        return str(topic["code"])
    return None


def card_keys(cards: Sequence[Any]) -> list[tuple[str, str | None]]:
    """(uuid, guideline section) of every card with a uuid: all the recorder keeps of a card, so a
    queue that backs up while the store is away holds a few bytes per card, not the cards."""
    return [(card["uuid"], section_of(card)) for card in cards
            if isinstance(card, dict) and isinstance(card.get("uuid"), str) and card["uuid"]]


def shown_rows(service_id: str, hook_instance: str, keys: Sequence[tuple[str, str | None]], when: float,
               actions_of: ActionsOf | None) -> list[Row]:
    """One row per card: service, card uuid, section, action id (or None), month."""
    actions = actions_of(hook_instance, {section for _, section in keys}) if actions_of is not None else {}
    month = month_of(when)
    return [{"service_id": service_id, "card": card_uuid, "section": section, "action_id": actions.get(card_uuid),
             "month": month} for card_uuid, section in keys]


class ShownRecorder:
    """Queue of shown cards and the thread writing them to ``sink`` in batches."""

    def __init__(self, sink: ShownSink, actions_of: ActionsOf | None = None, *,
                 interval: float = 0.5, capacity: int = CAPACITY, clock: Callable[[], float] = time.time) -> None:
        self.sink = sink
        self.actions_of = actions_of
        self.interval = interval
        self.capacity = capacity
        self.clock = clock
        self.dropped = 0  # cards not recorded because the queue was full
        self.lost = 0  # cards the store refused or failed to write
        self._pending: deque[tuple[str, str, list[tuple[str, str | None]], float]] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._writing = False
        self._flushing = 0
        self._closing = False

    def record(self, service_id: str, hook_instance: str, cards: Sequence[Any]) -> None:
        """Hot path: queue the uuid and section of each of the call's cards (a few µs, no I/O)."""
        keys = card_keys(cards)
        if not keys:
            return
        with self._cond:
            if self._closing:
                return
            if len(self._pending) >= self.capacity:
                self.dropped += len(keys)
                if self.dropped == len(keys) or self.dropped % 1000 < len(keys):
                    log.warning("shown-card queue full: %d cards not recorded so far", self.dropped)
                return
            self._pending.append((service_id, hook_instance, keys, self.clock()))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="alk-fhir-shown-cards", daemon=True)
                self._thread.start()
            elif len(self._pending) == 1:
                self._cond.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """Write everything queued now; True when it was written within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._flushing += 1
            self._cond.notify_all()
            try:
                while self._pending or self._writing:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._thread is None or not self._thread.is_alive():
                        return False
                    self._cond.wait(remaining)
                return True
            finally:
                self._flushing -= 1

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread; later cards are ignored."""
        self.flush(timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _next_batch(self) -> list[tuple[str, str, list[tuple[str, str | None]], float]] | None:
        with self._cond:
            while not self._pending and not self._closing:
                self._cond.wait()
            if not self._pending:
                return None
            deadline = time.monotonic() + self.interval
            while len(self._pending) < MAX_BATCH and not self._flushing and not self._closing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            batch = [self._pending.popleft() for _ in range(min(len(self._pending), MAX_BATCH))]
            self._writing = True
            return batch

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            try:
                self._write(batch)
            finally:
                with self._cond:
                    self._writing = False
                    self._cond.notify_all()

    def _write(self, batch: list[tuple[str, str, list[tuple[str, str | None]], float]]) -> None:
        """Rows of the batch, written ROWS_PER_WRITE at a time. Between slices the thread sleeps for
        zero seconds: that hands the GIL straight to a waiting request instead of making it wait out
        the interpreter's switch interval (5 ms), which is what this thread would cost the CDS p99."""
        rows: list[Row] = []
        for i, (service_id, hook_instance, keys, when) in enumerate(batch, 1):
            try:
                rows += shown_rows(service_id, hook_instance, keys, when, self.actions_of)
            except Exception as exc:  # a mapping that fails must not stop the thread
                self.lost += len(keys)
                log.warning("shown cards of one call not recorded: %s", exc)
            if i % YIELD_EVERY == 0:
                time.sleep(0)
        for start in range(0, len(rows), ROWS_PER_WRITE):
            chunk = rows[start:start + ROWS_PER_WRITE]
            try:
                self.sink.save_shown_cards(chunk)
            except Exception as exc:  # the store is down or refused: count it, keep going
                self.lost += len(chunk)
                log.warning("shown cards not recorded (%d so far): %s", self.lost, exc)
            time.sleep(0)


def record_shown(app: Any, service_id: str, hook_instance: str, cards: Sequence[Any]) -> None:
    """Hand the cards of one CDS answer to the app's recorder (``app.state.cds_shown``), if it has one."""
    recorder = getattr(app.state, "cds_shown", None)
    if recorder is not None:
        recorder.record(service_id, hook_instance, cards)
