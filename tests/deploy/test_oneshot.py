"""The image's one-shot commands: `kinwell migrate <service>`, `kinwell nats provision`, and the
container health check `kinwell healthcheck`; services that must not migrate refuse a stale schema."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from services.recommender.app import create_app
from services.recommender.config import RecommenderSettings
from shared.cli import main
from shared.db import SchemaBehind, require_migrated
from shared.natsserver import NatsServer
from shared.settings import PlatformSettings
from tests.dbfixtures import PG_URL
from tests.integrations.loopback import Receiver

ROOT = Path(__file__).resolve().parents[2]


def migrations(service: str) -> Path:
    return ROOT / "services" / service / "migrations"


def test_migrate_brings_a_service_database_to_the_newest_schema(
    make_db_url: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
):
    url = make_db_url("checkin")
    with pytest.raises(SchemaBehind, match="run `kinwell migrate checkin`"):
        require_migrated(url, migrations("checkin"), "checkin")
    monkeypatch.setenv("KINWELL_CHECKIN_DATABASE_URL", url)
    assert main(["migrate", "checkin"]) == 0
    require_migrated(url, migrations("checkin"), "checkin")
    assert main(["migrate", "checkin"]) == 0  # again: nothing to do


def test_migrate_names_the_url_it_needs(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    monkeypatch.delenv("KINWELL_CONSENT_DATABASE_URL", raising=False)
    assert main(["migrate", "consent"]) == 2
    assert "KINWELL_CONSENT_DATABASE_URL" in capsys.readouterr().err


def test_a_service_that_may_not_migrate_refuses_an_old_schema(make_db_url: Callable[[str], str], tmp_path: Path):
    platform = PlatformSettings(mode="embedded", data_dir=tmp_path)
    settings = RecommenderSettings(
        database_url=make_db_url("recommender"), migrate_on_start=False, nats_password="unused", platform=platform
    )
    app = create_app(settings)

    async def start() -> None:
        async with app.router.lifespan_context(app):
            pass

    with pytest.raises(SchemaBehind, match="recommender"):
        asyncio.run(start())


@pytest.mark.skipif(not PG_URL, reason="advisory lock: PostgreSQL only (KINWELL_TEST_DATABASE_URL)")
def test_replicas_migrating_at_the_same_moment_all_succeed(make_db_url: Callable[[str], str]):
    # Separate processes, as replicas and the Job are (alembic's context is per process).
    url = make_db_url("consent")
    env = {**os.environ, "KINWELL_CONSENT_DATABASE_URL": url}
    cmd = [sys.executable, "-m", "shared.cli", "migrate", "consent"]
    pipe = subprocess.PIPE
    procs = [subprocess.Popen(cmd, env=env, stdout=pipe, stderr=pipe, text=True) for _ in range(3)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-500:] for _, err in results]
    require_migrated(url, migrations("consent"), "consent")


def test_provision_needs_only_the_ops_password_and_sets_replicas(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    for var in ("KINWELL_PSEUDONYM_KEY", "KINWELL_MASTER_KEY", "KINWELL_NATS_OPS_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KINWELL_MODE", "production")
    monkeypatch.setenv("KINWELL_NATS_URL", nats_server.url)
    assert main(["nats", "provision"]) == 2
    assert "KINWELL_NATS_OPS_PASSWORD" in capsys.readouterr().err
    monkeypatch.setenv("KINWELL_NATS_OPS_PASSWORD", nats_server.passwords["ops"])
    assert main(["nats", "provision"]) == 0
    assert "KV_consent" in capsys.readouterr().out


def test_healthcheck_exits_zero_only_on_200():
    receiver = Receiver().start()
    try:
        ok = receiver.script("/readyz", then=200)
        down = receiver.script("/down", then=503)
        assert main(["healthcheck", ok]) == 0
        assert main(["healthcheck", down]) == 1
        assert main(["healthcheck", "http://127.0.0.1:9/none", "--timeout", "1"]) == 1
    finally:
        receiver.stop()
