"""Export gathers every service's data with a deadline and names the ones that did not answer."""

from __future__ import annotations

import asyncio
import threading

import nats

from shared.topology import export_subject
from tests.consent.conftest import new_sub
from tests.consent.test_consent_flow import grant

OTHERS = {"checkin", "recommender", "aggregator", "escalation"}


def test_export_gathers_every_service(platform):
    sub = new_sub()
    grant(platform, sub, "checkin")
    r = platform.consent.client.get("/v1/me/export", headers=platform.auth(sub))
    assert r.status_code == 200
    doc = r.json()
    assert doc["complete"] is True and doc["unavailable"] == []
    assert set(doc["services"]) == {"consent", *OTHERS}
    own = doc["services"]["consent"]
    assert own["directory"]["employee_id"] == sub and own["directory"]["pseudonym"] == platform.pseudonym(sub)
    assert [h["state"] for h in own["history"]] == ["granted"]


def test_export_names_a_stopped_service_and_a_service_past_its_deadline(platform):
    sub = new_sub()
    aggregator = platform.services["aggregator"]
    aggregator.stop()
    try:
        doc = platform.consent.client.get("/v1/me/export", headers=platform.auth(sub)).json()
        assert doc["complete"] is False
        assert doc["unavailable"] == [{"service": "aggregator", "reason": "no_responders"}]
        assert set(doc["services"]) == {"consent", *(OTHERS - {"aggregator"})}

        # A responder that never answers: the export waits only until its deadline.
        with _silent_responder(platform, "aggregator"):
            r = platform.consent.client.get("/v1/me/export", headers=platform.auth(sub))
        assert r.elapsed.total_seconds() < 5
        assert r.json()["unavailable"] == [{"service": "aggregator", "reason": "timeout"}]
        assert set(r.json()["services"]) == {"consent", *(OTHERS - {"aggregator"})}
    finally:
        aggregator.start()


class _silent_responder:
    """Subscribe as ``service`` to its export subject and never reply (a hung service)."""

    def __init__(self, platform, service: str) -> None:
        self.kwargs = platform.nats.connect_kwargs(service)
        self.subject = export_subject(service)
        self.ready, self.done = threading.Event(), threading.Event()

    def __enter__(self) -> None:
        async def body() -> None:
            nc = await nats.connect(**self.kwargs)
            await nc.subscribe(self.subject, cb=self._ignore)
            await nc.flush()
            self.ready.set()
            while not self.done.is_set():
                await asyncio.sleep(0.05)
            await nc.close()

        self.thread = threading.Thread(target=asyncio.run, args=(body(),), daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    @staticmethod
    async def _ignore(msg) -> None:
        return None

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join(10)
