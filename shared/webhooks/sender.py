"""``WebhookSender``: delivers due webhooks concurrently, signed per Standard Webhooks.

Each attempt is a POST of the stored body with ``webhook-id`` (the message id, the same on every
retry), ``webhook-timestamp`` and ``webhook-signature`` (``v1,<base64 HMAC-SHA256>`` made by the
``standardwebhooks`` package). 2xx is delivered; 410 Gone disables the subscription; anything else
(3xx included: redirects are never followed) is retried on the schedule, no sooner than a
``Retry-After`` asks, until the last attempt fails and the delivery is dead. Outcomes are written
in batches; nothing about a payload or a URL is ever logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx
from prometheus_client import Counter
from sqlalchemy.engine import Engine
from standardwebhooks import Webhook

from shared.telemetry import REGISTRY
from shared.webhooks.config import WebhookSettings
from shared.webhooks.models import utcnow
from shared.webhooks.outcomes import Outcome, settle
from shared.webhooks.queue import Claimed, claim_due, register_waker, seconds_until_next_due, unregister_waker
from shared.webhooks.secrets import SecretBox, SecretUnreadable
from shared.webhooks.ssrf import Resolver, TargetPolicy, TargetRefused, guarded_client

log = logging.getLogger("kinwell.webhooks")

WEBHOOK_ATTEMPTS = Counter(
    "kinwell_webhook_attempts_total", "Outbound webhook attempts by outcome", ["outcome"], registry=REGISTRY
)
_MAX_RESPONSE_BYTES = 64 * 1024


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class WebhookSender:
    """Background task that sends the deliveries of one database (start/stop like the outbox relay)."""

    def __init__(
        self,
        engine: Engine,
        box: SecretBox,
        settings: WebhookSettings | None = None,
        *,
        resolver: Resolver | None = None,
    ) -> None:
        self.engine = engine
        self.box = box
        self.settings = settings or WebhookSettings()
        self.policy = TargetPolicy.from_settings(self.settings, resolver)
        self.client: httpx.AsyncClient | None = None
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._outcomes: list[Outcome] = []
        self._settling = 0
        self._signers: dict[tuple[str, str], Webhook] = {}
        self._stopping = False
        self.attempted = 0

    def notify(self) -> None:
        """Wake the sender (thread-safe: called from commit hooks in worker threads)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.client = guarded_client(self.policy, self.settings)
        register_waker(self.engine, self.notify)
        self._task = asyncio.create_task(self._run(), name="webhook-sender")

    async def stop(self, timeout: float = 5.0) -> None:
        """Let attempts in flight finish (briefly), record them, then stop."""
        self._stopping = True
        self._wake.set()
        unregister_waker(self.engine, self.notify)
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=timeout)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
        for task in list(self._inflight):
            task.cancel()
        await self._flush()
        if self.client is not None:
            await self.client.aclose()

    async def _run(self) -> None:
        backoff = 0.0
        while True:
            try:
                claimed = await self._cycle()
                backoff = 0.0
            except Exception as exc:  # noqa: BLE001 - a database blip must not kill the sender
                backoff = min(30.0, max(0.2, backoff * 2))
                log.warning("webhook sender loop failed", extra={"error_type": type(exc).__name__})
                await asyncio.sleep(backoff)
                continue
            if self._stopping:
                if self._inflight:
                    await asyncio.wait(self._inflight)
                    continue
                return
            if claimed and len(self._inflight) < self.settings.concurrency:
                continue  # more may be due right now
            await self._sleep()

    def _has_room(self) -> bool:
        # Refill only once half the slots are free: each trip to the database then settles and
        # claims many deliveries at once instead of one per finished attempt.
        return len(self._inflight) <= self.settings.concurrency // 2

    async def _sleep(self) -> None:
        self._wake.clear()  # before looking, so a wake-up that arrives while we look is kept
        timeout = self.settings.poll_interval_seconds
        if self._has_room():
            if self._outcomes:
                return
            due_in = await asyncio.to_thread(seconds_until_next_due, self.engine)
            if due_in is not None:
                timeout = min(timeout, due_in)
        if timeout <= 0:
            return
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=timeout)
        except TimeoutError:
            pass

    async def _cycle(self) -> int:
        """Settle the attempts that finished and claim what is due, in one trip to the database."""
        outcomes, self._outcomes = self._outcomes, []
        free = 0 if self._stopping else self.settings.concurrency - len(self._inflight)
        limit = max(0, min(free, self.settings.batch_size))
        self._settling = len(outcomes)
        try:
            batch = await asyncio.to_thread(self._settle_and_claim, outcomes, limit)
        except BaseException:
            self._outcomes[:0] = outcomes  # settle them next time round: their claims still hold
            raise
        finally:
            self._settling = 0
        for claimed in batch:
            task = asyncio.create_task(self._attempt(claimed))
            self._inflight.add(task)
            task.add_done_callback(self._done)
        return len(batch)

    def _settle_and_claim(self, outcomes: list[Outcome], limit: int) -> list[Claimed]:
        settle(self.engine, outcomes, self.settings)
        return claim_due(self.engine, limit, self.settings.lease_seconds) if limit else []

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        if self._has_room():
            self._wake.set()

    async def _flush(self) -> None:
        outcomes, self._outcomes = self._outcomes, []
        if not outcomes:
            return
        try:
            await asyncio.to_thread(settle, self.engine, outcomes, self.settings)
        except Exception as exc:  # noqa: BLE001 - on shutdown: their leases expire and they are retried
            extra = {"error_type": type(exc).__name__, "count": len(outcomes)}
            log.warning("webhook outcomes not recorded", extra=extra)

    def _signer(self, claimed: Claimed) -> Webhook:
        key = (claimed.subscription_id, claimed.secret_ciphertext)
        signer = self._signers.get(key)
        if signer is None:
            signer = Webhook(self.box.decrypt(claimed.subscription_id, claimed.secret_ciphertext))
            self._signers[key] = signer
        return signer

    async def _attempt(self, claimed: Claimed) -> None:
        outcome = await self.attempt(claimed)
        # Only now look the list up: _cycle swaps it for a new one while attempts are in flight.
        self._outcomes.append(outcome)

    async def attempt(self, claimed: Claimed) -> Outcome:
        """One signed POST of ``claimed``; never raises."""
        started_at, t0 = utcnow(), time.perf_counter()

        def outcome(kind: str, **kw: object) -> Outcome:
            WEBHOOK_ATTEMPTS.labels(kind).inc()
            ms = (time.perf_counter() - t0) * 1000
            number = claimed.attempts + 1
            return Outcome(claimed.id, claimed.claim_token, kind, started_at, number, ms, **kw)  # type: ignore[arg-type]

        if not claimed.enabled:
            return outcome("disabled")
        self.attempted += 1
        try:
            signer = self._signer(claimed)
        except SecretUnreadable:
            return outcome("retry", error_type="secret_unreadable")
        now = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "webhook-id": claimed.id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signer.sign(claimed.id, now, claimed.payload),
        }
        assert self.client is not None, "start() the sender first"
        try:
            async with asyncio.timeout(self.settings.timeout_seconds):
                async with self.client.stream(
                    "POST", claimed.url, content=claimed.payload.encode(), headers=headers
                ) as response:
                    read = 0
                    async for chunk in response.aiter_raw():  # read a little so the connection is reused
                        read += len(chunk)
                        if read > _MAX_RESPONSE_BYTES:
                            break
                    status = response.status_code
                    retry_after = parse_retry_after(response.headers.get("retry-after"))
        except TargetRefused as exc:
            log.warning("webhook target refused", extra={"event_type": claimed.event_type, "outcome": exc.reason})
            return outcome("refused", error_type="target_refused")
        except (TimeoutError, httpx.TimeoutException):
            return outcome("retry", error_type="timeout")
        except (httpx.HTTPError, OSError) as exc:
            return outcome("retry", error_type=type(exc).__name__[:64])
        except Exception as exc:  # noqa: BLE001 - an unexpected error must not strand a leased delivery
            log.warning("webhook attempt crashed", extra={"error_type": type(exc).__name__})
            return outcome("retry", error_type="internal_error")
        if 200 <= status < 300:
            return outcome("delivered", status_code=status)
        log.info(
            "webhook attempt failed",
            extra={"event_type": claimed.event_type, "status": status, "attempt": claimed.attempts + 1},
        )
        if status == 410:
            return outcome("gone", status_code=status)
        return outcome("retry", status_code=status, retry_after=retry_after)

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait until nothing is due now or in flight (tests and benches)."""
        deadline = time.monotonic() + timeout
        while True:
            due_in = await asyncio.to_thread(seconds_until_next_due, self.engine)
            idle = not self._inflight and not self._outcomes and not self._settling
            if idle and (due_in is None or due_in > 0):
                return
            if time.monotonic() > deadline:
                raise TimeoutError("webhooks did not drain")
            self._wake.set()
            await asyncio.sleep(0.01)
