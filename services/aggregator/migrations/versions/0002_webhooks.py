"""Outbound webhooks of the aggregator service: subscriptions, the delivery queue, the attempt log.

Revision ID: aggregator_0002
Revises: aggregator_0001
"""

from shared.migrations import create_webhook_tables, drop_webhook_tables

revision = "aggregator_0002"
down_revision = "aggregator_0001"
upgrade, downgrade = create_webhook_tables, drop_webhook_tables
