"""Database engines, migrations and the unit-of-work session dependency.

Each service owns one database (SQLite in WAL mode by default, PostgreSQL in production) whose
schema is created by that service's Alembic migrations. Request handlers receive a
:data:`SessionDep`; the dependency commits after the endpoint returns and *before* the response is
sent (FastAPI ``scope="function"``), or rolls back on any error, which also drops the events the
request staged in the outbox. Services never commit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio
import anyio.to_thread
from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine

# Hooks run after a session commits that staged events (the outbox relay's wake-up call).
AFTER_COMMIT_KEY = "kinwell_after_commit"


def normalise_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and use the psycopg 3 driver for them."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """An engine tuned for the backend: WAL and a busy timeout on SQLite (and no transaction left
    open on a pooled connection), pre-ping on PostgreSQL."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=pool_size,
            max_overflow=pool_size,
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            # Deleted content is overwritten with zeros, so an erased row cannot be carved from
            # free pages (the WAL is emptied after an erasure: shared.shredding).
            cur.execute("PRAGMA secure_delete=ON")
            cur.close()

        @event.listens_for(engine, "reset")
        def _end_refused_commit(dbapi_conn: Any, _record: Any, _state: Any) -> None:
            # A COMMIT that SQLite refuses (a deferred foreign key) leaves its transaction open,
            # but SQLAlchemy takes it as ended and skips the rollback on return to the pool: the
            # next unit of work would run inside it (and a writer's BEGIN IMMEDIATE would fail).
            if dbapi_conn.in_transaction:
                dbapi_conn.rollback()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=pool_size)


def after_commit(session: Session, hook: Callable[[], None]) -> None:
    """Run ``hook`` once this session's current transaction has committed (never on rollback)."""
    hooks: list[Callable[[], None]] = session.info.setdefault(AFTER_COMMIT_KEY, [])
    if hook not in hooks:
        hooks.append(hook)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    for hook in session.info.pop(AFTER_COMMIT_KEY, []):
        hook()


@event.listens_for(Session, "after_rollback")
def _drop_after_commit(session: Session) -> None:
    session.info.pop(AFTER_COMMIT_KEY, None)


def run_migrations(url: str, script_location: Path) -> None:
    """Upgrade the database at ``url`` to the newest revision of a service's migrations."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, "head")


class SchemaBehind(RuntimeError):
    """The database is not at the newest migration and this process may not migrate it."""


def require_migrated(url: str, script_location: Path, service: str) -> None:
    """Raise :class:`SchemaBehind` unless the database at ``url`` is at the migrations' head.

    Used when migrations run as their own step (``kinwell migrate``, the Kubernetes Job): a
    replica of a newer version must not serve on an older schema.
    """
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy.pool import NullPool

    heads = set(ScriptDirectory(str(script_location)).get_heads())
    engine = create_engine(normalise_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            current = set(MigrationContext.configure(conn).get_current_heads())
    finally:
        engine.dispose()
    if current != heads:
        raise SchemaBehind(f"{service}: the database schema is not the newest; run `kinwell migrate {service}`")


def session_scope(engine: Engine) -> Iterator[Session]:
    """A unit of work: commit when the block finishes, roll back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


async def _get_session(request: Request) -> AsyncIterator[Session]:
    """:func:`session_scope` as a dependency. Making the session does no I/O (it connects at its
    first statement), so it is made on the event loop; the commit or rollback runs in a worker
    thread, shielded from cancellation and not waiting for the pool's capacity, as FastAPI runs
    the exit of a sync dependency. One thread hop per request instead of two, and none on the way
    out when the unit of work has already ended (:func:`in_worker`) or never began: a session
    with no transaction holds no connection and nothing to flush, so its exit does no I/O."""
    scope = contextmanager(session_scope)(request.app.state.engine)
    session = scope.__enter__()
    limiter = anyio.CapacityLimiter(1)
    try:
        yield session
    except BaseException as exc:
        if not session.in_transaction():
            scope.__exit__(type(exc), exc, exc.__traceback__)
            raise
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(scope.__exit__, type(exc), exc, exc.__traceback__, limiter=limiter)
        raise
    if not session.in_transaction():
        scope.__exit__(None, None, None)
        return
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(scope.__exit__, None, None, None, limiter=limiter)


SessionDep = Annotated[Session, Depends(_get_session, scope="function")]

T = TypeVar("T")


async def in_worker(session: Session, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)``, an async endpoint's database work on its :data:`SessionDep` session,
    in a worker thread, and end the unit of work in the same thread: commit when ``fn`` returns,
    roll back when it raises (as the dependency would, still before the response is sent). The
    dependency then has nothing left to do on the event loop: one thread hop per request instead
    of two (~95 µs CPU in process, bench_recommender). A sync endpoint needs no such call."""

    def work() -> T:
        try:
            result = fn(*args)
        except BaseException:
            session.rollback()
            raise
        session.commit()
        return result

    return await run_in_threadpool(work)
