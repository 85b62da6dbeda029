"""Platform tables of the consent service: outbox, idempotency records, audit log.

Revision ID: consent_0001
Revises:
"""

from shared.migrations import create_platform_tables, irreversible

revision = "consent_0001"
down_revision = None
upgrade, downgrade = create_platform_tables, irreversible
