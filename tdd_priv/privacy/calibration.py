"""Calibration: the one noise multiplier σ that a whole planned run may use, and the δ rule.

A run plans every mechanism it will apply to private data before touching it (name, sample
rate q, steps, and optionally a relative noise scale). `calibrate_noise` finds the smallest σ
(to a relative tolerance of 1e-4) whose composed ε, by the same opacus RDP accountant that
`compute_epsilon` uses, does not exceed the target, and checks that before returning.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from opacus.accountants.utils import get_noise_multiplier

from tdd_priv.errors import ConfigError
from tdd_priv.privacy.ledger import MechanismRecord, compute_epsilon

__all__ = ["PlannedMechanism", "calibrate_noise", "check_delta", "default_delta"]

_MAX_SIGMA = 1e6
_RELATIVE_TOLERANCE = 1e-4


@dataclass(frozen=True)
class PlannedMechanism:
    """A mechanism a run will apply: `steps` releases at Poisson sample rate `sample_rate`.

    Its noise multiplier will be `noise_scale` × the run's shared σ (default 1: all share σ).
    """

    name: str
    sample_rate: float
    steps: int
    noise_scale: float = 1.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.noise_scale) or self.noise_scale <= 0:
            raise ValueError(
                f"planned mechanism {self.name!r}: noise_scale must be finite and > 0, "
                f"got {self.noise_scale}"
            )
        self.at(1.0)  # validates name, sample rate and steps

    def at(self, noise_multiplier: float) -> MechanismRecord:
        """The record this mechanism leaves in the ledger when the run's shared σ is given."""
        return MechanismRecord(
            self.name, self.noise_scale * noise_multiplier, self.sample_rate, self.steps
        )


def _composed_epsilon(plan: Sequence[PlannedMechanism], sigma: float, delta: float) -> float:
    return compute_epsilon([p.at(sigma) for p in plan], delta=delta, accountant="rdp")


def _opacus_single(plan: PlannedMechanism, target_epsilon: float, delta: float) -> float:
    with warnings.catch_warnings():
        # get_noise_multiplier first tries σ = 20, 40, ...; at such σ the best RDP order lies at
        # the edge of opacus's grid and it warns, though the bound it computes stays valid.
        warnings.filterwarnings("ignore", message="Optimal order is the", category=UserWarning)
        return float(
            get_noise_multiplier(
                target_epsilon=target_epsilon,
                target_delta=delta,
                sample_rate=plan.sample_rate,
                steps=plan.steps,
                accountant="rdp",
                epsilon_tolerance=min(0.01, 0.002 * target_epsilon),
            )
        )


def _bisect(plan: Sequence[PlannedMechanism], target_epsilon: float, delta: float) -> float:
    def fits(sigma: float) -> bool:
        return _composed_epsilon(plan, sigma, delta) <= target_epsilon

    high = 1.0
    while not fits(high):
        high *= 2
        if high > _MAX_SIGMA:
            raise ConfigError(
                f"no noise multiplier up to {_MAX_SIGMA:g} keeps ε <= {target_epsilon:g} at "
                f"δ = {delta:g} for this plan ({len(plan)} mechanisms, "
                f"{sum(p.steps for p in plan)} steps); raise --epsilon or plan fewer steps"
            )
    low = high / 2
    while fits(low):
        high, low = low, low / 2
    while high - low > _RELATIVE_TOLERANCE * high:
        middle = (low + high) / 2
        if fits(middle):
            high = middle
        else:
            low = middle
    return high


def calibrate_noise(
    *, target_epsilon: float, delta: float, plan: Sequence[PlannedMechanism]
) -> float:
    """The shared noise multiplier σ for `plan` so that the composed RDP ε <= `target_epsilon`.

    A single mechanism (noise scale 1) uses opacus's `get_noise_multiplier`; any other plan a
    bisection over σ with `compute_epsilon`. `target_epsilon = math.inf` returns 0 (no noise). The
    result is checked: ε of the plan at the returned σ never exceeds the target.
    """
    if math.isnan(target_epsilon) or target_epsilon <= 0:
        raise ConfigError(f"target ε must be > 0, got {target_epsilon}")
    if not 0.0 < delta < 1.0:
        raise ConfigError(f"δ must lie in (0, 1), got {delta}")
    if not plan:
        raise ValueError("an empty plan: list every mechanism the run will apply")
    if math.isinf(target_epsilon):
        return 0.0
    if _composed_epsilon(plan, 1.0, delta) == 0.0:
        return 0.0  # nothing in the plan releases anything (steps = 0 or q = 0 throughout)
    sigma = math.nan
    if len(plan) == 1 and plan[0].noise_scale == 1.0:
        sigma = _opacus_single(plan[0], target_epsilon, delta)
    if not (sigma > 0 and _composed_epsilon(plan, sigma, delta) <= target_epsilon):
        sigma = _bisect(plan, target_epsilon, delta)
    spent = _composed_epsilon(plan, sigma, delta)
    if not spent <= target_epsilon:
        raise AssertionError(f"calibrated σ = {sigma} spends ε = {spent} > {target_epsilon}")
    return sigma


def default_delta(n: int) -> float:
    """δ = 1 / (10·n) for n private training records."""
    if n < 1:
        raise ConfigError(f"the private training set is empty (n = {n}); nothing to protect")
    return 1.0 / (10 * n)


def check_delta(delta: float, n: int) -> None:
    """Refuse δ outside (0, 1/n): a δ of 1/n or more allows publishing one record outright."""
    if n < 1:
        raise ConfigError(f"the private training set is empty (n = {n}); nothing to protect")
    if not delta > 0:
        raise ConfigError(
            f"δ = {delta:g} must be > 0; use --delta {default_delta(n):.3g} (1/(10·n)) or omit "
            "--delta for that default"
        )
    if delta >= 1.0 / n:
        raise ConfigError(
            f"δ = {delta:g} is not below 1/n = {1.0 / n:.3g} for n = {n} private training "
            f"records: with δ >= 1/n a mechanism may publish a whole record and still be "
            f"'private'. Use --delta below {1.0 / n:.3g}, e.g. {default_delta(n):.3g} "
            "(1/(10·n)), or omit --delta for that default"
        )
