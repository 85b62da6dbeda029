"""Outbound webhooks of the escalation service: subscriptions, the delivery queue, the attempt log.

Revision ID: escalation_0002
Revises: escalation_0001
"""

from shared.migrations import create_webhook_tables, drop_webhook_tables

revision = "escalation_0002"
down_revision = "escalation_0001"
upgrade, downgrade = create_webhook_tables, drop_webhook_tables
