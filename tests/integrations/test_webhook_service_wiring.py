"""A real service assembled by create_service_app mounts the router and runs the sender via on_start."""

from __future__ import annotations

import httpx
from sqlmodel import Session
from standardwebhooks import Webhook

from shared.app import ServiceSpec, create_service_app
from shared.auth import Role, dev_token
from shared.natsserver import free_port
from shared.settings import ServiceSettings
from shared.webhooks import enqueue, webhook_sender_hooks, webhooks_router
from tests.integrations.conftest import EVENT, MIGRATIONS, loopback_settings
from tests.integrations.loopback import Served, wait_until


def test_service_spec_wiring_delivers_signed_webhooks(service_nats, platform_settings, make_db_url, receiver):
    settings = loopback_settings()
    hooks = webhook_sender_hooks(settings)
    spec = ServiceSpec(
        name="aggregator",
        migrations=MIGRATIONS,  # a test revision calling create_platform_tables + create_webhook_tables
        routers=[webhooks_router(settings=settings, event_types={EVENT})],
        on_start=[hooks.on_start],
        on_stop=[hooks.on_stop],
    )
    kw = service_nats.connect_kwargs("aggregator")
    service_settings = ServiceSettings(
        service_name="aggregator",
        port=free_port(),
        database_url=make_db_url("aggregator"),
        nats_user=kw["user"],
        nats_password=kw["password"],
        platform=platform_settings,
    )
    app = create_service_app(spec, service_settings)
    served = Served(app)
    try:
        admin = {"Authorization": "Bearer " + dev_token(platform_settings, "admin-1", [Role.admin])}
        with httpx.Client(base_url=served.url, headers=admin, timeout=10) as client:
            wait_until(lambda: client.get("/readyz").json().get("ready"), timeout=30)
            sub = client.post("/v1/subscriptions", json={"url": receiver.script("/svc"), "event_types": [EVENT]})
            assert sub.status_code == 201, sub.text
            assert "/v1/subscriptions" in client.get("/openapi.json").json()["paths"]
        with Session(app.state.engine) as session:
            (msg_id,) = enqueue(session, EVENT, {"insight_id": "i-1"})
            session.commit()
        (hit,) = wait_until(lambda: receiver.hits_on("/svc"))
        body = Webhook(sub.json()["secret"]).verify(hit.body, hit.headers)
        assert hit.headers["webhook-id"] == msg_id and body["data"] == {"insight_id": "i-1"}
        assert app.state.runtime.webhook_sender.attempted == 1
    finally:
        served.stop()
    assert app.state.runtime.webhook_sender is None  # on_stop stopped it
