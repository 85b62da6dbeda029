"""Outbound webhooks of the check-in service (nudges): subscriptions, delivery queue, attempt log.

Revision ID: checkin_0003
Revises: checkin_0002
"""

from shared.migrations import create_webhook_tables, drop_webhook_tables

revision = "checkin_0003"
down_revision = "checkin_0002"
upgrade, downgrade = create_webhook_tables, drop_webhook_tables
