"""Crisis cases, their history, subject data keys, ladder configuration, timers and pages.

Revision ID: escalation_0003
Revises: escalation_0002
"""

import sqlalchemy as sa
from alembic import op

from shared.migrations import create_data_key_table

revision = "escalation_0003"
down_revision = "escalation_0002"
branch_labels = None
depends_on = None


def _case_fk(primary_key: bool = False) -> sa.Column:
    return sa.Column(
        "case_id",
        sa.String(32),
        sa.ForeignKey("escalation_case.id", ondelete="CASCADE"),
        nullable=False,
        primary_key=primary_key,
        index=not primary_key,
    )


def upgrade() -> None:
    create_data_key_table()
    op.create_table(
        "escalation_case",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("pseudonym", sa.String(64), nullable=False, index=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("basis", sa.String(24), nullable=False),
        sa.Column("checkin_ref", sa.String(36), nullable=True, index=True),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("severity_rank", sa.Integer, nullable=False, index=True),
        sa.Column("reasons", sa.String(200), nullable=False),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("assignee", sa.String(64), nullable=True),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_acked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("contacted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("close_reason", sa.String(32), nullable=True),
        sa.Column("shared_note", sa.Text, nullable=True),
        sa.Column("preferred_channel", sa.String(16), nullable=True),
        sa.Column("preferred_time", sa.String(64), nullable=True),
        sa.Column("policy", sa.Text, nullable=False),
        sa.Column("rosters", sa.Text, nullable=False),
        sa.Column("legal_hold_until", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "case_event",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        _case_fk(),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("actor_role", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32), nullable=True),
        sa.Column("key_id", sa.String(32), sa.ForeignKey("data_key.key_id", ondelete="CASCADE"), nullable=True),
        sa.Column("sealed", sa.LargeBinary, nullable=True),
    )
    op.create_table(
        "ladder_config",
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
    )
    op.create_table(
        "case_timer",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        _case_fk(),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False, index=True),
    )
    op.create_table(
        "case_page",
        _case_fk(primary_key=True),
        sa.Column("round", sa.Integer, primary_key=True),
        sa.Column("step", sa.Integer, primary_key=True),
        sa.Column("rule", sa.Integer, nullable=False),
        sa.Column("loop", sa.Integer, nullable=False),
        sa.Column("external", sa.Boolean, nullable=False),
        sa.Column("paged_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    for table in ("case_page", "case_timer", "ladder_config", "case_event", "escalation_case", "data_key"):
        op.drop_table(table)
