"""The exact audit of a release: is any protected figure determined by what was released?

A figure is determined when its vector (over the unknowns: one per person group) lies in the row
space of the released figures and the public equations. The check is Gaussian elimination over
exact rationals (``fractions.Fraction``), so no rounding can hide or invent a dependency. Used by
the property tests, and available to operators for a stored release.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction

from shared.release.suppression import Decision, Hierarchy, direct_key

Vector = Mapping[str, int | Fraction]


class RowSpace:
    """The span of the rows added so far, kept in reduced echelon form (pivot -> row)."""

    def __init__(self) -> None:
        self._rows: dict[str, dict[str, Fraction]] = {}

    def _reduce(self, vector: Vector) -> dict[str, Fraction]:
        row = {k: Fraction(v) for k, v in vector.items() if v}
        for pivot, basis in self._rows.items():
            factor = row.get(pivot)
            if factor:
                for key, value in basis.items():
                    new = row.get(key, Fraction(0)) - factor * value
                    if new:
                        row[key] = new
                    else:
                        row.pop(key, None)
        return row

    def add(self, vector: Vector) -> None:
        row = self._reduce(vector)
        if not row:
            return
        pivot = min(row)
        lead = row[pivot]
        row = {k: v / lead for k, v in row.items()}
        for other in self._rows.values():  # keep every basis row free of the new pivot
            factor = other.get(pivot)
            if factor:
                for key, value in row.items():
                    new = other.get(key, Fraction(0)) - factor * value
                    if new:
                        other[key] = new
                    else:
                        other.pop(key, None)
        self._rows[pivot] = row

    def contains(self, vector: Vector) -> bool:
        return not self._reduce(vector)

    @property
    def rank(self) -> int:
        return len(self._rows)


def hierarchy_equations(tree: Hierarchy, true_counts: Mapping[str, int], tag: str = "") -> list[dict[str, int]]:
    """``unit = direct + children`` for every unit with children; a direct cell of nobody is
    taken as publicly zero (the attacker is assumed to know it)."""
    rows: list[dict[str, int]] = []
    for unit, kids in tree.children.items():
        if not kids:
            continue
        row = {f"{tag}{unit}": 1, f"{tag}{direct_key(unit)}": -1}
        for child in kids:
            row[f"{tag}{child}"] = -1
        rows.append(row)
        if true_counts.get(unit, 0) - sum(true_counts.get(c, 0) for c in kids) == 0:
            rows.append({f"{tag}{direct_key(unit)}": 1})
    return rows


def determined_cells(
    tree: Hierarchy, true_counts: Mapping[str, int], decisions: Mapping[str, Decision], k: int, tag: str = ""
) -> list[str]:
    """Suppressed cells of at least one person, and direct cells of 1..k-1 people, that the release
    determines (the attacker is assumed to know which cells are empty)."""
    space = RowSpace()
    for row in hierarchy_equations(tree, true_counts, tag):
        space.add(row)
    for unit, decision in decisions.items():
        if decision.released or true_counts.get(unit, 0) == 0:  # an empty cell: assumed known
            space.add({f"{tag}{unit}": 1})
    found = [
        u for u, d in decisions.items() if not d.released and true_counts.get(u, 0) and space.contains({f"{tag}{u}": 1})
    ]
    for unit, kids in tree.children.items():
        direct = true_counts.get(unit, 0) - sum(true_counts.get(c, 0) for c in kids)
        if kids and 0 < direct < k and space.contains({f"{tag}{direct_key(unit)}": 1}):
            found.append(direct_key(unit))
    return found
