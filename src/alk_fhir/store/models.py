"""The tables of the store (SQLAlchemy 2.0 typed declarative).

Every table name starts with ``alk_`` and the Alembic version table is ours too, so the store can
share a PostgreSQL database (or schema) with other applications without touching their tables.
The migration scripts in ``migrations/versions`` create exactly these tables; a test compares the
two so they cannot drift apart.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeEngine

VERSION_TABLE = "alk_fhir_alembic_version"

# Limits checked in code before writing, so that PostgreSQL never raises a DataError mid-request.
ID_MAX = 64
TOKEN_MAX = 512
SECTION_MAX = 32  # a guideline section code, e.g. "3.1"

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Plain JSON, also on PostgreSQL: ``json`` keeps the text as written (key order, resourceType
# first), where ``jsonb`` would reorder keys. Searches go through our own index tables instead.
JSON_DOC: TypeEngine[Any] = JSON()
UTC_DATETIME = DateTime(timezone=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Document(Base):
    """One row per document: its owner (the organisation that stored its first version) and its
    Bundle.identifier system|value; its versions hang below. Two organisations posting one
    identifier keep two documents (issue 25): an identifier is unique within its system for its
    assigner (R4 datatypes.html#Identifier), not across custodians."""

    __tablename__ = "alk_document"
    __table_args__ = (
        UniqueConstraint("owner", "identifier_system", "identifier_value"),
        Index(None, "identifier_value"),
    )

    id: Mapped[str] = mapped_column(String(ID_MAX), primary_key=True)
    owner: Mapped[str] = mapped_column(String(TOKEN_MAX))
    identifier_system: Mapped[str] = mapped_column(String(TOKEN_MAX))
    identifier_value: Mapped[str] = mapped_column(String(TOKEN_MAX))
    current_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTC_DATETIME)
    updated_at: Mapped[datetime] = mapped_column(UTC_DATETIME)


class DocumentVersion(Base):
    """An immutable version of a document Bundle, as served (meta.versionId/lastUpdated set)."""

    __tablename__ = "alk_document_version"
    __table_args__ = (UniqueConstraint("document_id", "version_id"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("alk_document.id", ondelete="CASCADE"))
    version_id: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    resource: Mapped[dict[str, Any]] = mapped_column(JSON_DOC)
    last_updated: Mapped[datetime] = mapped_column(UTC_DATETIME)
    author_org: Mapped[str] = mapped_column(String(TOKEN_MAX))

    orgs: Mapped[list[DocumentOrg]] = relationship(lazy="selectin", cascade="all, delete-orphan")
    patients: Mapped[list[DocumentPatient]] = relationship(lazy="selectin", cascade="all, delete-orphan")


class DocumentOrg(Base):
    """Who may see a version: its author and its recipients, so access rules can be applied in SQL."""

    __tablename__ = "alk_document_org"
    __table_args__ = (Index(None, "org"),)

    version_pk: Mapped[int] = mapped_column(
        ForeignKey("alk_document_version.pk", ondelete="CASCADE"), primary_key=True)
    org: Mapped[str] = mapped_column(String(TOKEN_MAX), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), primary_key=True)  # "author" | "recipient"


class DocumentPatient(Base):
    """Patient identifiers of a version (system "" when the identifier had none)."""

    __tablename__ = "alk_document_patient"
    __table_args__ = (Index(None, "value", "system"),)

    version_pk: Mapped[int] = mapped_column(
        ForeignKey("alk_document_version.pk", ondelete="CASCADE"), primary_key=True)
    system: Mapped[str] = mapped_column(String(TOKEN_MAX), primary_key=True)
    value: Mapped[str] = mapped_column(String(TOKEN_MAX), primary_key=True)


class CdsFeedback(Base):
    """One CDS Hooks 2.0 Feedback entry, with the fields analytics filter on pulled out."""

    __tablename__ = "alk_cds_feedback"
    __table_args__ = (Index(None, "service_id", "card"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service_id: Mapped[str] = mapped_column(String(TOKEN_MAX))
    card: Mapped[str] = mapped_column(String(TOKEN_MAX))
    outcome: Mapped[str] = mapped_column(String(16))
    outcome_timestamp: Mapped[str] = mapped_column(String(64))
    item: Mapped[dict[str, Any]] = mapped_column(JSON_DOC)
    received_at: Mapped[datetime] = mapped_column(UTC_DATETIME)


class AuditEventRow(Base):
    """A FHIR R4 AuditEvent, with the search parameters we support pulled out into columns."""

    __tablename__ = "alk_audit_event"
    __table_args__ = (Index(None, "recorded"), Index(None, "agent"), Index(None, "entity"))

    id: Mapped[str] = mapped_column(String(ID_MAX), primary_key=True)
    recorded: Mapped[datetime] = mapped_column(UTC_DATETIME)
    subtype: Mapped[str | None] = mapped_column(String(TOKEN_MAX))
    action: Mapped[str | None] = mapped_column(String(4))
    outcome: Mapped[str | None] = mapped_column(String(4))
    agent: Mapped[str | None] = mapped_column(String(TOKEN_MAX))
    entity: Mapped[str | None] = mapped_column(String(TOKEN_MAX))
    resource: Mapped[dict[str, Any]] = mapped_column(JSON_DOC)


class SeenJti(Base):
    """A JWT id seen before its expiry (replay protection); the key is stored as a SHA-256 digest."""

    __tablename__ = "alk_seen_jti"
    __table_args__ = (Index(None, "expires_at"),)

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[int] = mapped_column(BigInteger)


class CdsCardShown(Base):
    """One card a CDS call returned (issue 13, the learning loop): which service showed which card of
    which guideline section and plan action, in which month. Deliberately nothing about the patient,
    the user or the EHR: no hookInstance, no fhirServer, no exact time. ``card`` is the card's uuid,
    the key CDS Hooks feedback names, so feedback can be counted per section and action."""

    __tablename__ = "alk_cds_card_shown"
    __table_args__ = (UniqueConstraint("service_id", "card"), Index(None, "month"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service_id: Mapped[str] = mapped_column(String(TOKEN_MAX))
    card: Mapped[str] = mapped_column(String(TOKEN_MAX))
    section: Mapped[str | None] = mapped_column(String(SECTION_MAX))
    action_id: Mapped[str | None] = mapped_column(String(ID_MAX))
    month: Mapped[str] = mapped_column(String(7))  # YYYY-MM, UTC


class CdsSnooze(Base):
    """A card kept away for a while after a clinician overrode it (issue 21, remembered overrides).

    ``subject`` is a keyed pseudonym of the patient (HMAC-SHA256 with the service's snooze key: no
    identity, not linkable without the key), ``action_id`` the plan action the card showed, ``reason``
    the override reason's code, ``trigger`` a digest of the finding behind the card (a changed finding
    brings the card back), ``until`` the last day it stays away (ISO date). A row is deleted once its
    period is over: retention is the snooze period. Nothing about the user, the EHR or the time of day."""

    __tablename__ = "alk_cds_snooze"
    __table_args__ = (UniqueConstraint("subject", "action_id"), Index(None, "until"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject: Mapped[str] = mapped_column(String(ID_MAX))
    action_id: Mapped[str] = mapped_column(String(ID_MAX))
    reason: Mapped[str] = mapped_column(String(ID_MAX))
    trigger: Mapped[str] = mapped_column(String(ID_MAX))
    until: Mapped[str] = mapped_column(String(10))  # YYYY-MM-DD, the last day the card stays away
