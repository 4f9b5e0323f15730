"""``Store``: the engine plus one method per operation, each its own transaction.

The functions in documents/feedback/audit/replay take a Session and do not commit; this is where
transactions begin and end: every write runs in ``db.run_write`` (all or nothing, retried when it
lost a race), every read in a read-only session.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from alk_fhir.store import audit, documents, feedback, learning, replay, retention, snooze
from alk_fhir.store.db import create_store_engine, migrate, read_session, run_write
from alk_fhir.store.documents import PutResult, StoredDocument
from alk_fhir.store.feedback import FeedbackRecord
from alk_fhir.store.learning import DocumentVersionRecord, FeedbackFact, ShownCount
from alk_fhir.store.retention import PurgeResult, Retention
from alk_fhir.store.snooze import Snooze


class Store:
    def __init__(self, engine: Engine, retention: Retention | None = None) -> None:
        self.engine = engine
        self.retention = retention or Retention()
        self._next_jti_purge = 0

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    # Documents
    def put_document(self, bundle: dict[str, Any], *, identifier: tuple[str, str], author_org: str,
                     recipients: Sequence[str], patient_identifiers: Sequence[str]) -> PutResult:
        return run_write(self.engine, lambda s: documents.put_document(
            s, bundle, identifier=identifier, author_org=author_org, recipients=recipients,
            patient_identifiers=patient_identifiers))

    def find_document(self, owner: str, identifier: tuple[str, str]) -> StoredDocument | None:
        with read_session(self.engine) as s:
            return documents.find_document(s, owner, identifier)

    def get_document(self, doc_id: str, version: int | str | None = None, *,
                     visible_to: str | None = None) -> StoredDocument | None:
        with read_session(self.engine) as s:
            return documents.get_document(s, doc_id, version, visible_to=visible_to)

    def history(self, doc_id: str, *, visible_to: str | None = None) -> list[StoredDocument]:
        with read_session(self.engine) as s:
            return documents.history(s, doc_id, visible_to=visible_to)

    def search_by_identifier(self, system: str | None, value: str, *,
                             visible_to: str | None = None) -> list[StoredDocument]:
        with read_session(self.engine) as s:
            return documents.search_by_identifier(s, system, value, visible_to=visible_to)

    def search_by_patient_identifier(self, system: str | None, value: str, *,
                                     visible_to: str | None = None) -> list[StoredDocument]:
        with read_session(self.engine) as s:
            return documents.search_by_patient_identifier(s, system, value, visible_to=visible_to)

    # CDS Hooks feedback
    def save_feedback(self, service_id: str, feedback_item: dict[str, Any]) -> int:
        keep = self.retention.comment_days > 0
        return run_write(self.engine, lambda s: feedback.save_feedback(s, service_id, feedback_item, keep_text=keep))

    def save_feedback_items(self, service_id: str, items: Sequence[dict[str, Any]]) -> list[int]:
        """All entries of one feedback POST (``{"feedback": [...]}``), all stored or none."""
        keep = self.retention.comment_days > 0
        return run_write(self.engine, lambda s: [feedback.save_feedback(s, service_id, i, keep_text=keep)
                                                 for i in items])

    # Retention (issue 22)
    def purge(self, *, now: datetime | None = None) -> PurgeResult:
        """Delete what ``self.retention`` no longer allows (feedback, shown cards, superseded versions)
        and strip free text kept beyond ``comment_days``; one transaction."""
        return run_write(self.engine, lambda s: retention.purge(s, self.retention, now=now))

    def list_feedback(self, service_id: str, *, card: str | None = None,
                      since: datetime | None = None) -> list[FeedbackRecord]:
        with read_session(self.engine) as s:
            return feedback.list_feedback(s, service_id, card=card, since=since)

    # The learning loop (issue 13): cards shown, feedback per card, every document version
    def save_shown_cards(self, rows: Sequence[Mapping[str, str | None]]) -> None:
        """Cards shown by CDS calls (``alk_fhir.shown`` hands them over); one already there is skipped."""
        run_write(self.engine, lambda s: learning.save_shown_cards(s, rows))

    def shown_counts(self, *, since: str | None = None) -> list[ShownCount]:
        with read_session(self.engine) as s:
            return learning.shown_counts(s, since=since)

    def feedback_facts(self, *, since: str | None = None) -> list[FeedbackFact]:
        with read_session(self.engine) as s:
            return learning.feedback_facts(s, since=since)

    def document_versions(self) -> Iterator[DocumentVersionRecord]:
        """Every stored document version, oldest first per document, read in one snapshot."""
        with read_session(self.engine) as s:
            yield from learning.document_versions(s)

    # Remembered overrides (issue 21): cards kept away per patient pseudonym
    def save_snooze(self, subject: str, action_id: str, reason: str, trigger: str, until: str, today: str) -> None:
        """Keep a card (``action_id``) away for ``subject`` (a keyed pseudonym) up to ``until``."""
        snooze.save_snooze(self.engine, subject, Snooze(action_id, reason, trigger, until), today)

    def snoozes_for(self, subject: str, today: str) -> dict[str, Snooze]:
        return snooze.snoozes_for(self.engine, subject, today)

    def purge_snoozes(self, today: str) -> None:
        snooze.purge(self.engine, today)

    # Audit
    def record_audit(self, event: dict[str, Any]) -> str:
        return run_write(self.engine, lambda s: audit.record_audit(s, event))

    def list_audit(self, *, since: datetime | None = None, until: datetime | None = None,
                   subtype: str | None = None, action: str | None = None, outcome: str | None = None,
                   agent: str | None = None, entity: str | None = None,
                   limit: int = 100) -> list[dict[str, Any]]:
        with read_session(self.engine) as s:
            return audit.list_audit(s, since=since, until=until, subtype=subtype, action=action,
                                    outcome=outcome, agent=agent, entity=entity, limit=limit)

    # Replay protection
    def remember_jti(self, key: str, expires_at: int, *, now: int | None = None) -> bool:
        current = int(time.time()) if now is None else now
        purge = current >= self._next_jti_purge
        if purge:
            self._next_jti_purge = current + replay.PURGE_INTERVAL
        return replay.remember_jti(self.engine, key, expires_at, now=current, purge=purge)


class StoreAuditSink:
    """The auth package's ``AuditSink`` (``record(event) -> None``) backed by the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def record(self, event: dict[str, Any]) -> None:
        self.store.record_audit(event)


class StoreJtiCache:
    """The auth package's ``JtiCache`` (``remember(key, expires_at) -> bool``) backed by the store,
    so replay protection holds across workers and restarts."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def remember(self, key: str, expires_at: int) -> bool:
        return self.store.remember_jti(key, expires_at)


def open_store(url: str, retention: Retention | None = None) -> Store:
    """Connect to ``url`` (e.g. ``Settings.database_url``) and migrate the database to head; the store
    keeps data as ``retention`` says (default: ``Retention()``)."""
    engine = create_store_engine(url)
    try:
        migrate(engine)
    except Exception:
        engine.dispose()
        raise
    return Store(engine, retention)
