"""Which cells of an org hierarchy may be released: minimum group size and complementary suppression.

A cell is one org unit's whole subtree (its own members and everyone below). Every unit with
children also has a *direct* cell (its own members), never published: ``parent = direct +
children`` is public arithmetic, so the direct cell is an unknown an attacker may try to isolate.
A cell (or direct cell) with nobody in it is taken as publicly empty: it describes no one.

1. **Primary suppression.** A cell is released only if its true count *and* its DP-noised count
   reach k (Google's pre-thresholding: the true count alone would leak through the decision, the
   noisy one alone could release a group of 2). Cells the caller holds back for another reason
   (differencing guard, budget spent) start out suppressed with that reason.
2. **Complementary suppression**, a greedy pass to a fixed point over every equation
   ``unit = direct + children``: an equation may not have exactly one unknown (it would be
   determined by subtraction), and the unknowns of an equation whose unit is released must
   together reach k (true and noisy), else the next smallest released child is suppressed (by
   noisy count, then id); with no child left, the unit itself. A direct cell of fewer than k
   needs this protection; one of k or more may be derived.
3. **Replays.** A cell whose members are exactly those of its previous release (persistent
   statistics such as consent rates) keeps that release's decision and figures (``pinned``):
   a fresh draw of the same figures would only average the noise away, and a released cell
   suppressed now would still be known from before. Pinned cells are never chosen as complements.

Why this suffices (checked by the exact rank audit in :mod:`shared.release.audit`): the equations
form a tree in which each unknown is an edge between its own equation and its parent's, or hangs
off one of them (leaves, direct cells, the root). If no equation has exactly one unknown edge,
every unknown lies on a path between two hanging unknowns, and adding +1/-1 along that path
changes it while keeping every equation and every released figure; so no unknown is determined.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

BELOW_K = "below_k"
COMPLEMENTARY = "complementary"


def direct_key(unit: str) -> str:
    """The id of a unit's direct cell (no org unit id contains ``#``)."""
    return f"{unit}#direct"


@dataclass(frozen=True)
class Decision:
    released: bool
    reason: str | None = None  # why suppressed; never says whether the count was the cause


class Hierarchy:
    """The org tree as parent links; units whose parent is unknown are roots."""

    def __init__(self, parents: Mapping[str, str | None]) -> None:
        self.parents = {u: (p if p in parents and p != u else None) for u, p in parents.items()}
        self.children: dict[str, list[str]] = {u: [] for u in self.parents}
        for unit, parent in self.parents.items():
            if parent is not None:
                self.children[parent].append(unit)
        self._order = self._bottom_up()

    def _bottom_up(self) -> list[str]:
        """Units, each after all of its descendants (cycles are broken: their units become roots)."""
        order: list[str] = []
        state: dict[str, int] = {}
        for start in sorted(self.parents):
            stack = [(start, False)]
            while stack:
                unit, done = stack.pop()
                if done:
                    state[unit] = 2
                    order.append(unit)
                    continue
                if state.get(unit):
                    continue
                state[unit] = 1
                stack.append((unit, True))
                for child in sorted(self.children[unit], reverse=True):
                    if state.get(child) == 1:  # a cycle: cut the link
                        self.children[unit].remove(child)
                        self.parents[child] = None
                    elif not state.get(child):
                        stack.append((child, False))
        return order

    def bottom_up(self) -> list[str]:
        return list(self._order)

    def subtree_totals(self, direct: Mapping[str, int]) -> dict[str, int]:
        """Each unit's own count plus its descendants'."""
        totals: dict[str, int] = {}
        for unit in self._order:
            totals[unit] = direct.get(unit, 0) + sum(totals[c] for c in self.children[unit])
        return totals


def plan(
    tree: Hierarchy,
    true_counts: Mapping[str, int],
    noisy_counts: Mapping[str, float],
    k: int,
    held: Mapping[str, str] | None = None,
    pinned: Mapping[str, Decision] | None = None,
) -> dict[str, Decision]:
    """Decide every unit of ``tree``: counts are per whole subtree; ``held`` maps unit -> reason;
    ``pinned`` maps unit -> the decision it keeps."""
    held = held or {}
    pinned = pinned or {}
    suppressed: dict[str, str] = {}
    for unit in tree.parents:
        if unit in pinned:
            if not pinned[unit].released:
                suppressed[unit] = pinned[unit].reason or COMPLEMENTARY
        elif unit in held:
            suppressed[unit] = held[unit]
        elif true_counts.get(unit, 0) < k or noisy_counts.get(unit, 0) < k:
            suppressed[unit] = BELOW_K
    true_direct, noisy_direct = _direct_cells(tree, true_counts, noisy_counts)
    changed = True
    while changed:
        changed = False
        for unit in tree.bottom_up():
            if tree.children[unit] and _fix_equation(
                unit, tree, (true_direct, noisy_direct), (true_counts, noisy_counts), k, suppressed, pinned
            ):
                changed = True
    return {u: Decision(False, suppressed[u]) if u in suppressed else Decision(True) for u in tree.parents}


def _direct_cells(
    tree: Hierarchy, true_counts: Mapping[str, int], noisy_counts: Mapping[str, float]
) -> tuple[dict[str, int], dict[str, float]]:
    """Direct cells of units with children; the noisy one is post-processing of noisy figures."""
    true_direct: dict[str, int] = {}
    noisy_direct: dict[str, float] = {}
    for unit, kids in tree.children.items():
        if kids:
            true_direct[unit] = true_counts.get(unit, 0) - sum(true_counts.get(c, 0) for c in kids)
            noisy_direct[unit] = noisy_counts.get(unit, 0) - sum(noisy_counts.get(c, 0) for c in kids)
    return true_direct, noisy_direct


def _fix_equation(
    unit: str,
    tree: Hierarchy,
    direct: tuple[Mapping[str, int], Mapping[str, float]],
    counts: tuple[Mapping[str, int], Mapping[str, float]],
    k: int,
    suppressed: dict[str, str],
    pinned: Mapping[str, Decision],
) -> bool:
    """Suppress one more cell if ``unit = direct + children`` isolates a cell; True if it did."""
    true_direct, noisy_direct = direct
    true_counts, noisy_counts = counts
    # A cell of nobody is treated as publicly empty, like a direct cell of nobody: it describes no
    # one, and counting it as an unknown would suppress a neighbour for nothing.
    unknown = [c for c in tree.children[unit] if c in suppressed and true_counts.get(c, 0) != 0]
    direct_small = true_direct[unit] != 0 and (true_direct[unit] < k or noisy_direct[unit] < k)
    direct_unknown = true_direct[unit] != 0  # never published; a direct cell of nobody is no one
    unknowns = len(unknown) + (1 if direct_unknown else 0)
    if unit in suppressed:
        if unknowns > 0:
            return False  # the unit is one unknown, its terms hold another
    else:
        if not unknown and not direct_small:
            return False  # nothing to protect (a direct cell of k or more may be derived)
        true_sum = sum(true_counts.get(c, 0) for c in unknown) + (true_direct[unit] if direct_unknown else 0)
        noisy_sum = sum(noisy_counts.get(c, 0) for c in unknown) + (noisy_direct[unit] if direct_unknown else 0)
        if unknowns >= 2 and true_sum >= k and noisy_sum >= k:
            return False
    candidates = [c for c in tree.children[unit] if c not in suppressed and c not in pinned]
    if candidates:
        smallest = min(candidates, key=lambda c: (noisy_counts.get(c, 0), c))
        suppressed[smallest] = COMPLEMENTARY
    elif unit not in suppressed and unit not in pinned:
        suppressed[unit] = COMPLEMENTARY
    else:
        return False
    return True
