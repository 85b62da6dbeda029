"""Forecasts before known triggers (issue 19): assessments, raised or withheld, and their scores.

Revision ID: aggregator_0005_forecasts
Revises: aggregator_outbox_dead
"""

import sqlalchemy as sa
from alembic import op

revision = "aggregator_0005_forecasts"
down_revision = "aggregator_outbox_dead"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "forecast",
        sa.Column("trigger_id", sa.String(64), primary_key=True),
        sa.Column("org_unit", sa.String(64), primary_key=True),
        sa.Column("metric", sa.String(40), primary_key=True),
        sa.Column("forecast_id", sa.String(32), nullable=False, unique=True),
        sa.Column("status", sa.String(32), nullable=False, index=True),
        sa.Column("based_on", sa.String(64), nullable=False),
        sa.Column("trigger_kind", sa.String(32), nullable=False),
        sa.Column("trigger_label", sa.String(80), nullable=True),
        sa.Column("starts_on", sa.Date, nullable=False),
        sa.Column("ends_on", sa.Date, nullable=False),
        sa.Column("advise_on", sa.Date, nullable=False),
        sa.Column("past_triggers", sa.Integer, nullable=False),
        sa.Column("expected_change", sa.Float, nullable=True),
        sa.Column("change_low", sa.Float, nullable=True),
        sa.Column("change_high", sa.Float, nullable=True),
        sa.Column("manager_visible", sa.Boolean, nullable=False),
        sa.Column("suggestion", sa.String(48), nullable=False),
        sa.Column("assessed_week", sa.String(8), nullable=False),
        sa.Column("assessed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("observed_change", sa.Float, nullable=True),
        sa.Column("within_interval", sa.Boolean, nullable=True),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("forecast")
