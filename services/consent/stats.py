"""Consent rates for HR: per purpose, only for groups of at least k subjects.

The group is a set of pseudonyms (an org unit once HRIS data arrives); ``None`` is the whole
tenant. Group size counts subjects in the directory; below k, every figure is suppressed,
including the size itself.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlmodel import Session

from services.consent import hris_repository as hrepo
from services.consent import repository as repo
from services.consent.hris_schemas import OrgUnitRates, OrgUnitRatesRead
from services.consent.schemas import ConsentRates, PurposeRate
from shared.events.consent import Purpose


def consent_rates(session: Session, group: Collection[str] | None, k: int) -> ConsentRates:
    size = repo.count_directory(session, group)
    if size < k:
        return ConsentRates(
            k=k,
            group_size=None,
            suppressed=True,
            purposes=[PurposeRate(purpose=p, rate=None, suppressed=True) for p in Purpose],
        )
    granted = repo.granted_counts(session, group)
    return ConsentRates(
        k=k,
        group_size=size,
        suppressed=False,
        purposes=[
            PurposeRate(purpose=p, rate=round(granted.get(p.value, 0) / size, 4), suppressed=False) for p in Purpose
        ],
    )


def consent_rates_by_org_unit(session: Session, k: int) -> OrgUnitRatesRead:
    """Rates per active org unit, over its current subjects and those of its sub-units.

    A unit is released only if it has at least k subjects, and only if no subtraction of released
    figures isolates fewer than k: for every released unit, its subjects minus those of its nearest
    released sub-units (what ``parent - children`` reveals) must be none or at least k. Where that
    fails, the smallest of those sub-units is suppressed too, until it holds everywhere.
    """
    tree = _org_tree(session)
    sizes, granted = tree.totals(hrepo.members_per_unit(session), hrepo.granted_per_unit(session))
    released = {u for u in tree.active if sizes.get(u, 0) >= k}
    changed = True
    while changed:
        changed = False
        for unit in sorted(released):
            nearest = tree.nearest_released(unit, released)
            residual = sizes[unit] - sum(sizes[d] for d in nearest)
            if 0 < residual < k:
                released.discard(min(nearest, key=lambda d: (sizes[d], d)))
                changed = True
                break
    return OrgUnitRatesRead(
        k=k,
        org_units=[
            _unit_rates(unit, tree.parent.get(unit), sizes.get(unit, 0), granted.get(unit, {}), unit in released)
            for unit in sorted(tree.active)
        ],
    )


def _unit_rates(unit: str, parent: str | None, size: int, granted: dict[str, int], released: bool) -> OrgUnitRates:
    if not released:
        purposes = [PurposeRate(purpose=p, rate=None, suppressed=True) for p in Purpose]
        return OrgUnitRates(org_unit=unit, parent=parent, group_size=None, suppressed=True, purposes=purposes)
    purposes = [
        PurposeRate(purpose=p, rate=round(granted.get(p.value, 0) / size, 4), suppressed=False) for p in Purpose
    ]
    return OrgUnitRates(org_unit=unit, parent=parent, group_size=size, suppressed=False, purposes=purposes)


class _OrgTree:
    """The org tree as the HRIS last described it; a parent that is unknown (or part of a cycle,
    which ingress refuses anyway) makes its child a root."""

    def __init__(self, parent: dict[str, str | None], active: set[str]) -> None:
        self.parent, self.active = dict(parent), active
        for unit, up in parent.items():
            if up is not None and (up not in parent or self._in_cycle(unit)):
                self.parent[unit] = None
        self.children: dict[str, list[str]] = {}
        for unit, up in self.parent.items():
            if up is not None:
                self.children.setdefault(up, []).append(unit)

    def _in_cycle(self, unit: str) -> bool:
        seen: set[str] = set()
        current = self.parent.get(unit)
        while current is not None and current not in seen:
            if current == unit:
                return True
            seen.add(current)
            current = self.parent.get(current)
        return False

    def totals(
        self, members: dict[str, int], granted: dict[tuple[str, str], int]
    ) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
        """Subjects and grants per purpose of each unit's whole subtree."""
        sizes: dict[str, int] = {}
        grants: dict[str, dict[str, int]] = {}

        def visit(unit: str) -> None:
            sizes[unit] = members.get(unit, 0)
            grants[unit] = {p: n for (u, p), n in granted.items() if u == unit}
            for child in self.children.get(unit, []):
                visit(child)
                sizes[unit] += sizes[child]
                for p, n in grants[child].items():
                    grants[unit][p] = grants[unit].get(p, 0) + n

        for root in [u for u, up in self.parent.items() if up is None]:
            visit(root)
        return sizes, grants

    def nearest_released(self, unit: str, released: set[str]) -> list[str]:
        """The released units below ``unit`` with no released unit between them and it."""
        found: list[str] = []
        stack = list(self.children.get(unit, []))
        while stack:
            child = stack.pop()
            if child in released:
                found.append(child)
            else:
                stack.extend(self.children.get(child, []))
        return found


def _org_tree(session: Session) -> _OrgTree:
    rows = hrepo.org_units(session)
    parent: dict[str, str | None] = {r.org_unit: r.parent for r in rows}
    active = {r.org_unit for r in rows if r.state == "active"}
    for unit in hrepo.members_per_unit(session):  # a unit known only from assignments: an active root
        if unit not in parent:
            parent[unit] = None
            active.add(unit)
    return _OrgTree(parent, active)
