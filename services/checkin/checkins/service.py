"""The rules of a check-in: score, screen, seal, derive, store; step up; read; delete.

Services never commit. ``prepare_checkin`` does the CPU work on the event loop, and
``store_checkin`` writes the prepared check-in in whatever unit of work it is given (the
group-commit writer's batch session); the other functions work in the caller's ``SessionDep``
transaction. Events are staged in that same session, so a rollback drops them.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from pydantic_core import from_json, to_json
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from services.checkin.checkins import derivatives, screening, trend
from services.checkin.checkins import repository as repo
from services.checkin.checkins.models import Checkin
from services.checkin.checkins.schemas import (
    CheckinCreate,
    CheckinList,
    CheckinRead,
    CheckinResult,
    CrisisSupport,
    NextStep,
    Phq2Gad2Step,
    Phq9Step,
    Score,
    StepResult,
    TrendPoint,
)
from services.checkin.checkins.scoring import Scores, Step
from services.checkin.checkins.trend import payload_context
from services.checkin.clock import aware, iso_week, utcnow, week_start
from services.checkin.contributions import CONTRIBUTIONS
from shared.bus.outbox import stage
from shared.contributions import repository as contributions
from shared.contributions.producer import Draft
from shared.datakeys import DataKeyStore, KeyDestroyed, SubjectKey
from shared.errors import Conflict, NotFound, ServiceUnavailable
from shared.eventkeys import EventKeyring
from shared.events.checkin import ConsentView, Produced
from shared.pagination import PageRequest, page

if TYPE_CHECKING:
    from services.checkin.deps import CheckinContext

STEPS_PATH = "/v1/checkins/{id}/steps"


@dataclass
class CheckinWrite:
    """A check-in ready to store: every field already sealed, every event already gated."""

    row: dict[str, Any]
    key: SubjectKey
    week: str
    week_start: date
    point: tuple[int, int]
    # Derived events, asked their consent again when written.
    events: list[Produced] = field(default_factory=list)
    contributions: list[Draft] = field(default_factory=list)
    # The request's context (its trace), in which the check-in is stored and its events staged.
    context: contextvars.Context = field(default_factory=contextvars.copy_context)


@dataclass
class WriteResult:
    trend: list[tuple[str, int, int]]
    contributed: bool


@dataclass
class Prepared:
    write: CheckinWrite
    scores: Scores
    reasons: list[str]
    locale: screening.Locale
    created_at: datetime
    contact_requested: bool


def _next(checkin_id: str, step: Step | None) -> NextStep | None:
    return NextStep(form=step, post_to=STEPS_PATH.format(id=checkin_id)) if step else None


def _crisis(reasons: list[str], locale: screening.Locale) -> CrisisSupport | None:
    return CrisisSupport.model_validate(screening.crisis_resources(locale)) if reasons else None


def _seal_payload(key: SubjectKey, row_id: str, payload: dict[str, Any]) -> bytes:
    return key.seal(to_json(payload), *payload_context(row_id))


def prepare_checkin(
    body: CheckinCreate,
    key: SubjectKey,
    gate: ConsentView,
    locale: screening.Locale,
    period_key: bytes,
    event_key: SubjectKey,
) -> Prepared:
    """Everything but the write: CPU only, so it runs on the event loop without blocking it long."""
    now = utcnow()  # the demo clock in embedded mode (kinwell demo backdates weeks)
    created = now
    week, start = iso_week(created.date()), week_start(created.date())
    answers = body.answers.model_dump()
    scores = Scores(answers={k: v for k, v in answers.items() if k != "mood"}, mood=answers["mood"])
    scores.next_step = scores.after_weekly()
    signals = screening.NoteSignals.of(body.note)
    crisis_language = signals.crisis
    reasons = screening.risk_reasons(scores, crisis_language)
    row_id = os.urandom(16).hex()
    found = derivatives.needs(scores, signals.needs)
    events = [
        e
        for e in (
            derivatives.escalation(
                gate,
                key,
                event_key,
                checkin_ref=row_id,
                reasons=reasons,
                contact_requested=body.talk_to_someone,
                note=body.note,
                share_note=body.share_note,
                locale=locale,
                now=now,
            ),
            derivatives.personalization(gate, event_key, locale.lang, week, found),
        )
        if e is not None
    ]
    payload = {
        "lang": locale.lang,
        "country": locale.country,
        "scores": scores.to_json(),
        "crisis_language": crisis_language,
        "flags": reasons,
        "needs": found,
        "talk_to_someone": body.talk_to_someone,
        "share_note": body.share_note,
    }
    row = {
        "id": row_id,
        "pseudonym": key.pseudonym,
        "key_id": key.key_id,
        "created_at": created,
        "iso_week": week,
        "payload": _seal_payload(key, row_id, payload),
        "note": key.seal(body.note.encode(), "checkin", row_id, "note") if body.note else None,
    }
    write = CheckinWrite(
        row=row,
        key=key,
        week=week,
        week_start=start,
        point=(scores.who5_index, scores.mood),
        events=list(events),
        contributions=derivatives.contributions(gate, period_key, key.pseudonym, week, scores),
    )
    return Prepared(write, scores, reasons, locale, created, body.talk_to_someone)


def store_checkin(session: Session, write: CheckinWrite, trend_weeks: int) -> WriteResult:
    """Store a prepared check-in: its row, its subject's rewritten trend, its events (staged) and
    its contributions (held for the shuffled release, when the subject has an org unit)."""
    key, pseudonym = write.key, write.key.pseudonym
    cached = repo.lock_trend(session, pseudonym)
    points = trend.open_points(key, bytes(cached.trend)) if cached is not None and cached.key_id == key.key_id else None
    if points is None:
        points = trend.rebuild_points(key, repo.recent_checkins(session, pseudonym, trend.since_week(write.week_start)))
    points[write.week] = write.point
    repo.add_checkin(session, write.row)
    keep = dict(sorted(points.items())[-trend.KEEP_WEEKS :])
    sealed = key.seal(to_json(keep), *trend.trend_context(pseudonym))
    values = {"key_id": key.key_id, "trend": sealed, "updated_at": write.row["created_at"]}
    repo.save_trend(session, pseudonym, values, exists=cached is not None)
    for produced in write.events:
        stage(session, produced.event)
    org_unit = CONTRIBUTIONS.unit_on(session, pseudonym, write.week_start) if write.contributions else None
    if org_unit is not None:
        rows = CONTRIBUTIONS.rows(org_unit, write.week, write.contributions)
        contributions.insert_pending(session.connection(), CONTRIBUTIONS.tables, rows)
    return WriteResult(trend.trend_window(points, write.week_start, trend_weeks), org_unit is not None)


async def submit_checkin(
    ctx: CheckinContext, gate: ConsentView, pseudonym: str, body: CheckinCreate, locale: screening.Locale
) -> CheckinResult:
    """Prepare on the event loop, store through the group-commit writer, answer once durable."""
    for attempt in range(2):
        key = ctx.keys.cached(pseudonym)
        if key is None:
            key = await asyncio.to_thread(ctx.keys.get_or_create, ctx.writer.engine, pseudonym)
        event_key = ctx.event_keys.cached(pseudonym) or await ctx.event_keys.get_or_create(pseudonym)
        prepared = prepare_checkin(body, key, gate, locale, ctx.period_key, event_key)
        try:
            written = await ctx.writer.write(prepared.write)
        except IntegrityError:
            # The cached key was destroyed meanwhile (an erasure): forget it and seal afresh once.
            ctx.keys.evict(pseudonym)
            if attempt:
                raise ServiceUnavailable("The check-in could not be stored; please retry.") from None
            continue
        return checkin_result(prepared, written)
    raise AssertionError("unreachable")  # pragma: no cover


def checkin_result(prepared: Prepared, written: WriteResult) -> CheckinResult:
    row = prepared.write.row
    direction = None
    if len(written.trend) >= 2:
        delta = written.trend[-1][1] - written.trend[-2][1]
        direction = "up" if delta >= 8 else "down" if delta <= -8 else "steady"
    return CheckinResult(
        id=row["id"],
        created_at=aware(prepared.created_at),
        iso_week=row["iso_week"],
        lang=prepared.locale.lang,  # type: ignore[arg-type]
        score=Score.model_validate(prepared.scores.summary()),
        trend=[TrendPoint(iso_week=w, who5_index=i, mood=m) for w, i, m in written.trend],
        trend_direction=direction,  # type: ignore[arg-type]
        next_step=_next(row["id"], prepared.scores.next_step),
        crisis=_crisis(prepared.reasons, prepared.locale),
        contact_requested=prepared.contact_requested,
    )


def _open(key: SubjectKey, row: Checkin) -> dict[str, Any]:
    payload: dict[str, Any] = from_json(key.open(row.payload, *payload_context(row.id)))
    return payload


def submit_step(
    session: Session,
    keys: DataKeyStore,
    gate: ConsentView,
    pseudonym: str,
    checkin_id: str,
    step: Phq2Gad2Step | Phq9Step,
    event_keys: EventKeyring,
) -> StepResult:
    """Add step-up answers to the check-in that asked for them; screen again; derive again."""
    row = repo.get_checkin(session, checkin_id, pseudonym)
    if row is None:
        raise NotFound("No such check-in.")
    key = keys.require(session, pseudonym)
    payload = _open(key, row)
    scores = Scores.from_json(payload["scores"])
    if scores.next_step is None:
        raise Conflict("This check-in has no step pending.", code="no-step-pending")
    if scores.next_step.value != step.instrument:
        raise Conflict(f"This check-in expects the '{scores.next_step.value}' form.", code="wrong-step")
    scores.add(step.answers.model_dump())
    scores.next_step = scores.after_step(Step(step.instrument))
    reasons = screening.risk_reasons(scores, bool(payload["crisis_language"]))
    locale = screening.Locale(payload["lang"], payload["country"])
    fresh = [r for r in reasons if r not in payload["flags"]]
    now = datetime.now(UTC)
    event_key = event_keys.get_or_create_blocking(pseudonym)
    flag = derivatives.escalation(
        gate,
        key,
        event_key,
        checkin_ref=row.id,
        reasons=fresh,
        contact_requested=bool(payload["talk_to_someone"]) and bool(fresh),
        note=None,
        share_note=False,
        locale=locale,
        now=now,
    )
    found = sorted(set(payload["needs"]) | set(derivatives.needs(scores)))
    update = (
        derivatives.personalization(gate, event_key, locale.lang, row.iso_week, found)
        if found != payload["needs"]
        else None
    )
    for produced in (flag, update):
        if produced is not None:
            stage(session, produced.event)
    payload.update(scores=scores.to_json(), flags=reasons, needs=found)
    row.payload = _seal_payload(key, row.id, payload)
    session.add(row)
    return StepResult(
        id=row.id,
        score=Score.model_validate(scores.summary()),
        next_step=_next(row.id, scores.next_step),
        crisis=_crisis(reasons, locale),
    )


def read_checkin(key: SubjectKey, row: Checkin) -> CheckinRead:
    payload = _open(key, row)
    scores = Scores.from_json(payload["scores"])
    note = key.open(row.note, "checkin", row.id, "note").decode() if row.note is not None else None
    return CheckinRead(
        id=row.id,
        created_at=aware(row.created_at),
        iso_week=row.iso_week,
        lang=payload["lang"],
        complete=scores.next_step is None,
        next_step=scores.next_step,
        score=Score.model_validate(scores.summary()),
        note=note,
        talk_to_someone=bool(payload["talk_to_someone"]),
        share_note=bool(payload["share_note"]),
        risk_flagged=bool(payload["flags"]),
    )


def history(session: Session, keys: DataKeyStore, pseudonym: str, limit: int | None = None) -> list[CheckinRead]:
    """The subject's own check-ins, opened for them (newest first)."""
    rows = repo.list_checkins(session, pseudonym, limit)
    if not rows:
        return []
    key = keys.require(session, pseudonym)
    return [read_checkin(key, row) for row in rows]


def history_page(session: Session, keys: DataKeyStore, pseudonym: str, request: PageRequest) -> CheckinList:
    """One page of the subject's own check-ins, newest first."""
    after = request.after(str, str)
    before = (datetime.fromisoformat(after[0]), after[1]) if after else None
    rows, next_cursor = page(
        repo.list_checkins(session, pseudonym, request.limit + 1, before),
        request,
        lambda row: (row.created_at.isoformat(), row.id),
    )
    key = keys.require(session, pseudonym) if rows else None
    return CheckinList(items=[read_checkin(key, row) for row in rows] if key else [], next_cursor=next_cursor)


def delete_checkin(session: Session, pseudonym: str, checkin_id: str) -> None:
    row = repo.get_checkin(session, checkin_id, pseudonym)
    if row is None:
        raise NotFound("No such check-in.")
    repo.delete_checkin(session, row)


__all__ = ["KeyDestroyed", "Prepared", "checkin_result", "history", "prepare_checkin", "submit_step"]
