"""Engine, transactions and migrations.

Two back-ends: an SQLite file (the embedded default) and PostgreSQL (``postgresql://`` URLs use
psycopg 3). On SQLite every write transaction starts with ``BEGIN IMMEDIATE`` so that concurrent
writers queue on the busy timeout instead of failing when a read lock cannot be upgraded; readers
use WAL and never block writers. On PostgreSQL writes run at READ COMMITTED and rely on unique
constraints and row locks; a write that still loses a race (unique violation, serialization
failure, deadlock, SQLite busy) is retried as a whole, so a function passed to :func:`run_write`
(or :func:`run_driver_write`) must do all its work inside the session (cursor) it is given.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Dialect, Engine, create_engine, event, text
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from alk_fhir.store.models import VERSION_TABLE, Base

T = TypeVar("T")

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
WRITE_ATTEMPTS = 8
_WRITE_OPTION = "alk_fhir_write"
# Any constant works; it only has to be the same in every process migrating this database.
_MIGRATION_LOCK_KEY = 0x616C6B66  # "alkf"
_RETRY_SQLSTATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected


class StoreError(Exception):
    """The store cannot do what was asked (bad configuration, unsupported database)."""


class InvalidRecord(StoreError, ValueError):
    """The data handed to the store is not what it stores (caller's mistake: answer with a 4xx)."""


def normalise_url(url: str) -> URL:
    """Parse a database URL; plain ``postgresql://`` (and ``postgres://``) means psycopg 3."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"not a database URL: {url!r}") from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        shown = parsed.render_as_string(hide_password=True)
        raise StoreError(f"unsupported database URL {shown}: use sqlite:///PATH or postgresql://…")
    return parsed


def _sqlite_in_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or "mode=memory" in str(url.query.get("mode", ""))


def create_store_engine(url: str) -> Engine:
    """An engine for ``url``; creates the SQLite file's directory when it does not exist yet."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "postgresql":
        return create_engine(parsed, pool_pre_ping=True)
    if _sqlite_in_memory(parsed):
        # One shared connection, or every pooled connection would see its own empty database.
        # Meant for single-threaded tests; use a file for anything concurrent.
        engine = create_engine(parsed, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        database = parsed.database or ""
        if not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"check_same_thread": False})
    _install_sqlite_hooks(engine)
    return engine


def _use_wal(cursor: Any) -> None:
    """Switch the file to WAL (a no-op once it is). Switching needs an exclusive lock, and SQLite
    answers "database is locked" at once, without its busy handler, while another worker opening the
    same new file holds one: so wait and retry, up to the busy timeout."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def _install_sqlite_hooks(engine: Engine) -> None:
    """Pragmas per connection, and explicit BEGINs (the driver's implicit ones are switched off)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            _use_wal(cursor)
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = "IMMEDIATE" if conn.get_execution_options().get(_WRITE_OPTION) else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")


def writer(engine: Engine) -> Engine:
    """The same engine (same pool) whose transactions take the SQLite write lock up front."""
    return engine.execution_options(**{_WRITE_OPTION: True})


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A session for reads, in one transaction so that related rows come from one snapshot."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        yield session


def _retryable(exc: Exception) -> bool:
    """A lost race, from SQLAlchemy (wrapping the driver's error in ``orig``) or from the driver."""
    if isinstance(exc, IntegrityError):
        return True  # lost a race on a unique constraint: the next attempt sees the winner's row
    if not isinstance(exc, (OperationalError, sqlite3.OperationalError)) and getattr(exc, "sqlstate", None) is None:
        return False
    orig = getattr(exc, "orig", None) or exc
    if getattr(orig, "sqlstate", None) in _RETRY_SQLSTATES:
        return True
    return "database is locked" in str(orig)


def run_write(engine: Engine, work: Callable[[Session], T], *, attempts: int = WRITE_ATTEMPTS) -> T:
    """Run ``work`` in one transaction: all of it is committed, or none of it (then retried if the
    failure was a lost race, re-raised otherwise)."""
    def once() -> T:
        with Session(writer(engine), expire_on_commit=False) as session, session.begin():
            return work(session)
    return _retrying(once, attempts)


class DriverStatement:
    """A Core statement compiled once for a dialect, run on the driver's own cursor."""

    def __init__(self, dialect: Dialect, statement: Any) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        self.order: tuple[str, ...] | None = tuple(compiled.positiontup or ()) if compiled.positional else None

    def run(self, cursor: Any, params: dict[str, Any]) -> Any:
        cursor.execute(self.sql, params if self.order is None else tuple(params[k] for k in self.order))
        return cursor


def run_driver_read(engine: Engine, work: Callable[[Any], T]) -> T:
    """A read of a statement or two on the hot path (the snooze lookup of every CDS call) on the
    driver's cursor, as :func:`run_driver_write` writes: no Session, no Core Connection."""
    connection = engine.raw_connection()
    try:
        result = work(connection.cursor())
        connection.rollback()  # ends the read transaction PostgreSQL's driver opened (a no-op on SQLite)
        return result
    finally:
        connection.close()


def run_driver_write(engine: Engine, work: Callable[[Any], T], *, attempts: int = WRITE_ATTEMPTS) -> T:
    """:func:`run_write` for a statement or two on the hot path (the jti check of every CDS call): the
    driver's connection from the engine's pool (its connect hooks applied), with the transaction
    begun, committed or rolled back here. A Session or a Core Connection costs 60–80 µs more per
    transaction than the statements themselves; ``work`` gets the DB-API cursor."""
    sqlite = engine.dialect.name == "sqlite"

    def once() -> T:
        connection = engine.raw_connection()
        try:
            cursor = connection.cursor()
            if sqlite:  # as the engine's begin hook does for writers: take the write lock up front
                cursor.execute("BEGIN IMMEDIATE")
            try:
                result = work(cursor)
                connection.commit()
            except BaseException:
                connection.rollback()
                raise
            return result
        finally:
            connection.close()
    return _retrying(once, attempts)


def _retrying(once: Callable[[], T], attempts: int) -> T:
    for attempt in range(1, attempts + 1):
        try:
            return once()
        except Exception as exc:
            if attempt == attempts or not _retryable(exc):
                raise
            time.sleep(min(0.005 * 2**attempt, 0.2))
    raise AssertionError("unreachable")  # pragma: no cover


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest migration shipped with this version of the package."""
    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise StoreError(f"no migrations in {MIGRATIONS_DIR}")
    return head


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at; None for a database we have never migrated."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def migrate(engine: Engine) -> None:
    """Upgrade the database to the newest migration, in one transaction.

    Safe when several workers start at once: SQLite serialises on BEGIN IMMEDIATE, PostgreSQL on a
    transaction-scoped advisory lock; whoever comes second finds the database already at head.
    """
    with writer(engine).connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:  # before BEGIN (inside a transaction the pragma is a no-op), on the driver's connection
            _foreign_keys(conn, on=False)
        try:
            with conn.begin():
                if not sqlite:
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
                command.upgrade(_alembic_config(conn), "head")
                if sqlite and conn.exec_driver_sql("PRAGMA foreign_key_check").first() is not None:
                    raise StoreError("a migration left rows whose parent row is missing: rolled back")
        finally:
            if sqlite:
                _foreign_keys(conn, on=True)


def _foreign_keys(conn: Connection, *, on: bool) -> None:
    """Switch SQLite's foreign-key enforcement for this connection (outside a transaction only).
    Migrations run with it off, as SQLite's own procedure for rebuilding a table says
    (https://www.sqlite.org/lang_altertable.html#otheralter): Alembic's batch mode rebuilds a table by
    copying it and dropping the original, and that DROP would otherwise cascade to its child rows.
    ``migrate`` checks ``PRAGMA foreign_key_check`` before it commits instead."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
    finally:
        cursor.close()


def insert_ignore(session: Session, entity: type[Base], values: dict[str, Any]) -> bool:
    """INSERT … ON CONFLICT DO NOTHING; True when the row was inserted.

    On PostgreSQL a conflicting row that another transaction has inserted but not yet committed
    makes this wait for that transaction, so callers see a settled answer.
    """
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    # RETURNING rather than rowcount: psycopg reports no rowcount for ON CONFLICT inserts.
    statement = insert(entity).values(**values).on_conflict_do_nothing()
    returned = session.execute(statement.returning(*sa_inspect(entity).primary_key)).first()
    return returned is not None
