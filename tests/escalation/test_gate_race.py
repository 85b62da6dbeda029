"""The gate race: the service starts while the consent bucket holds tens of thousands of keys,
and a flag published before it started must be applied, not dropped while the gate loads."""

from __future__ import annotations

import asyncio
import time

from shared.consent_gate import kv_key, kv_value
from tests.escalation.conftest import Escalation, _bus, escalation_overrides, flag, new_sub, publish_as

KEYS = 30_000


def _fill_bucket(server, subjects: list[str]) -> None:  # type: ignore[no-untyped-def]
    """Write every grant as the consent user, pipelined (core publishes, then one flush)."""

    async def body() -> None:
        bus = await _bus(server, "consent")
        try:
            assert bus.nc is not None
            value = kv_value("granted", 1, "2026-12-01T00:00:00+00:00")
            for subject in subjects:
                await bus.nc.publish(f"$KV.consent.{kv_key(subject, 'escalation')}", value)
            await bus.nc.flush(timeout=60)
            kv = await bus.js.key_value("consent")
            deadline = time.monotonic() + 60
            while (await kv.status()).values < len(subjects):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
        finally:
            await bus.close()

    asyncio.run(body())


def test_a_flag_published_before_start_is_applied_while_the_gate_loads_many_keys(
    start_service, service_nats, platform_settings, token, receiver
):
    h = Escalation(service_nats, platform_settings, None, receiver, token)  # type: ignore[arg-type]
    sub = new_sub()
    others = [f"{i:064x}" for i in range(KEYS - 1)]
    _fill_bucket(service_nats, [*others[: KEYS // 2], h.pseudonym(sub), *others[KEYS // 2 :]])
    event = flag(h.pseudonym(sub), "critical")
    publish_as(service_nats, "checkin", event)  # before the service exists
    h.svc = start_service("escalation", **escalation_overrides())
    case = h.case_of(sub)
    assert case["state"] == "proposed" and case["severity"] == "imminent"
    consumer = next(c for c in h.svc.runtime.consumers if "checkin_escalation" in c.name)
    assert consumer.applied >= 1
