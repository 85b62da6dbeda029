"""Parked outbox rows of the escalation service (shared.bus.parking).

Revision ID: escalation_outbox_dead
Revises: escalation_0003
"""

from alembic import op

from shared.migrations import create_outbox_dead_table

revision = "escalation_outbox_dead"
down_revision = "escalation_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_outbox_dead_table()


def downgrade() -> None:
    op.drop_table("outbox_dead")
