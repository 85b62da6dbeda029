"""Platform tables of the aggregator service: outbox, idempotency records, audit log.

Revision ID: aggregator_0001
Revises:
"""

from shared.migrations import create_platform_tables, irreversible

revision = "aggregator_0001"
down_revision = None
upgrade, downgrade = create_platform_tables, irreversible
