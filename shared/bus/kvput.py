"""Versioned KV puts: a put older than what the bucket holds never wins.

The consent bucket is last-write-wins per key, and puts of one key can reach JetStream out of
order: two replicas of a service each relay their own outbox, a relay is delayed or retries, a
row is published by both the relay that committed it and another that read it from the table.
So every put carries the key's **version** from the writer's database (the consent service
raises it in the transaction of each change, and the row lock orders two changes of one key, so
versions follow commit order), in the ``Kinwell-Kv-Version`` header of the KV entry, and the
outbox relay writes it as a compare-and-set on the key's revision:

1. read the key's last entry directly from the bucket's stream: its sequence and version;
2. if that version is ours or newer, stop: this state, or a later one, is already there;
3. else publish with ``Nats-Expected-Last-Subject-Sequence`` set to that sequence: JetStream
   stores it only if nothing was written to the key since step 1; if something was, go to 1.

Whatever the timing, the bucket ends holding the highest version of each key. This was chosen
over one relay leader per service elected through NATS: a leader needs a lease, and a deposed
leader that does not know it yet can still publish, so the compare-and-set would be needed
anyway; with it, no election is needed at all. The cost is one read per put (a round trip,
concurrent for the keys of a batch). The version travels as a header, not only in the value, so
that a delete or purge marker (which has no value) can carry one too.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from typing import Any

from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import NotFoundError

KV_PREFIX = "$KV."  # a publish to $KV.<bucket>.<key> is a put
VERSION_HEADER = "Kinwell-Kv-Version"
EXPECTED_LAST = "Nats-Expected-Last-Subject-Sequence"
WRONG_LAST_SEQUENCE = 10071  # JetStream's error code: the key was written since we read it
ATTEMPTS = 5  # reads and compare-and-sets per put in one flush; the relay retries after that
# How a put ended: the bucket holds it or a newer version; no answer (retried, not counted towards
# parking: an outage); refused by JetStream (counted: the relay parks a row refused every time).
STORED, FAILED, REFUSED = "stored", "failed", "refused"


def acknowledged(msg: Msg) -> bool:
    """A JetStream publish ack: JSON without "error"; a status reply (no stream) is not one."""
    if msg.headers and msg.headers.get("Status"):
        return False
    return bool(msg.data) and b'"error"' not in msg.data


def version_of(headers: Mapping[str, str] | None) -> int | None:
    """The version a KV entry or outbox row carries; None when it has none (legacy, or a marker)."""
    raw = headers.get(VERSION_HEADER) if headers else None
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def _stream_of(subject: str) -> str:
    bucket = subject[len(KV_PREFIX) :].split(".", 1)[0]
    return f"KV_{bucket}"


async def _last(js: Any, subject: str) -> tuple[int, int]:
    """(sequence, version) of the key's last entry; (0, -1) when it has none."""
    try:
        msg = await js.get_last_msg(_stream_of(subject), subject)
    except NotFoundError:
        return 0, -1
    version = version_of(msg.headers)
    return int(msg.seq), -1 if version is None else version


async def put(bus: Any, subject: str, payload: bytes, headers: dict[str, str], timeout: float) -> str:
    """Write one versioned put by compare-and-set (module docstring): ``STORED`` once the bucket
    holds it or a newer version, else ``FAILED`` or ``REFUSED`` (the relay retries)."""
    version = version_of(headers)
    nc = bus.nc
    try:
        if version is None:  # a row staged before versions existed: as it was, last write wins
            return _outcome(await nc.request(subject, payload, timeout=timeout, headers=headers))
        for _ in range(ATTEMPTS):
            seq, held = await _last(bus.js, subject)
            if held >= version:
                return STORED
            reply = await nc.request(subject, payload, timeout=timeout, headers={**headers, EXPECTED_LAST: str(seq)})
            if _error_code(reply.data) != WRONG_LAST_SEQUENCE:
                return _outcome(reply)
    except (TimeoutError, NatsTimeoutError, NoRespondersError):
        return FAILED
    return FAILED  # the key kept moving: try again later


def _outcome(reply: Msg) -> str:
    if acknowledged(reply):
        return STORED
    return REFUSED if b'"error"' in (reply.data or b"") else FAILED


async def put_all(bus: Any, rows: Sequence[Any], timeout: float) -> list[str]:
    """Write a batch of outbox rows that are KV puts; one outcome per row, in order. Only the
    newest row of each key is written: the older ones are done when it is."""
    newest: dict[str, tuple[int, Any, dict[str, str]]] = {}
    for row in rows:
        headers = json.loads(row.headers) if row.headers != "{}" else {}
        version = version_of(headers)
        rank = -1 if version is None else version
        if row.subject not in newest or rank >= newest[row.subject][0]:
            newest[row.subject] = (rank, row, headers)
    subjects = list(newest)
    outcomes = await asyncio.gather(
        *(put(bus, s, bytes(newest[s][1].payload), newest[s][2], timeout) for s in subjects)
    )
    written = dict(zip(subjects, outcomes, strict=True))
    return [written[row.subject] for row in rows]


def _error_code(data: bytes) -> int | None:
    try:
        return int(json.loads(data)["error"]["err_code"])
    except (ValueError, KeyError, TypeError):
        return None
