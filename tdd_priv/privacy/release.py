"""A differentially private distillation run: plan, calibrate, release through the gateway."""

from __future__ import annotations

from dataclasses import replace

from tdd_priv.errors import ConfigError
from tdd_priv.methods import DistillInput, SyntheticSet, distill, method_info
from tdd_priv.privacy.access import NoisyAccess
from tdd_priv.privacy.calibration import calibrate_noise
from tdd_priv.privacy.ledger import PrivacyLedger, epsilon_summary
from tdd_priv.seeding import torch_generator

__all__ = ["distill_privately"]


def distill_privately(
    method: str, members: DistillInput, *, epsilon: float, delta: float, noise_seed: int
) -> SyntheticSet:
    """Run `method` under (ε, δ)-DP on the private members.

    σ is calibrated for everything the method will release before any private data is touched;
    the method then sees the data only through the noisy gateway, whose ledger must come out
    exactly as planned. The result carries the privacy report (`SyntheticSet.privacy`).
    """
    variant = method_info(method).private
    if variant is None:
        raise ConfigError(f"method '{method}' has no differentially private variant")
    options = variant.options(members.options, method=method)
    n, classes = len(members.labels), members.num_classes
    plan = variant.plan(options, n, classes)
    sigma = calibrate_noise(target_epsilon=epsilon, delta=delta, plan=plan)
    ledger = PrivacyLedger()
    gateway = NoisyAccess(
        members.embeddings,
        members.labels,
        classes,
        noise_multiplier=sigma,
        max_norm=options.clip_norm,
        generator=torch_generator(noise_seed, "privacy-noise"),
        ledger=ledger,
    )
    private_options = {**variant.defaults, **members.options}
    synthetic = distill(method, replace(members, options=private_options, gateway=gateway))
    planned = PrivacyLedger([mechanism.at(sigma) for mechanism in plan]).records
    if sorted(ledger.records, key=repr) != sorted(planned, key=repr):
        raise AssertionError(f"the method spent {ledger.records}, but the plan was {planned}")
    return replace(synthetic, privacy=epsilon_summary(ledger, delta=delta))
