"""Per-key version of the consent KV: every put carries it, and an older put never wins.

Revision ID: consent_kv_version
Revises: consent_outbox_dead
"""

import sqlalchemy as sa
from alembic import op

revision = "consent_kv_version"
down_revision = "consent_outbox_dead"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # 0 for existing rows: the bucket's values written before this have no version (read as 0),
    # so the next change of each key (version 1) wins over them.
    with op.batch_alter_table("consent") as batch:
        batch.add_column(sa.Column("kv_version", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("consent") as batch:
        batch.drop_column("kv_version")
