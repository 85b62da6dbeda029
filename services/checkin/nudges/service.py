"""Weekly check-in reminders: opt-in, at a local time, outside quiet hours, after any snooze.

The rule is local (weekday, wall-clock time, IANA zone); what is stored and compared is the next
due instant in UTC, recomputed from the rule after each one, so restarts lose nothing and DST is
handled by ``zoneinfo``:

* a wall time skipped by a spring-forward jump (02:30 on that night) is moved forward by the gap
  (03:30), as RFC 5545 does; an ambiguous one at fall-back (01:30 twice) is the first;
* a due time inside quiet hours moves to the end of quiet hours (which may be the next day);
* with ``snooze_until``, the next reminder is the first regular one at or after it.

Delivery is a seam (:data:`NudgeSender`). The service plugs in :func:`webhook_sender`: a signed
``checkin.nudge.due`` webhook to the subscriptions that name that type (a Slack or Teams bridge),
carrying the employee's *nudge handle*, not their pseudonym, plus ``checkin.nudge.due.v1`` in the
service's own stream as before. The handle is a keyed hash of the pseudonym that only this purpose
uses; the employee reads it at ``GET /v1/me/nudges/handle`` and links it in the chat app, so the
employer's bridge can address only those who linked themselves (docs/checkin.md, "Nudges").
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlmodel import Session

from services.checkin.clock import aware
from services.checkin.nudges import repository as repo
from services.checkin.nudges.models import NudgeSchedule
from services.checkin.nudges.schemas import WEEKDAYS, NudgeRead, NudgeUpdate, QuietHours
from shared.bus.outbox import stage
from shared.errors import NotFound
from shared.events.checkin import NudgeDue
from shared.settings import PlatformSettings
from shared.webhooks import enqueue

NudgeSender = Callable[[Session, NudgeDue], None]

NUDGE_DUE = "checkin.nudge.due"  # the webhook event type; the only one check-in sends
EVENT_TYPES = frozenset({NUDGE_DUE})
_HANDLE_INFO = b"kinwell nudge handle v1"


def stage_nudge(session: Session, event: NudgeDue) -> None:
    """The bus event, in the same transaction that advances the schedule."""
    stage(session, event)


def handle_key(platform: PlatformSettings) -> bytes:
    """The key of nudge handles, derived from the pseudonym key for this one purpose."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HANDLE_INFO)
    return hkdf.derive(platform.secret("pseudonym_key"))


def nudge_handle(key: bytes, pseudonym: str) -> str:
    """What a nudge webhook names its recipient by: stable per employee, unlinkable to the pseudonym."""
    return "nh_" + hmac.new(key, pseudonym.encode(), hashlib.sha256).hexdigest()[:32]


def webhook_sender(key: bytes) -> NudgeSender:
    """Stage the bus event and queue the webhook, both in the transaction that advances the schedule.

    The webhook goes only to subscriptions that list ``checkin.nudge.due`` by name (not ``*``). It
    is queued with the pseudonym as its subject, so opting out, withdrawal and erasure delete it
    while it waits (``repository.delete_nudge``); the pseudonym itself is never sent.
    """

    def send(session: Session, event: NudgeDue) -> None:
        stage_nudge(session, event)
        due = event.due_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        payload = {"handle": nudge_handle(key, event.pseudonym), "lang": event.lang, "due_at": due}
        enqueue(session, NUDGE_DUE, payload, subject=event.pseudonym)

    return send


@dataclass(frozen=True)
class NudgeRule:
    weekday: int
    at: time
    tz: ZoneInfo
    quiet_start: time | None = None
    quiet_end: time | None = None
    snooze_until: datetime | None = None


def in_quiet_hours(t: time, start: time | None, end: time | None) -> bool:
    if start is None or end is None or start == end:
        return False
    if start < end:
        return start <= t < end
    return t >= start or t < end  # quiet hours across midnight, e.g. 22:00-07:00


def local_to_utc(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of a wall-clock time (fold=0: a skipped time moves forward by the gap)."""
    # Whatever fold ``at`` carries: with fold=1 a skipped time would resolve *backwards* by the gap.
    return datetime.combine(day, at.replace(fold=0), tzinfo=tz).astimezone(UTC)


def after_quiet_hours(due: datetime, rule: NudgeRule) -> datetime:
    """``due`` itself, or the end of the quiet hours it falls in."""
    if rule.quiet_start is None or rule.quiet_end is None:
        return due
    local = due.astimezone(rule.tz)
    if not in_quiet_hours(local.time(), rule.quiet_start, rule.quiet_end):
        return due
    day = local.date() if local.time() < rule.quiet_end else local.date() + timedelta(days=1)
    return local_to_utc(day, rule.quiet_end, rule.tz)


def next_due(rule: NudgeRule, after: datetime) -> datetime:
    """The first reminder strictly after ``after`` (and not before ``snooze_until``), in UTC."""
    floor = rule.snooze_until if rule.snooze_until is not None and rule.snooze_until > after else None
    start = (floor or after).astimezone(rule.tz)
    first_day = start.date() + timedelta(days=(rule.weekday - start.weekday()) % 7)
    for week in range(-1, 3):
        due = after_quiet_hours(local_to_utc(first_day + timedelta(weeks=week), rule.at, rule.tz), rule)
        if due > after and (floor is None or due >= floor):
            return due
    raise AssertionError("a weekly rule always has a next occurrence")  # pragma: no cover


def rule_of(schedule: NudgeSchedule) -> NudgeRule:
    return NudgeRule(
        weekday=schedule.weekday,
        at=schedule.local_time,
        tz=ZoneInfo(schedule.timezone),
        quiet_start=schedule.quiet_start,
        quiet_end=schedule.quiet_end,
        snooze_until=aware(schedule.snooze_until) if schedule.snooze_until else None,
    )


def _read(schedule: NudgeSchedule) -> NudgeRead:
    due = aware(schedule.next_due)
    quiet = None
    if schedule.quiet_start is not None and schedule.quiet_end is not None:
        quiet = QuietHours(start=schedule.quiet_start, end=schedule.quiet_end)
    return NudgeRead(
        weekday=WEEKDAYS[schedule.weekday],  # type: ignore[arg-type]
        time=schedule.local_time,
        timezone=schedule.timezone,
        quiet_hours=quiet,
        snooze_until=aware(schedule.snooze_until) if schedule.snooze_until else None,
        lang=schedule.lang,  # type: ignore[arg-type]
        next_due=due,
        next_due_local=due.astimezone(ZoneInfo(schedule.timezone)).isoformat(),
    )


def put(session: Session, pseudonym: str, body: NudgeUpdate, now: datetime) -> NudgeRead:
    schedule = repo.get_nudge(session, pseudonym) or NudgeSchedule(
        pseudonym=pseudonym, weekday=0, local_time=body.time, timezone=body.timezone, lang=body.lang,
        next_due=now, updated_at=now,
    )  # fmt: skip
    schedule.weekday = WEEKDAYS.index(body.weekday)
    schedule.local_time = body.time
    schedule.timezone = body.timezone
    schedule.quiet_start = body.quiet_hours.start if body.quiet_hours else None
    schedule.quiet_end = body.quiet_hours.end if body.quiet_hours else None
    schedule.snooze_until = body.snooze_until if body.snooze_until else None
    schedule.lang = body.lang
    schedule.next_due = next_due(rule_of(schedule), now)
    schedule.updated_at = now
    session.add(schedule)
    return _read(schedule)


def stop(session: Session, pseudonym: str) -> None:
    """Opt out: the schedule and any reminder still queued are deleted (idempotent)."""
    repo.delete_nudge(session, pseudonym)


def get(session: Session, pseudonym: str) -> NudgeRead:
    schedule = repo.get_nudge(session, pseudonym)
    if schedule is None:
        raise NotFound("No reminder is set.")
    return _read(schedule)


def run_due(
    session: Session,
    gate: object,
    now: datetime,
    *,
    grace: timedelta,
    send: NudgeSender = stage_nudge,
    limit: int = 500,
) -> int:
    """Send what is due (at most once, even with several replicas); returns how many were sent."""
    allowed = getattr(gate, "allowed", None)
    if allowed is None or not getattr(gate, "synced", False):
        return 0  # blind: send nothing, move nothing; the next tick tries again
    sent = 0
    for schedule in repo.due_nudges(session, now, limit):
        rule = rule_of(schedule)
        due = aware(schedule.next_due)
        following = next_due(rule, max(now, due))
        deliver = False
        if not allowed(schedule.pseudonym, "checkin"):
            new_due = following  # consent gone: never sent (its withdrawal handler deletes the schedule)
        elif in_quiet_hours(now.astimezone(rule.tz).time(), rule.quiet_start, rule.quiet_end):
            released = after_quiet_hours(now, rule)
            new_due = released if released - due <= grace else following
        elif now - due > grace:
            new_due = following  # too late to be useful (e.g. a long outage): wait for the next one
        else:
            new_due, deliver = following, True
        values = {"next_due": new_due, **({"last_sent_at": now} if deliver else {})}
        if repo.advance_nudge(session, schedule.pseudonym, schedule.next_due, values) and deliver:
            send(session, NudgeDue(pseudonym=schedule.pseudonym, lang=schedule.lang, due_at=due))
            sent += 1
    return sent
