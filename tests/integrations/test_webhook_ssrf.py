"""SSRF guard: private and metadata targets are refused at subscription time and at send time."""

from __future__ import annotations

import json
import socket
import time

import pytest
from sqlmodel import Session

from shared.webhooks import SecretBox, TargetPolicy, WebhookSettings, WebhookSubscription, generate_secret
from tests.integrations.conftest import EVENT, loopback_settings
from tests.integrations.loopback import wait_until

PUBLIC = "93.184.215.14"


def strict_settings(**overrides) -> WebhookSettings:
    """Production rules except plain http (so the address rules are what is tested)."""
    return loopback_settings(allow_networks=[], **overrides)


def fake_dns(table: dict[str, list[str]]):
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise socket.gaierror("no such host")
        return table[host]

    return resolve


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/hook",
        "http://172.16.5.4/hook",
        "http://192.168.1.10/hook",
        "http://127.0.0.1:8080/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/hook",  # shared address space (CGNAT)
        "http://0.0.0.0/hook",
        "http://224.0.0.1/hook",
        "http://[::1]/hook",
        "http://[::]/hook",
        "http://[fe80::1]/hook",
        "http://[fd00:ec2::254]/hook",
        "http://[::ffff:127.0.0.1]/hook",  # IPv4-mapped loopback
        "http://[::ffff:a9fe:a9fe]/hook",  # IPv4-mapped metadata
        "http://[64:ff9b::a9fe:a9fe]/hook",  # NAT64 of 169.254.169.254
        "http://[2002:7f00:1::]/hook",  # 6to4 of 127.0.0.1
        "http://localhost/hook",  # a name that resolves to 127.0.0.1
        "http://0x7f000001/hook",  # obfuscated 127.0.0.1, resolved by getaddrinfo
        "http://2130706433/hook",
        "http://127.1/hook",
    ],
)
def test_private_and_metadata_targets_are_refused_at_create(webhook_api, url):
    api = webhook_api(strict_settings(), with_sender=False)
    r = api.client.post("/v1/subscriptions", json={"url": url, "event_types": [EVENT]})
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["type"].endswith("/webhook-target-refused") and body["reason"] == "address"
    assert url not in r.text  # errors never echo the URL


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/hook", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("gopher://example.com/", "scheme"),
        ("https://user:pw@example.com/hook", "userinfo"),
        ("https://example.com/hook#frag", "fragment"),
        ("https:///nohost", "host"),
        ("not a url", "url"),
        ("https://exa\\mple.com/", "url"),
        ("https://nowhere.example.test/hook", "unresolvable"),
    ],
)
def test_malformed_targets_are_refused_at_create(webhook_api, url, reason):
    api = webhook_api(strict_settings(), resolver=fake_dns({}), with_sender=False)
    r = api.client.post("/v1/subscriptions", json={"url": url, "event_types": [EVENT]})
    assert r.status_code == 422 and r.json()["reason"] == reason


def test_https_is_required_by_default(webhook_api):
    api = webhook_api(WebhookSettings(), resolver=fake_dns({"hooks.example.test": [PUBLIC]}), with_sender=False)
    plain = api.client.post("/v1/subscriptions", json={"url": "http://hooks.example.test/x", "event_types": [EVENT]})
    assert plain.status_code == 422 and plain.json()["reason"] == "scheme"
    tls = api.client.post("/v1/subscriptions", json={"url": "https://hooks.example.test/x", "event_types": [EVENT]})
    assert tls.status_code == 201


def test_a_name_with_one_private_address_among_public_ones_is_refused(webhook_api):
    dns = fake_dns({"mixed.example.test": [PUBLIC, "10.1.2.3"], "internal.example.test": ["127.0.0.1"]})
    api = webhook_api(strict_settings(), resolver=dns, with_sender=False)
    for host in ("mixed.example.test", "internal.example.test"):
        r = api.client.post("/v1/subscriptions", json={"url": f"https://{host}/x", "event_types": [EVENT]})
        assert r.status_code == 422 and r.json()["reason"] == "address"


def test_allowed_hosts_and_networks_are_explicit_and_metadata_stays_refused():
    dns = fake_dns({"hooks.internal": ["10.1.2.3"], "meta.internal": ["169.254.169.254"]})
    policy = TargetPolicy.from_settings(
        WebhookSettings(allow_hosts=["hooks.internal", "meta.internal"], allow_networks=["169.254.0.0/16"]), dns
    )
    assert policy.check_url("https://hooks.internal/x") == "https://hooks.internal/x"
    for url in ("https://meta.internal/", "https://169.254.169.254/", "https://[fd00:ec2::254]/"):
        with pytest.raises(Exception, match="address"):
            policy.check_url(url)
    assert policy.address_allowed("169.254.1.1")  # the allowed network, minus the metadata address
    wide = TargetPolicy.from_settings(WebhookSettings(allow_networks=["0.0.0.0/0", "::/0"]), dns)
    assert not wide.address_allowed("169.254.169.254") and not wide.address_allowed("::ffff:169.254.169.254")


def _insert_subscription(engine, platform, url: str) -> str:
    """A subscription row written directly, as if the rules had changed since it was created."""
    box = SecretBox.from_platform(platform)
    sub = WebhookSubscription(url=url, event_types_json=json.dumps([EVENT]), secret_ciphertext="")
    sub.secret_ciphertext = box.encrypt(sub.id, generate_secret())
    sub_id = sub.id
    with Session(engine) as session:
        session.add(sub)
        session.commit()
    return sub_id


@pytest.mark.parametrize("host", ["127.0.0.1", "[::ffff:127.0.0.1]", "localhost"])
def test_private_targets_are_refused_at_send(webhook_api, receiver, platform, host):
    api = webhook_api(strict_settings())
    port = receiver.served.port
    _insert_subscription(api.engine, platform, f"http://{host}:{port}/inside")
    (msg_id,) = api.emit({"n": 1})
    wait_until(lambda: api.delivery(msg_id).status == "failed")
    assert api.delivery(msg_id).last_error == "target_refused"
    assert receiver.hits == []


def test_dns_rebinding_between_create_and_send_is_refused(webhook_api, receiver):
    answers = {"rebind.example.test": [PUBLIC]}
    api = webhook_api(strict_settings(), resolver=fake_dns(answers))
    api.subscribe(f"http://rebind.example.test:{receiver.served.port}/hook")  # vetted: public
    answers["rebind.example.test"] = ["127.0.0.1"]  # the attacker's DNS now points inward
    (msg_id,) = api.emit({"n": 1})
    wait_until(lambda: api.delivery(msg_id).status == "failed")
    assert api.delivery(msg_id).last_error == "target_refused"
    time.sleep(0.2)
    assert receiver.hits == []
    dead = api.client.get("/v1/webhooks/dead-letters").json()
    assert [d["id"] for d in dead] == [msg_id] and dead[0]["status"] == "failed"


def test_the_connection_goes_to_the_vetted_address_with_the_hosts_name(webhook_api, receiver):
    dns = fake_dns({"hooks.example.test": ["127.0.0.1"]})
    api = webhook_api(loopback_settings(allow_networks=["127.0.0.0/8"]), resolver=dns)
    port = receiver.served.port
    api.subscribe(f"http://hooks.example.test:{port}/pinned")
    (msg_id,) = api.emit({"n": 1})
    wait_until(lambda: api.delivery(msg_id).status == "delivered")
    (hit,) = receiver.hits_on("/pinned")
    assert hit.headers["host"] == f"hooks.example.test:{port}"
