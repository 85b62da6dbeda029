"""SLA contributions through shared.contributions: held rows carry their period token (a
retraction drops them), and the org tree (``hris.org.>``) for the tiny-unit roll-up.

Revision ID: escalation_0006
Revises: escalation_0005
"""

import sqlalchemy as sa
from alembic import op

from shared.contributions.tables import create_org_unit_table

revision = "escalation_0006"
down_revision = "escalation_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("escalation_pending_contribution") as batch:
        batch.add_column(sa.Column("period_token", sa.String(64), nullable=True))
        batch.create_index("ix_escalation_pending_contribution_period_token", ["period_token"])
    create_org_unit_table("escalation_org_unit")


def downgrade() -> None:
    op.drop_table("escalation_org_unit")
    with op.batch_alter_table("escalation_pending_contribution") as batch:
        batch.drop_index("ix_escalation_pending_contribution_period_token")
        batch.drop_column("period_token")
