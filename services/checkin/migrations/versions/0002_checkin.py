"""Check-ins (sealed per subject), data keys, trend cache, org assignments, contributions, nudges.

Revision ID: checkin_0002
Revises: checkin_0001
"""

import sqlalchemy as sa
from alembic import op

from shared.contributions.tables import create_assignments_table
from shared.migrations import create_data_key_table

revision = "checkin_0002"
down_revision = "checkin_0001"
branch_labels = None
depends_on = None


def _key_fk() -> sa.Column:
    return sa.Column(
        "key_id", sa.String(32), sa.ForeignKey("data_key.key_id", ondelete="CASCADE"), nullable=False, index=True
    )


def upgrade() -> None:
    create_data_key_table()
    op.create_table(
        "checkin",
        sa.Column("id", sa.String(32), primary_key=True),
        # Looked up by pseudonym through ix_checkin_pseudonym_week (its leading column).
        sa.Column("pseudonym", sa.String(64), nullable=False),
        _key_fk(),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("iso_week", sa.String(8), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("note", sa.LargeBinary, nullable=True),
    )
    op.create_index("ix_checkin_pseudonym_week", "checkin", ["pseudonym", "iso_week"])
    op.create_table(
        "checkin_trend",
        sa.Column("pseudonym", sa.String(64), primary_key=True),
        _key_fk(),
        sa.Column("trend", sa.LargeBinary, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    create_assignments_table("org_assignment")
    op.create_table(
        "pending_contribution",
        sa.Column("msg_id", sa.String(100), primary_key=True),
        sa.Column("period_token", sa.String(64), nullable=False, index=True),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "nudge_schedule",
        sa.Column("pseudonym", sa.String(64), primary_key=True),
        sa.Column("weekday", sa.Integer, nullable=False),
        sa.Column("local_time", sa.Time, nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("quiet_start", sa.Time, nullable=True),
        sa.Column("quiet_end", sa.Time, nullable=True),
        sa.Column("snooze_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lang", sa.String(2), nullable=False),
        sa.Column("next_due", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("last_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    for table in ("nudge_schedule", "pending_contribution", "org_assignment", "checkin_trend", "checkin", "data_key"):
        op.drop_table(table)
