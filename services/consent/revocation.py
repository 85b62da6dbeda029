"""Revoke first: every gate denies a withdrawal before its transaction has committed.

A withdrawal's transaction (consent row, history row with its ES256-signed receipt, outbox rows)
takes 1-2.5 ms, and the gates used to hear of it only once the relay had published the committed
KV put. A withdrawal must stop data flowing at once, and denying too early is always safe, so
``DELETE /v1/me/consents/{purpose}`` first puts ``withdrawing`` on the subject's key, then hands
the withdrawal to the group-commit writer as before:

* The early put is a compare-and-set: it carries the KV revision of the grant this service last
  saw as ``Nats-Expected-Last-Subject-Sequence``. It can only land directly on that grant, never
  after the withdrawal's own committed put, a later grant or a restore, so it can never leave a
  stale state behind. When this service has not seen the key granted (not granted, or its view
  is behind), no early put is made and the withdrawal takes the ordinary path.
* Gates deny on ``withdrawing`` but tell their revocation listeners (which delete purpose-only
  data) only when the committed ``withdrawn`` arrives (``shared.consent_gate``).
* The committed state still goes out through the outbox, with the ``consent.changed`` event; the
  KV bucket keeps one writer, this service.
* When the withdrawal fails (409 because it was not granted after all, a database error, a
  shutdown) the key is re-projected from the database through the writer, so its put is ordered
  after everything committed before; a restore that fails is retried until it succeeds, and a
  sweep restores any key left ``withdrawing`` longer than ``revocation_stale_seconds`` (a crash
  between the early put and the commit, say).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from prometheus_client import Counter

from services.consent import service
from services.consent.deps import ConsentContext
from services.consent.schemas import Channel, ConsentRead
from services.consent.writer import ConsentWriter, writer_of
from shared.app import Runtime
from shared.bus.outbox import acknowledged
from shared.consent_gate import WITHDRAWING, ConsentGate, kv_key, kv_value
from shared.events.consent import Purpose
from shared.telemetry import REGISTRY
from shared.topology import KV_BUCKET

log = logging.getLogger("kinwell.consent.revocation")

PUT_TIMEOUT_S = 2.0
WAIT_S = 0.25
RETRY_S = (0.1, 0.5, 2.0, 5.0)
EARLY = Counter(
    "kinwell_consent_early_revocations_total",
    "Withdrawals put to the consent KV before their commit, by outcome",
    ["outcome"],
    registry=REGISTRY,
)


class Revocations:
    """The consent service's own view of its bucket (revisions of granted keys) and the early,
    compare-and-set ``withdrawing`` puts made from it."""

    def __init__(self, bus: Any, writer: ConsentWriter, *, stale_after: float = 10.0) -> None:
        self.bus = bus
        self.writer = writer
        self.stale_after = stale_after
        self.loop: asyncio.AbstractEventLoop | None = None
        self.view = ConsentGate(track_revisions=True)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._restoring: set[str] = set()
        self._sweeper: asyncio.Task[None] | None = None
        # Acknowledgements of the early puts arrive on one inbox subscription (like the relay's).
        self._inbox = ""
        self._reply_sub: Any = None
        self._next = 0
        self._acks: dict[int, asyncio.Future[bool | None]] = {}

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        nc = self.bus.nc
        assert nc is not None
        self._inbox = nc.new_inbox()
        self._reply_sub = await nc.subscribe(f"{self._inbox}.*", cb=self._on_ack)
        await self.view.start(self.bus)
        self._sweeper = asyncio.create_task(self._sweep(), name="consent-revocation-sweep")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, *([self._sweeper] if self._sweeper else []), return_exceptions=True)
        if self._restoring:
            # Left withdrawing (denying): the next start's sweep re-projects them.
            log.warning("consent keys left to restore", extra={"count": len(self._restoring)})
        for future in self._acks.values():
            if not future.done():
                future.set_result(None)
        if self._reply_sub is not None and self.bus.connected:
            try:
                await self._reply_sub.unsubscribe()
            except Exception:  # noqa: BLE001 - stopping regardless
                pass
        await self.view.stop()

    async def withdraw(
        self,
        ctx: ConsentContext,
        employee_id: str,
        purpose: Purpose,
        channel: Channel,
        lang: str | None,
    ) -> ConsentRead:
        """The DELETE's work: revoke in the KV, then commit the withdrawal (restore on failure)."""
        subject = ctx.pseudonym(employee_id)
        early = await self.revoke(subject, purpose)
        try:
            if early is not None:
                # Revoked, then recorded: the commit starts once the put is stored (or after a short
                # wait when NATS is slow; the put may still land, the withdrawal goes on regardless).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(early), WAIT_S)
            return await self.writer.run(
                lambda session: service.withdraw(session, ctx, employee_id, purpose, channel, lang)
            )
        except BaseException:
            if early is not None:
                self._spawn(self._restore_after(early, subject, purpose))
            raise

    async def revoke(self, subject: str, purpose: Purpose) -> asyncio.Future[bool | None] | None:
        """Publish the early put; None when this service has not seen the key granted."""
        seen = self.view.granted_revision(subject, purpose.value)
        if seen is None:
            return None
        return await self.put_withdrawing(kv_key(subject, purpose.value), *seen)

    async def put_withdrawing(self, key: str, revision: int, version: int) -> asyncio.Future[bool | None] | None:
        """Put ``withdrawing`` on ``key`` if its last revision is still ``revision``. Returns its
        outcome to come (True: stored, False: the key had moved on and nothing was written,
        None: unknown), or None when it could not be sent."""
        nc = self.bus.nc
        if self._reply_sub is None or nc is None or not nc.is_connected:
            return None
        self._next += 1
        token = self._next
        future: asyncio.Future[bool | None] = asyncio.get_running_loop().create_future()
        self._acks[token] = future
        try:
            await nc.publish(
                f"$KV.{KV_BUCKET}.{key}",
                kv_value(WITHDRAWING, version, datetime.now(UTC).isoformat()),
                reply=f"{self._inbox}.{token}",
                headers={"Nats-Expected-Last-Subject-Sequence": str(revision)},
            )
        except Exception as exc:  # noqa: BLE001 - not sent: the withdrawal takes the ordinary path
            del self._acks[token]
            log.warning("early revocation not sent", extra={"error_type": type(exc).__name__})
            return None
        asyncio.get_running_loop().call_later(PUT_TIMEOUT_S, self._expire, token)
        return future

    async def _on_ack(self, msg: Any) -> None:
        try:
            future = self._acks.pop(int(msg.subject.rsplit(".", 1)[1]))
        except (KeyError, ValueError):
            return
        if future.done():
            return
        outcome: bool | None = True
        if msg.headers and msg.headers.get("Status"):
            outcome = None  # e.g. 503, no responders: unknown
        elif not acknowledged(msg):
            # JetStream refused it: wrong last sequence (10071, the key moved on), or any other
            # refusal; either way nothing was stored.
            outcome = False
        EARLY.labels({True: "applied", False: "superseded", None: "unknown"}[outcome]).inc()
        future.set_result(outcome)

    def _expire(self, token: int) -> None:
        future = self._acks.pop(token, None)
        if future is not None and not future.done():
            EARLY.labels("unknown").inc()
            future.set_result(None)  # it may still land: a failed withdrawal restores the key

    async def _restore_after(self, early: asyncio.Future[bool | None], subject: str, purpose: Purpose) -> None:
        if await early is False:
            return  # nothing was written
        await self.restore(subject, purpose)

    async def restore(self, subject: str, purpose: Purpose, *, outcome: str = "restored") -> None:
        """Re-project the key from the database (through the writer: ordered after every commit
        before it), retrying until it succeeds (counted as ``outcome``)."""
        key = kv_key(subject, purpose.value)
        self._restoring.add(key)
        try:
            for attempt, delay in enumerate((*RETRY_S, None)):
                try:
                    await self.writer.run(lambda session: service.reproject(session, subject, purpose))
                    EARLY.labels(outcome).inc()
                    return
                except Exception as exc:  # noqa: BLE001 - the key keeps denying until restored
                    log.warning(
                        "consent key restore failed", extra={"error_type": type(exc).__name__, "attempt": attempt}
                    )
                    if delay is None or self.writer.stopped:
                        return  # the sweep tries again
                    await asyncio.sleep(delay)
        finally:
            self._restoring.discard(key)

    async def _sweep(self) -> None:
        """Restore keys left ``withdrawing`` (a restore that gave up, a crash between the early put
        and the commit) once they have stayed so for ``stale_after`` seconds."""
        seen: set[str] = set()
        while True:
            await asyncio.sleep(self.stale_after)
            stale = self.view.suspended() & seen
            seen = self.view.suspended()
            for key in stale - self._restoring:
                subject, _, name = key.partition(".")
                try:
                    purpose = Purpose(name)
                except ValueError:
                    continue
                self._spawn(self.restore(subject, purpose, outcome="swept"))

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


REVOCATIONS_KEY = "consent_revocations"


def start_revocations(ctx: ConsentContext) -> Callable[[Runtime], Awaitable[None]]:
    """Lifespan hook: watch the bucket for the early puts (from before the first request)."""

    async def start(rt: Runtime) -> None:
        if REVOCATIONS_KEY not in rt.extras:
            stale = ctx.settings.revocation_stale_seconds
            revocations = Revocations(rt.bus, writer_of(rt, ctx), stale_after=stale)
            await revocations.start()
            rt.extras[REVOCATIONS_KEY] = revocations

    return start


async def stop_revocations(rt: Runtime) -> None:
    revocations: Revocations | None = rt.extras.pop(REVOCATIONS_KEY, None)
    if revocations is not None:
        await revocations.stop()


async def get_revocations(request: Request) -> Revocations:
    rt: Runtime = request.app.state.runtime
    revocations: Revocations | None = rt.extras.get(REVOCATIONS_KEY)
    if revocations is None:
        # Not started yet (NATS not up): withdraw on the ordinary path (no view, no early put).
        return Revocations(rt.bus, writer_of(rt, request.app.state.consent))
    return revocations


RevocationsDep = Annotated[Revocations, Depends(get_revocations)]
