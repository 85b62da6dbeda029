"""Managers' scopes: each org unit's manager, as a keyed reference (never an employee id).

Revision ID: consent_0004
Revises: consent_0003
"""

import sqlalchemy as sa
from alembic import op

revision = "consent_0004"
down_revision = "consent_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("hris_org_unit") as batch:
        batch.add_column(sa.Column("manager_ref", sa.String(64), nullable=True))
        batch.create_index("ix_hris_org_unit_manager_ref", ["manager_ref"])


def downgrade() -> None:
    with op.batch_alter_table("hris_org_unit") as batch:
        batch.drop_index("ix_hris_org_unit_manager_ref")
        batch.drop_column("manager_ref")
