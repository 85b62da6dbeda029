"""Noisy counts and bounded sums through OpenDP, calibrated once per configuration.

Each figure is an OpenDP Gaussian measurement under zero-concentrated DP: counts on the integer
domain (the discrete Gaussian, sensitivity 1: adding or removing one person moves a count by one),
sums on floats after centring each value on its range's midpoint (sensitivity half the range). The
scale is found from the mechanism's own privacy map (``binary_search_param``) for the rho the rules
allot, so the scale a release reports is the one OpenDP proved.

Many cells are noised in one call (a vector mechanism with the same per-element scale): each
element is then exactly the scalar measurement, and the ledger charges each (unit, period) its own
rho. A person counted in a unit and its ancestors is charged in each of them, which is what the
joint vector's privacy map would say too (their l2 sensitivity squared is the number of cells).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import opendp.prelude as dp

dp.enable_features("contrib")

Z95 = 1.959963984540054  # two-sided 95% quantile of the standard normal


def _count_mechanism(scale: float) -> Any:
    return dp.m.make_gaussian(dp.atom_domain(T=int), dp.absolute_distance(T=int), scale=scale)


def _sum_mechanism(scale: float) -> Any:
    return dp.m.make_gaussian(dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float), scale=scale)


@dataclass(frozen=True)
class Measurement:
    """A calibrated measurement: what each noised figure costs (``rho``) and its noise ``scale``."""

    rho: float
    scale: float
    sensitivity: float
    batch: Any  # the same mechanism over a vector, for noising many cells in one call

    @property
    def half_width(self) -> float:
        """Half the width of the 95% interval around a released value."""
        return Z95 * self.scale


@lru_cache(maxsize=64)
def count_measurement(rho: float) -> Measurement:
    """Noisy counts costing ``rho`` (zCDP) each."""
    scale = dp.binary_search_param(_count_mechanism, d_in=1, d_out=rho)
    assert _count_mechanism(scale).map(1) <= rho * (1 + 1e-9)
    batch = dp.m.make_gaussian(dp.vector_domain(dp.atom_domain(T=int)), dp.l2_distance(T=int), scale=scale)
    return Measurement(rho=rho, scale=scale, sensitivity=1.0, batch=batch)


@lru_cache(maxsize=256)
def sum_measurement(rho: float, low: float, high: float) -> Measurement:
    """Noisy sums of values in [low, high], centred on the midpoint, costing ``rho`` each."""
    if not high > low:
        raise ValueError("empty range")
    sensitivity = (high - low) / 2
    scale = dp.binary_search_param(_sum_mechanism, d_in=sensitivity, d_out=rho)
    assert _sum_mechanism(scale).map(sensitivity) <= rho * (1 + 1e-9)
    batch = dp.m.make_gaussian(
        dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.l2_distance(T=float), scale=scale
    )
    return Measurement(rho=rho, scale=scale, sensitivity=sensitivity, batch=batch)


def noisy_counts(rho: float, counts: Sequence[int]) -> list[int]:
    if not counts:
        return []
    return [int(v) for v in count_measurement(rho).batch([int(c) for c in counts])]


def noisy_centred_sums(
    rho: float, low: float, high: float, totals: Sequence[float], counts: Sequence[int]
) -> list[float]:
    """Noise each ``total - count * midpoint`` (the values' distances from the midpoint).

    The caller adds ``noisy_count * midpoint`` back, so only noisy figures ever combine.
    """
    if not totals:
        return []
    mid = (low + high) / 2
    centred = [float(t - c * mid) for t, c in zip(totals, counts, strict=True)]
    return [float(v) for v in sum_measurement(rho, low, high).batch(centred)]


def epsilon(rho: float, delta: float) -> float:
    """The (epsilon, delta)-DP guarantee implied by rho-zCDP (OpenDP's conversion)."""
    if rho <= 0:
        return 0.0
    unit = _sum_mechanism(1.0)  # scale 1 at distance d costs rho = d^2 / 2
    curve = dp.c.make_zCDP_to_approxDP(unit).map(math.sqrt(2 * rho))
    return float(curve.epsilon(delta))
