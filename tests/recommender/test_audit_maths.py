"""Fairness-audit arithmetic: fairlearn as the oracle on pre-noise data, verdicts on constructed
groups with a known disparity, and the privacy accounting."""

from __future__ import annotations

import random

import pytest
from fairlearn.metrics import MetricFrame, demographic_parity_ratio, selection_rate

from services.recommender.audits import maths
from shared.release.noise import count_measurement, sum_measurement


def people(group: str, n: int, lists: int, pro_rate: float, rng: random.Random) -> list[tuple[maths.Tally, list[int]]]:
    """``n`` people of ``group``, each served ``lists`` lists, professional help shown with
    probability ``pro_rate`` per list; also the per-list 0/1 rows fairlearn reads."""
    out = []
    for _ in range(n):
        rows = [1 if rng.random() < pro_rate else 0 for _ in range(lists)]
        shown = {c: 0.0 for c in maths.CATEGORIES} | {"professional_help": float(sum(rows))}
        exposure = {c: 0.0 for c in maths.CATEGORIES} | {"professional_help": float(sum(rows)) * 0.63}
        out.append((maths.Tally(group, lists, shown, exposure), rows))
    return out


def constructed(spec: dict[str, tuple[int, float]], lists: int = 10, seed: int = 7):
    rng = random.Random(seed)
    tallies, y, groups = [], [], []
    for group, (n, rate) in spec.items():
        for tally, rows in people(group, n, lists, rate, rng):
            tallies.append(tally)
            y.extend(rows)
            groups.extend([group] * len(rows))
    return tallies, y, groups


def test_pre_noise_rates_and_ratio_match_fairlearn():
    tallies, y, groups = constructed({"a": (40, 0.5), "b": (35, 0.3), "c": (20, 0.45)})
    totals = maths.group_totals(tallies)
    ours = maths.rates(totals, "professional_help")
    frame = MetricFrame(metrics=selection_rate, y_true=y, y_pred=y, sensitive_features=groups)
    for group, rate in frame.by_group.items():
        assert ours[group] == pytest.approx(rate)
    assert maths.disparity_ratio(ours) == pytest.approx(demographic_parity_ratio(y, y, sensitive_features=groups))


def test_each_persons_contribution_is_clipped_to_the_bound():
    heavy = maths.Tally("a", 200, {"professional_help": 200.0}, {"professional_help": 500.0})
    totals = maths.group_totals([heavy])["a"]
    assert totals.lists == maths.MAX_LISTS
    assert totals.shown["professional_help"] == maths.MAX_LISTS
    assert totals.exposure["professional_help"] <= maths.MAX_LISTS * maths.MAX_EXPOSURE


def test_list_exposure_is_position_discounted_over_the_top_k():
    shown, exposure = maths.list_exposure(["article", "eap", "video", *["article"] * 20])
    assert shown == {"article", "professional_help", "video"}
    assert exposure["professional_help"] == pytest.approx(1 / 1.584962500721156)  # rank 2: 1/log2(3)
    assert sum(exposure.values()) == pytest.approx(maths.MAX_EXPOSURE)  # only the top K count


def _verdict(spec: dict[str, tuple[int, float]], group: str, rho: float) -> str:
    tallies, _, _ = constructed(spec, lists=20)
    plan = maths.Plan.for_rho(rho)
    noisy = maths.release(maths.group_totals(tallies), plan)
    rates = maths.rates(noisy, "professional_help")
    best = max(rates.values())
    ratio = rates[group] / best if best > 0 else 1.0
    low, high = maths.ratio_interval(noisy, group, "professional_help", plan, seed=1)
    assert low <= high
    return maths.verdict(ratio, low, high)


def test_a_large_known_disparity_is_flagged():
    # 2000 people a group, 20 lists each: the noise is small beside 40,000 lists
    assert _verdict({"a": (2000, 0.6), "b": (2000, 0.25)}, "b", rho=0.5) == "flagged"


def test_groups_served_alike_are_not_flagged():
    assert _verdict({"a": (2000, 0.5), "b": (2000, 0.5)}, "b", rho=0.5) == "ok"


def test_a_small_group_near_four_fifths_is_inconclusive():
    # 12 people at a true ratio of 0.8: the noise at a small budget swamps the difference. One draw
    # of real noise can land a clear verdict by chance, so the verdict is judged over 50 draws.
    verdicts = [_verdict({"a": (12, 0.5), "b": (12, 0.4)}, "b", rho=0.02) for _ in range(50)]
    assert verdicts.count("inconclusive") >= 45, verdicts


def test_the_split_adds_up_to_the_reports_rho_under_opendps_privacy_maps():
    plan = maths.Plan.for_rho(0.5)
    spent = (
        plan.shares["people"]
        + plan.shares["lists"]
        + len(maths.CATEGORIES) * (plan.shares["shown"] + plan.shares["exposure"])
    )
    assert spent == pytest.approx(0.5)
    assert count_measurement(plan.shares["people"]).scale == plan.scales["people"]
    for name, (low, high) in maths.BOUNDS.items():
        measurement = sum_measurement(plan.shares[name], low, high)
        assert measurement.scale == plan.scales[name]
        assert measurement.sensitivity == (high - low) / 2


def test_released_sums_add_back_the_midpoint_times_the_noised_size():
    # one group, every person served the maximum: the noised figures stay near the truth
    heavy = [maths.Tally("a", maths.MAX_LISTS, {"article": 20.0}, {"article": 20.0}) for _ in range(5000)]
    noisy = maths.release(maths.group_totals(heavy), maths.Plan.for_rho(0.5))["a"]
    assert noisy.lists == pytest.approx(5000 * maths.MAX_LISTS, rel=0.02)
    assert noisy.shown["article"] == pytest.approx(5000 * 20, rel=0.02)
    assert noisy.shown["video"] == pytest.approx(0, abs=0.02 * 5000 * 20)


def test_verdict_rules():
    assert maths.verdict(0.5, 0.4, 0.6) == "flagged"
    assert maths.verdict(0.9, 0.85, 0.95) == "ok"
    assert maths.verdict(0.75, 0.6, 0.9) == "inconclusive"
    assert maths.verdict(0.85, 0.79, 0.95) == "inconclusive"
