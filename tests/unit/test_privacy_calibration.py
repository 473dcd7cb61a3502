"""Calibration never overspends; the δ rule refuses δ >= 1/n with a message that teaches."""

from __future__ import annotations

import math
import warnings

import pytest
from opacus.accountants.utils import get_noise_multiplier

from tdd_priv.errors import ConfigError
from tdd_priv.privacy.calibration import (
    PlannedMechanism,
    calibrate_noise,
    check_delta,
    default_delta,
)
from tdd_priv.privacy.ledger import compute_epsilon

PLANS = {
    "one-shot": [PlannedMechanism("dm.class_sums", 1.0, 1)],
    "dp-sgd": [PlannedMechanism("dp_sgd", 0.01, 500)],
    "mixed": [
        PlannedMechanism("counts", 1.0, 1, noise_scale=2.0),
        PlannedMechanism("dc.gradients", 0.05, 200),
        PlannedMechanism("dm.class_sums", 1.0, 1),
    ],
}


def _spent(plan: list[PlannedMechanism], sigma: float, delta: float) -> float:
    return compute_epsilon([p.at(sigma) for p in plan], delta=delta)


@pytest.mark.parametrize("target", [0.5, 2.0, 8.0])
@pytest.mark.parametrize("plan_name", sorted(PLANS))
def test_calibrated_sigma_never_exceeds_the_target(plan_name: str, target: float) -> None:
    plan, delta = PLANS[plan_name], 1e-5
    sigma = calibrate_noise(target_epsilon=target, delta=delta, plan=plan)
    spent = _spent(plan, sigma, delta)
    assert spent <= target
    # ...and is not wastefully large: within 0.1% of the target, and 1% less noise overspends.
    assert spent >= target * (1 - 1e-3)
    assert _spent(plan, sigma * 0.99, delta) > target


def test_single_mechanism_agrees_with_opacus_get_noise_multiplier() -> None:
    sigma = calibrate_noise(
        target_epsilon=3.0, delta=1e-5, plan=[PlannedMechanism("dp_sgd", 0.02, 1000)]
    )
    with warnings.catch_warnings():
        # opacus's search starts at σ = 20, where the best RDP order is at the grid's edge.
        warnings.filterwarnings("ignore", message="Optimal order is the", category=UserWarning)
        opacus_sigma = get_noise_multiplier(
            target_epsilon=3.0, target_delta=1e-5, sample_rate=0.02, steps=1000, accountant="rdp"
        )
    # opacus stops within 0.01 of the target ε, we within 0.1%: the same σ, ours never larger.
    assert sigma <= opacus_sigma
    assert sigma == pytest.approx(opacus_sigma, rel=5e-3)


def test_noise_scale_gives_that_mechanism_proportionally_more_noise() -> None:
    plan = PLANS["mixed"]
    sigma = calibrate_noise(target_epsilon=1.0, delta=1e-5, plan=plan)
    records = [p.at(sigma) for p in plan]
    assert records[0].noise_multiplier == pytest.approx(2 * records[1].noise_multiplier)


def test_infinite_target_needs_no_noise_and_bad_targets_are_refused() -> None:
    assert calibrate_noise(target_epsilon=math.inf, delta=1e-5, plan=PLANS["dp-sgd"]) == 0.0
    with pytest.raises(ConfigError, match="ε must be > 0"):
        calibrate_noise(target_epsilon=0.0, delta=1e-5, plan=PLANS["dp-sgd"])
    with pytest.raises(ValueError, match="empty plan"):
        calibrate_noise(target_epsilon=1.0, delta=1e-5, plan=[])


def test_a_plan_that_releases_nothing_needs_no_noise() -> None:
    idle = [PlannedMechanism("idle", 0.5, 0)]
    assert calibrate_noise(target_epsilon=1.0, delta=1e-5, plan=idle) == 0.0


@pytest.mark.parametrize("plan_name", ["one-shot", "mixed"])
def test_unreachable_budget_says_how_to_fix_it(plan_name: str) -> None:
    # RDP over opacus's orders (<= 63) cannot certify ε below about 0.10 at δ = 1e-5, at any σ.
    with pytest.raises(ConfigError, match="raise --epsilon") as caught:
        calibrate_noise(target_epsilon=0.05, delta=1e-5, plan=PLANS[plan_name])
    assert "ε = 0.1" in str(caught.value)  # the floor it reports


def test_delta_at_or_above_one_over_n_is_refused_with_a_fix() -> None:
    with pytest.raises(ConfigError) as caught:
        check_delta(0.001, 1000)
    message = str(caught.value)
    assert "δ = 0.001" in message and "n = 1000" in message and "1/n" in message
    assert "--delta" in message and "1e-05" in message  # the fix: the default δ
    with pytest.raises(ConfigError, match="must be > 0"):
        check_delta(0.0, 1000)
    with pytest.raises(ConfigError, match="empty"):
        check_delta(1e-5, 0)
    check_delta(0.000999, 1000)  # just below 1/n is allowed


def test_default_delta_tightens_with_n_and_stays_below_one_over_n() -> None:
    assert default_delta(2000) == pytest.approx(1e-5)  # capped at 1e-5
    assert default_delta(10_000) == pytest.approx(1e-6)  # n^-1.5
    for n in (1, 2, 7, 100, 2000, 67_349, 10**6):
        delta = default_delta(n)
        check_delta(delta, n)
        assert n * delta <= n**-0.5 + 1e-12  # expected records exposed shrinks with n
