"""Alembic helpers shared by every service's ``migrations/`` folder.

Each service runs its own migrations against its own database. The platform tables every service
has (outbox, idempotency records, audit log) are created by :func:`create_platform_tables`, which
each service's first revision calls, so their shape is written once. A revision that only adds
tables shared by several services takes the pair as its own::

    upgrade, downgrade = create_outbox_dead_table, drop_outbox_dead_table
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op


def _outbox_message_columns() -> list[sa.Column]:
    """What an outbox row and a parked one both hold: the message as it was staged."""
    return [
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("msg_id", sa.String(100), nullable=False, unique=True),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("headers", sa.String, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    ]


def create_platform_tables() -> None:
    """Outbox, consumer idempotency records, and the hash-chained audit log (schema v1)."""
    op.create_table(
        "outbox",
        *_outbox_message_columns(),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "processed_event",
        sa.Column("consumer", sa.String(120), primary_key=True),
        sa.Column("event_id", sa.String(100), primary_key=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("actor_role", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(128), nullable=False, index=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )


def create_outbox_dead_table() -> None:
    """Parked outbox rows (``shared.bus.parking``): what JetStream would not take, moved aside."""
    op.create_table(
        "outbox_dead",
        *_outbox_message_columns(),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("parked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
    )


def drop_outbox_dead_table() -> None:
    op.drop_table("outbox_dead")


def irreversible() -> None:
    """The downgrade of a service's first revision: there is nothing before it to go back to."""
    raise NotImplementedError("the first revision is not reversible")


def create_data_key_table() -> None:
    """Subjects' wrapped data keys (``shared.datakeys.DataKey``), for a service that encrypts
    personal data at rest; its ciphertext tables reference ``data_key.key_id``."""
    op.create_table(
        "data_key",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("pseudonym", sa.String(64), nullable=False, unique=True),
        sa.Column("kek_id", sa.String(64), nullable=False),
        sa.Column("wrapped", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rewrapped_at", sa.DateTime(timezone=True), nullable=True),
    )


def create_release_budget_table() -> None:
    """The privacy-budget ledger of ``shared.release.ledger`` (zCDP rho per scope, unit, period),
    for every service that releases noised figures (aggregator, consent statistics, recommender)."""
    op.create_table(
        "release_budget",
        sa.Column("scope", sa.String(64), primary_key=True),
        sa.Column("unit", sa.String(64), primary_key=True),
        sa.Column("period", sa.String(16), primary_key=True),
        sa.Column("rho_spent", sa.Float, nullable=False),
    )


def create_webhook_tables() -> None:
    """Outbound webhooks (schema v1): subscriptions, the delivery queue, the attempt log.

    Additive: a service that sends webhooks calls it from one of its own revisions. The shape
    mirrors :mod:`shared.webhooks.models`.
    """
    op.create_table(
        "webhook_subscription",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("event_types", sa.Text, nullable=False),
        sa.Column("secret_ciphertext", sa.String(512), nullable=False),
        sa.Column("description", sa.String(200), nullable=True),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("disabled_reason", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "webhook_delivery",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "subscription_id",
            sa.String(40),
            sa.ForeignKey("webhook_subscription.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("event_type", sa.String(120), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("subject", sa.String(128), nullable=True, index=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claim_token", sa.String(40), nullable=True),
        sa.Column("last_status_code", sa.Integer, nullable=True),
        sa.Column("last_error", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_webhook_delivery_due", "webhook_delivery", ["status", "next_attempt_at"])
    op.create_table(
        "webhook_attempt",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "delivery_id",
            sa.String(40),
            sa.ForeignKey("webhook_delivery.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("error_type", sa.String(64), nullable=True),
        sa.Column("duration_ms", sa.Float, nullable=False),
    )


def drop_webhook_tables() -> None:
    for table in ("webhook_attempt", "webhook_delivery", "webhook_subscription"):
        op.drop_table(table)


def run_env() -> None:
    """The body of every service's ``migrations/env.py`` (online mode only)."""
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url is set by shared.db.run_migrations"
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=None, render_as_batch=True)
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # Replicas (and the migration Job) may upgrade at the same moment: the second
                # waits here, then finds the database at head and does nothing.
                connection.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('kinwell-migrations'))"))
            context.run_migrations()
    engine.dispose()
