"""Work-pattern signals: per-subject daily metadata until its week closes, and closed weeks.

Revision ID: checkin_0004
Revises: checkin_0003
"""

import sqlalchemy as sa
from alembic import op

revision = "checkin_0004"
down_revision = "checkin_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signal_day",
        # (day, pseudonym): ingest of recent days appends near the end of the key, a week is one
        # key range, and a subject's rows are found with one probe per stored day. No rowid on
        # SQLite: the primary key is the table.
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("pseudonym", sa.String(64), primary_key=True),
        sa.Column("messages_sent", sa.Integer, nullable=False),
        sa.Column("messages_after_hours", sa.Integer, nullable=False),
        sa.Column("meeting_hours", sa.Float, nullable=False),
        sa.Column("focus_hours", sa.Float, nullable=False),
        sa.Column("worked", sa.Boolean, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "signal_week",
        sa.Column("iso_week", sa.String(8), primary_key=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("signal_week")
    op.drop_table("signal_day")
