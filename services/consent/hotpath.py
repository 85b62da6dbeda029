"""The consent change's hot statements: compiled once, run on the driver's cursor.

A grant or withdrawal runs a handful of tiny statements; SQLAlchemy's per-execution work costs
more than SQLite takes to run them, so the repositories run these few through :func:`prepared`
on the connection :func:`connection` looks up once per transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

from sqlalchemy.engine import Connection, Dialect
from sqlmodel import Session

_CONNECTION = "consent_repository_connection"


def connection(session: Session) -> Connection:
    """The session's connection, looked up once per (nested) transaction: ``Session.connection()``
    costs about as much as a small statement, and a consent change runs several. Per nested
    transaction, because the ORM emits a SAVEPOINT only when a connection is asked for in it."""
    transaction = session.get_nested_transaction() or session.get_transaction()
    cached = session.info.get(_CONNECTION)
    if cached is not None and cached[0] is transaction:
        return cast(Connection, cached[1])
    conn = session.connection()
    session.info[_CONNECTION] = (session.get_nested_transaction() or session.get_transaction(), conn)
    return conn


class Prepared:
    """A hot statement compiled once per dialect and run on the driver's cursor, with the column
    types' own bind processors: SQLAlchemy's per-execution work (~35 us a statement here) costs
    three times what SQLite takes to run it, and a consent change runs four of them."""

    def __init__(self, stmt: Any, dialect: Dialect, keys: Iterable[str]) -> None:
        compiled = stmt.compile(dialect=dialect, column_keys=sorted(keys))
        self.sql = compiled.string
        self.names = list(compiled.positiontup) if compiled.positiontup is not None else None
        self.processors = {}
        for name, bind in compiled.binds.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self.processors[name] = processor

    def one(self, conn: Connection, values: Mapping[str, Any]) -> Any:
        """Run it; the first row (a DB-API tuple) or None."""
        processed = {k: (self.processors[k](v) if k in self.processors else v) for k, v in values.items()}
        params: Any = [processed[n] for n in self.names] if self.names is not None else processed
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(self.sql, params)
            return cursor.fetchone() if cursor.description is not None else None
        finally:
            cursor.close()


_PREPARED: dict[tuple[str, str, tuple[str, ...]], Prepared] = {}


def prepared(conn: Connection, name: str, stmt: Any, keys: Iterable[str]) -> Prepared:
    key = (conn.dialect.name, name, tuple(keys))
    prepared = _PREPARED.get(key)
    if prepared is None:
        prepared = _PREPARED[key] = Prepared(stmt, conn.dialect, key[2])
    return prepared
