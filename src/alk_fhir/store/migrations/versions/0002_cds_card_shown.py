"""Cards shown by CDS calls, for the feedback report of the learning loop (issue 13).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

One row per card a CDS call returned: service, card uuid, guideline section, plan action, month.
No column can hold a patient, a user or an exact time. Unique per (service, card): a call retried
with the same hookInstance returns the same card uuids and counts once. Written out in full, as 0001.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alk_cds_card_shown",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("service_id", sa.String(length=512), nullable=False),
        sa.Column("card", sa.String(length=512), nullable=False),
        sa.Column("section", sa.String(length=32), nullable=True),
        sa.Column("action_id", sa.String(length=64), nullable=True),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alk_cds_card_shown"),
        sa.UniqueConstraint("service_id", "card", name="uq_alk_cds_card_shown_service_id_card"),
    )
    op.create_index("ix_alk_cds_card_shown_month", "alk_cds_card_shown", ["month"])


def downgrade() -> None:
    op.drop_index("ix_alk_cds_card_shown_month", table_name="alk_cds_card_shown")
    op.drop_table("alk_cds_card_shown")
