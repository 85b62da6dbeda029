"""The org tree with effective dates, known triggers, and which units a manager may see."""

from __future__ import annotations

from datetime import date

from sqlmodel import Field, SQLModel


class OrgUnitVersion(SQLModel, table=True):
    """``org_unit`` is under ``parent`` (or closed) from ``effective_from`` on."""

    __tablename__ = "org_unit_version"

    org_unit: str = Field(primary_key=True, max_length=64)
    effective_from: date = Field(primary_key=True)
    parent: str | None = Field(default=None, max_length=64)
    state: str = Field(max_length=8)


class Trigger(SQLModel, table=True):
    __tablename__ = "org_trigger"

    trigger_id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=32)
    org_units: str = Field(max_length=33000)  # comma-separated unit ids
    starts_on: date
    ends_on: date | None = None
    label: str | None = Field(default=None, max_length=80)


class ManagerScope(SQLModel, table=True):
    """A manager (by a keyed reference, never an employee id) sees these units' subtrees."""

    __tablename__ = "manager_scope"

    manager_ref: str = Field(primary_key=True, max_length=64)
    org_unit: str = Field(primary_key=True, max_length=64)
