"""Remembered overrides: cards kept away for a patient for a while (issue 21).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05

One row per (patient pseudonym, plan action): the override reason, a digest of the finding behind the
card and the last day it stays away. The patient appears only as a keyed pseudonym (HMAC); rows are
deleted when their period ends. Written out in full, as 0001.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alk_cds_snooze",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("action_id", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("trigger", sa.String(length=64), nullable=False),
        sa.Column("until", sa.String(length=10), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alk_cds_snooze"),
        sa.UniqueConstraint("subject", "action_id", name="uq_alk_cds_snooze_subject_action_id"),
    )
    op.create_index("ix_alk_cds_snooze_until", "alk_cds_snooze", ["until"])


def downgrade() -> None:
    op.drop_index("ix_alk_cds_snooze_until", table_name="alk_cds_snooze")
    op.drop_table("alk_cds_snooze")
