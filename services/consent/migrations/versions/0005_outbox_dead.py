"""Parked outbox rows of the consent service (shared.bus.parking).

Revision ID: consent_outbox_dead
Revises: consent_0004
"""

from alembic import op

from shared.migrations import create_outbox_dead_table

revision = "consent_outbox_dead"
down_revision = "consent_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_outbox_dead_table()


def downgrade() -> None:
    op.drop_table("outbox_dead")
