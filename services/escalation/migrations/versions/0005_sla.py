"""SLA contributions: subjects' org units (from HRIS) and contributions held back for release.

Revision ID: escalation_0005
Revises: escalation_outbox_dead
"""

import sqlalchemy as sa
from alembic import op

from shared.contributions.tables import create_assignments_table

revision = "escalation_0005"
down_revision = "escalation_outbox_dead"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_assignments_table("escalation_org_assignment")
    op.create_table(
        "escalation_pending_contribution",
        sa.Column("msg_id", sa.String(100), primary_key=True),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("escalation_pending_contribution")
    op.drop_table("escalation_org_assignment")
