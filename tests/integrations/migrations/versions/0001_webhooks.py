"""Test-only service schema: the platform tables plus the webhook tables.

Revision ID: integrations_0001
Revises:
"""

from shared.migrations import create_platform_tables, create_webhook_tables

revision = "integrations_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_platform_tables()
    create_webhook_tables()


def downgrade() -> None:
    raise NotImplementedError("test schema")
