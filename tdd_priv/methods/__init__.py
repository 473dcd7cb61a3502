"""Distillation methods behind one registry."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tdd_priv.methods.base import DistillInput, SyntheticSet
from tdd_priv.methods.coreset import herding, kcenter, random_subset
from tdd_priv.methods.dc import DCConfig, dc_privacy_plan, gradient_matching
from tdd_priv.methods.dm import DMConfig, distribution_matching, dm_privacy_plan
from tdd_priv.methods.kip import KIPConfig, kernel_inducing_points, kip_privacy_plan
from tdd_priv.methods.learned import parse_options
from tdd_priv.methods.mtt import MTTConfig, mtt_privacy_plan, trajectory_matching
from tdd_priv.privacy.calibration import PlannedMechanism

__all__ = [
    "METHODS",
    "DistillInput",
    "MethodInfo",
    "PrivateVariant",
    "SyntheticSet",
    "distill",
    "method_info",
]


@dataclass(frozen=True)
class PrivateVariant:
    """How a method runs under DP: its config type, the mechanisms it will apply (planned
    before any data is touched, so σ can be calibrated for the whole run), and the option
    defaults that differ under DP (e.g. no initialisation from real records)."""

    config_type: type
    plan: Callable[[Any, int, int], list[PlannedMechanism]]
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def options(self, options: Mapping[str, Any], *, method: str) -> Any:
        """The method's config under DP: DP defaults, then the user's options on top."""
        return parse_options(self.config_type, {**self.defaults, **options}, method=method)


@dataclass(frozen=True)
class MethodInfo:
    """A registered method. `releases_private_records`: its output rows are real records."""

    name: str
    run: Callable[[DistillInput], SyntheticSet]
    releases_private_records: bool
    summary: str
    private: PrivateVariant | None = None

    @property
    def differentially_private(self) -> bool:
        return self.private is not None


_NOISE_INIT = {"init": "noise"}

METHODS: dict[str, MethodInfo] = {
    info.name: info
    for info in (
        MethodInfo("random", random_subset, True, "k private records per class, uniformly"),
        MethodInfo("herding", herding, True, "k private records per class tracking the mean"),
        MethodInfo("kcenter", kcenter, True, "k private records per class covering the class"),
        MethodInfo(
            "dm",
            distribution_matching,
            False,
            "distribution matching of random features",
            PrivateVariant(DMConfig, dm_privacy_plan, {**_NOISE_INIT, "release": "one-shot"}),
        ),
        MethodInfo(
            "dc",
            gradient_matching,
            False,
            "gradient matching of a classifier",
            PrivateVariant(DCConfig, dc_privacy_plan, _NOISE_INIT),
        ),
        MethodInfo(
            "mtt",
            trajectory_matching,
            False,
            "matching expert training trajectories",
            PrivateVariant(MTTConfig, mtt_privacy_plan, _NOISE_INIT),
        ),
        MethodInfo(
            "kip",
            kernel_inducing_points,
            False,
            "kernel ridge regression on a neural kernel",
            PrivateVariant(KIPConfig, kip_privacy_plan, _NOISE_INIT),
        ),
    )
}


def method_info(name: str) -> MethodInfo:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid methods: {', '.join(METHODS)}")
    return METHODS[name]


def distill(name: str, inputs: DistillInput) -> SyntheticSet:
    """Run the named method on the private training set."""
    return method_info(name).run(inputs)
