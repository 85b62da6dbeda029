"""The rules of a check-in: score, screen, seal, derive, store; step up; read; delete.

Services never commit: ``prepare_checkin`` builds rows and events that the group-commit writer
stores durably, the other functions work in the caller's ``SessionDep`` transaction and stage
their events there, so a rollback drops them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic_core import from_json, to_json
from sqlmodel import Session

from services.checkin import flows, screening
from services.checkin import repository as repo
from services.checkin.clock import aware, iso_week, week_start
from services.checkin.models import Checkin
from services.checkin.schemas import (
    CheckinCreate,
    CheckinList,
    CheckinRead,
    CrisisSupport,
    NextStep,
    Phq2Gad2Step,
    Phq9Step,
    Score,
    StepResult,
)
from services.checkin.scoring import Scores, Step
from services.checkin.writer import CheckinWrite, WriteResult, payload_context
from shared.bus.outbox import stage
from shared.datakeys import CiphertextInvalid, DataKeyStore, KeyDestroyed, SubjectKey
from shared.errors import Conflict, Gone, NotFound
from shared.eventkeys import EventKeyring
from shared.pagination import PageRequest, page

STEPS_PATH = "/v1/checkins/{id}/steps"


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
    gate: Any,
    locale: screening.Locale,
    period_key: bytes,
    event_key: SubjectKey,
) -> Prepared:
    """Everything but the write: CPU only, so it runs on the event loop without blocking it long."""
    now = datetime.now(UTC)
    created = now
    week, start = iso_week(created.date()), week_start(created.date())
    answers = body.answers.model_dump()
    scores = Scores(answers={k: v for k, v in answers.items() if k != "mood"}, mood=answers["mood"])
    scores.next_step = scores.after_weekly()
    signals = screening.NoteSignals.of(body.note)
    crisis_language = signals.crisis
    reasons = screening.risk_reasons(scores, crisis_language)
    row_id = os.urandom(16).hex()
    found = flows.needs(scores, signals.needs)
    events = [
        e
        for e in (
            flows.escalation(
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
            flows.personalization(gate, event_key, locale.lang, week, found),
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
        outbox=[(e, flows.outbox_row(e.event, created)) for e in events],
        contributions=flows.contributions(gate, period_key, key.pseudonym, week, scores),
    )
    return Prepared(write, scores, reasons, locale, created, body.talk_to_someone)


SCORE_KEYS = tuple(Score.model_fields)


def score_dict(summary: dict[str, Any]) -> dict[str, Any]:
    """Every ``Score`` field, absent step-up scores as null (the shape ``Score`` documents)."""
    return {k: summary.get(k) for k in SCORE_KEYS}


def checkin_result(prepared: Prepared, written: WriteResult) -> bytes:
    """The ``CheckinResult`` body, serialised directly: every value here was produced by this
    service, so re-validating it per request would only cost time (tests check the shape)."""
    row = prepared.write.row
    trend = [{"iso_week": w, "who5_index": i, "mood": m} for w, i, m in written.trend]
    direction = None
    if len(written.trend) >= 2:
        delta = written.trend[-1][1] - written.trend[-2][1]
        direction = "up" if delta >= 8 else "down" if delta <= -8 else "steady"
    step = prepared.scores.next_step
    return to_json(
        {
            "id": row["id"],
            "created_at": aware(prepared.created_at),
            "iso_week": row["iso_week"],
            "lang": prepared.locale.lang,
            "score": score_dict(prepared.scores.summary()),
            "trend": trend,
            "trend_direction": direction,
            "next_step": {"form": step.value, "post_to": STEPS_PATH.format(id=row["id"])} if step else None,
            "crisis": screening.crisis_resources(prepared.locale) if prepared.reasons else None,
            "contact_requested": prepared.contact_requested,
        }
    )


def _open(key: SubjectKey, row: Checkin) -> dict[str, Any]:
    payload: dict[str, Any] = from_json(key.open(row.payload, *payload_context(row.id)))
    return payload


def submit_step(
    session: Session,
    keys: DataKeyStore,
    gate: Any,
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
    flag = flows.escalation(
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
    found = sorted(set(payload["needs"]) | set(flows.needs(scores)))
    update = (
        flows.personalization(gate, event_key, locale.lang, row.iso_week, found) if found != payload["needs"] else None
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


def open_shared_note(session: Session, keys: DataKeyStore, pseudonym: str, checkin_ref: Any, sealed: Any) -> str:
    """A note the employee shared with counsellors; 410 once erasure has destroyed the key."""
    key = keys.get(session, pseudonym)
    if key is None or key.key_id != sealed.key_id:
        raise Gone("This note can no longer be read: its key was destroyed.", code="key-destroyed")
    try:
        return flows.open_sealed(key, checkin_ref, sealed)
    except (CiphertextInvalid, ValueError):
        raise Conflict("The sealed note does not open for this subject and check-in.", code="seal-mismatch") from None


__all__ = ["KeyDestroyed", "Prepared", "checkin_result", "history", "prepare_checkin", "submit_step"]
