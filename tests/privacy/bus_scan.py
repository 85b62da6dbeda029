"""Reading the broker raw, as an operator with full access (the ``ops`` NATS user) would."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import nats
from nats.js.errors import NotFoundError

from shared.eventkeys import EventKeyring
from shared.events import parse_event
from shared.topology import EVENT_KEY_STREAM, KV_STREAM


@dataclass(frozen=True)
class Stored:
    stream: str
    subject: str
    data: bytes
    headers: dict[str, str]


async def every_message(connect_kwargs: dict) -> list[Stored]:
    """Every message of every stream (KV buckets included), read one by one by sequence."""
    nc = await nats.connect(**connect_kwargs)
    try:
        js = nc.jetstream(timeout=5)
        out: list[Stored] = []
        for info in await js.streams_info():
            name, state = info.config.name, info.state
            if not state.messages:
                continue
            for seq in range(max(1, state.first_seq), state.last_seq + 1):
                try:
                    msg = await js.get_msg(name, seq)
                except NotFoundError:
                    continue
                out.append(Stored(name, msg.subject, msg.data or b"", dict(msg.headers or {})))
        return out
    finally:
        await nc.close()


def keyring_on(nc: Any, kek: bytes) -> EventKeyring:
    """An event keyring reading over ``nc`` (the ops user reads every key, wrapped)."""

    class _Bus:  # the keyring only needs ``connected`` and ``js``
        connected = True
        js = nc.jetstream(timeout=5)

    keyring = EventKeyring(kek)
    keyring.attach(_Bus())
    return keyring


async def event_key_as_ops(connect_kwargs: dict, kek: bytes, pseudonym: str) -> object | None:
    """The subject's event key if any copy of it is still in the bucket (ops reads everything)."""
    nc = await nats.connect(**connect_kwargs)
    try:
        return await keyring_on(nc, kek).get(pseudonym)
    finally:
        await nc.close()


async def readable(keyring: EventKeyring, data: bytes) -> dict[str, Any] | None:
    """An HRIS event as a consumer holding the KEK reads it: a sealed (v2) one opened into its v1
    body, marked ``"sealed": True``; None when its subject's key is gone. Others as they are."""
    body: dict[str, Any] = json.loads(data)
    if "sealed" not in body:
        return body
    event: Any = parse_event(data)
    key = await keyring.get(event.pseudonym)
    if key is None:
        return None
    return {**event.unsealed(event.open(key)).model_dump(mode="json"), "sealed": True}


def about(messages: list[Stored], pseudonym: str) -> list[Stored]:
    return [m for m in messages if pseudonym in m.subject or pseudonym.encode() in m.data]


BUCKETS = (KV_STREAM, EVENT_KEY_STREAM)
