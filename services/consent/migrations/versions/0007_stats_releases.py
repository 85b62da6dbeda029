"""Consent statistics as stored releases (issue 11.5): releases, cells, memberships, budget.

Revision ID: consent_0007
Revises: consent_kv_version
"""

import sqlalchemy as sa
from alembic import op

from shared.migrations import create_release_budget_table

revision = "consent_0007"
down_revision = "consent_kv_version"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consent_stats_release",
        sa.Column("period", sa.String(16), primary_key=True),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("k", sa.Integer, nullable=False),
    )
    op.create_table(
        "consent_stats_cell",
        sa.Column("period", sa.String(16), primary_key=True),
        sa.Column("org_unit", sa.String(64), primary_key=True),
        sa.Column("parent", sa.String(64), nullable=True),
        sa.Column("released", sa.Boolean, nullable=False),
        sa.Column("reason", sa.String(64), nullable=True),
        sa.Column("replayed_from", sa.String(16), nullable=True),
        sa.Column("group_size", sa.Integer, nullable=True),
        sa.Column("size_scale", sa.Float, nullable=True),
        sa.Column("rates", sa.Text, nullable=True),
    )
    op.create_table(
        "consent_stats_membership",
        sa.Column("period", sa.String(16), primary_key=True),
        sa.Column("org_unit", sa.String(64), primary_key=True),
        sa.Column("set_name", sa.String(40), primary_key=True),
        sa.Column("members", sa.Text, nullable=False),
    )
    create_release_budget_table()


def downgrade() -> None:
    for table in ("release_budget", "consent_stats_membership", "consent_stats_cell", "consent_stats_release"):
        op.drop_table(table)
