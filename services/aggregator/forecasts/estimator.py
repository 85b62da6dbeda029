"""The forecast estimator: pure arithmetic over released weekly means (no queries, no noise drawn).

Around each past trigger of the same kind, the *effect* is the mean of the released weekly means
in the trigger's window (the week before it starts through the week it ends) minus the mean of the
released means in the ``BASELINE_WEEKS`` weeks before that window, leaving out the weeks that lie in
another trigger's window (a deadline every three weeks would otherwise put the previous one's drop
into the baseline, and the effect would read as half its size). Each released mean carries
Gaussian DP noise of standard deviation ``half_width / 1.96`` (its stored 95% half-width), and the
draws are independent, so an effect's noise variance is
``sum(sd_window^2) / n_window^2 + sum(sd_base^2) / n_base^2``.

Combining ``n`` past effects ``d_i`` (each a true effect plus its DP noise): the expected change is
their mean; the variance of one period's effect is estimated by their sample variance, which
already contains the DP noise, floored at the mean DP noise variance (with few triggers the sample
variance can be small by chance, and the noise is known to be at least that). The 95% *prediction*
interval for the next period is ``mean ± t(0.975, n-1) · sqrt(var · (1 + 1/n))``; a forecast is
raised only when that interval lies wholly on the adverse side, so what is raised is a drop larger
than the noise and the spread of past periods explain.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from services.aggregator.metrics import adverse
from services.aggregator.weeks import week_bounds, week_of
from shared.release.noise import Z95

BASELINE_WEEKS = 4
LEAD_IN = timedelta(days=7)  # the window opens the week before the trigger starts
MIN_PAST_TRIGGERS = 3
# Two-sided 95% quantiles of Student's t by degrees of freedom (beyond 30: the normal's 1.96).
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
         10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 25: 2.060, 30: 2.042}  # fmt: skip


@dataclass(frozen=True)
class Point:
    """One released weekly mean of a unit and metric, with its noise and the managers' decision."""

    mean: float
    half_width: float
    manager: bool

    @property
    def variance(self) -> float:
        return (self.half_width / Z95) ** 2


@dataclass(frozen=True)
class Effect:
    change: float
    variance: float  # DP noise variance of ``change``
    manager: bool  # every mean it rests on was released at the managers' k too


@dataclass(frozen=True)
class Estimate:
    change: float
    low: float
    high: float
    past_triggers: int
    manager: bool


def window(starts_on: date, ends_on: date | None) -> tuple[list[str], list[str]]:
    """(baseline weeks, window weeks) of a trigger, oldest first."""
    first = week_bounds(week_of(starts_on - LEAD_IN))[0]
    last = ends_on or starts_on
    during = [week_of(first + timedelta(weeks=i)) for i in range((last - first).days // 7 + 1)]
    base = [week_of(first - timedelta(weeks=i)) for i in range(BASELINE_WEEKS, 0, -1)]
    return base, during


def effect(
    series: Mapping[str, Point], starts_on: date, ends_on: date | None, busy: Collection[str] = ()
) -> Effect | None:
    """The change around one trigger, or None unless both windows have a released mean; ``busy``
    weeks (other triggers' windows) are not part of the baseline."""
    base_weeks, during_weeks = window(starts_on, ends_on)
    base = [series[w] for w in base_weeks if w in series and w not in busy]
    during = [series[w] for w in during_weeks if w in series]
    if not base or not during:
        return None
    change = statistics.fmean(p.mean for p in during) - statistics.fmean(p.mean for p in base)
    variance = sum(p.variance for p in during) / len(during) ** 2 + sum(p.variance for p in base) / len(base) ** 2
    return Effect(change, variance, all(p.manager for p in (*base, *during)))


def t975(df: int) -> float:
    known = [d for d in _T975 if d <= df]
    return _T975[max(known)] if df <= 30 else 1.96


def combine(effects: Sequence[Effect]) -> Estimate | None:
    """The expected change and its 95% prediction interval; None below ``MIN_PAST_TRIGGERS``."""
    n = len(effects)
    if n < MIN_PAST_TRIGGERS:
        return None
    changes = [e.change for e in effects]
    centre = statistics.fmean(changes)
    variance = max(statistics.variance(changes), statistics.fmean(e.variance for e in effects))
    half = t975(n - 1) * math.sqrt(variance * (1 + 1 / n))
    return Estimate(centre, centre - half, centre + half, n, all(e.manager for e in effects))


def is_adverse(estimate: Estimate, metric: str) -> bool:
    """The whole interval on the adverse side: larger than the noise and past spread explain."""
    return estimate.high < 0 if adverse(metric) < 0 else estimate.low > 0


def scored(observed: Effect, metric: str) -> bool:
    """A hit: the released change itself lies beyond its own noise on the adverse side."""
    half = Z95 * math.sqrt(observed.variance)
    return observed.change + half < 0 if adverse(metric) < 0 else observed.change - half > 0
