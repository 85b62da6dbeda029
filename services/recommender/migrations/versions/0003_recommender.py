"""Recommender tables: catalogue, personalisation profile, learning-path progress, fairness audits.

Revision ID: recommender_0003
Revises: recommender_outbox_dead
"""

import sqlalchemy as sa
from alembic import op

revision = "recommender_0003"
down_revision = "recommender_outbox_dead"
branch_labels = None
depends_on = None


def _ts(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def _pseudonym() -> sa.Column:
    return sa.Column("pseudonym", sa.String(64), primary_key=True)


def upgrade() -> None:
    op.create_table(
        "resource",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("topics", sa.JSON, nullable=False),
        sa.Column("duration_minutes", sa.Integer, nullable=False),
        sa.Column("countries", sa.JSON, nullable=False),
        sa.Column("role_families", sa.JSON, nullable=False),
        sa.Column("versions", sa.JSON, nullable=False),
        _ts("updated_at"),
    )
    op.create_table(
        "catalogue_state",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_table(
        "preference",
        _pseudonym(),
        sa.Column("language", sa.String(2)),
        sa.Column("topics", sa.JSON, nullable=False),
        sa.Column("formats", sa.JSON, nullable=False),
        sa.Column("minutes_available", sa.Integer),
        _ts("updated_at"),
    )
    op.create_table(
        "need_signal",
        _pseudonym(),
        sa.Column("iso_week", sa.String(8), primary_key=True),
        sa.Column("needs", sa.JSON, nullable=False),
        sa.Column("lang", sa.String(2), nullable=False),
        _ts("received_at"),
    )
    op.create_table(
        "hris_profile",
        _pseudonym(),
        sa.Column("role_family", sa.String(40)),
        sa.Column("country", sa.String(2)),
        sa.Column("language", sa.String(2)),
        _ts("updated_at"),
    )
    op.create_table(
        "interaction",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("pseudonym", sa.String(64), nullable=False, index=True),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        _ts("at"),
    )
    op.create_table(
        "path_progress",
        _pseudonym(),
        sa.Column("path_id", sa.String(64), primary_key=True),
        sa.Column("module_id", sa.String(16), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("feedback", sa.String(16)),
        _ts("at"),
    )
    op.create_table(
        "declared_attribute",
        _pseudonym(),
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.String(32), nullable=False),
        _ts("updated_at"),
    )
    op.create_table(
        "exposure_tally",
        _pseudonym(),
        sa.Column("audit_week", sa.String(8), primary_key=True),
        sa.Column("lists", sa.Integer, nullable=False),
        sa.Column("shown", sa.JSON, nullable=False),
        sa.Column("exposure", sa.JSON, nullable=False),
    )
    op.create_table(
        "fairness_report",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("audit_week", sa.String(8), nullable=False, index=True),
        sa.Column("attribute", sa.String(32), nullable=False),
        _ts("created_at"),
        sa.Column("report", sa.JSON, nullable=False),
    )
    op.create_table(
        "audit_budget",
        sa.Column("audit_week", sa.String(8), primary_key=True),
        sa.Column("epsilon_spent", sa.Float, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "audit_budget",
        "fairness_report",
        "exposure_tally",
        "declared_attribute",
        "path_progress",
        "interaction",
        "hris_profile",
        "need_signal",
        "preference",
        "catalogue_state",
        "resource",
    ):
        op.drop_table(table)
