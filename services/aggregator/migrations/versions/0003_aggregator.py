"""The aggregator's own tables: contribution statistics, org tree, releases, insights, budget.

Revision ID: aggregator_0003
Revises: aggregator_0002
"""

import sqlalchemy as sa
from alembic import op

from shared.migrations import create_release_budget_table

revision = "aggregator_0003"
down_revision = "aggregator_0002"
branch_labels = None
depends_on = None

TABLES = (
    "insight",
    "released_cell",
    "release",
    "release_budget",
    "manager_scope",
    "org_trigger",
    "org_unit_version",
    "contribution_pending",
    "contribution_cell",
)


def upgrade() -> None:
    op.create_table(
        "contribution_cell",
        sa.Column("iso_week", sa.String(8), primary_key=True),
        sa.Column("metric", sa.String(40), primary_key=True),
        sa.Column("org_unit", sa.String(64), primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("total", sa.Float, nullable=False),
        sa.Column("histogram", sa.String(400), nullable=False),
    )
    op.create_table(
        "contribution_pending",
        sa.Column("iso_week", sa.String(8), primary_key=True),
        sa.Column("metric", sa.String(40), primary_key=True),
        sa.Column("period_token", sa.String(64), primary_key=True),
        sa.Column("org_unit", sa.String(64), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
    )
    op.create_table(
        "org_unit_version",
        sa.Column("org_unit", sa.String(64), primary_key=True),
        sa.Column("effective_from", sa.Date, primary_key=True),
        sa.Column("parent", sa.String(64), nullable=True),
        sa.Column("state", sa.String(8), nullable=False),
    )
    op.create_table(
        "org_trigger",
        sa.Column("trigger_id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("org_units", sa.String(33000), nullable=False),
        sa.Column("starts_on", sa.Date, nullable=False),
        sa.Column("ends_on", sa.Date, nullable=True),
        sa.Column("label", sa.String(80), nullable=True),
    )
    op.create_table(
        "manager_scope",
        sa.Column("manager_ref", sa.String(64), primary_key=True),
        sa.Column("org_unit", sa.String(64), primary_key=True),
    )
    create_release_budget_table()
    op.create_table(
        "release",
        sa.Column("iso_week", sa.String(8), primary_key=True),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("k", sa.Integer, nullable=False),
        sa.Column("manager_k", sa.Integer, nullable=False),
        sa.Column("late_dropped", sa.Integer, nullable=False),
    )
    op.create_table(
        "released_cell",
        sa.Column("iso_week", sa.String(8), primary_key=True),
        sa.Column("metric", sa.String(40), primary_key=True),
        sa.Column("org_unit", sa.String(64), primary_key=True),
        sa.Column("parent", sa.String(64), nullable=True),
        sa.Column("released", sa.Boolean, nullable=False),
        sa.Column("reason", sa.String(64), nullable=True),
        sa.Column("manager_released", sa.Boolean, nullable=False),
        sa.Column("manager_reason", sa.String(64), nullable=True),
        sa.Column("count", sa.Integer, nullable=True),
        sa.Column("count_scale", sa.Float, nullable=True),
        sa.Column("mean", sa.Float, nullable=True),
        sa.Column("mean_half_width", sa.Float, nullable=True),
        sa.Column("sum_scale", sa.Float, nullable=True),
    )
    op.create_index("ix_released_cell_unit", "released_cell", ["org_unit", "iso_week"])
    op.create_table(
        "insight",
        sa.Column("insight_id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("org_unit", sa.String(64), nullable=False, index=True),
        sa.Column("metric", sa.String(40), nullable=False),
        sa.Column("iso_week", sa.String(8), nullable=False, index=True),
        sa.Column("change", sa.Float, nullable=False),
        sa.Column("change_low", sa.Float, nullable=False),
        sa.Column("change_high", sa.Float, nullable=False),
        sa.Column("manager_visible", sa.Boolean, nullable=False),
        sa.Column("trigger_id", sa.String(64), nullable=True),
        sa.Column("trigger_kind", sa.String(32), nullable=True),
        sa.Column("trigger_label", sa.String(80), nullable=True),
        sa.Column("trigger_starts_on", sa.Date, nullable=True),
        sa.Column("suggestion", sa.String(48), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    for table in TABLES:
        op.drop_table(table)
