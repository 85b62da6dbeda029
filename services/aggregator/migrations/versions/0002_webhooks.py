"""Outbound webhooks of the aggregator service: subscriptions, the delivery queue, the attempt log.

Revision ID: aggregator_0002
Revises: aggregator_0001
"""

from alembic import op

from shared.migrations import create_webhook_tables

revision = "aggregator_0002"
down_revision = "aggregator_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_webhook_tables()


def downgrade() -> None:
    for table in ("webhook_attempt", "webhook_delivery", "webhook_subscription"):
        op.drop_table(table)
