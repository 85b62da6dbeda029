"""Engagement counters through shared.contributions: org units and tree from HRIS, counters held
back for the shuffled release.

Revision ID: recommender_0005
Revises: recommender_0004
"""

from alembic import op

from shared.contributions.tables import create_tables

revision = "recommender_0005"
down_revision = "recommender_0004"
branch_labels = None
depends_on = None

TABLES = ("recommender_org_assignment", "recommender_pending_contribution", "recommender_org_unit")


def upgrade() -> None:
    create_tables(*TABLES)


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
