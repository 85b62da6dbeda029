"""`kinwell keys rotate | rewrap | status` as an operator runs them (embedded and production)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import Session

from shared.cli import main as kinwell
from shared.crypto import key_id_of
from shared.datakeys import DataKey, DataKeyStore, MasterKeys
from shared.db import make_engine, run_migrations
from shared.keyrotation import next_key_id, sealed_columns
from shared.settings import PlatformSettings
from shared.topology import SERVICE_SECRETS

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "checkin" / "migrations"


def test_next_key_id_counts_up_and_never_reuses_an_id():
    assert next_key_id("k1", {"k1"}) == "k2"
    assert next_key_id("k9", {"k9", "k10"}) == "k11"
    assert next_key_id("prod", {"prod"}) == "prod2"


def test_every_sealed_column_uses_a_keyring_its_service_holds():
    for service, held in SERVICE_SECRETS.items():
        for column in sealed_columns(service):
            assert column.keyring in held, (service, column.name)
    assert {c.name for c in sealed_columns("aggregator")} == {"webhook_subscription.secret_ciphertext"}


def test_embedded_rotate_then_rewrap_moves_the_data_keys_to_the_new_key(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KINWELL_DATA_DIR", str(tmp_path))
    for var in ("KINWELL_MASTER_KEY", "KINWELL_MASTER_KEY_ID", "KINWELL_OLD_MASTER_KEYS"):
        monkeypatch.delenv(var, raising=False)
    url = f"sqlite:///{tmp_path / 'checkin.db'}"
    monkeypatch.setenv("KINWELL_CHECKIN_DATABASE_URL", url)
    before = PlatformSettings()
    run_migrations(url, MIGRATIONS)
    engine = make_engine(url)
    key = DataKeyStore(MasterKeys.from_settings(before)).get_or_create(engine, "a" * 64)
    sealed = key.seal(b"note", "t", "r", "f")

    assert kinwell(["keys", "rotate", "--keyring", "master_key"]) == 0
    rotated = PlatformSettings()  # what a restarted service reads from dev-secrets.json
    assert (rotated.master_key_id, set(rotated.old_master_keys)) == ("k2", {"k1"})
    assert rotated.secret("master_key") != before.secret("master_key")
    assert before.master_key is not None and rotated.old_master_keys["k1"] == before.master_key

    assert kinwell(["keys", "status", "--service", "checkin"]) == 1  # the old key is still needed
    assert "data_key.wrapped: 1 stale" in capsys.readouterr().out
    assert kinwell(["keys", "rewrap", "--service", "checkin"]) == 0
    assert kinwell(["keys", "status", "--service", "checkin"]) == 0
    assert "data_key.wrapped: 0 stale" in capsys.readouterr().out
    with Session(engine) as session:
        row = session.get(DataKey, key.key_id)
        assert row is not None and row.kek_id == "k2" and key_id_of(row.wrapped) == "k2"
        only_new = MasterKeys("k2", {"k2": rotated.secret("master_key")})
        assert DataKeyStore(only_new).require(session, "a" * 64).open(sealed, "t", "r", "f") == b"note"
    engine.dispose()


def test_production_rotate_prints_the_new_settings_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KINWELL_MODE", "production")
    monkeypatch.setenv("KINWELL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("KINWELL_DEV_TOKEN_ISSUER", "false")
    monkeypatch.setenv("KINWELL_JWT_ALGORITHMS", '["RS256"]')
    monkeypatch.setenv("KINWELL_JWKS_JSON", '{"keys": []}')
    monkeypatch.setenv("KINWELL_WEBHOOK_KEY", "w" * 40)
    monkeypatch.setenv("KINWELL_WEBHOOK_KEY_ID", "w1")
    assert kinwell(["keys", "rotate", "--keyring", "webhook_key"]) == 0
    out = capsys.readouterr().out
    assert "KINWELL_WEBHOOK_KEY_ID=w2" in out
    retired = json.loads(out.split("KINWELL_OLD_WEBHOOK_KEYS='", 1)[1].split("'", 1)[0])
    assert retired == {"w1": "w" * 40}
    assert "restart checkin, aggregator, escalation" in out
    assert not (tmp_path / "dev-secrets.json").exists()


def test_rotate_refuses_an_unknown_keyring():
    with pytest.raises(SystemExit):
        kinwell(["keys", "rotate", "--keyring", "pseudonym_key"])
