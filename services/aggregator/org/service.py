"""The org tree as of a day, and what each caller may see of it."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from sqlmodel import Session

from services.aggregator.org import repository as repo
from services.aggregator.org.models import Trigger
from services.aggregator.org.schemas import OrgRead, OrgUnitRead
from shared.events.hris import ManagerScopeChanged, OrgUnitChanged, TriggerAnnounced
from shared.release.suppression import Hierarchy

if TYPE_CHECKING:
    from services.aggregator.access import View


def on_unit_changed(session: Session, event: OrgUnitChanged) -> None:
    repo.upsert_version(session, event.org_unit, event.effective_from, event.parent, event.state)


def on_manager_scope(session: Session, event: ManagerScopeChanged) -> None:
    repo.replace_scope(session, event.manager_ref, list(event.org_units))


def on_trigger(session: Session, event: TriggerAnnounced) -> None:
    repo.upsert_trigger(
        session,
        Trigger(
            trigger_id=event.trigger_id,
            kind=event.kind,
            org_units=",".join(event.org_units),
            starts_on=event.starts_on,
            ends_on=event.ends_on,
            label=event.label,
        ),
    )


def parents_on(session: Session, day: date, also: set[str] | None = None) -> dict[str, str | None]:
    """Active units on ``day`` with their parents; ``also`` adds units seen only in contributions
    (as roots: a unit the HRIS has not described yet still counts, on its own)."""
    latest: dict[str, tuple[str | None, str]] = {}
    for row in repo.versions_until(session, day):
        latest[row.org_unit] = (row.parent, row.state)  # ordered by date: the last one wins
    parents = {u: p for u, (p, state) in latest.items() if state == "active"}
    for unit in also or ():
        parents.setdefault(unit, None)
    return parents


def tree_on(session: Session, day: date, also: set[str] | None = None) -> Hierarchy:
    return Hierarchy(parents_on(session, day, also))


def subtree(tree: Hierarchy, roots: list[str]) -> set[str]:
    """``roots`` and every unit below them."""
    seen: set[str] = set()
    stack = [r for r in roots if r in tree.parents]
    while stack:
        unit = stack.pop()
        if unit not in seen:
            seen.add(unit)
            stack.extend(tree.children[unit])
    return seen


def read_org(session: Session, today: date, view: View) -> OrgRead:
    from services.aggregator.releases import repository as releases  # releases build on the tree

    tree = tree_on(session, today)
    allowed = view.units(session, today)
    units = sorted(u for u in tree.parents if allowed is None or u in allowed)
    week = releases.latest_week(session)
    shown: set[str] = set()
    if week is not None:
        for cell in releases.cells(session, units=set(units), week_from=week, week_to=week):
            if cell.manager_released if view.managers else cell.released:
                shown.add(cell.org_unit)
    return OrgRead(
        view="manager" if view.managers else "organisation",
        latest_week=week,
        units=[OrgUnitRead(org_unit=u, parent=tree.parents[u], reportable=u in shown) for u in units],
    )
