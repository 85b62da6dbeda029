"""Fairness budgets move to the platform's release ledger (``shared.release.ledger``).

Revision ID: recommender_0004
Revises: recommender_0003
"""

import sqlalchemy as sa
from alembic import op

from shared.migrations import create_release_budget_table

revision = "recommender_0004"
down_revision = "recommender_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("audit_budget")
    create_release_budget_table()


def downgrade() -> None:
    op.drop_table("release_budget")
    op.create_table(
        "audit_budget",
        sa.Column("audit_week", sa.String(8), primary_key=True),
        sa.Column("epsilon_spent", sa.Float, nullable=False),
    )
