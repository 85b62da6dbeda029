import json
import stat

import pytest

from shared.settings import PlatformSettings

STRONG = "x" * 40


def _prod(**kw):
    base = dict(
        mode="production",
        pseudonym_key=STRONG,
        period_key=STRONG + "p",
        master_key=STRONG + "m",
        receipt_signing_key="-----BEGIN PRIVATE KEY-----",
        dev_token_issuer=False,
        jwt_algorithms=["RS256"],
        jwks_json='{"keys": []}',
    )
    base.update(kw)
    return PlatformSettings(**base)


def test_embedded_generates_and_keeps_secrets(tmp_path):
    a = PlatformSettings(mode="embedded", data_dir=tmp_path)
    b = PlatformSettings(mode="embedded", data_dir=tmp_path)
    assert a.secret("pseudonym_key") == b.secret("pseudonym_key")
    assert len(a.secret("master_key")) >= 32
    path = tmp_path / "dev-secrets.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "nats_ops_password" in json.loads(path.read_text())


def test_production_accepts_complete_settings():
    assert _prod().mode == "production"


@pytest.mark.parametrize(
    "override, problem",
    [
        ({"pseudonym_key": None}, "pseudonym_key is missing"),
        ({"master_key": "changeme"}, "master_key is a placeholder"),
        ({"period_key": "short"}, "period_key is shorter"),
        ({"dev_token_issuer": True}, "dev_token_issuer"),
        ({"jwt_algorithms": ["HS256"]}, "asymmetric"),
        ({"jwks_json": None}, "jwks_url or jwks_json"),
        ({"receipt_signing_key": None}, "receipt_signing_key"),
    ],
)
def test_production_refuses_unsafe_settings(override, problem):
    with pytest.raises(ValueError) as err:  # pydantic wraps SettingsError
        _prod(**override)
    assert problem in str(err.value)
    # The refusal names the setting, never its value.
    assert "changeme" not in str(err.value) and "short" not in str(err.value).replace("shorter", "")


def test_production_never_writes_dev_secrets(tmp_path):
    _prod(data_dir=tmp_path)
    assert not (tmp_path / "dev-secrets.json").exists()


def test_refusal_does_not_echo_secret_values():
    with pytest.raises(ValueError) as err:
        _prod(master_key="changeme", pseudonym_key="y" * 40)
    assert "y" * 10 not in str(err.value)
