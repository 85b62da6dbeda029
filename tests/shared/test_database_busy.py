"""An exhausted connection pool or an unreachable database is a 503 to retry, never a 500.

Seen in bench_recommender: past capacity, requests waited 30 s for a pooled connection and were
answered 500 ("QueuePool limit ... reached"). The request kept nothing, so the client may resend it.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from shared.errors import install_error_handlers


def _app(engine: sa.Engine) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/read")
    def read() -> dict[str, int]:
        with engine.connect() as conn:
            return {"one": conn.execute(sa.text("SELECT 1")).scalar_one()}

    return app


def test_a_request_that_finds_every_pooled_connection_busy_is_a_503_with_retry_after(tmp_path: Path) -> None:
    engine = sa.create_engine(
        f"sqlite:///{tmp_path / 'busy.db'}", poolclass=sa.QueuePool, pool_size=1, max_overflow=0, pool_timeout=0.2
    )
    client = TestClient(_app(engine), raise_server_exceptions=False)
    assert client.get("/read").json() == {"one": 1}
    held = engine.connect()  # the only connection: the next request times out waiting for it
    try:
        busy = client.get("/read")
    finally:
        held.close()
    assert busy.status_code == 503, busy.text
    assert busy.headers["content-type"] == "application/problem+json"
    assert busy.headers["retry-after"] == "1"
    assert busy.json()["type"].endswith("database-unavailable")
    assert "QueuePool" not in busy.text  # no driver text reaches the client
    assert client.get("/read").status_code == 200  # and it serves again once a connection is free


def test_an_unreachable_database_is_a_503(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'missing' / 'nowhere.db'}")  # its folder does not exist
    answer = TestClient(_app(engine), raise_server_exceptions=False).get("/read")
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
