"""Distillation methods behind one registry."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from tdd_priv.errors import ConfigError
from tdd_priv.methods.allocation import Allocation, ClassSizes
from tdd_priv.methods.balance import GroupBalance
from tdd_priv.methods.base import DistillInput, FitTarget, MemberArrays, SyntheticSet
from tdd_priv.methods.coreset import herding, kcenter, random_subset
from tdd_priv.methods.dc import DC_PRIVATE_DEFAULTS, DCConfig, dc_privacy_plan, gradient_matching
from tdd_priv.methods.dm import DMConfig, distribution_matching, dm_privacy_plan
from tdd_priv.methods.experts import ExpertTrajectories
from tdd_priv.methods.kip import KIPConfig, kernel_inducing_points, kip_privacy_plan
from tdd_priv.methods.learned import parse_options
from tdd_priv.methods.mtt import MTTConfig, mtt_privacy_plan, train_experts, trajectory_matching
from tdd_priv.methods.pe_vote import PEVoteConfig, pe_vote, pe_vote_privacy_plan
from tdd_priv.methods.public_coreset import public_coreset
from tdd_priv.methods.teacher import TeacherConfig, teacher_privacy_plan, teacher_selection
from tdd_priv.privacy.calibration import PlannedMechanism

__all__ = [
    "METHODS",
    "Allocation",
    "ClassSizes",
    "DistillInput",
    "ExpertTrajectories",
    "FitTarget",
    "GroupBalance",
    "MemberArrays",
    "MethodInfo",
    "PrivateVariant",
    "SyntheticSet",
    "check_class_sizes",
    "check_group_balance",
    "distill",
    "method_info",
]


@dataclass(frozen=True)
class PrivateVariant:
    """How a method runs under DP: its config type, the mechanisms it will apply (planned
    before any data is touched, so σ can be calibrated for the whole run), and the option
    defaults that differ under DP (e.g. no initialisation from real records).
    `balanced_plan`: the plan under group-balanced matching, for methods that support it."""

    config_type: type
    plan: Callable[[Any, int, int], list[PlannedMechanism]]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    balanced_plan: Callable[[Any, int, int], list[PlannedMechanism]] | None = None

    def options(self, options: Mapping[str, Any], *, method: str) -> Any:
        """The method's config under DP: DP defaults, then the user's options on top."""
        return parse_options(self.config_type, {**self.defaults, **options}, method=method)

    def planned(
        self, options: Any, n: int, classes: int, *, balanced: bool
    ) -> list[PlannedMechanism]:
        """The mechanisms the method will apply, with or without group-balanced matching."""
        if not balanced:
            return self.plan(options, n, classes)
        if self.balanced_plan is None:
            raise ConfigError("this method has no group-balanced DP variant")
        return self.balanced_plan(options, n, classes)


@dataclass(frozen=True)
class MethodInfo:
    """A registered method. `releases_private_records`: its output rows are real records.
    `experts`: trains what the method learns from before distilling (mtt's expert trajectories),
    so a pipeline can run and cache it as a step of its own. `group_balanced`: it supports
    `--fairness balanced` (reads `DistillInput.balance`). `class_sizes`: it honours per-class
    sizes other than `per_class` each (`--allocation frequency|difficulty`, through
    `DistillInput.class_sizes`)."""

    name: str
    run: Callable[[DistillInput], SyntheticSet]
    releases_private_records: bool
    summary: str
    private: PrivateVariant | None = None
    experts: Callable[[DistillInput], ExpertTrajectories] | None = None
    group_balanced: bool = False
    class_sizes: bool = False

    @property
    def differentially_private(self) -> bool:
        return self.private is not None


_NOISE_INIT = {"init": "noise"}

METHODS: dict[str, MethodInfo] = {
    info.name: info
    for info in (
        MethodInfo(
            "random",
            random_subset,
            True,
            "k private records per class, uniformly",
            class_sizes=True,
        ),
        MethodInfo(
            "herding",
            herding,
            True,
            "k private records per class tracking the mean",
            class_sizes=True,
        ),
        MethodInfo(
            "kcenter",
            kcenter,
            True,
            "k private records per class covering the class",
            class_sizes=True,
        ),
        MethodInfo(
            "dm",
            distribution_matching,
            False,
            "distribution matching of random features",
            PrivateVariant(
                DMConfig,
                dm_privacy_plan,
                {**_NOISE_INIT, "release": "one-shot", "unit_features": True},
                balanced_plan=partial(dm_privacy_plan, balanced=True),
            ),
            group_balanced=True,
        ),
        MethodInfo(
            "dc",
            gradient_matching,
            False,
            "gradient matching of a classifier",
            PrivateVariant(
                DCConfig,
                dc_privacy_plan,
                DC_PRIVATE_DEFAULTS,
                balanced_plan=partial(dc_privacy_plan, balanced=True),
            ),
            group_balanced=True,
        ),
        MethodInfo(
            "mtt",
            trajectory_matching,
            False,
            "matching expert training trajectories",
            PrivateVariant(MTTConfig, mtt_privacy_plan, _NOISE_INIT),
            experts=train_experts,
        ),
        MethodInfo(
            "kip",
            kernel_inducing_points,
            False,
            "kernel ridge regression on a neural kernel",
            PrivateVariant(KIPConfig, kip_privacy_plan, _NOISE_INIT),
        ),
        MethodInfo(
            "dpsgd-teacher",
            teacher_selection,
            False,
            "public texts chosen and soft-labeled by a teacher trained with (DP-)SGD",
            PrivateVariant(TeacherConfig, teacher_privacy_plan),
            class_sizes=True,
        ),
        MethodInfo(
            "pe-vote",
            pe_vote,
            False,
            "the public texts most voted for by the private records' (noisy) nearest neighbours",
            PrivateVariant(PEVoteConfig, pe_vote_privacy_plan),
            class_sizes=True,
        ),
        MethodInfo(
            "public-coreset",
            public_coreset,
            False,
            "public texts chosen by kernel ridge regression against the private records "
            "(never private: it reads them directly)",
            class_sizes=True,
        ),
    )
}


def method_info(name: str) -> MethodInfo:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid methods: {', '.join(METHODS)}")
    return METHODS[name]


def check_group_balance(name: str) -> None:
    """Refuse `--fairness balanced` for a method that cannot match per (class, group) cell."""
    info = method_info(name)
    if not info.group_balanced:
        supported = ", ".join(m.name for m in METHODS.values() if m.group_balanced)
        raise ConfigError(
            f"--fairness balanced is not available for method '{name}': only {supported} "
            "match statistics per (class, group) cell. Use one of those, or --fairness none."
        )


def check_class_sizes(name: str, allocation: Allocation) -> None:
    """Refuse an allocation other than `equal` for a method that cannot honour class sizes."""
    info = method_info(name)
    if allocation.mode == "equal" or info.class_sizes:
        return
    supported = ", ".join(m.name for m in METHODS.values() if m.class_sizes)
    raise ConfigError(
        f"--allocation {allocation.mode} is not available for method '{name}': it learns the "
        f"same number of vectors for every class. Methods that honour per-class sizes: "
        f"{supported}. Use one of those, or --allocation equal."
    )


def distill(name: str, inputs: DistillInput) -> SyntheticSet:
    """Run the named method on the private training set."""
    if inputs.balance is not None:
        check_group_balance(name)  # never ignore a requested balancing silently
    check_class_sizes(name, inputs.allocation)
    return method_info(name).run(inputs)
