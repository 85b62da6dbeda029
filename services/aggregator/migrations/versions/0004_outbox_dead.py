"""Parked outbox rows of the aggregator service (shared.bus.parking).

Revision ID: aggregator_outbox_dead
Revises: aggregator_0003
"""

from shared.migrations import create_outbox_dead_table, drop_outbox_dead_table

revision = "aggregator_outbox_dead"
down_revision = "aggregator_0003"
upgrade, downgrade = create_outbox_dead_table, drop_outbox_dead_table
