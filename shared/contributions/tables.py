"""The three tables of a contribution producer, one set per service database.

Services share one SQLAlchemy metadata (every table class of the code base registers in it), so
each producer names its own tables; the shape is written once here, and once for migrations
(:func:`create_tables`, :func:`create_org_unit_table`).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from alembic import op
from sqlmodel import SQLModel


def _assignments(name: str, metadata: sa.MetaData) -> sa.Table:
    """From ``effective_from`` on, the subject belongs to ``org_unit`` (None: left the organisation)."""
    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("pseudonym", sa.String(64), nullable=False, index=True),
        sa.Column("org_unit", sa.String(64), nullable=True),
        sa.Column("effective_from", sa.Date, nullable=False),
        sa.UniqueConstraint("pseudonym", "effective_from"),
    )


def _pending(name: str, metadata: sa.MetaData) -> sa.Table:
    """A contribution (or retraction) waiting for the next shuffled batch release."""
    return sa.Table(
        name,
        metadata,
        sa.Column("msg_id", sa.String(100), primary_key=True),
        sa.Column("period_token", sa.String(64), nullable=True, index=True),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
    )


def _org_units(name: str, metadata: sa.MetaData) -> sa.Table:
    """The latest known state of each org unit: its parent while active (for the roll-up)."""
    return sa.Table(
        name,
        metadata,
        sa.Column("org_unit", sa.String(64), primary_key=True),
        sa.Column("parent", sa.String(64), nullable=True),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("effective_from", sa.Date, nullable=False),
    )


@dataclass(frozen=True)
class ContributionTables:
    assignments: sa.Table
    pending: sa.Table
    org_units: sa.Table

    @classmethod
    def named(cls, assignments: str, pending: str, org_units: str) -> ContributionTables:
        metadata = SQLModel.metadata
        return cls(_assignments(assignments, metadata), _pending(pending, metadata), _org_units(org_units, metadata))


# --- migrations (called from a service's Alembic revision) ----------------------------------------


def _create(table: sa.Table) -> None:
    table.create(op.get_bind())  # with its indexes; the shape above is the one definition


def create_tables(assignments: str, pending: str, org_units: str) -> None:
    """All three tables, for a producer that had none."""
    metadata = sa.MetaData()
    for table in (_assignments(assignments, metadata), _pending(pending, metadata), _org_units(org_units, metadata)):
        _create(table)


def create_assignments_table(name: str) -> None:
    """The subjects' org units only, for a producer that wrote them before the other two."""
    _create(_assignments(name, sa.MetaData()))


def create_org_unit_table(name: str) -> None:
    """The org tree only, for a producer that already had the other two."""
    _create(_org_units(name, sa.MetaData()))
