"""A document is (owner, Bundle.identifier system, value), not the identifier alone (issue 25).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05

Adds ``alk_document.owner`` (the organisation that stored the document's first version: the author
of its earliest version kept, which is what ``put_document`` checked before) and moves the unique
constraint from (identifier_system, identifier_value) to (owner, identifier_system, identifier_value),
so that another organisation posting the same identifier gets its own document instead of a refusal
that reveals the owner's. Existing documents keep their ids (recipients hold links to them).

SQLite cannot drop a constraint in place: batch mode rebuilds the table, which ``db.migrate`` runs
with foreign keys off (a DROP TABLE with them on would cascade to every version).
Downgrade fails when two owners keep one identifier (the old constraint cannot hold then); on SQLite
it too must run with foreign keys off (the ``alembic`` command line's own engine has them off).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_UNIQUE = "uq_alk_document_identifier_system_identifier_value"
NEW_UNIQUE = "uq_alk_document_owner_identifier_system_identifier_value"
# The author of the earliest version kept; '' for a document without versions (none are written so:
# the row and its first version are one transaction), which then matches no organisation.
FILL_OWNER = """
UPDATE alk_document SET owner = COALESCE((
    SELECT v.author_org FROM alk_document_version v
    WHERE v.document_id = alk_document.id ORDER BY v.version_id LIMIT 1), '')
"""


def upgrade() -> None:
    op.add_column("alk_document", sa.Column("owner", sa.String(length=512), nullable=True))
    op.execute(FILL_OWNER)
    with op.batch_alter_table("alk_document") as batch:
        batch.alter_column("owner", existing_type=sa.String(length=512), nullable=False)
        batch.drop_constraint(OLD_UNIQUE, type_="unique")
        batch.create_unique_constraint(NEW_UNIQUE, ["owner", "identifier_system", "identifier_value"])


def downgrade() -> None:
    with op.batch_alter_table("alk_document") as batch:
        batch.drop_constraint(NEW_UNIQUE, type_="unique")
        batch.create_unique_constraint(OLD_UNIQUE, ["identifier_system", "identifier_value"])
        batch.drop_column("owner")
