"""Platform tables of the escalation service: outbox, idempotency records, audit log.

Revision ID: escalation_0001
Revises:
"""

from shared.migrations import create_platform_tables, irreversible

revision = "escalation_0001"
down_revision = None
upgrade, downgrade = create_platform_tables, irreversible
