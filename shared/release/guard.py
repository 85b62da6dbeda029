"""The differencing guard: no release may differ from an overlapping earlier one by fewer than k.

Two readings of a group whose membership changed by one person give that person's figures by
subtraction (7 -> 8 people: the newcomer's consents; 5/38 -> 4/38: who withdrew). Where the
members are known across releases (the consent statistics hold pseudonyms), a cell is held back
when any of its tracked sets (its members, and for example the members who granted a purpose)
differs from the same set of an earlier released cell that overlaps it (same unit, a renamed or
moved successor, or any other unit sharing members) by at least one and fewer than k people.
Where they are not (the aggregator's per-period tokens cannot be linked across weeks, by design),
each period is a fresh measurement under its own DP budget instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

DIFFERENCING = "differs_from_earlier_release_by_fewer_than_k"
MEMBERS = "members"


@dataclass(frozen=True)
class Membership:
    """The tracked sets of one cell in one release: ``sets[MEMBERS]`` is who is in it."""

    sets: Mapping[str, frozenset[str]]

    @property
    def members(self) -> frozenset[str]:
        return self.sets.get(MEMBERS, frozenset())


def too_close(current: Membership, earlier: Iterable[Membership], k: int) -> bool:
    """True if releasing ``current`` would let it be differenced against an earlier release.

    Members are compared with every overlapping earlier cell; the other tracked sets (who granted
    a purpose) only where the members are the same people: there a change of one person's choice
    is exactly what subtraction would show. Where k or more members changed, the change of a
    subset mixes with theirs.
    """
    for before in earlier:
        if not current.members & before.members:
            continue
        moved = len(current.members ^ before.members)
        if 0 < moved < k:
            return True
        if moved == 0 and any(
            0 < len(now ^ before.sets.get(name, frozenset())) < k
            for name, now in current.sets.items()
            if name != MEMBERS
        ):
            return True
    return False


def hold_back(current: Mapping[str, Membership], earlier: Iterable[Membership], k: int) -> dict[str, str]:
    """The cells of a release to hold back (unit -> reason), against every earlier released cell."""
    previous = list(earlier)
    return {unit: DIFFERENCING for unit, m in current.items() if m.members and too_close(m, previous, k)}
