import json
import stat

import pytest

from services.aggregator.config import AggregatorSettings
from services.checkin.config import CheckinSettings
from services.consent.config import ConsentSettings
from services.escalation.config import EscalationSettings
from services.recommender.config import RecommenderSettings
from shared.settings import SECRET_FIELDS, PlatformSettings, ServiceSettings, SettingsError
from shared.topology import SERVICE_SECRETS

STRONG = "x" * 40


def _prod(**kw):
    base = dict(
        mode="production",
        pseudonym_key=STRONG,
        period_key=STRONG + "p",
        master_key=STRONG + "m",
        webhook_key=STRONG + "w",
        manager_scope_key=STRONG + "s",
        event_key_kek=STRONG + "e",
        audit_key=STRONG + "a",
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
        ({"master_key": "changeme"}, "master_key is a placeholder"),
        ({"period_key": "short"}, "period_key is shorter"),
        ({"dev_token_issuer": True}, "dev_token_issuer"),
        ({"jwt_algorithms": ["HS256"]}, "asymmetric"),
        ({"jwks_json": None}, "jwks_url or jwks_json"),
        ({"webhook_key": "short"}, "webhook_key is shorter"),
        ({"manager_scope_key": "changeme"}, "manager_scope_key is a placeholder"),
        ({"old_master_keys": {"k0": "short"}}, "old_master_keys[k0] is shorter"),
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


SETTINGS: dict[str, type[ServiceSettings]] = {
    "consent": ConsentSettings,
    "checkin": CheckinSettings,
    "recommender": RecommenderSettings,
    "aggregator": AggregatorSettings,
    "escalation": EscalationSettings,
}
WHSEC = "whsec_" + "A" * 44


def _service(name: str, platform: PlatformSettings) -> ServiceSettings:
    extra = {"hris_webhook_secrets": [WHSEC]} if name == "consent" else {}
    return SETTINGS[name](platform=platform, database_url="sqlite://", nats_password="p" * 32, **extra)


def test_the_aggregator_holds_none_of_the_keys_that_re_identify():
    """Issue 11.1: with the pseudonym, period and master keys the aggregator re-identified everyone."""
    assert not {"pseudonym_key", "period_key", "master_key"} & set(SERVICE_SECRETS["aggregator"])
    assert "event_key_kek" not in SERVICE_SECRETS["aggregator"]  # it never opens a sealed event field
    assert set(SERVICE_SECRETS) == set(SETTINGS)


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_each_embedded_service_holds_exactly_its_topology_secrets(name, tmp_path):
    settings = _service(name, PlatformSettings(mode="embedded", data_dir=tmp_path))
    assert settings.platform.held_secrets() == {*SERVICE_SECRETS[name], "dev_jwt_secret"}
    for secret in set(SECRET_FIELDS) - set(SERVICE_SECRETS[name]) - {"dev_jwt_secret"}:
        with pytest.raises(SettingsError):
            settings.platform.secret(secret)
    if "master_key" not in SERVICE_SECRETS[name]:
        assert settings.platform.old_master_keys == {}


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_production_service_starts_with_only_its_own_secrets(name):
    own = {secret: STRONG + secret for secret in SERVICE_SECRETS[name] if secret != "receipt_signing_key"}
    if "receipt_signing_key" in SERVICE_SECRETS[name]:
        own["receipt_signing_key"] = "-----BEGIN PRIVATE KEY-----"
    nothing = {secret: None for secret in SECRET_FIELDS}
    settings = _service(name, _prod(**{**nothing, **own}))
    assert settings.platform.held_secrets() == set(SERVICE_SECRETS[name])


@pytest.mark.parametrize(("name", "secret"), [(n, s) for n, held in SERVICE_SECRETS.items() for s in held])
def test_production_service_refuses_to_start_without_a_secret_it_holds(name, secret):
    with pytest.raises(ValueError) as err:
        _service(name, _prod(**{secret: None}))
    assert f"{secret} is missing" in str(err.value)


def test_a_service_given_every_secret_still_holds_only_its_own():
    settings = _service("aggregator", _prod(old_master_keys={"k0": STRONG + "old"}))
    assert settings.platform.held_secrets() == {"webhook_key", "manager_scope_key", "audit_key"}
    assert settings.platform.old_master_keys == {}
