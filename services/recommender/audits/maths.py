"""The audit's arithmetic: exposure tallies, group totals, noise and the verdicts.

Each person belongs to exactly one group of the audited attribute, so groups are disjoint and
their releases compose in parallel; within a group, the released figures compose by adding their
zCDP costs, and one report's ``rho`` is split between them. Each person's contribution is bounded
(``MAX_LISTS`` lists a week, at most ``MAX_EXPOSURE`` exposure per list), which fixes every
sensitivity. Noise comes from the platform's release measurements (``shared.release``, OpenDP), the
same the aggregator uses. The ratio's 95% interval is a parametric bootstrap of that noise.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from shared.release.noise import count_measurement, noisy_centred_sums, noisy_counts, sum_measurement

TOP_K = 10
MAX_LISTS = 20
MAX_EXPOSURE = sum(1 / math.log2(1 + r) for r in range(1, TOP_K + 1))
CATEGORIES = ("professional_help", "exercise", "article", "video", "course")
FOUR_FIFTHS = 0.8
BOOTSTRAP = 2000


def category_of(kind: str) -> str:
    return "professional_help" if kind in ("eap", "counsellor", "hotline") else kind


def list_exposure(kinds_in_order: Sequence[str]) -> tuple[set[str], dict[str, float]]:
    """Which categories one list shows in its top K, and each one's exposure sum 1/log2(1+rank)."""
    shown: set[str] = set()
    exposure: dict[str, float] = {}
    for rank, kind in enumerate(kinds_in_order[:TOP_K], start=1):
        cat = category_of(kind)
        shown.add(cat)
        exposure[cat] = exposure.get(cat, 0.0) + 1 / math.log2(1 + rank)
    return shown, exposure


@dataclass
class Totals:
    people: float = 0.0
    lists: float = 0.0
    shown: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0.0))
    exposure: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0.0))


@dataclass(frozen=True)
class Tally:
    group: str
    lists: int
    shown: dict[str, float]
    exposure: dict[str, float]


def group_totals(tallies: Iterable[Tally]) -> dict[str, Totals]:
    """Pre-noise sums per group, each person's contribution clipped to the bounds."""
    out: dict[str, Totals] = {}
    for t in tallies:
        if t.lists <= 0:
            continue
        clip = min(1.0, MAX_LISTS / t.lists)
        g = out.setdefault(t.group, Totals())
        g.people += 1
        g.lists += t.lists * clip
        for c in CATEGORIES:
            g.shown[c] += min(t.shown.get(c, 0.0), t.lists) * clip
            g.exposure[c] += min(t.exposure.get(c, 0.0), t.lists * MAX_EXPOSURE) * clip
    return out


def rates(totals: dict[str, Totals], category: str) -> dict[str, float]:
    return {g: rate(t.shown[category], t.lists) for g, t in totals.items()}


def disparity_ratio(group_rates: dict[str, float]) -> float:
    """Lowest rate over highest (1.0 when every group is served alike, or nobody at all)."""
    best = max(group_rates.values(), default=0.0)
    return min(group_rates.values()) / best if best > 0 else 1.0


@dataclass(frozen=True)
class Plan:
    """How one report's zCDP budget ``rho`` is split, and the noise scale each figure gets.

    A quarter for the group sizes (they decide what is reported), the rest to list counts, shown
    counts and exposure sums (each category an equal part). Counts and bounded sums are the
    platform's release measurements (``shared.release.noise``: OpenDP Gaussians whose scales come
    from their own privacy maps); sums are noised centred on their range's midpoint, and the
    midpoint times the *noised* group size is added back, so only noised figures combine.
    """

    rho: float
    shares: dict[str, float]
    scales: dict[str, float]

    @classmethod
    def for_rho(cls, rho: float) -> Plan:
        shares = {
            "people": 0.25 * rho,
            "lists": 0.15 * rho,
            "shown": 0.40 * rho / len(CATEGORIES),
            "exposure": 0.20 * rho / len(CATEGORIES),
        }
        scales = {"people": count_measurement(shares["people"]).scale}
        for name, (_, high) in BOUNDS.items():
            scales[name] = sum_measurement(shares[name], 0.0, high).scale
        return cls(rho, shares, scales)


BOUNDS = {"lists": (0.0, float(MAX_LISTS)), "shown": (0.0, float(MAX_LISTS))}
BOUNDS["exposure"] = (0.0, MAX_LISTS * MAX_EXPOSURE)


def _noised_sums(plan: Plan, name: str, totals: list[float], people: list[int], noisy_people: list[int]) -> list[float]:
    low, high = BOUNDS[name]
    centred = noisy_centred_sums(plan.shares[name], low, high, totals, people)
    return [c + n * (low + high) / 2 for c, n in zip(centred, noisy_people, strict=True)]


def release(totals: dict[str, Totals], plan: Plan) -> dict[str, Totals]:
    """Noised copies of every group's totals, not clamped: the interval below resamples around
    these raw values, and clamping them would fake certainty."""
    groups = sorted(totals)
    people = [int(totals[g].people) for g in groups]
    noisy_people = noisy_counts(plan.shares["people"], people)
    lists = _noised_sums(plan, "lists", [totals[g].lists for g in groups], people, noisy_people)
    noisy = {g: Totals(people=float(n), lists=v) for g, n, v in zip(groups, noisy_people, lists, strict=True)}
    for c in CATEGORIES:
        shown = _noised_sums(plan, "shown", [totals[g].shown[c] for g in groups], people, noisy_people)
        exposure = _noised_sums(plan, "exposure", [totals[g].exposure[c] for g in groups], people, noisy_people)
        for g, sv, ev in zip(groups, shown, exposure, strict=True):
            noisy[g].shown[c], noisy[g].exposure[c] = sv, ev
    return noisy


def rate(shown: float, lists: float) -> float:
    """A share in [0, 1] from noised counts (post-processing: free under DP)."""
    return min(max(shown / max(lists, 1.0), 0.0), 1.0)


def ratio_interval(noisy: dict[str, Totals], group: str, category: str, plan: Plan, seed: int) -> tuple[float, float]:
    """95% interval of ``group``'s disparity ratio, by resampling the released figures' Gaussian
    noise (a group's size noise enters its list and shown figures alike, through the midpoint).
    Draws where no group is served at all say nothing about the ratio; when more than 2.5% of them
    are such, the interval is the whole [0, 1]."""
    rng = random.Random(seed)  # noqa: S311 - simulation of known noise, not a secret
    mid_lists, mid_shown = BOUNDS["lists"][1] / 2, BOUNDS["shown"][1] / 2
    draws = []
    for _ in range(BOOTSTRAP):
        sim = {}
        for g, t in noisy.items():
            size = rng.gauss(0, plan.scales["people"])
            lists = t.lists + rng.gauss(0, plan.scales["lists"]) + mid_lists * size
            sim[g] = rate(t.shown[category] + rng.gauss(0, plan.scales["shown"]) + mid_shown * size, lists)
        best = max(sim.values())
        if best > 0:
            draws.append(sim[group] / best)
    if len(draws) < 0.975 * BOOTSTRAP:
        return 0.0, 1.0
    draws.sort()
    return draws[int(0.025 * len(draws))], draws[int(0.975 * len(draws)) - 1]


def verdict(ratio: float, low: float, high: float) -> str:
    if low < FOUR_FIFTHS <= high:
        return "inconclusive"
    return "flagged" if ratio < FOUR_FIFTHS else "ok"
