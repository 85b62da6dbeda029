"""Outbound webhooks of the escalation service: subscriptions, the delivery queue, the attempt log.

Revision ID: escalation_0002
Revises: escalation_0001
"""

from alembic import op

from shared.migrations import create_webhook_tables

revision = "escalation_0002"
down_revision = "escalation_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_webhook_tables()


def downgrade() -> None:
    for table in ("webhook_attempt", "webhook_delivery", "webhook_subscription"):
        op.drop_table(table)
