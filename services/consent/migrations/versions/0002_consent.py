"""Consent tables: purposes and policy versions, consents and history, directory, erasure requests.

Seeds version 1 of every purpose from ``services/consent/policy.json`` (the file is read at the
time this revision runs; later versions are published through the admin API).

Revision ID: consent_0002
Revises: consent_0001
"""

import json
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "consent_0002"
down_revision = "consent_0001"
branch_labels = None
depends_on = None

POLICY_FILE = Path(__file__).resolve().parents[2] / "policy.json"


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    purpose = op.create_table(
        "purpose",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("current_version", sa.Integer, nullable=False),
        _ts("updated_at"),
    )
    policy_version = op.create_table(
        "policy_version",
        sa.Column("purpose", sa.String(32), sa.ForeignKey("purpose.name"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("texts", sa.JSON, nullable=False),
        sa.Column("data_categories", sa.JSON, nullable=False),
        sa.Column("recipients", sa.JSON, nullable=False),
        sa.Column("retention_days", sa.Integer, nullable=False),
        sa.Column("legal_basis", sa.String(32), nullable=False),
        sa.Column("material", sa.Boolean, nullable=False),
        _ts("published_at"),
    )
    op.create_table(
        "directory",
        sa.Column("pseudonym", sa.String(64), primary_key=True),
        sa.Column("employee_id", sa.LargeBinary, nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        _ts("created_at"),
    )
    op.create_table(
        "contact_detail",
        sa.Column("pseudonym", sa.String(64), sa.ForeignKey("directory.pseudonym"), primary_key=True),
        sa.Column("field", sa.String(32), primary_key=True),
        sa.Column("ciphertext", sa.LargeBinary, nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        _ts("updated_at"),
    )
    op.create_table(
        "consent",
        sa.Column("pseudonym", sa.String(64), primary_key=True),
        sa.Column("purpose", sa.String(32), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("policy_version", sa.Integer, nullable=False),
        _ts("changed_at"),
        sa.Column("channel", sa.String(16), nullable=True),
        sa.Column("language", sa.String(8), nullable=True),
        sa.Column("receipt_id", sa.String(36), nullable=True),
        sa.Column("lapsed_by_version", sa.Integer, nullable=True),
    )
    # Lapsing a purpose and consent rates select by (purpose, state).
    op.create_index("ix_consent_purpose_state", "consent", ["purpose", "state"])
    op.create_table(
        "consent_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("receipt_id", sa.String(36), nullable=True, unique=True),
        sa.Column("pseudonym", sa.String(64), nullable=True),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("policy_version", sa.Integer, nullable=False),
        _ts("at"),
        sa.Column("channel", sa.String(16), nullable=True),
        sa.Column("language", sa.String(8), nullable=True),
        sa.Column("reason", sa.String(32), nullable=True),
        sa.Column("receipt_jws", sa.Text, nullable=True),
        sa.Column("erasure_request_id", sa.String(36), nullable=True),
    )
    op.create_index("ix_consent_history_pseudonym", "consent_history", ["pseudonym"])
    op.create_table(
        "erasure_request",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("owner_hash", sa.String(64), nullable=False),
        sa.Column("pseudonym", sa.String(64), nullable=True),
        _ts("requested_at"),
        _ts("last_sent_at"),
        _ts("completed_at", nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
    )
    op.create_index("ix_erasure_request_owner_hash", "erasure_request", ["owner_hash"])
    op.create_index("ix_erasure_request_completed_at", "erasure_request", ["completed_at"])
    op.create_table(
        "erasure_ack",
        sa.Column("request_id", sa.String(36), sa.ForeignKey("erasure_request.id"), primary_key=True),
        sa.Column("service", sa.String(32), primary_key=True),
        _ts("acknowledged_at", nullable=True),
        sa.Column("records", sa.Integer, nullable=True),
    )
    _seed(purpose, policy_version)


def _seed(purpose: sa.Table, policy_version: sa.Table) -> None:
    now = datetime.now(UTC)
    seed = json.loads(POLICY_FILE.read_text(encoding="utf-8"))["purposes"]
    op.bulk_insert(purpose, [{"name": name, "current_version": 1, "updated_at": now} for name in seed])
    op.bulk_insert(
        policy_version,
        [
            {
                "purpose": name,
                "version": 1,
                "texts": terms["texts"],
                "data_categories": terms["data_categories"],
                "recipients": terms["recipients"],
                "retention_days": terms["retention_days"],
                "legal_basis": terms["legal_basis"],
                "material": True,
                "published_at": now,
            }
            for name, terms in seed.items()
        ],
    )


def downgrade() -> None:
    for table in (
        "erasure_ack",
        "erasure_request",
        "consent_history",
        "consent",
        "contact_detail",
        "directory",
        "policy_version",
        "purpose",
    ):
        op.drop_table(table)
