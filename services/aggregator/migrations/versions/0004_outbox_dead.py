"""Parked outbox rows of the aggregator service (shared.bus.parking).

Revision ID: aggregator_outbox_dead
Revises: aggregator_0003
"""

from alembic import op

from shared.migrations import create_outbox_dead_table

revision = "aggregator_outbox_dead"
down_revision = "aggregator_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_outbox_dead_table()


def downgrade() -> None:
    op.drop_table("outbox_dead")
