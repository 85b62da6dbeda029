"""Parked outbox rows of the recommender service (shared.bus.parking).

Revision ID: recommender_outbox_dead
Revises: recommender_0001
"""

from shared.migrations import create_outbox_dead_table, drop_outbox_dead_table

revision = "recommender_outbox_dead"
down_revision = "recommender_0001"
upgrade, downgrade = create_outbox_dead_table, drop_outbox_dead_table
