"""What the consent service keeps from its HRIS (created by ``migrations/versions/0003_hris.py``).

Only what the platform needs, keyed by pseudonym: the org tree (ids, parents, state), each
subject's org unit with its effective date, and role family, country and language so that a later
``personalization`` grant can publish a profile. No employee id, name, e-mail, manager or unit
name is stored; the employee id exists only sealed in ``directory``, for subjects who used Kinwell.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlmodel import Field, SQLModel

from services.consent.clock import utc_column


class HrisWebhookReceipt(SQLModel, table=True):
    """A processed inbound webhook id (the idempotency key), kept for the retention period."""

    __tablename__ = "hris_webhook"

    webhook_id: str = Field(primary_key=True, max_length=128)
    vendor: str = Field(max_length=16)
    events: int
    received_at: datetime = utc_column()


class HrisOrgUnit(SQLModel, table=True):
    """One org unit: its parent (None: a root) and whether it is ``active`` or ``closed``."""

    __tablename__ = "hris_org_unit"

    org_unit: str = Field(primary_key=True, max_length=64)
    parent: str | None = Field(default=None, max_length=64)
    state: str = Field(max_length=8)
    effective_from: date
    # HMAC(manager_scope_key, tenant|manager's employee id): never the employee id itself.
    manager_ref: str | None = Field(default=None, max_length=64, index=True)
    updated_at: datetime = utc_column()


class HrisSubject(SQLModel, table=True):
    """A subject as the HRIS describes it; ``left_on`` is set once they left (profile cleared)."""

    __tablename__ = "hris_subject"

    pseudonym: str = Field(primary_key=True, max_length=64)
    org_unit: str | None = Field(default=None, max_length=64, index=True)
    effective_from: date | None = None
    role_family: str | None = Field(default=None, max_length=48)
    country: str | None = Field(default=None, max_length=2)
    language: str | None = Field(default=None, max_length=8)
    left_on: date | None = None
    updated_at: datetime = utc_column()


class HrisTrigger(SQLModel, table=True):
    """A known trigger, by id, with a digest of what was announced (a repeat publishes nothing)."""

    __tablename__ = "hris_trigger"

    trigger_id: str = Field(primary_key=True, max_length=64)
    digest: str = Field(max_length=64)
    updated_at: datetime = utc_column()
