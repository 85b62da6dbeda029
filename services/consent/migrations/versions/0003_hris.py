"""HRIS ingress: processed webhook ids, the org tree, subjects' org units and profiles, triggers.

Revision ID: consent_0003
Revises: consent_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "consent_0003"
down_revision = "consent_0002"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "hris_webhook",
        sa.Column("webhook_id", sa.String(128), primary_key=True),
        sa.Column("vendor", sa.String(16), nullable=False),
        sa.Column("events", sa.Integer, nullable=False),
        _ts("received_at"),
    )
    # Purging old ids selects by time.
    op.create_index("ix_hris_webhook_received_at", "hris_webhook", ["received_at"])
    op.create_table(
        "hris_org_unit",
        sa.Column("org_unit", sa.String(64), primary_key=True),
        sa.Column("parent", sa.String(64), nullable=True),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("effective_from", sa.Date, nullable=False),
        _ts("updated_at"),
    )
    op.create_table(
        "hris_subject",
        sa.Column("pseudonym", sa.String(64), primary_key=True),
        sa.Column("org_unit", sa.String(64), nullable=True),
        sa.Column("effective_from", sa.Date, nullable=True),
        sa.Column("role_family", sa.String(48), nullable=True),
        sa.Column("country", sa.String(2), nullable=True),
        sa.Column("language", sa.String(8), nullable=True),
        sa.Column("left_on", sa.Date, nullable=True),
        _ts("updated_at"),
    )
    op.create_index("ix_hris_subject_org_unit", "hris_subject", ["org_unit"])
    op.create_table(
        "hris_trigger",
        sa.Column("trigger_id", sa.String(64), primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False),
        _ts("updated_at"),
    )


def downgrade() -> None:
    for table in ("hris_trigger", "hris_subject", "hris_org_unit", "hris_webhook"):
        op.drop_table(table)
