"""Parked outbox rows of the recommender service (shared.bus.parking).

Revision ID: recommender_outbox_dead
Revises: recommender_0001
"""

from alembic import op

from shared.migrations import create_outbox_dead_table

revision = "recommender_outbox_dead"
down_revision = "recommender_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_outbox_dead_table()


def downgrade() -> None:
    op.drop_table("outbox_dead")
