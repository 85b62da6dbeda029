"""Parked outbox rows of the checkin service (shared.bus.parking).

Revision ID: checkin_outbox_dead
Revises: checkin_0004
"""

from alembic import op

from shared.migrations import create_outbox_dead_table

revision = "checkin_outbox_dead"
down_revision = "checkin_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_outbox_dead_table()


def downgrade() -> None:
    op.drop_table("outbox_dead")
