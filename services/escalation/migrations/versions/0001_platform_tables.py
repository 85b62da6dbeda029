"""Platform tables of the escalation service: outbox, idempotency records, audit log.

Revision ID: escalation_0001
Revises:
"""

from shared.migrations import create_platform_tables

revision = "escalation_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_platform_tables()


def downgrade() -> None:
    raise NotImplementedError("the first revision is not reversible")
