"""Throwaway databases: a SQLite file per test, or a PostgreSQL schema per test.

Set ``KINWELL_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test`` to run the suite on
PostgreSQL: each database a test asks for becomes its own schema (selected through the
connection's ``search_path``), dropped when the test ends.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest

PG_URL = os.environ.get("KINWELL_TEST_DATABASE_URL", "")


def _pg_admin() -> object:
    import psycopg

    return psycopg.connect(PG_URL.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)


@contextmanager
def db_urls(folder: Path) -> Iterator[Callable[[str], str]]:
    """``make(name)`` -> a URL to an empty database of its own: a SQLite file in ``folder``, or
    a PostgreSQL schema when KINWELL_TEST_DATABASE_URL is set (dropped on exit)."""
    schemas: list[str] = []

    def make(name: str) -> str:
        if not PG_URL:
            return f"sqlite:///{folder / (name + '-' + uuid.uuid4().hex[:8] + '.db')}"
        schema = f"t_{name}_{uuid.uuid4().hex[:12]}"
        with _pg_admin() as conn:  # type: ignore[attr-defined]
            conn.execute(f'CREATE SCHEMA "{schema}"')
        schemas.append(schema)
        sep = "&" if "?" in PG_URL else "?"
        return f"{PG_URL}{sep}options={quote('-csearch_path=' + schema)}"

    try:
        yield make
    finally:
        if schemas:
            with _pg_admin() as conn:  # type: ignore[attr-defined]
                for schema in schemas:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def make_db_url(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """``make_db_url("consent")`` -> a URL to an empty database of its own."""
    with db_urls(tmp_path) as make:
        yield make


@pytest.fixture
def db_url(make_db_url: Callable[[str], str]) -> str:
    return make_db_url("db")


@pytest.fixture
def make_own_db_url(make_db_url: Callable[[str], str]) -> Iterator[Callable[[str], str]]:
    """Like ``make_db_url``, but on PostgreSQL a whole database of the test's own (dropped on exit):
    for what depends on every session of a database, such as what VACUUM may remove, when other
    suites share the test database."""
    if not PG_URL:
        yield make_db_url
        return
    made: list[str] = []

    def make(name: str) -> str:
        made.append(f"t_{name}_{uuid.uuid4().hex[:10]}")
        with _pg_admin() as conn:  # type: ignore[attr-defined]
            conn.execute(f'CREATE DATABASE "{made[-1]}"')
        base, _, query = PG_URL.partition("?")
        return base.rsplit("/", 1)[0] + "/" + made[-1] + (f"?{query}" if query else "")

    try:
        yield make
    finally:
        with _pg_admin() as conn:  # type: ignore[attr-defined]
            for name in made:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
