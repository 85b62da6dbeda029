"""shared.shredding: erased rows leave no bytes in SQLite files; PostgreSQL vacuums once no snapshot sees them."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import Session

from shared.db import make_engine
from shared.shredding import _pending, scrub_after_commit, scrub_pending
from tests.dbfixtures import PG_URL


def _table(engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE secret_row (id TEXT PRIMARY KEY, value TEXT NOT NULL)"))


def _erase(engine, marker: str) -> None:
    with Session(engine) as session:
        session.execute(text("DELETE FROM secret_row WHERE value = :v"), {"v": marker})
        scrub_after_commit(session, ("secret_row",))
        session.commit()


@pytest.mark.skipif(bool(PG_URL), reason="SQLite files")
def test_sqlite_erasure_zeroes_the_row_and_empties_the_wal(tmp_path: Path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA secure_delete")).scalar_one() == 1
        assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
    _table(engine)
    marker = f"carve-me-{uuid.uuid4().hex}"
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO secret_row VALUES ('a', :v), ('b', 'other')"), {"v": marker})
    assert any(marker.encode() in p.read_bytes() for p in tmp_path.iterdir())  # the carver's view
    _erase(engine, marker)
    assert (tmp_path / "x.db-wal").stat().st_size == 0
    assert not [p.name for p in tmp_path.iterdir() if marker.encode() in p.read_bytes()]
    engine.dispose()


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL horizon")
def test_postgres_scrub_waits_for_older_snapshots_then_rewrites_the_table(make_own_db_url):
    engine = make_engine(make_own_db_url("shred"))
    _table(engine)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO secret_row VALUES ('a', 'x')"))
    filenode = "SELECT pg_relation_filenode('secret_row')"
    with engine.connect() as conn:
        before = conn.execute(text(filenode)).scalar_one()
    reader = engine.connect()
    reader.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
    reader.execute(text("SELECT count(*) FROM secret_row")).scalar_one()  # a snapshot that sees the row
    _erase(engine, "x")
    assert scrub_pending(engine) == 0  # the row is still visible to that snapshot: nothing dropped yet
    assert "secret_row" in _pending(engine).tables
    reader.rollback()
    reader.close()
    assert scrub_pending(engine) == 1
    assert "secret_row" not in _pending(engine).tables
    with engine.connect() as conn:
        assert conn.execute(text(filenode)).scalar_one() != before  # rewritten; the old file unlinked
    engine.dispose()
