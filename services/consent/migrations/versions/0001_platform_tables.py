"""Platform tables of the consent service: outbox, idempotency records, audit log.

Revision ID: consent_0001
Revises:
"""

from shared.migrations import create_platform_tables

revision = "consent_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_platform_tables()


def downgrade() -> None:
    raise NotImplementedError("the first revision is not reversible")
