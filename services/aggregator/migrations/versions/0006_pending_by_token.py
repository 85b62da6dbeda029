"""Held contributions found by (week, token): one query per ingested batch asks for all of its
tokens, every metric (a retraction removes them all); the primary key leads with the metric.

Revision ID: aggregator_0006_pending_by_token
Revises: aggregator_0005_forecasts
"""

from alembic import op

revision = "aggregator_0006_pending_by_token"
down_revision = "aggregator_0005_forecasts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_contribution_pending_token", "contribution_pending", ["iso_week", "period_token"])


def downgrade() -> None:
    op.drop_index("ix_contribution_pending_token", table_name="contribution_pending")
