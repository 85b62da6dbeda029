"""Parked outbox rows of the checkin service (shared.bus.parking).

Revision ID: checkin_outbox_dead
Revises: checkin_0004
"""

from shared.migrations import create_outbox_dead_table, drop_outbox_dead_table

revision = "checkin_outbox_dead"
down_revision = "checkin_0004"
upgrade, downgrade = create_outbox_dead_table, drop_outbox_dead_table
