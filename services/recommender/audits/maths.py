"""The audit's arithmetic: exposure tallies, group totals, OpenDP noise and the verdicts.

Each person belongs to exactly one group of the audited attribute, so groups are disjoint and
their releases compose in parallel; within a group, the released quantities compose
sequentially and the run's epsilon is split between them. Each person's contribution is bounded
(``MAX_LISTS`` lists a week, at most ``MAX_EXPOSURE`` exposure per list), which fixes every
sensitivity. Noise comes from OpenDP's Laplace measurement, whose privacy map checks the split.
The ratio's 95% interval is a parametric bootstrap over the same noise distributions.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import opendp.prelude as dp

dp.enable_features("contrib")

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
    """How one run's epsilon is split, and the Laplace scale each quantity gets."""

    epsilon: float
    scales: dict[str, float]

    @classmethod
    def for_epsilon(cls, epsilon: float) -> Plan:
        """Shares of epsilon: a quarter for the group sizes (they decide what is reported), the
        rest to list counts, shown counts and exposure sums (each category gets an equal part)."""
        shares = {
            "people": 0.25 * epsilon,
            "lists": 0.15 * epsilon,
            "shown": 0.40 * epsilon / len(CATEGORIES),
            "exposure": 0.20 * epsilon / len(CATEGORIES),
        }
        sensitivities = {"people": 1.0, "lists": float(MAX_LISTS), "shown": float(MAX_LISTS)}
        sensitivities["exposure"] = MAX_LISTS * MAX_EXPOSURE
        scales = {name: sensitivities[name] / share for name, share in shares.items()}
        for name, share in shares.items():  # OpenDP's privacy map confirms each share
            assert _laplace(scales[name]).map(sensitivities[name]) <= share * (1 + 1e-9)
        return cls(epsilon, scales)


def _laplace(scale: float) -> dp.Measurement:
    return dp.m.make_laplace(dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float), scale)


def release(totals: dict[str, Totals], plan: Plan) -> dict[str, Totals]:
    """Noised copies of every group's totals (OpenDP Laplace), not clamped: the interval below
    resamples around these raw values, and clamping them would fake certainty."""
    noisy: dict[str, Totals] = {}
    m = {name: _laplace(scale) for name, scale in plan.scales.items()}
    for g, t in totals.items():
        n = Totals(people=m["people"](t.people), lists=m["lists"](t.lists))
        for c in CATEGORIES:
            n.shown[c] = m["shown"](t.shown[c])
            n.exposure[c] = m["exposure"](t.exposure[c])
        noisy[g] = n
    return noisy


def rate(shown: float, lists: float) -> float:
    """A share in [0, 1] from noised counts (post-processing: free under DP)."""
    return min(max(shown / max(lists, 1.0), 0.0), 1.0)


def ratio_interval(noisy: dict[str, Totals], group: str, category: str, plan: Plan, seed: int) -> tuple[float, float]:
    """95% interval of ``group``'s disparity ratio, by resampling the Laplace noise around the
    released values. Draws where no group is served at all say nothing about the ratio; when more
    than 2.5% of them are such, the interval is the whole [0, 1]."""
    rng = random.Random(seed)  # noqa: S311 - simulation of known noise, not a secret

    def lap(scale: float) -> float:
        return scale * (rng.expovariate(1) - rng.expovariate(1))

    draws = []
    for _ in range(BOOTSTRAP):
        sim = {
            g: rate(t.shown[category] + lap(plan.scales["shown"]), t.lists + lap(plan.scales["lists"]))
            for g, t in noisy.items()
        }
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
