"""``kinwell dlq list|show|replay`` and ``kinwell outbox list|replay``: what an operator does with
a dead letter or a parked outbox row (docs/operations.md).

Dead letters are read as the ``ops`` NATS user from each service's own stream (``<svc>.dlq.>``).
Replay publishes the original bytes to the original subject (a new ``Nats-Msg-Id``, so JetStream
does not drop it as a duplicate), then deletes the dead letter. Every consumer of that subject
sees it again; those that applied it already skip it by its idempotency record (the event id is
unchanged). Parked outbox rows are read from the service's database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from shared.settings import SERVICES, PlatformSettings, load_or_create_dev_secrets, nats_password_env
from shared.topology import dlq_subject

_DLQ_HEADERS = ("Kinwell-Dlq-Reason", "Kinwell-Dlq-Consumer", "Kinwell-Dlq-Deliveries", "Kinwell-Dlq-Stream-Seq")


def ops_password(platform: PlatformSettings) -> str | None:
    password = os.environ.get(nats_password_env("ops"))
    if password is None and platform.mode == "embedded":
        password = load_or_create_dev_secrets(platform.data_dir)["nats_ops_password"]
    return password or None


async def _connect(platform: PlatformSettings) -> Any:
    import nats

    password = ops_password(platform)
    if not password:
        raise SystemExit(f"kinwell dlq: set {nats_password_env('ops')}")
    return await nats.connect(servers=[platform.nats_url], user="ops", password=password, inbox_prefix="_INBOX_ops")


async def dead_letters(js: Any, service: str, limit: int = 1000) -> list[Any]:
    """Raw dead-letter messages of ``service`` (oldest first), read without acknowledging."""
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
    from nats.js.errors import NotFoundError

    stream = service.upper()
    try:
        info = await js.stream_info(stream, subjects_filter=dlq_subject(service, ">"))
    except NotFoundError:
        return []
    total = min(limit, sum((info.state.subjects or {}).values()))
    if total == 0:
        return []
    config = ConsumerConfig(
        filter_subject=dlq_subject(service, ">"), ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL
    )
    sub = await js.pull_subscribe(dlq_subject(service, ">"), stream=stream, config=config)
    msgs: list[Any] = []
    try:
        while len(msgs) < total:
            msgs += await sub.fetch(min(256, total - len(msgs)), timeout=5)
    finally:
        await sub.unsubscribe()
    return msgs


def _row(service: str, msg: Any) -> dict[str, Any]:
    headers = msg.headers or {}
    return {
        "service": service,
        "seq": msg.metadata.sequence.stream,
        "subject": msg.subject.removeprefix(dlq_subject(service, "")),
        "consumer": headers.get("Kinwell-Dlq-Consumer"),
        "reason": headers.get("Kinwell-Dlq-Reason"),
        "deliveries": headers.get("Kinwell-Dlq-Deliveries"),
        "at": msg.metadata.timestamp.isoformat() if msg.metadata.timestamp else None,
    }


async def dlq_list(platform: PlatformSettings, services: list[str]) -> list[dict[str, Any]]:
    nc = await _connect(platform)
    try:
        return [_row(s, m) for s in services for m in await dead_letters(nc.jetstream(), s)]
    finally:
        await nc.close()


async def dlq_show(platform: PlatformSettings, service: str, seq: int, payload: bool) -> dict[str, Any]:
    nc = await _connect(platform)
    try:
        raw = await nc.jetstream().get_msg(service.upper(), seq)
    finally:
        await nc.close()
    subject = raw.subject or ""
    if not subject.startswith(dlq_subject(service, "")):
        raise SystemExit(f"kinwell dlq show: message {seq} of {service.upper()} is not a dead letter")
    body: dict[str, Any] = {"service": service, "seq": seq, "subject": subject.removeprefix(dlq_subject(service, ""))}
    body["headers"] = {k: v for k, v in (raw.headers or {}).items() if k in _DLQ_HEADERS}
    try:
        data = json.loads(raw.data or b"")
    except ValueError:
        data = None
    if isinstance(data, dict):  # what it is, not whom it is about, unless asked
        body.update(type=data.get("type"), event_id=data.get("event_id"), fields=sorted(data))
    if payload:
        body["payload"] = (raw.data or b"").decode("utf-8", "replace")
    return body


async def dlq_replay(platform: PlatformSettings, service: str, seqs: list[int] | None) -> int:
    """Re-publish dead letters of ``service`` (all, or these stream sequences); returns how many."""
    nc = await _connect(platform)
    js = nc.jetstream()
    replayed = 0
    try:
        for msg in await dead_letters(js, service):
            seq = msg.metadata.sequence.stream
            if seqs is not None and seq not in seqs:
                continue
            headers = {k: v for k, v in (msg.headers or {}).items() if k not in _DLQ_HEADERS and k != "Nats-Msg-Id"}
            headers["Nats-Msg-Id"] = f"replay:{service}:{seq}"
            original = msg.subject.removeprefix(dlq_subject(service, ""))
            await js.publish(original, msg.data, headers=headers)  # raises unless stored
            await js.delete_msg(service.upper(), seq)
            replayed += 1
    finally:
        await nc.close()
    return replayed


def _database_url(service: str, given: str | None) -> str:
    if given:
        return given
    url = os.environ.get(f"KINWELL_{service.upper()}_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{PlatformSettings().data_dir / (service + '.db')}"


def cmd_dlq(args: argparse.Namespace) -> int:
    platform = PlatformSettings()
    if args.dlq_command == "list":
        rows = asyncio.run(dlq_list(platform, [args.service] if args.service else list(SERVICES)))
        for row in rows:
            print(json.dumps(row))
        print(f"{len(rows)} dead letter(s)", file=sys.stderr)
    elif args.dlq_command == "show":
        print(json.dumps(asyncio.run(dlq_show(platform, args.service, args.seq, args.payload)), indent=2))
    else:
        seqs = None if args.all else args.seq
        if not seqs and not args.all:
            print("kinwell dlq replay: give --seq N (repeatable) or --all", file=sys.stderr)
            return 2
        print(f"replayed {asyncio.run(dlq_replay(platform, args.service, seqs))} dead letter(s)")
    return 0


def cmd_outbox(args: argparse.Namespace) -> int:
    from shared.bus import parking
    from shared.db import make_engine

    engine = make_engine(_database_url(args.service, args.database_url))
    try:
        if args.outbox_command == "list":
            rows = parking.list_parked(engine, args.limit)
            for row in rows:
                print(json.dumps(row, default=str))
            print(f"{len(rows)} parked row(s)", file=sys.stderr)
            return 0
        if not args.seq and not args.all:
            print("kinwell outbox replay: give --seq N (repeatable) or --all", file=sys.stderr)
            return 2
        moved = parking.replay(engine, None if args.all else args.seq)
        print(f"put back {moved} row(s); the running {args.service} service publishes them")
        return 0
    finally:
        engine.dispose()


def register(sub: Any) -> None:
    """Add ``dlq`` and ``outbox`` to the ``kinwell`` command's subparsers."""
    dlq = sub.add_parser("dlq", help="dead letters of consumers (as the ops NATS user)")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True)
    ls = dlq_sub.add_parser("list", help="dead letters: service, seq, subject, consumer, reason")
    ls.add_argument("--service", choices=SERVICES)
    show = dlq_sub.add_parser("show", help="one dead letter's headers and shape")
    show.add_argument("service", choices=SERVICES)
    show.add_argument("seq", type=int, help="stream sequence (from list)")
    show.add_argument("--payload", action="store_true", help="also print the message body")
    rep = dlq_sub.add_parser("replay", help="publish dead letters again to their subject, then delete them")
    rep.add_argument("service", choices=SERVICES)
    rep.add_argument("--seq", type=int, action="append", help="stream sequence (repeatable)")
    rep.add_argument("--all", action="store_true")
    dlq.set_defaults(fn=cmd_dlq)
    outbox = sub.add_parser("outbox", help="parked outbox rows of a service (its database)")
    outbox_sub = outbox.add_subparsers(dest="outbox_command", required=True)
    for name, text in (("list", "parked rows, oldest first (no payloads)"), ("replay", "put parked rows back")):
        p = outbox_sub.add_parser(name, help=text)
        p.add_argument("--service", required=True, choices=SERVICES)
        p.add_argument("--database-url", help="default: KINWELL_<SERVICE>_DATABASE_URL, or the embedded file")
        if name == "list":
            p.add_argument("--limit", type=int, default=100)
        else:
            p.add_argument("--seq", type=int, action="append", help="parked row seq (repeatable)")
            p.add_argument("--all", action="store_true")
    outbox.set_defaults(fn=cmd_outbox)
