"""Tiny-unit roll-up (issue 11.6): the unit a contribution may name, given the org's headcounts.

A unit's headcount is its own members plus those of every unit below it. A unit with fewer than
``k`` contributes under its nearest ancestor with at least ``k``; with none it contributes
nothing. A unit missing from the tree has no known ancestor, so it only contributes if it is big
enough itself.
"""

from __future__ import annotations

from collections.abc import Mapping


def _ancestry(unit: str, parents: Mapping[str, str | None]) -> list[str]:
    chain, seen = [unit], {unit}
    parent = parents.get(unit)
    while parent is not None and parent not in seen:  # a cycle in bad HRIS data ends the walk
        chain.append(parent)
        seen.add(parent)
        parent = parents.get(parent)
    return chain


def headcounts(members: Mapping[str, int], parents: Mapping[str, str | None]) -> dict[str, int]:
    """Each unit's members including its sub-units'."""
    totals: dict[str, int] = {}
    for unit, count in members.items():
        for up in _ancestry(unit, parents):
            totals[up] = totals.get(up, 0) + count
    return totals


def roll_up(members: Mapping[str, int], parents: Mapping[str, str | None], k: int) -> dict[str, str | None]:
    """For each unit with members: the unit to contribute under (itself when big enough), or None."""
    totals = headcounts(members, parents)
    return {unit: next((up for up in _ancestry(unit, parents) if totals.get(up, 0) >= k), None) for unit in members}
