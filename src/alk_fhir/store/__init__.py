"""Persistence: document Bundles with versions, CDS Hooks feedback, AuditEvents, seen JWT ids.

SQLite file by default, PostgreSQL when ``ALK_FHIR_DATABASE_URL`` is a ``postgresql://`` URL
(psycopg 3; a ``?options=-csearch_path%3Dmyschema`` query selects a schema). ``open_store(url)``
migrates the database to the newest schema with the Alembic scripts shipped in ``migrations/``.
Imports nothing else from alk_fhir (but the leaf ``codesyntax``: a document whose codes break their
system's syntax is refused), so any face can use it.

    store = open_store(Settings.from_env().database_url)
    result = store.put_document(bundle, identifier=(system, value),  # the document's Bundle.identifier
                                author_org="urn:oid:2.16.528.1.1007.3.3|12345678",
                                recipients=[...], patient_identifiers=["http://fhir.nl/fhir/NamingSystem/bsn|..."])
    store.get_document(result.id, visible_to=caller_org)
"""

from alk_fhir.store.db import InvalidRecord, StoreError, current_revision, head_revision
from alk_fhir.store.documents import PutResult, StoredDocument, content_hash, logical_id
from alk_fhir.store.facade import Store, StoreAuditSink, StoreJtiCache, open_store
from alk_fhir.store.feedback import FeedbackRecord
from alk_fhir.store.retention import PurgeResult, Retention
from alk_fhir.store.snooze import Snooze

__all__ = [
    "FeedbackRecord",
    "InvalidRecord",
    "PurgeResult",
    "PutResult",
    "Retention",
    "Snooze",
    "Store",
    "StoreAuditSink",
    "StoreError",
    "StoreJtiCache",
    "StoredDocument",
    "content_hash",
    "current_revision",
    "head_revision",
    "logical_id",
    "open_store",
]
