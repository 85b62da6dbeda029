"""Parked outbox rows of the escalation service (shared.bus.parking).

Revision ID: escalation_outbox_dead
Revises: escalation_0003
"""

from shared.migrations import create_outbox_dead_table, drop_outbox_dead_table

revision = "escalation_outbox_dead"
down_revision = "escalation_0003"
upgrade, downgrade = create_outbox_dead_table, drop_outbox_dead_table
