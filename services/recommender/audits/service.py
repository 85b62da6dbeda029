"""Fairness-audit rules: declaring attributes, counting exposure, and releasing reports.

A report is computed once per (ISO week, attribute), stored, and served as stored. Groups are
decided on their noised size (a true count below the minimum would itself leak), and a run that
would overspend the week's privacy budget releases nothing.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlmodel import Session

from services.recommender.audits import maths
from services.recommender.audits import repository as repo
from services.recommender.audits.models import DeclaredAttribute, ExposureTally, FairnessReport
from services.recommender.audits.schemas import (
    AttributeOptions,
    AttributesRead,
    AttributesUpdate,
    CategoryResult,
    FairnessReportRead,
    GroupResult,
    Interval,
)
from services.recommender.columns import as_utc, utcnow
from services.recommender.config import RecommenderSettings
from shared.bus.outbox import stage
from shared.errors import Unprocessable
from shared.events.recommender import FairnessFlagged
from shared.release.noise import epsilon

PREFER_NOT = "prefer_not_to_say"


def options(configured: dict[str, list[str]]) -> list[AttributeOptions]:
    return [
        AttributeOptions(name=name, values=[*[v for v in values if v != PREFER_NOT], PREFER_NOT])
        for name, values in sorted(configured.items())
    ]


def read(session: Session, pseudonym: str, consented: bool, configured: dict[str, list[str]]) -> AttributesRead:
    held = {a.name: a.value for a in repo.attributes_of(session, pseudonym)} if consented else {}
    return AttributesRead(fairness_audit=consented, attributes=held, options=options(configured))


def declare(session: Session, pseudonym: str, body: AttributesUpdate, configured: dict[str, list[str]]) -> None:
    allowed = {o.name: set(o.values) for o in options(configured)}
    for name, value in body.attributes.items():
        if name not in allowed or value not in allowed[name]:
            raise Unprocessable("Unknown attribute or value.", field=name if name in allowed else None)
    now = utcnow()
    rows = [DeclaredAttribute(pseudonym=pseudonym, name=n, value=v, updated_at=now) for n, v in body.attributes.items()]
    repo.replace_attributes(session, rows, pseudonym)


def note_exposure(session: Session, pseudonym: str, week: str, kinds_in_order: Sequence[str]) -> None:
    """Count one served list for a person who consented to fairness audits and declared something."""
    if not repo.attributes_of(session, pseudonym):
        return
    shown, exposure = maths.list_exposure(kinds_in_order)
    row = repo.tally(session, pseudonym, week) or ExposureTally(
        pseudonym=pseudonym, audit_week=week, lists=0, shown={}, exposure={}
    )
    row.lists += 1
    row.shown = {c: row.shown.get(c, 0) + (1 if c in shown else 0) for c in maths.CATEGORIES}
    row.exposure = {c: row.exposure.get(c, 0.0) + exposure.get(c, 0.0) for c in maths.CATEGORIES}
    session.add(row)


def _report_id() -> str:
    return f"{time.time_ns() // 1_000_000:013x}{secrets.token_hex(4)}"


def run(session: Session, week: str, attribute: str, settings: RecommenderSettings) -> FairnessReport | None:
    """Release the (week, attribute) report once; ``None`` if it exists or the budget is spent."""
    if repo.has_report(session, week, attribute):
        return None
    tallies = [
        maths.Tally(value, t.lists, dict(t.shown), dict(t.exposure))
        for t, value in repo.tallies_with(session, week, attribute)
    ]
    rho, delta = settings.fairness_rho, settings.fairness_delta
    plan = maths.Plan.for_rho(rho)
    if not repo.spend(session, week, rho, settings.fairness_weekly_rho):
        return None
    noisy = maths.release(maths.group_totals(tallies), plan)
    kept = {g: t for g, t in sorted(noisy.items()) if t.people >= settings.min_group_size}
    report_id = _report_id()
    groups = _groups(kept, plan, seed=int(report_id, 16))
    flagged = [(g, c) for g in groups for c in g.categories if c.verdict == "flagged"]
    report = FairnessReport(
        id=report_id,
        audit_week=week,
        attribute=attribute,
        created_at=utcnow(),
        report={
            "top_k": maths.TOP_K,
            "rho": rho,
            "epsilon": round(epsilon(rho, delta), 4),
            "delta": delta,
            "noise_scales": plan.scales,
            "groups": [g.model_dump() for g in groups],
            "left_out": len(noisy) - len(kept),
            "flagged": bool(flagged),
        },
    )
    repo.add_report(session, report)
    for group, cat in flagged:
        stage(
            session,
            FairnessFlagged(
                report_id=report_id,
                audit_week=week,
                attribute=attribute,
                value=group.value,
                category=cat.category,
                disparity_ratio=cat.disparity_ratio,
                interval_low=cat.interval.low,
                interval_high=cat.interval.high,
            ),
        )
    return report


def _groups(kept: dict[str, maths.Totals], plan: maths.Plan, seed: int) -> list[GroupResult]:
    results = []
    for g, t in kept.items():
        categories = []
        for c in maths.CATEGORIES:
            rates = maths.rates(kept, c)
            best = max(rates.values())
            ratio = rates[g] / best if best > 0 else 1.0
            low, high = maths.ratio_interval(kept, g, c, plan, seed)
            categories.append(
                CategoryResult(
                    category=c,
                    rate=round(rates[g], 4),
                    mean_exposure=round(max(t.exposure[c], 0.0) / max(t.lists, 1.0), 4),
                    disparity_ratio=round(ratio, 4),
                    interval=Interval(low=round(low, 4), high=round(high, 4)),
                    verdict=maths.verdict(ratio, low, high),  # type: ignore[arg-type]
                )
            )
        results.append(
            GroupResult(value=g, people=round(t.people, 2), lists=round(max(t.lists, 0.0), 2), categories=categories)
        )
    return results


def read_report(row: FairnessReport) -> FairnessReportRead:
    body: dict[str, Any] = dict(row.report)
    return FairnessReportRead(
        id=row.id, audit_week=row.audit_week, attribute=row.attribute, created_at=as_utc(row.created_at), **body
    )


def export_of(session: Session, pseudonym: str) -> dict[str, Any]:
    return {"declared_attributes": {a.name: a.value for a in repo.attributes_of(session, pseudonym)}}


def iso_week(moment: datetime) -> str:
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"
