"""Every recommender table that names a person is covered by erasure (export: the system tests).

Reflects the migrated schema, so a new table with a ``pseudonym`` column that ``subjects.erase``
does not reach fails here without anyone remembering to add it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session

from services.recommender import subjects
from shared.db import make_engine, run_migrations

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "recommender" / "migrations"
PSEUDONYM = "a" * 64


def _value(column: sa.Column, n: int) -> object:
    if column.name == "pseudonym":
        return PSEUDONYM
    kind = column.type
    if isinstance(kind, sa.JSON):
        return {}
    if isinstance(kind, sa.DateTime):
        return datetime.now(UTC)
    if isinstance(kind, sa.Date):
        return datetime.now(UTC).date()
    if isinstance(kind, sa.Integer):
        return n
    if isinstance(kind, sa.Float):
        return 1.0
    if isinstance(kind, sa.Boolean):
        return False
    return f"v{n}"


def test_erasure_reaches_every_table_with_a_subject(db_url):
    run_migrations(db_url, MIGRATIONS)
    engine = make_engine(db_url)
    metadata = sa.MetaData()
    metadata.reflect(engine)
    personal = [t for t in metadata.sorted_tables if "pseudonym" in t.columns]
    assert {t.name for t in personal} >= {"preference", "interaction", "declared_attribute"}
    with engine.begin() as conn:
        for table in personal:
            conn.execute(table.insert().values({c.name: _value(c, i) for i, c in enumerate(table.columns)}))
    with Session(engine) as session:
        removed = subjects.erase(session, PSEUDONYM)
        session.commit()
    assert removed == len(personal)
    with engine.connect() as conn:
        for table in personal:
            left = conn.execute(sa.select(sa.func.count()).select_from(table).where(table.c.pseudonym == PSEUDONYM))
            assert left.scalar_one() == 0, table.name
