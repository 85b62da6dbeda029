"""shared.db's unit of work per request: ``SessionDep`` commits before the answer or rolls back, and
``in_worker`` ends it in the endpoint's own thread hop (the dependency then has nothing left to do)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session

import shared.db as db
from shared.db import SessionDep, after_commit, in_worker, make_engine
from shared.errors import Conflict, install_error_handlers


def _insert(session: Session, name: str) -> None:
    session.execute(sa.text("INSERT INTO note (name) VALUES (:name)"), {"name": name})


def _insert_and_fail(session: Session, name: str) -> None:
    _insert(session, name)
    raise Conflict("refused after the write")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'uow.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE note (name TEXT NOT NULL)"))
    yield engine
    engine.dispose()


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The dependency's own thread hops (its commit or rollback in a worker)."""
    calls: list[Any] = []
    real = anyio.to_thread.run_sync

    async def counting(fn: Any, *args: Any, **kw: Any) -> Any:
        if getattr(fn, "__name__", "") == "__exit__":  # the session scope's end, not other hops
            calls.append(fn)
        return await real(fn, *args, **kw)

    monkeypatch.setattr(db.anyio.to_thread, "run_sync", counting)
    return calls


@pytest.fixture
def client(engine: sa.Engine) -> TestClient:
    app = FastAPI()
    install_error_handlers(app)
    app.state.engine = engine
    app.state.committed = []

    @app.post("/sync/{name}")
    def sync_write(name: str, session: SessionDep) -> dict[str, str]:
        _insert(session, name)
        return {"name": name}

    @app.post("/worker/{name}")
    async def worker_write(name: str, session: SessionDep) -> dict[str, str]:
        after_commit(session, lambda: app.state.committed.append(name))
        await in_worker(session, _insert, session, name)
        return {"name": name}

    @app.post("/worker-then-loop/{name}")
    async def worker_then_loop(name: str, session: SessionDep) -> dict[str, str]:
        await in_worker(session, _insert, session, name)
        _insert(session, name + "-after")  # a second transaction: the dependency commits it
        return {"name": name}

    @app.post("/worker-fails/{name}")
    async def worker_fails(name: str, session: SessionDep) -> dict[str, str]:
        await in_worker(session, _insert_and_fail, session, name)
        return {"name": name}

    @app.post("/sync-fails/{name}")
    def sync_fails(name: str, session: SessionDep) -> dict[str, str]:
        _insert_and_fail(session, name)
        return {"name": name}

    @app.get("/untouched")
    async def untouched(session: SessionDep) -> dict[str, bool]:
        return {"ok": True}

    return TestClient(app, raise_server_exceptions=False)


def names(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.execute(sa.text("SELECT name FROM note")).scalars())


def test_a_sync_endpoints_writes_are_committed_by_the_dependency(client: TestClient, engine: sa.Engine, hops):
    assert client.post("/sync/a").status_code == 200
    assert names(engine) == ["a"]
    assert len(hops) == 1  # the commit, in a worker thread


def test_in_worker_commits_in_the_endpoints_hop(client: TestClient, engine: sa.Engine, hops):
    assert client.post("/worker/b").status_code == 200
    assert names(engine) == ["b"]
    assert client.app.state.committed == ["b"]  # after-commit hooks ran (the relay's wake-up)
    assert hops == []  # nothing left for the dependency to do


def test_what_an_endpoint_does_after_in_worker_is_committed_too(client: TestClient, engine: sa.Engine, hops):
    assert client.post("/worker-then-loop/c").status_code == 200
    assert names(engine) == ["c", "c-after"]
    assert len(hops) == 1


@pytest.mark.parametrize("path", ["/worker-fails/d", "/sync-fails/d"])
def test_an_error_rolls_the_unit_of_work_back(client: TestClient, engine: sa.Engine, path: str):
    answer = client.post(path)
    assert answer.status_code == 409, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert names(engine) == []


def test_a_session_never_used_ends_without_a_hop(client: TestClient, hops):
    assert client.get("/untouched").json() == {"ok": True}
    assert hops == []


def test_a_commit_sqlite_refuses_leaves_nothing_open_for_the_next_unit_of_work(tmp_path: Path):
    """SQLite refuses a COMMIT that breaks a deferred foreign key and keeps that transaction open;
    SQLAlchemy takes it as ended. The pooled connection must not carry it into the next unit of
    work (whose COMMIT would then fail again, or write the refused rows along with its own)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'deferred.db'}", pool_size=1)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE tag (name TEXT PRIMARY KEY)"))
        conn.execute(
            sa.text("CREATE TABLE item (name TEXT NOT NULL REFERENCES tag (name) DEFERRABLE INITIALLY DEFERRED)")
        )
        conn.execute(sa.text("INSERT INTO tag (name) VALUES ('a')"))
    try:
        with Session(engine) as session:
            session.execute(sa.text("INSERT INTO item (name) VALUES ('untagged')"))
            with pytest.raises(sa.exc.IntegrityError):
                session.commit()
        with Session(engine) as session:  # the same pooled connection
            session.execute(sa.text("INSERT INTO item (name) VALUES ('a')"))
            session.commit()
        with engine.connect() as conn:
            assert [r[0] for r in conn.execute(sa.text("SELECT name FROM item"))] == ["a"]
    finally:
        engine.dispose()
