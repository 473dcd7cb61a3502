"""A differentially private distillation run: plan, calibrate, release through the gateway."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from tdd_priv.errors import ConfigError
from tdd_priv.methods import DistillInput, ExpertTrajectories, SyntheticSet, distill, method_info
from tdd_priv.privacy.access import NoisyAccess
from tdd_priv.privacy.calibration import calibrate_noise
from tdd_priv.privacy.ledger import MechanismRecord, PrivacyLedger, epsilon_summary
from tdd_priv.seeding import torch_generator

__all__ = ["PlannedRelease", "distill_privately", "plan_release", "train_experts_privately"]


@dataclass(frozen=True)
class PlannedRelease:
    """What a DP run of a method will spend, fixed before any private data is read: the shared
    noise multiplier σ calibrated for (ε, δ), and the ledger records the run must leave."""

    noise_multiplier: float
    records: tuple[MechanismRecord, ...]


def plan_release(
    method: str,
    *,
    options: Mapping[str, Any],
    members: int,
    classes: int,
    balanced: bool,
    epsilon: float,
    delta: float,
) -> PlannedRelease:
    """Calibrate σ for everything `method` with `options` will release on `members` private
    records of `classes` classes (per (class, group) cell when `balanced`): public facts only."""
    variant = method_info(method).private
    if variant is None:
        raise ConfigError(f"method '{method}' has no differentially private variant")
    parsed = variant.options(options, method=method)
    plan = variant.planned(parsed, members, classes, balanced=balanced)
    sigma = calibrate_noise(target_epsilon=epsilon, delta=delta, plan=plan)
    return PlannedRelease(sigma, PrivacyLedger([m.at(sigma) for m in plan]).records)


@dataclass(frozen=True)
class _PrivateRun:
    """The method's input with DP options and the noisy gateway, and what it may spend."""

    members: DistillInput
    ledger: PrivacyLedger
    planned: tuple[MechanismRecord, ...]


def _private_run(
    method: str, members: DistillInput, *, epsilon: float, delta: float, noise_seed: int
) -> _PrivateRun:
    planned = plan_release(
        method,
        options=members.options,
        members=members.size,
        classes=members.num_classes,
        balanced=members.balance is not None,  # --fairness balanced: per-cell releases
        epsilon=epsilon,
        delta=delta,
    )
    variant = method_info(method).private
    assert variant is not None  # plan_release refuses methods without one
    options = variant.options(members.options, method=method)
    data, balance = members.exact(), members.balance
    ledger = PrivacyLedger()
    gateway = NoisyAccess(
        data.embeddings,
        data.labels,
        members.num_classes,
        noise_multiplier=planned.noise_multiplier,
        max_norm=options.clip_norm,
        generator=torch_generator(noise_seed, "privacy-noise"),
        ledger=ledger,
        groups=balance.ids if balance is not None else None,
        num_groups=len(balance.names) if balance is not None else 1,
        device=members.device,
    )
    # The method gets the gateway and the public facts only: no member rows, no group ids.
    private_input = members.through(gateway, options={**variant.defaults, **members.options})
    return _PrivateRun(private_input, ledger, planned.records)


def distill_privately(
    method: str, members: DistillInput, *, epsilon: float, delta: float, noise_seed: int
) -> SyntheticSet:
    """Run `method` under (ε, δ)-DP on the private members.

    σ is calibrated for everything the method will release before any private data is touched;
    the method then sees the data only through the noisy gateway, whose ledger must come out
    exactly as planned. Experts trained beforehand (`members.experts`, from
    `train_experts_privately`) count with the records of their training. The result carries the
    privacy report (`SyntheticSet.privacy`).
    """
    run = _private_run(method, members, epsilon=epsilon, delta=delta, noise_seed=noise_seed)
    synthetic = distill(method, run.members)
    if members.experts is not None:
        run.ledger.extend(members.experts.records)
    if sorted(run.ledger.records, key=repr) != sorted(run.planned, key=repr):
        raise AssertionError(
            f"the method spent {run.ledger.records}, but the plan was {run.planned}"
        )
    return replace(synthetic, privacy=epsilon_summary(run.ledger, delta=delta))


def train_experts_privately(
    method: str, members: DistillInput, *, epsilon: float, delta: float, noise_seed: int
) -> ExpertTrajectories:
    """The method's experts (DP-SGD runs at the σ calibrated for the method's whole plan), with
    the records of what they spent; `distill_privately` adds them to its ledger."""
    train = method_info(method).experts
    if train is None:
        raise ConfigError(f"method '{method}' trains no experts")
    run = _private_run(method, members, epsilon=epsilon, delta=delta, noise_seed=noise_seed)
    return replace(train(run.members), records=run.ledger.records)
