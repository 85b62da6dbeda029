"""The escalation ladder: who is on call, which step to page, when the next one is due.

A case's ladder runs on its own copies of the policy and rosters (taken when it opened). Steps of
one round are every rule of every loop, then (if the policy says so) the external crisis service.
Paging a step writes the page's idempotency row ``(case, round, step)``, queues the signed webhook
and schedules the next step's timer, all in the caller's transaction: a rolled-back change pages
nobody, a committed one pages exactly once per step, whichever replica fires it and whatever
restarts happen in between.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session

from services.escalation.cases.models import Case
from services.escalation.ladder import repository as repo
from services.escalation.ladder.models import CasePage, CaseTimer
from services.escalation.ladder.schemas import DAYS, Policy, Rosters, Shift, Target
from services.escalation.notify import PAGE_EXTERNAL, PAGE_RESOLVED, PAGE_TRIGGERED, notify

PAGE = "page"
CONTACT = "contact"


def snapshot(session: Session, default_policy: dict[str, Any]) -> tuple[str, str]:
    """The policy and rosters in force now, as the JSON copies a new case keeps."""
    policy = repo.get_config(session, "policy")
    rosters = repo.get_config(session, "rosters")
    policy_doc = policy.document if policy else Policy.model_validate(default_policy).model_dump_json()
    rosters_doc = rosters.document if rosters else Rosters().model_dump_json()
    return policy_doc, rosters_doc


def _on_shift(shift: Shift, local: datetime) -> bool:
    day, t = DAYS[local.weekday()], local.time().replace(tzinfo=None)
    if shift.start < shift.end:
        return day in shift.days and shift.start <= t < shift.end
    yesterday = DAYS[(local.weekday() - 1) % 7]  # a night shift that began yesterday
    return (day in shift.days and t >= shift.start) or (yesterday in shift.days and t < shift.end)


def on_call(rosters: Rosters, name: str, at: datetime, turn: int) -> list[str]:
    """Handles on call in roster ``name`` at ``at`` (read in the roster's own time zone)."""
    roster = next((r for r in rosters.rosters if r.name == name), None)
    if roster is None:
        return []
    local = at.astimezone(ZoneInfo(roster.timezone))
    people: list[str] = []
    for shift in roster.shifts:
        if _on_shift(shift, local):
            chosen = [shift.members[turn % len(shift.members)]] if shift.mode == "round_robin" else shift.members
            people += [m for m in chosen if m not in people]
    return people


def _targets(targets: list[Target], rosters: Rosters, at: datetime, turn: int) -> list[str]:
    out: list[str] = []
    for target in targets:
        if target.counsellor:
            names = [target.counsellor]
        elif target.roster:
            names = on_call(rosters, target.roster, at, turn) or ["group:counsellors"]  # nobody on shift
        else:
            names = ["group:counsellors"]
        out += [n for n in names if n not in out]
    return out


def _page(session: Session, case: Case, round_: int, step: int, now: datetime, console_url: str) -> None:
    policy = Policy.model_validate_json(case.policy)
    rules = len(policy.rules)
    external = step >= rules * policy.loops
    rule, loop = (rules, policy.loops - 1) if external else (step % rules, step // rules)
    if not repo.record_page(
        session,
        CasePage(case_id=case.id, round=round_, step=step, rule=rule, loop=loop, external=external, paged_at=now),
    ):
        return
    payload: dict[str, Any] = {
        "case_ref": case.id,
        "severity": case.severity,
        "page_key": f"{case.id}:{round_}:{step}",
        "rule": rule + 1,
        "loop": loop + 1,
        "round": round_ + 1,
        "console_url": console_url + case.id,
    }
    if external:
        notify(session, PAGE_EXTERNAL, payload, subject=case.pseudonym)
    else:
        turn = int(case.id[:8], 16) + loop  # round-robin: spread cases, move on each loop
        payload["targets"] = _targets(policy.rules[rule].targets, Rosters.model_validate_json(case.rosters), now, turn)
        notify(session, PAGE_TRIGGERED, payload, subject=case.pseudonym)
    if step + 1 < policy.steps:
        delay = policy.rules[min(rule, rules - 1)].ack_delay_seconds.of(case.severity)
        repo.add_timer(session, case.id, PAGE, round_, step + 1, now + timedelta(seconds=delay))


def start(session: Session, case: Case, now: datetime, console_url: str) -> None:
    """Page the first rule now (in the transaction that opens the case) and time the next."""
    _page(session, case, case.round, 0, now, console_url)


def acknowledged(session: Session, case: Case, now: datetime) -> None:
    """Stop paging; re-escalate unless the case is marked contacted within its contact timeout."""
    repo.delete_timers(session, case.id)
    notify(session, PAGE_RESOLVED, {"case_ref": case.id, "reason": "acknowledged"}, subject=case.pseudonym)
    if case.contacted_at is None:
        timeout = Policy.model_validate_json(case.policy).contact_timeout_seconds.of(case.severity)
        repo.add_timer(session, case.id, CONTACT, case.round, 0, now + timedelta(seconds=timeout))


def contacted(session: Session, case: Case) -> None:
    repo.delete_timers(session, case.id, CONTACT)


def closed(session: Session, case: Case, reason: str) -> None:
    """Resolving or dismissing cancels every pending timer."""
    repo.delete_timers(session, case.id)
    notify(session, PAGE_RESOLVED, {"case_ref": case.id, "reason": reason}, subject=case.pseudonym)


def fire(session: Session, timer: CaseTimer, case: Case, now: datetime, console_url: str) -> str:
    """Fire one locked, due timer of the locked ``case``; returns what happened (for counting)."""
    if not repo.delete_timer(session, timer):
        return "stale"
    if case.closed_at is not None or timer.round != case.round:
        return "stale"
    if timer.kind == PAGE:
        if case.acked_at is not None:
            return "stale"
        _page(session, case, timer.round, timer.step, now, console_url)
        return "paged"
    if case.contacted_at is not None:
        return "stale"
    # Acknowledged but nobody made contact in time: a new round pages the ladder from the top.
    case.round += 1
    case.acked_at = None
    case.updated_at = now
    session.add(case)
    _page(session, case, case.round, 0, now, console_url)
    return "re_escalated"
