"""The store against SQLite (a temporary file) and, when ALK_FHIR_TEST_POSTGRES_URL is set, PostgreSQL.

Each PostgreSQL test gets its own schema (selected through the connection's search_path) and drops
it afterwards, so nothing outside that schema is ever touched.
"""

from __future__ import annotations

import copy
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, func, inspect, select, text
from sqlalchemy.engine import make_url

from alk_fhir.fhir import document_identifier
from alk_fhir.store import (
    InvalidRecord,
    Store,
    StoreAuditSink,
    StoreError,
    StoreJtiCache,
    current_revision,
    head_revision,
    logical_id,
    open_store,
)
from alk_fhir.store import documents as documents_module
from alk_fhir.store.db import _alembic_config, create_store_engine, normalise_url, read_session, writer
from alk_fhir.store.models import VERSION_TABLE, Base, DocumentOrg, DocumentPatient, DocumentVersion

T = TypeVar("T")
PG_URL = os.environ.get("ALK_FHIR_TEST_POSTGRES_URL", "")
BACKENDS = [
    "sqlite",
    pytest.param("postgresql", marks=[
        pytest.mark.postgres,
        pytest.mark.skipif(not PG_URL, reason="ALK_FHIR_TEST_POSTGRES_URL is not set")]),
]
OUR_TABLES = {"alk_document", "alk_document_version", "alk_document_org", "alk_document_patient",
              "alk_cds_feedback", "alk_audit_event", "alk_seen_jti", "alk_cds_card_shown", VERSION_TABLE}
DOC_SYSTEM = "urn:ietf:rfc:3986"
IDENT = (DOC_SYSTEM, "urn:uuid:doc-1")
BSN = "http://fhir.nl/fhir/NamingSystem/bsn"
URA = "http://fhir.nl/fhir/NamingSystem/ura"
ORG_A, ORG_B, ORG_C = f"{URA}|11111111", f"{URA}|22222222", f"{URA}|33333333"


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database: a new SQLite file, or a new PostgreSQL schema dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'nested' / 'dir' / 'store.sqlite3'}"
        return
    schema = f"alk_store_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalise_url(PG_URL))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = normalise_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = open_store(database_url)
    try:
        yield opened
    finally:
        opened.close()


def bundle(value: str = "doc-1", *, title: str = "Casusoverzicht", bsn: str = "999911120",
           **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "identifier": {"system": DOC_SYSTEM, "value": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, value)}"},
        "type": "document",
        "timestamp": "2024-03-01T10:00:00+01:00",
        "entry": [
            {"fullUrl": "urn:uuid:c1", "resource": {
                "resourceType": "Composition", "status": "final", "title": title,
                "subject": {"reference": "urn:uuid:p1"}}},
            {"fullUrl": "urn:uuid:p1", "resource": {"resourceType": "Patient",
                                                     "identifier": [{"system": BSN, "value": bsn}],
                                                     "name": [{"text": "Zoë Ærts-Ünal"}]}},
        ],
        **extra,
    }


def ident(doc: dict[str, Any]) -> str:
    return str(doc["identifier"]["value"])


def put(store: Store, doc: dict[str, Any], *, author: str = ORG_A, recipients: tuple[str, ...] = (ORG_B,),
        bsn: str = "999911120") -> Any:
    return store.put_document(doc, identifier=document_identifier(doc), author_org=author,
                              recipients=list(recipients), patient_identifiers=[f"{BSN}|{bsn}"])


def in_threads(count: int, work: Callable[[int], T]) -> list[T]:
    """Run ``work(i)`` in ``count`` threads released together; re-raise the first failure."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


# --- migrations -------------------------------------------------------------------------------------

def test_migrates_an_empty_database_to_head_and_matches_the_models(database_url: str) -> None:
    engine = create_store_engine(database_url)
    try:
        assert current_revision(engine) is None
        assert not OUR_TABLES & set(inspect(engine).get_table_names())
    finally:
        engine.dispose()

    opened = open_store(database_url)
    try:
        assert current_revision(opened.engine) == head_revision() == "0004"
        assert set(inspect(opened.engine).get_table_names()) >= OUR_TABLES
        with opened.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            diff = compare_metadata(context, Base.metadata)
        assert diff == []
        if opened.dialect == "sqlite":
            with opened.engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        opened.close()

    again = open_store(database_url)  # a second start-up finds the database at head
    try:
        assert current_revision(again.engine) == head_revision()
    finally:
        again.close()


def _old_tables() -> dict[str, Any]:
    """The document tables as migration 0003 left them (no owner column), for writing old rows."""
    def table(name: str, *columns: sa.ColumnClause[Any]) -> Any:
        return sa.table(name, *columns)
    return {
        "doc": table("alk_document", sa.column("id"), sa.column("identifier_system"), sa.column("identifier_value"),
                     sa.column("current_version"), sa.column("created_at", sa.DateTime(timezone=True)),
                     sa.column("updated_at", sa.DateTime(timezone=True))),
        "version": table("alk_document_version", sa.column("pk"), sa.column("document_id"), sa.column("version_id"),
                         sa.column("content_hash"), sa.column("resource", sa.JSON()),
                         sa.column("last_updated", sa.DateTime(timezone=True)), sa.column("author_org")),
        "org": table("alk_document_org", sa.column("version_pk"), sa.column("org"), sa.column("role")),
        "patient": table("alk_document_patient", sa.column("version_pk"), sa.column("system"), sa.column("value")),
    }


def test_migration_0004_gives_existing_documents_their_first_authors_as_owners(database_url: str) -> None:
    """A database at 0003 holding two documents (one with two versions) upgrades to head: every row kept
    (a SQLite table rebuild with foreign keys on would have cascaded to the versions), ids unchanged,
    owner = the first version's author; the owner then adds a version to the same document, another
    organisation posting the identifier gets a document of its own."""
    engine = create_store_engine(database_url)
    when = datetime(2026, 11, 1, 9, tzinfo=UTC)
    docs = {"a": (bundle("old-a"), ORG_A, 2), "c": (bundle("old-c"), ORG_C, 1)}
    old_ids = {k: str(uuid.uuid5(documents_module.ID_NAMESPACE, f"{DOC_SYSTEM}|{ident(d)}"))
               for k, (d, _, _) in docs.items()}
    try:
        with writer(engine).begin() as conn:
            command.upgrade(_alembic_config(conn), "0003")
        tables, pk = _old_tables(), 0
        with writer(engine).begin() as conn:
            for key, (doc, author, versions) in docs.items():
                conn.execute(sa.insert(tables["doc"]).values(
                    id=old_ids[key], identifier_system=DOC_SYSTEM, identifier_value=ident(doc),
                    current_version=versions, created_at=when, updated_at=when))
                for number in range(1, versions + 1):
                    pk += 1
                    resource = {**doc, "id": old_ids[key], "meta": {"versionId": str(number)}}
                    conn.execute(sa.insert(tables["version"]).values(
                        pk=pk, document_id=old_ids[key], version_id=number, content_hash=f"{pk:064d}",
                        resource=resource, last_updated=when, author_org=author))
                    conn.execute(sa.insert(tables["org"]).values(version_pk=pk, org=author, role="author"))
                    conn.execute(sa.insert(tables["org"]).values(version_pk=pk, org=ORG_B, role="recipient"))
                    conn.execute(sa.insert(tables["patient"]).values(version_pk=pk, system=BSN, value="999911120"))
        with engine.connect() as conn:
            before = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar()
                      for t in ("alk_document", "alk_document_version", "alk_document_org", "alk_document_patient")}
        assert before == {"alk_document": 2, "alk_document_version": 3, "alk_document_org": 6,
                          "alk_document_patient": 3}
    finally:
        engine.dispose()

    store = open_store(database_url)  # migrates 0003 -> head
    try:
        assert current_revision(store.engine) == head_revision()
        with store.engine.connect() as conn:
            after = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in before}
            owners = dict(conn.execute(text("SELECT id, owner FROM alk_document")).all())
            diff = compare_metadata(MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}),
                                    Base.metadata)
        assert after == before and diff == []
        assert owners == {old_ids["a"]: ORG_A, old_ids["c"]: ORG_C}
        assert [d.version_id for d in store.history(old_ids["a"], visible_to=ORG_B)] == [2, 1]
        assert store.find_document(ORG_A, (DOC_SYSTEM, ident(docs["a"][0]))).id == old_ids["a"]  # type: ignore[union-attr]

        again = put(store, bundle("old-a", title="v3"), author=ORG_A)
        assert (again.id, again.version_id, again.same_identifier_owners) == (old_ids["a"], 3, ())
        other = put(store, bundle("old-a", title="not A's"), author=ORG_C)
        assert other.id == logical_id(ORG_C, DOC_SYSTEM, ident(docs["a"][0])) != old_ids["a"]
        assert (other.version_id, other.same_identifier_owners) == (1, (ORG_A,))
        assert [d.version_id for d in store.history(old_ids["a"])] == [3, 2, 1]
    finally:
        store.close()


def test_workers_starting_together_migrate_once(database_url: str) -> None:
    stores = in_threads(4, lambda _i: open_store(database_url))
    try:
        assert {current_revision(s.engine) for s in stores} == {head_revision()}
        with stores[0].engine.connect() as conn:
            assert conn.execute(text(f"SELECT count(*) FROM {VERSION_TABLE}")).scalar() == 1
    finally:
        for s in stores:
            s.close()


def test_sqlite_file_directory_is_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "alk.sqlite3"
    opened = open_store(f"sqlite:///{path}")
    try:
        assert path.is_file()
    finally:
        opened.close()


def test_in_memory_sqlite_for_single_threaded_use() -> None:
    opened = open_store("sqlite://")
    try:
        assert current_revision(opened.engine) == head_revision()
        result = put(opened, bundle())
        assert opened.get_document(result.id) == result.document
    finally:
        opened.close()


def test_database_urls() -> None:
    assert normalise_url("postgresql://u@h:5432/db").drivername == "postgresql+psycopg"
    assert normalise_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("sqlite:///x.db").drivername == "sqlite"
    with pytest.raises(StoreError, match="unsupported database URL"):
        normalise_url("mysql://u:secret@h/db")
    with pytest.raises(StoreError, match="unsupported") as info:
        open_store("mysql://u:secret@h/db")
    assert "secret" not in str(info.value)
    with pytest.raises(StoreError, match="not a database URL"):
        normalise_url("no url at all")


# --- documents: versions and idempotency ------------------------------------------------------------

def test_versions_are_created_only_when_content_changes(store: Store) -> None:
    doc = bundle()
    first = put(store, doc)
    assert first.created and first.version_id == 1
    assert first.id == logical_id(ORG_A, DOC_SYSTEM, ident(doc))
    stored = first.document.resource
    assert stored["id"] == first.id
    assert stored["meta"]["versionId"] == "1"
    assert datetime.fromisoformat(stored["meta"]["lastUpdated"]).tzinfo is not None
    assert {k: v for k, v in stored.items() if k not in ("id", "meta")} == doc
    assert doc.get("meta") is None and "id" not in doc  # the caller's dict is not modified

    same = put(store, copy.deepcopy(doc))
    assert (same.created, same.id, same.version_id) == (False, first.id, 1)
    assert same.document.resource == stored
    # What we served, sent back (with our id, versionId, lastUpdated), is the same content too.
    echoed = put(store, copy.deepcopy(stored))
    assert (echoed.created, echoed.version_id) == (False, 1)
    with_other_id = put(store, {**doc, "id": "client-chosen", "meta": {"versionId": "7"}})
    assert (with_other_id.created, with_other_id.version_id) == (False, 1)

    changed = put(store, bundle(title="Casusoverzicht (bijgewerkt)"))
    assert (changed.created, changed.id, changed.version_id) == (True, first.id, 2)
    assert changed.document.resource["meta"]["versionId"] == "2"

    current = store.get_document(first.id)
    assert current is not None and current.version_id == 2
    assert current.resource["entry"][0]["resource"]["title"] == "Casusoverzicht (bijgewerkt)"
    old = store.get_document(first.id, 1)
    assert old is not None and old.resource == stored
    assert list(old.resource) == list(stored) and next(iter(old.resource)) == "resourceType"
    assert store.get_document(first.id, "1") == old  # as read from a URL path
    assert store.get_document(first.id, "x") is None
    assert store.get_document(first.id, 3) is None
    assert store.get_document("no-such-id") is None
    assert [d.version_id for d in store.history(first.id)] == [2, 1]
    assert store.history("no-such-id") == []


def test_stored_document_carries_time_and_access_data(store: Store) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    result = put(store, bundle(), recipients=(ORG_B, ORG_C, ORG_B))
    got = store.get_document(result.id)
    assert got is not None
    assert got.last_updated.tzinfo is not None and got.last_updated >= before
    assert got.resource["meta"]["lastUpdated"].endswith("Z")
    assert datetime.fromisoformat(got.resource["meta"]["lastUpdated"]) == got.last_updated
    assert got.author_org == ORG_A
    assert got.recipients == (ORG_B, ORG_C)
    assert got.patient_identifiers == (f"{BSN}|999911120",)
    assert got == result.document


def test_meta_other_than_version_and_time_is_content(store: Store) -> None:
    profiled = bundle(meta={"profile": ["https://alk-fhir.org/fhir/StructureDefinition/alk-case-overview"]})
    first = put(store, profiled)
    assert first.document.resource["meta"]["profile"] == profiled["meta"]["profile"]
    assert put(store, bundle()).version_id == 2  # dropping the profile is a change


@pytest.mark.parametrize(("doc", "identifier", "message"), [
    ({"resourceType": "Patient"}, (DOC_SYSTEM, "x"), "not a Bundle"),
    (bundle(), ("", "x"), "system and a value"),
    (bundle(), (DOC_SYSTEM, ""), "system and a value"),
    (bundle(), (DOC_SYSTEM, "v" * 600), "longer than"),
])
def test_rejects_what_is_not_a_document(store: Store, doc: dict[str, Any], identifier: tuple[str, str],
                                        message: str) -> None:
    """The caller reads the identifier (alk_fhir.fhir.document_identifier); the store still refuses
    what its columns cannot hold."""
    with pytest.raises(InvalidRecord, match=message):
        store.put_document(doc, identifier=identifier, author_org=ORG_A, recipients=[],
                           patient_identifiers=[f"{BSN}|999911120"])
    assert store.search_by_patient_identifier(BSN, "999911120") == []


def test_rejects_bad_access_data(store: Store) -> None:
    with pytest.raises(InvalidRecord, match="system\\|value"):
        store.put_document(bundle(), identifier=IDENT, author_org=ORG_A, recipients=[],
                           patient_identifiers=["999911120"])
    with pytest.raises(InvalidRecord, match="author_org"):
        store.put_document(bundle(), identifier=IDENT, author_org="", recipients=[], patient_identifiers=[])
    with pytest.raises(InvalidRecord, match="recipient"):
        store.put_document(bundle(), identifier=IDENT, author_org=ORG_A, recipients=[""], patient_identifiers=[])


# --- documents: transactions and concurrency --------------------------------------------------------

def _count_rows(store: Store) -> tuple[int, int, int]:
    with read_session(store.engine) as s:
        return (s.execute(select(func.count()).select_from(DocumentVersion)).scalar_one(),
                s.execute(select(func.count()).select_from(DocumentOrg)).scalar_one(),
                s.execute(select(func.count()).select_from(DocumentPatient)).scalar_one())


def test_a_failing_write_leaves_the_previous_version_intact(store: Store,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    first = put(store, bundle())
    rows_before = _count_rows(store)

    def fail(_row: Any) -> Any:
        raise RuntimeError("disk on fire")

    # Fails after the new version and its index rows have been flushed, just before commit.
    with monkeypatch.context() as patched:
        patched.setattr(documents_module, "_to_stored", fail)
        with pytest.raises(RuntimeError, match="disk on fire"):
            put(store, bundle(title="v2", bsn="999900001"), recipients=(ORG_C,))

    assert _count_rows(store) == rows_before
    current = store.get_document(first.id)
    assert current == first.document
    assert [d.version_id for d in store.history(first.id)] == [1]
    assert store.search_by_patient_identifier(BSN, "999900001") == []
    assert store.get_document(first.id, visible_to=ORG_C) is None
    # The next write takes version 2: no gap left by the failed one.
    assert put(store, bundle(title="v2")).version_id == 2


def test_concurrent_identical_puts_store_one_version(store: Store) -> None:
    doc = bundle("concurrent-same")
    results = in_threads(8, lambda _i: put(store, copy.deepcopy(doc)))
    assert sum(r.created for r in results) == 1
    assert {(r.id, r.version_id) for r in results} == {(logical_id(ORG_A, DOC_SYSTEM, ident(doc)), 1)}
    assert len(store.history(results[0].id)) == 1


def test_concurrent_different_puts_get_consecutive_versions(store: Store) -> None:
    count = 8
    results = in_threads(count, lambda i: put(store, bundle("concurrent-diff", title=f"t{i}")))
    assert all(r.created for r in results)
    assert sorted(r.version_id for r in results) == list(range(1, count + 1))
    hist = store.history(results[0].id)
    assert [d.version_id for d in hist] == list(range(count, 0, -1))
    titles = {d.resource["entry"][0]["resource"]["title"] for d in hist}
    assert titles == {f"t{i}" for i in range(count)}
    by_version = {r.version_id: r.document.resource for r in results}
    assert all(by_version[d.version_id] == d.resource for d in hist)


def test_concurrent_puts_of_many_documents(store: Store) -> None:
    results = in_threads(6, lambda i: [put(store, bundle(f"many-{i}-{j}")) for j in range(5)])
    ids = {r.id for batch in results for r in batch}
    assert len(ids) == 30
    assert len(store.search_by_patient_identifier(BSN, "999911120")) == 30


# --- documents: searches and visibility -------------------------------------------------------------

def test_search_by_document_identifier(store: Store) -> None:
    one, two = bundle("one"), bundle("two")
    r1, r2 = put(store, one), put(store, two)
    put(store, bundle("one", title="changed"))
    found = store.search_by_identifier(DOC_SYSTEM, ident(one))
    assert [(d.id, d.version_id) for d in found] == [(r1.id, 2)]
    assert [d.id for d in store.search_by_identifier(None, ident(two))] == [r2.id]
    assert store.search_by_identifier("urn:other", ident(one)) == []
    assert store.search_by_identifier(DOC_SYSTEM, "urn:uuid:unknown") == []


def test_search_by_patient_uses_current_versions_only(store: Store) -> None:
    a = put(store, bundle("a"), bsn="111")
    b = put(store, bundle("b"), bsn="111")
    put(store, bundle("c"), bsn="222")
    assert {d.id for d in store.search_by_patient_identifier(BSN, "111")} == {a.id, b.id}
    assert store.search_by_patient_identifier("urn:other-system", "111") == []
    assert {d.id for d in store.search_by_patient_identifier(None, "111")} == {a.id, b.id}

    # Document b is now about patient 333: its old version no longer answers for 111.
    moved = put(store, bundle("b", bsn="333"), bsn="333")
    assert moved.version_id == 2
    assert [d.id for d in store.search_by_patient_identifier(BSN, "111")] == [a.id]
    found = store.search_by_patient_identifier(BSN, "333")
    assert [(d.id, d.version_id) for d in found] == [(b.id, 2)]


def test_patient_identifier_without_system(store: Store) -> None:
    doc = bundle()
    result = store.put_document(doc, identifier=document_identifier(doc), author_org=ORG_A, recipients=[],
                                patient_identifiers=["|local-7"])
    assert [d.id for d in store.search_by_patient_identifier("", "local-7")] == [result.id]
    assert store.search_by_patient_identifier(BSN, "local-7") == []


def test_visibility_to_author_and_recipients(store: Store) -> None:
    doc = bundle("shared")
    first = put(store, doc, author=ORG_A, recipients=(ORG_B,))
    for org in (ORG_A, ORG_B):
        got = store.get_document(first.id, visible_to=org)
        assert got is not None and got.version_id == 1
        by_identifier = store.search_by_identifier(DOC_SYSTEM, ident(doc), visible_to=org)
        by_patient = store.search_by_patient_identifier(BSN, "999911120", visible_to=org)
        assert [d.id for d in by_identifier] == [d.id for d in by_patient] == [first.id]
    assert store.get_document(first.id, visible_to=ORG_C) is None
    assert store.search_by_identifier(DOC_SYSTEM, ident(doc), visible_to=ORG_C) == []
    assert store.search_by_patient_identifier(BSN, "999911120", visible_to=ORG_C) == []
    assert store.history(first.id, visible_to=ORG_C) == []

    # Version 2 goes to C instead of B: access follows each version.
    put(store, bundle("shared", title="v2"), author=ORG_A, recipients=(ORG_C,))
    assert [d.version_id for d in store.history(first.id, visible_to=ORG_C)] == [2]
    assert [d.version_id for d in store.history(first.id, visible_to=ORG_B)] == [1]
    assert [d.version_id for d in store.history(first.id, visible_to=ORG_A)] == [2, 1]
    assert store.get_document(first.id, visible_to=ORG_B) is None  # current version is not B's
    old = store.get_document(first.id, 1, visible_to=ORG_B)
    assert old is not None and old.version_id == 1
    assert store.search_by_patient_identifier(BSN, "999911120", visible_to=ORG_B) == []
    assert len(store.search_by_patient_identifier(BSN, "999911120", visible_to=ORG_C)) == 1


# --- CDS Hooks feedback -----------------------------------------------------------------------------

def feedback(card: str, outcome: str = "accepted", **extra: Any) -> dict[str, Any]:
    return {"card": card, "outcome": outcome, "outcomeTimestamp": "2024-03-01T10:15:00Z", **extra}


def test_feedback_is_stored_per_service_reduced_to_what_the_report_needs(store: Store) -> None:
    accepted = feedback("9368d37b-283f-44a0-93ea-547cebab93ed", acceptedSuggestions=[{"id": "s-1"}])
    overridden = feedback("c52a9b2f-5c04-4e0d-8a36-0ed1c5e8f0a1", "overridden",
                          overrideReason={"reason": {"code": "not-relevant", "system": "https://example.org/r"},
                                          "userComment": "Klachten verklaard"})
    id1 = store.save_feedback("alk-patient-view", accepted)
    id2 = store.save_feedback("alk-patient-view", overridden)
    store.save_feedback("alk-other", feedback("c52a9b2f-5c04-4e0d-8a36-0ed1c5e8f0a1"))
    assert id2 > id1

    listed = store.list_feedback("alk-patient-view")
    assert [(f.id, f.card, f.outcome) for f in listed] == [
        (id1, accepted["card"], "accepted"), (id2, overridden["card"], "overridden")]
    # a suggestion id that is no UUID could carry a name: kept as not-a-uuid; the day, not the time
    assert listed[0].item == {"card": accepted["card"], "outcome": "accepted", "outcomeTimestamp": "2024-03-01",
                              "acceptedSuggestions": [{"id": "not-a-uuid"}]}
    # a foreign reason is "other", the comment is gone (only that there was one)
    assert listed[1].item == {"card": overridden["card"], "outcome": "overridden", "outcomeTimestamp": "2024-03-01",
                              "overrideReason": {"reason": {"code": "other"}, "commented": True}}
    assert listed[1].outcome_timestamp == "2024-03-01"
    assert all(f.service_id == "alk-patient-view" and f.received_at.tzinfo for f in listed)
    assert all((f.received_at.hour, f.received_at.minute, f.received_at.second) == (0, 0, 0) for f in listed)
    assert [f.id for f in store.list_feedback("alk-patient-view", card=overridden["card"])] == [id2]
    assert store.list_feedback("alk-unknown") == []
    assert store.list_feedback("alk-patient-view", since=datetime.now(UTC) + timedelta(days=1)) == []


@pytest.mark.parametrize(("item", "message"), [
    ({"outcome": "accepted", "outcomeTimestamp": "2024-03-01T10:15:00Z"}, "card"),
    (feedback("c", "ignored"), "outcome"),
    ({"card": "c", "outcome": "accepted"}, "outcomeTimestamp"),
    (feedback("c", outcomeTimestamp="yesterday"), "ISO 8601"),
    (feedback("c", acceptedSuggestions=["s-1"]), "acceptedSuggestions"),
    (feedback("c", "overridden", overrideReason="because"), "overrideReason"),
])
def test_invalid_feedback_is_rejected(store: Store, item: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRecord, match=message):
        store.save_feedback("alk-patient-view", item)
    assert store.list_feedback("alk-patient-view") == []


def test_feedback_items_of_one_request_are_stored_together(store: Store) -> None:
    a, b, c, d = (str(uuid.UUID(int=n)) for n in range(1, 5))
    ids = store.save_feedback_items("alk-patient-view", [feedback(a), feedback(b, "overridden")])
    assert [f.id for f in store.list_feedback("alk-patient-view")] == ids
    with pytest.raises(InvalidRecord, match="outcome"):
        store.save_feedback_items("alk-patient-view", [feedback(c), feedback(d, "maybe")])
    assert [f.card for f in store.list_feedback("alk-patient-view")] == [a, b]


# --- audit ------------------------------------------------------------------------------------------

def audit_event(recorded: str, *, subtype: str = "read", outcome: str = "0", who: str = "11111111",
                what: str = "Bundle/abc", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "AuditEvent",
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest"},
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": subtype}],
        "action": "R" if subtype == "read" else "C",
        "recorded": recorded,
        "outcome": outcome,
        "agent": [{"who": {"identifier": {"system": URA, "value": who}}, "requestor": True}],
        "source": {"observer": {"display": "alk-fhir"}},
        "entity": [{"what": {"reference": what}}],
        **extra,
    }


def test_audit_events_are_recorded_and_filtered(store: Store) -> None:
    e1 = audit_event("2024-03-01T10:00:00+01:00")
    e2 = audit_event("2024-03-01T10:30:00Z", subtype="create", who="22222222", what="Bundle/def")
    e3 = audit_event("2024-03-02T08:00:00Z", outcome="8", id="fixed-id")
    ids = [store.record_audit(e) for e in (e1, e2, e3)]
    assert ids[2] == "fixed-id" and len(set(ids)) == 3
    assert "id" not in e1  # the caller's dict is not modified

    everything = store.list_audit()
    assert [e["id"] for e in everything] == [ids[2], ids[1], ids[0]]  # newest first
    assert everything[2] == {**e1, "id": ids[0]}
    assert [e["id"] for e in store.list_audit(subtype="create")] == [ids[1]]
    assert [e["id"] for e in store.list_audit(outcome="8")] == [ids[2]]
    assert [e["id"] for e in store.list_audit(agent=f"{URA}|22222222")] == [ids[1]]
    assert [e["id"] for e in store.list_audit(entity="Bundle/abc")] == [ids[2], ids[0]]
    assert [e["id"] for e in store.list_audit(action="C")] == [ids[1]]
    since = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)  # e1 is 09:00Z
    assert [e["id"] for e in store.list_audit(since=since)] == [ids[2], ids[1]]
    assert [e["id"] for e in store.list_audit(until=since)] == [ids[0]]
    assert len(store.list_audit(limit=1)) == 1

    assert store.record_audit(e3) == "fixed-id"  # the same event twice is stored once
    assert len(store.list_audit()) == 3


def test_audit_event_without_recorded_gets_now(store: Store) -> None:
    event = audit_event("x")
    del event["recorded"]
    event_id = store.record_audit(event)
    (stored,) = store.list_audit()
    assert stored["id"] == event_id
    recorded = datetime.fromisoformat(stored["recorded"])
    assert abs(recorded - datetime.now(UTC)) < timedelta(minutes=5)


@pytest.mark.parametrize(("event", "message"), [
    ({"resourceType": "Bundle"}, "not an AuditEvent"),
    (audit_event("2024-03-01T10:00:00"), "recorded"),
    (audit_event("last tuesday"), "recorded"),
    (audit_event("2024-03-01T10:00:00Z", id="x" * 65), "id"),
])
def test_invalid_audit_events_are_rejected(store: Store, event: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRecord, match=message):
        store.record_audit(event)
    assert store.list_audit() == []


def test_audit_sink_adapter(store: Store) -> None:
    sink = StoreAuditSink(store)
    sink.record(audit_event("2024-03-01T10:00:00Z", id="from-sink"))
    assert [e["id"] for e in store.list_audit()] == ["from-sink"]


# --- seen JWT ids -----------------------------------------------------------------------------------

def test_jti_is_accepted_once_until_it_expires(store: Store) -> None:
    now = 1_700_000_000
    assert store.remember_jti("https://ehr.example|jti-1", now + 300, now=now)
    assert not store.remember_jti("https://ehr.example|jti-1", now + 300, now=now + 10)
    assert store.remember_jti("https://other.example|jti-1", now + 300, now=now + 10)
    # After expiry the entry is purged; a token with that jti would be refused for being expired.
    assert store.remember_jti("https://ehr.example|jti-1", now + 900, now=now + 300)
    assert not store.remember_jti("https://ehr.example|jti-1", now + 900, now=now + 301)
    with pytest.raises(InvalidRecord):
        store.remember_jti("", now + 300, now=now)


def test_expired_jtis_are_purged(store: Store) -> None:
    from alk_fhir.store.models import SeenJti
    from alk_fhir.store.replay import PURGE_INTERVAL

    now = 1_700_000_000
    for i in range(5):
        store.remember_jti(f"old-{i}", now + i, now=now)
    store.remember_jti("fresh", now + 1000, now=now + 10)  # within the sweep interval: kept for now
    with read_session(store.engine) as s:
        assert s.execute(select(func.count()).select_from(SeenJti)).scalar_one() == 6
    store.remember_jti("later", now + 1000, now=now + PURGE_INTERVAL)
    with read_session(store.engine) as s:
        assert s.execute(select(func.count()).select_from(SeenJti)).scalar_one() == 2


def test_an_expired_entry_never_blocks_its_key_even_before_the_sweep(store: Store) -> None:
    now = 1_700_000_000
    assert store.remember_jti("k", now + 5, now=now)
    assert not store.remember_jti("k", now + 500, now=now + 4)
    assert store.remember_jti("k", now + 500, now=now + 5)  # expired at now+5: accepted again, no sweep yet
    assert not store.remember_jti("k", now + 500, now=now + 6)


def test_jti_replay_across_threads_is_refused(store: Store) -> None:
    cache = StoreJtiCache(store)
    key = f"https://ehr.example|{uuid.uuid4()}"
    outcomes = in_threads(8, lambda _i: cache.remember(key, 4_000_000_000))
    assert outcomes.count(True) == 1
    assert not cache.remember(key, 4_000_000_000)


def test_long_keys_are_fine(store: Store) -> None:
    key = "https://ehr.example|" + "j" * 5000
    assert store.remember_jti(key, 4_000_000_000)
    assert not store.remember_jti(key, 4_000_000_000)


@pytest.mark.parametrize("database_url", BACKENDS[1:], indirect=True)
def test_postgres_url_reaches_only_our_schema(database_url: str) -> None:
    """The PostgreSQL run works in its own schema: no table of ours appears in ``public``."""
    assert make_url(database_url).get_backend_name() == "postgresql"
    opened = open_store(database_url)
    try:
        with opened.engine.connect() as conn:
            schema = conn.execute(text("SELECT current_schema()")).scalar_one()
            assert schema.startswith("alk_store_test_")
            public = set(inspect(conn).get_table_names(schema="public"))
        assert not OUR_TABLES & public
    finally:
        opened.close()
