"""Initial schema: documents with versions, visibility and patient index; CDS feedback; audit; JWT ids.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

Written out in full rather than imported from models.py: a migration is a fixed point in history
and must not change when the models change later. tests/test_store.py checks that the models
and the migrated database agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_DOC = sa.JSON()  # json, not jsonb: keeps the documents exactly as written


def upgrade() -> None:
    op.create_table(
        "alk_document",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("identifier_system", sa.String(length=512), nullable=False),
        sa.Column("identifier_value", sa.String(length=512), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alk_document"),
        sa.UniqueConstraint("identifier_system", "identifier_value",
                            name="uq_alk_document_identifier_system_identifier_value"),
    )
    op.create_index("ix_alk_document_identifier_value", "alk_document", ["identifier_value"])

    op.create_table(
        "alk_document_version",
        sa.Column("pk", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("document_id", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("resource", JSON_DOC, nullable=False),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("author_org", sa.String(length=512), nullable=False),
        sa.ForeignKeyConstraint(["document_id"], ["alk_document.id"], ondelete="CASCADE",
                                name="fk_alk_document_version_document_id_alk_document"),
        sa.PrimaryKeyConstraint("pk", name="pk_alk_document_version"),
        sa.UniqueConstraint("document_id", "version_id",
                            name="uq_alk_document_version_document_id_version_id"),
    )

    op.create_table(
        "alk_document_org",
        sa.Column("version_pk", sa.Integer(), nullable=False),
        sa.Column("org", sa.String(length=512), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["version_pk"], ["alk_document_version.pk"], ondelete="CASCADE",
                                name="fk_alk_document_org_version_pk_alk_document_version"),
        sa.PrimaryKeyConstraint("version_pk", "org", "role", name="pk_alk_document_org"),
    )
    op.create_index("ix_alk_document_org_org", "alk_document_org", ["org"])

    op.create_table(
        "alk_document_patient",
        sa.Column("version_pk", sa.Integer(), nullable=False),
        sa.Column("system", sa.String(length=512), nullable=False),
        sa.Column("value", sa.String(length=512), nullable=False),
        sa.ForeignKeyConstraint(["version_pk"], ["alk_document_version.pk"], ondelete="CASCADE",
                                name="fk_alk_document_patient_version_pk_alk_document_version"),
        sa.PrimaryKeyConstraint("version_pk", "system", "value", name="pk_alk_document_patient"),
    )
    op.create_index("ix_alk_document_patient_value_system", "alk_document_patient", ["value", "system"])

    op.create_table(
        "alk_cds_feedback",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("service_id", sa.String(length=512), nullable=False),
        sa.Column("card", sa.String(length=512), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("outcome_timestamp", sa.String(length=64), nullable=False),
        sa.Column("item", JSON_DOC, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alk_cds_feedback"),
    )
    op.create_index("ix_alk_cds_feedback_service_id_card", "alk_cds_feedback", ["service_id", "card"])

    op.create_table(
        "alk_audit_event",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("recorded", sa.DateTime(timezone=True), nullable=False),
        sa.Column("subtype", sa.String(length=512), nullable=True),
        sa.Column("action", sa.String(length=4), nullable=True),
        sa.Column("outcome", sa.String(length=4), nullable=True),
        sa.Column("agent", sa.String(length=512), nullable=True),
        sa.Column("entity", sa.String(length=512), nullable=True),
        sa.Column("resource", JSON_DOC, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alk_audit_event"),
    )
    op.create_index("ix_alk_audit_event_recorded", "alk_audit_event", ["recorded"])
    op.create_index("ix_alk_audit_event_agent", "alk_audit_event", ["agent"])
    op.create_index("ix_alk_audit_event_entity", "alk_audit_event", ["entity"])

    op.create_table(
        "alk_seen_jti",
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key_hash", name="pk_alk_seen_jti"),
    )
    op.create_index("ix_alk_seen_jti_expires_at", "alk_seen_jti", ["expires_at"])


def downgrade() -> None:
    for table in ("alk_seen_jti", "alk_audit_event", "alk_cds_feedback", "alk_document_patient",
                  "alk_document_org", "alk_document_version", "alk_document"):
        op.drop_table(table)
