"""The consent gate: a local, in-memory projection of the consent KV bucket.

The consent service is the single writer of the bucket (key ``<pseudonym>.<purpose>``, value a
JSON object with ``state``, ``policy_version`` and ``at``). Every other service watches it and asks
:meth:`ConsentGate.allowed` before producing a purpose-scoped event and again when consuming one.

It fails closed: until the watch has replayed the bucket, and whenever the NATS connection is
lost, every check denies. The check itself is a set membership test on a dict entry, so it costs
about as much as a plain dict lookup.

Producers ask :meth:`ConsentGate.allowed` (not knowing is a "no": nothing is produced). Consumers
ask :meth:`ConsentGate.answer`, which tells ``unknown`` (not synced) apart from ``denied``: an
event consumed while the gate is blind is put back and judged once the projection is synced
(``shared.events.checkin.gated``), never dropped as if consent had been withdrawn.

The consent service answers a change only once its put is stored (``services/consent/writer.py``),
so :meth:`ConsentGate.current`, a read barrier, lets a producer make sure it sees every change
answered before it asked (check-in does, per batch it stores).

``withdrawing`` is a provisional value older consent versions put before a withdrawal committed:
a gate denies on it but tells its revocation listeners (which delete purpose-only data) only when
the committed state arrives. One may remain in a bucket; the key's next change overwrites it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from shared.errors import ConsentRequired
from shared.topology import KV_BUCKET, KV_STREAM

log = logging.getLogger("kinwell.consent_gate")

_EMPTY: frozenset[str] = frozenset()
Listener = Callable[[str, str], None]
GRANTED = "granted"
WITHDRAWING = "withdrawing"  # provisional: deny now, the committed state follows


class Consent(StrEnum):
    """A gate's answer for one subject and purpose."""

    GRANTED = "granted"
    DENIED = "denied"
    UNKNOWN = "unknown"  # the projection is not synced (starting, or re-syncing after a reconnect)


def kv_key(pseudonym: str, purpose: str) -> str:
    return f"{pseudonym}.{purpose}"


def kv_value(state: str, policy_version: int, at: str, version: int | None = None) -> bytes:
    """A KV value; ``version`` is the key's version, which the entry also carries as a header
    (``shared.bus.kvput``: an older put never wins)."""
    value: dict[str, object] = {"state": state, "policy_version": policy_version, "at": at}
    if version is not None:
        value["version"] = version
    return json.dumps(value).encode()


class ConsentGate:
    """Answers "may data flow for this subject and purpose now?" from a synced projection."""

    def __init__(self, *, track_revisions: bool = False) -> None:
        self._granted: dict[str, set[str]] = {}
        self._suspended: set[str] = set()  # keys whose last value is ``withdrawing``
        # key -> (revision, policy version) of granted keys, for the consent service's own view.
        self._revisions: dict[str, tuple[int, int]] | None = {} if track_revisions else None
        self._synced = False
        self._synced_event = asyncio.Event()
        self._listeners: list[Listener] = []
        self._denied: list[Listener] = []
        self._task: asyncio.Task[None] | None = None
        self._resync = asyncio.Event()
        self.revision = 0
        self._bus: Any = None
        self._catching_up: list[tuple[int, asyncio.Future[None]]] = []  # (revision, waiter)

    # --- checks (hot path) -------------------------------------------------------------------

    @property
    def synced(self) -> bool:
        return self._synced

    def allowed(self, pseudonym: str, purpose: str) -> bool:
        """True only when the projection is synced and the purpose is currently granted."""
        return self._synced and purpose in self._granted.get(pseudonym, _EMPTY)

    def answer(self, pseudonym: str, purpose: str) -> Consent:
        """Granted, denied, or unknown while the projection is not synced (consumers use this)."""
        if not self._synced:
            return Consent.UNKNOWN
        return Consent.GRANTED if purpose in self._granted.get(pseudonym, _EMPTY) else Consent.DENIED

    async def wait_synced(self) -> None:
        """Return once the projection is synced (at once if it is)."""
        while not self._synced:
            await self._synced_event.wait()

    def _set_synced(self, synced: bool) -> None:
        self._synced = synced
        if synced:
            self._synced_event.set()
        else:
            self._synced_event.clear()

    def require(self, pseudonym: str, purpose: str) -> None:
        """Raise :class:`ConsentRequired` (403) unless ``allowed``."""
        if not self.allowed(pseudonym, purpose):
            raise ConsentRequired(str(purpose))

    async def current(self, timeout: float = 2.0) -> bool:
        """A read barrier: wait until the projection holds everything the bucket held when this was
        called (its stream's last sequence, asked of JetStream). A change stored before this call,
        such as a withdrawal whose 200 the caller saw, is then reflected by ``allowed``. False when
        that cannot be established in ``timeout`` (not synced, NATS unreachable): deny."""
        if self._bus is None:
            return self._synced  # a projection given with load(): it is the whole truth
        if not self._synced:
            return False
        try:
            async with asyncio.timeout(timeout):
                info = await self._bus.js.stream_info(KV_STREAM)
                target = int(info.state.last_seq)
                if self.revision < target:
                    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                    self._catching_up.append((target, waiter))
                    await waiter
        except Exception as exc:  # noqa: BLE001 - unknown: the caller denies
            log.warning("consent gate barrier failed", extra={"error_type": type(exc).__name__})
            return False
        return self._synced

    def _caught_up(self) -> None:
        if self._catching_up:
            waiting = []
            for target, waiter in self._catching_up:
                if waiter.done():
                    continue
                if self.revision >= target:
                    waiter.set_result(None)
                else:
                    waiting.append((target, waiter))
            self._catching_up = waiting

    def on_revoked(self, listener: Listener) -> None:
        """Call ``listener(pseudonym, purpose)`` when a granted purpose is withdrawn or lapses
        (committed: not on a provisional ``withdrawing``)."""
        self._listeners.append(listener)

    def on_denied(self, listener: Listener) -> None:
        """Call ``listener(pseudonym, purpose)`` the moment a granted purpose stops being allowed,
        provisional or not (benchmarks time propagation with it)."""
        self._denied.append(listener)

    def granted_revision(self, pseudonym: str, purpose: str) -> tuple[int, int] | None:
        """(KV revision, policy version) of a granted key; needs ``track_revisions``."""
        if self._revisions is None or not self._synced:
            return None
        return self._revisions.get(kv_key(pseudonym, purpose))

    def suspended(self) -> set[str]:
        """Keys whose last value is the provisional ``withdrawing`` (a copy)."""
        return set(self._suspended)

    # --- projection ----------------------------------------------------------------------------

    def apply(self, key: str, value: bytes | None, deleted: bool = False, revision: int = 0) -> None:
        """Apply one KV entry (a put, or a delete/purge when ``deleted``)."""
        pseudonym, _, purpose = key.partition(".")
        if not purpose:
            return
        state = None
        version = 0
        if not deleted and value:
            try:
                data = json.loads(value)
                state, version = data.get("state"), int(data.get("policy_version") or 0)
            except (ValueError, AttributeError, TypeError):
                state = None  # unreadable means no consent
        purposes = self._granted.get(pseudonym)
        if self._revisions is not None:
            if state == GRANTED:
                self._revisions[key] = (revision, version)
            else:
                self._revisions.pop(key, None)
        if state == GRANTED:
            self._suspended.discard(key)  # a provisional withdrawal put back, or a new grant
            if purposes is None:
                self._granted[pseudonym] = {purpose}
            else:
                purposes.add(purpose)
            return
        was_granted = purposes is not None and purpose in purposes
        if was_granted:
            assert purposes is not None
            purposes.discard(purpose)
            if not purposes:
                del self._granted[pseudonym]
            self._notify(self._denied, pseudonym, purpose)
        if state == WITHDRAWING:
            self._suspended.add(key)  # listeners hear of it once the committed state arrives
        elif was_granted or key in self._suspended:
            self._suspended.discard(key)
            self._notify(self._listeners, pseudonym, purpose)

    @staticmethod
    def _notify(listeners: list[Listener], pseudonym: str, purpose: str) -> None:
        for listener in listeners:
            try:
                listener(pseudonym, purpose)
            except Exception as exc:  # noqa: BLE001 - one listener must not block others
                log.error("revocation listener failed", extra={"error_type": type(exc).__name__})

    def mark_unsynced(self) -> None:
        self._set_synced(False)
        self._resync.set()

    def load(self, entries: dict[str, bytes]) -> None:
        """Replace the projection (tests and benchmarks); marks it synced."""
        self._granted.clear()
        self._suspended.clear()
        if self._revisions is not None:
            self._revisions.clear()
        for key, value in entries.items():
            self.apply(key, value)
        self._set_synced(True)

    async def start(self, bus: Any) -> None:
        """Watch the bucket on ``bus`` until stopped; re-syncs after a reconnect."""

        async def lost() -> None:
            self.mark_unsynced()

        self._bus = bus
        bus.on_disconnect.append(lost)
        bus.on_reconnect.append(lost)
        self._task = asyncio.create_task(self._run(bus), name="consent-gate")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        self._set_synced(False)

    async def _run(self, bus: Any) -> None:
        while True:
            try:
                await self._watch_once(bus)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - bucket missing or connection lost: retry
                self._set_synced(False)
                log.warning("consent watch failed; retrying", extra={"error_type": type(exc).__name__})
                await asyncio.sleep(0.5)

    async def _watch_once(self, bus: Any) -> None:
        from nats.errors import TimeoutError as NatsTimeoutError
        from nats.js.kv import KV_DEL, KV_PURGE

        self._resync.clear()
        kv = await bus.js.key_value(KV_BUCKET)
        watcher = await kv.watchall()
        previous = self._granted  # replaced below, so it can be added to
        for key in self._suspended:  # provisionally withdrawn: listeners not told yet
            pseudonym, _, purpose = key.partition(".")
            previous.setdefault(pseudonym, set()).add(purpose)
        self._granted, self._suspended = {}, set()
        if self._revisions is not None:
            self._revisions = {}
        try:
            while not self._resync.is_set():
                try:
                    entry = await watcher.updates(timeout=0.5)
                except NatsTimeoutError:
                    continue
                if entry is None:
                    self._emit_lost(previous)
                    self._set_synced(True)
                    self._caught_up()
                    continue
                if not hasattr(entry, "key"):
                    break  # watcher stopped
                self.apply(entry.key, entry.value, entry.operation in (KV_DEL, KV_PURGE), entry.revision)
                self.revision = entry.revision
                if self._synced:
                    self._caught_up()
        finally:
            self._set_synced(False)
            try:
                await watcher.stop()
            except Exception:  # noqa: BLE001 - connection may already be gone
                pass

    def _emit_lost(self, previous: dict[str, set[str]]) -> None:
        """After a re-sync, tell listeners about grants that vanished while we were away."""
        for pseudonym, purposes in previous.items():
            now = self._granted.get(pseudonym, _EMPTY)
            for purpose in purposes - now:
                if kv_key(pseudonym, purpose) not in self._suspended:  # else told when it commits
                    self._notify(self._listeners, pseudonym, purpose)
