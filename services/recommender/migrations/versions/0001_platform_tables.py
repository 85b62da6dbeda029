"""Platform tables of the recommender service: outbox, idempotency records, audit log.

Revision ID: recommender_0001
Revises:
"""

from shared.migrations import create_platform_tables, irreversible

revision = "recommender_0001"
down_revision = None
upgrade, downgrade = create_platform_tables, irreversible
