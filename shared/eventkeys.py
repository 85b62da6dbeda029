"""Per-subject event keys: what seals the personal fields of events, and what erasure shreds.

Events stay in streams (and in dead letters) long after their subject is erased, so every field
about a person that routing does not need travels sealed (``shared.events.sealed``) under the
subject's *event key*. One mechanism for every producer and consumer:

* the key lives in one JetStream KV bucket, ``subject_keys`` (key = pseudonym), **wrapped**
  (AES-256-GCM) under a key-encryption key derived from ``event_key_kek``. The broker, its files and
  the ``ops`` user hold only wrapped keys; the services that seal or open (consent, checkin,
  recommender, escalation) hold the KEK; the aggregator holds neither;
* the broker enforces who does what (``shared.natsperm``): producers (consent, checkin) create a
  missing key with an expected-last-sequence of 0, so two racing producers agree on one key;
  consumers only read one key at a time (direct get); only consent erases;
* erasure deletes the key's message with ``STREAM.MSG.DELETE`` (the server overwrites it on disk;
  a KV purge would only drop it from the index). From then on no stream copy, dead letter or
  backup of an event opens, for anyone. A returning employee gets a new key.

Why not ask the producer for the key (request/reply)? Two producers (consent, checkin) would mean
two keys per subject and two key services, and every consumer would depend on a producer being up.
Why not the check-in data key? It is wrapped under check-in's master key, which no other service
may hold. Keys are cached unwrapped in memory (bounded LRU), and evicted on erasure.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Iterable
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nats.js.errors import APIError, NotFoundError

from shared.crypto import CiphertextInvalid, Keyring, aad
from shared.datakeys import KeyDestroyed, SubjectKey, SubjectKeyCache
from shared.errors import ServiceUnavailable
from shared.topology import EVENT_KEY_BUCKET, EVENT_KEY_STREAM

KEK_ID = "e1"
_WRAP_PURPOSE = "subject-event-keys"
_WRONG_LAST_SEQUENCE = (10071, 10164)


class EventKeysUnavailable(ServiceUnavailable, ConnectionError):
    """The bus is not connected yet: nothing can be sealed or opened (HTTP: 503; a consumer
    classifies it as infrastructure, a ConnectionError, and retries instead of dead-lettering)."""


def key_subject(pseudonym: str) -> str:
    return f"$KV.{EVENT_KEY_BUCKET}.{pseudonym}"


class EventKeyring(SubjectKeyCache):
    """Gets, creates and erases subjects' event keys over a service's own NATS connection.

    The async methods run on the service's event loop; the ``*_blocking`` ones are for handlers
    and endpoints that run in worker threads (they hop onto the loop and wait).
    """

    def __init__(self, kek_secret: bytes, *, cache_size: int = 10_000) -> None:
        super().__init__(cache_size)
        # The one envelope (shared.crypto), derived for this purpose from the KEK secret.
        self._kek = Keyring(KEK_ID, {KEK_ID: kek_secret}).envelope(_WRAP_PURPOSE)
        self._bus: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def attach(self, bus: Any) -> None:
        """Use ``bus`` (a ``shared.bus.Bus``) from now on; call on the service's event loop."""
        self._bus, self._loop = bus, asyncio.get_running_loop()

    @property
    def _js(self) -> Any:
        if self._bus is None or not self._bus.connected:
            raise EventKeysUnavailable("Event keys cannot be reached yet; please retry.")
        return self._bus.js

    # --- wrapping ----------------------------------------------------------------------------

    def _wrap(self, pseudonym: str, key_id: str, raw: bytes) -> bytes:
        wrapped = self._kek.seal(raw, aad("event-key", pseudonym, key_id))
        return json.dumps({"key_id": key_id, "wrapped": base64.b64encode(wrapped).decode()}).encode()

    def _unwrap(self, pseudonym: str, value: bytes) -> SubjectKey:
        try:
            body = json.loads(value)
            key_id = str(body["key_id"])
            raw = self._kek.open(base64.b64decode(body["wrapped"]), aad("event-key", pseudonym, key_id))
        except (CiphertextInvalid, ValueError, KeyError, TypeError) as exc:
            raise CiphertextInvalid("event key does not unwrap") from exc
        return SubjectKey.of(key_id, pseudonym, raw)

    # --- the bucket ----------------------------------------------------------------------------

    async def get(self, pseudonym: str) -> SubjectKey | None:
        """The subject's key, or None if there is none (never created, or erased)."""
        key = self.cached(pseudonym)
        if key is not None:
            return key
        try:
            msg = await self._js.get_msg(EVENT_KEY_STREAM, subject=key_subject(pseudonym), direct=True)
        except NotFoundError:
            return None
        if not msg.data:  # a KV delete or purge marker
            return None
        return self._remember(self._unwrap(pseudonym, msg.data))

    async def require(self, pseudonym: str) -> SubjectKey:
        key = await self.get(pseudonym)
        if key is None:
            raise KeyDestroyed(pseudonym[:8])
        return key

    async def get_or_create(self, pseudonym: str) -> SubjectKey:
        """The subject's key, created if missing (compare-and-set: racing producers agree)."""
        key = await self.get(pseudonym)
        if key is not None:
            return key
        key_id, raw = uuid.uuid4().hex, AESGCM.generate_key(bit_length=256)
        headers = {"Nats-Expected-Last-Subject-Sequence": "0"}
        try:
            await self._js.publish(key_subject(pseudonym), self._wrap(pseudonym, key_id, raw), headers=headers)
        except APIError as exc:
            if exc.err_code not in _WRONG_LAST_SEQUENCE:
                raise
            return await self.require(pseudonym)  # another producer created it first
        return self._remember(SubjectKey.of(key_id, pseudonym, raw))

    async def erase(self, pseudonym: str) -> int:
        """Delete (overwrite) every stored copy of the subject's key; returns how many there were."""
        self.evict(pseudonym)
        erased = 0
        while True:
            try:
                msg = await self._js.get_msg(EVENT_KEY_STREAM, subject=key_subject(pseudonym), direct=True)
            except NotFoundError:
                break
            await self._js.delete_msg(EVENT_KEY_STREAM, msg.seq)
            erased += 1
        self.evict(pseudonym)
        return erased

    # --- from worker threads -------------------------------------------------------------------

    def _blocking(self, coro: Any, timeout: float = 10.0) -> Any:
        if self._loop is None:
            coro.close()
            raise EventKeysUnavailable("Event keys cannot be reached yet; please retry.")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def get_blocking(self, pseudonym: str) -> SubjectKey | None:
        return self.cached(pseudonym) or self._blocking(self.get(pseudonym))

    def get_or_create_blocking(self, pseudonym: str) -> SubjectKey:
        return self.cached(pseudonym) or self._blocking(self.get_or_create(pseudonym))

    def get_or_create_many_blocking(self, pseudonyms: Iterable[str], chunk: int = 200) -> dict[str, SubjectKey]:
        """Several subjects' keys (e.g. an HRIS import batch), fetched or created ``chunk`` at a time
        concurrently rather than one round trip after another."""
        keys = {p: k for p in set(pseudonyms) if (k := self.cached(p)) is not None}
        missing = sorted(set(pseudonyms) - keys.keys())
        for start in range(0, len(missing), chunk):
            part = missing[start : start + chunk]

            async def fetch(part: list[str] = part) -> list[SubjectKey]:
                return list(await asyncio.gather(*(self.get_or_create(p) for p in part)))

            keys.update(zip(part, self._blocking(fetch()), strict=True))
        return keys

    def erase_blocking(self, pseudonym: str) -> int:
        result: int = self._blocking(self.erase(pseudonym))
        return result
