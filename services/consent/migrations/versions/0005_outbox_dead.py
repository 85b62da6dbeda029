"""Parked outbox rows of the consent service (shared.bus.parking).

Revision ID: consent_outbox_dead
Revises: consent_0004
"""

from shared.migrations import create_outbox_dead_table, drop_outbox_dead_table

revision = "consent_outbox_dead"
down_revision = "consent_0004"
upgrade, downgrade = create_outbox_dead_table, drop_outbox_dead_table
