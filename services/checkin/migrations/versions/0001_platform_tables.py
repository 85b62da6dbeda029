"""Platform tables of the checkin service: outbox, idempotency records, audit log.

Revision ID: checkin_0001
Revises:
"""

from shared.migrations import create_platform_tables, irreversible

revision = "checkin_0001"
down_revision = None
upgrade, downgrade = create_platform_tables, irreversible
