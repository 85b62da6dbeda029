"""The org tree (``hris.org.>``) for the tiny-unit roll-up of contributions (shared.contributions).

Revision ID: checkin_0006
Revises: checkin_outbox_dead
"""

from alembic import op

from shared.contributions.tables import create_org_unit_table

revision = "checkin_0006"
down_revision = "checkin_outbox_dead"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_org_unit_table("checkin_org_unit")


def downgrade() -> None:
    op.drop_table("checkin_org_unit")
