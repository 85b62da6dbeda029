"""Outbound webhooks of the check-in service (nudges): subscriptions, delivery queue, attempt log.

Revision ID: checkin_0003
Revises: checkin_0002
"""

from alembic import op

from shared.migrations import create_webhook_tables

revision = "checkin_0003"
down_revision = "checkin_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_webhook_tables()


def downgrade() -> None:
    for table in ("webhook_attempt", "webhook_delivery", "webhook_subscription"):
        op.drop_table(table)
