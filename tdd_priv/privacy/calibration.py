"""Calibration: the one noise multiplier σ that a whole planned run may use, and the δ rule.

A run plans every mechanism it will apply to private data before touching it (name, sample
rate q, steps, and optionally a relative noise scale). `calibrate_noise` finds the smallest σ
(ε within 0.1% of the target) whose composed ε, by the same opacus RDP accountant that
`compute_epsilon` uses, does not exceed the target, and checks that before returning.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

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


def _unreachable(plan: Sequence[PlannedMechanism], target_epsilon: float, delta: float) -> str:
    # Even enormous noise leaves RDP a floor, set by δ and opacus's largest RDP order (63).
    floor = _composed_epsilon(plan, _MAX_SIGMA, delta)
    return (
        f"no noise multiplier keeps ε <= {target_epsilon:g} at δ = {delta:g} for this plan "
        f"({len(plan)} mechanism(s), {sum(p.steps for p in plan)} steps): even σ = "
        f"{_MAX_SIGMA:g} gives ε = {floor:.3g} under opacus's RDP accountant; raise --epsilon "
        "(or --delta) or plan fewer steps"
    )


def _search(plan: Sequence[PlannedMechanism], target_epsilon: float, delta: float) -> float:
    """Smallest σ (to the tolerances below) with ε(σ) <= target; ε(σ) decreases in σ.

    Brackets the root by doubling or halving from σ = 1, then narrows the bracket with the
    Illinois variant of regula falsi on log ε against log σ (nearly linear there), which needs a
    handful of accountant calls where plain bisection needs a dozen or more. The upper end of
    the bracket always satisfies the target, and it is what is returned.
    """
    log_target = math.log(target_epsilon)

    def excess(sigma: float) -> float:  # log ε(σ) - log target: > 0 means too little noise
        epsilon = _composed_epsilon(plan, sigma, delta)
        return math.inf if math.isinf(epsilon) else math.log(epsilon) - log_target

    high, f_high = 1.0, excess(1.0)
    low, f_low = high, f_high
    while f_high > 0:
        low, f_low = high, f_high
        high *= 2
        if high > _MAX_SIGMA:
            raise ConfigError(_unreachable(plan, target_epsilon, delta))
        f_high = excess(high)
    if low == high:
        low, f_low = high / 2, excess(high / 2)
        while f_low <= 0:
            high, f_high = low, f_low
            low /= 2
            f_low = excess(low)
    # Invariant: f_low > 0 >= f_high. Stop when ε(high) is within 0.1% of the target or the
    # bracket is narrower than 0.01% of σ.
    side = 0
    while f_high < math.log1p(-1e-3) and high - low > _RELATIVE_TOLERANCE * high:
        u_low, u_high = math.log(low), math.log(high)
        if math.isinf(f_low):
            u_mid = (u_low + u_high) / 2
        else:
            u_mid = u_high - f_high * (u_high - u_low) / (f_high - f_low)
            # Keep strictly inside the bracket so that it always shrinks.
            margin = 1e-3 * (u_high - u_low)
            u_mid = min(max(u_mid, u_low + margin), u_high - margin)
        middle = math.exp(u_mid)
        f_middle = excess(middle)
        if f_middle <= 0:
            high, f_high = middle, f_middle
            if side == 1:
                f_low /= 2  # Illinois: stop the stale end from slowing convergence
            side = 1
        else:
            low, f_low = middle, f_middle
            if side == -1:
                f_high /= 2
            side = -1
    return high


def calibrate_noise(
    *, target_epsilon: float, delta: float, plan: Sequence[PlannedMechanism]
) -> float:
    """The shared noise multiplier σ for `plan` so that the composed RDP ε <= `target_epsilon`.

    ε is composed by `compute_epsilon` (opacus's RDP accountant, as in the report), so a plan of
    one mechanism gets what opacus's `get_noise_multiplier` would give, a little tighter (ε within
    0.1% of the target rather than 0.01) and with fewer accountant calls. `target_epsilon =
    math.inf` returns 0 (no noise). The result is checked: ε at the returned σ never exceeds the
    target.
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
    sigma = _search(plan, target_epsilon, delta)
    spent = _composed_epsilon(plan, sigma, delta)
    if not spent <= target_epsilon:
        raise AssertionError(f"calibrated σ = {sigma} spends ε = {spent} > {target_epsilon}")
    return sigma


DELTA_CAP = 1e-5


def default_delta(n: int) -> float:
    """δ = min(10⁻⁵, n^-1.5) for n private training records.

    A mechanism that publishes each record outright with probability δ is (0, δ)-DP; with this
    default it exposes n·δ ≤ n^-0.5 records in expectation, so the default tightens as the data
    grows (δ = 1/(10·n) would leave a 10 % chance of exposing someone at any size).
    """
    if n < 1:
        raise ConfigError(f"the private training set is empty (n = {n}); nothing to protect")
    return min(DELTA_CAP, float(n) ** -1.5)


def check_delta(delta: float, n: int) -> None:
    """Refuse δ outside (0, 1/n): a δ of 1/n or more allows publishing one record outright."""
    if n < 1:
        raise ConfigError(f"the private training set is empty (n = {n}); nothing to protect")
    if not delta > 0:
        raise ConfigError(
            f"δ = {delta:g} must be > 0; use --delta {default_delta(n):.3g} (min(1e-5, n^-1.5)) "
            "or omit --delta for that default"
        )
    if delta >= 1.0 / n:
        raise ConfigError(
            f"δ = {delta:g} is not below 1/n = {1.0 / n:.3g} for n = {n} private training "
            f"records: with δ >= 1/n a mechanism may publish a whole record and still be "
            f"'private'. Use --delta below {1.0 / n:.3g}, e.g. {default_delta(n):.3g} "
            "(min(1e-5, n^-1.5)), or omit --delta for that default"
        )
