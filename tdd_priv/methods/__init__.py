"""Distillation methods behind one registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tdd_priv.methods.base import DistillInput, SyntheticSet
from tdd_priv.methods.coreset import herding, kcenter, random_subset
from tdd_priv.methods.dc import gradient_matching
from tdd_priv.methods.dm import distribution_matching
from tdd_priv.methods.kip import kernel_inducing_points
from tdd_priv.methods.mtt import trajectory_matching

__all__ = ["METHODS", "DistillInput", "MethodInfo", "SyntheticSet", "distill", "method_info"]


@dataclass(frozen=True)
class MethodInfo:
    """A registered method. `releases_private_records`: its output rows are real records."""

    name: str
    run: Callable[[DistillInput], SyntheticSet]
    releases_private_records: bool
    summary: str
    differentially_private: bool = False


METHODS: dict[str, MethodInfo] = {
    info.name: info
    for info in (
        MethodInfo("random", random_subset, True, "k private records per class, uniformly"),
        MethodInfo("herding", herding, True, "k private records per class tracking the mean"),
        MethodInfo("kcenter", kcenter, True, "k private records per class covering the class"),
        MethodInfo("dm", distribution_matching, False, "distribution matching of random features"),
        MethodInfo("dc", gradient_matching, False, "gradient matching of a classifier"),
        MethodInfo("mtt", trajectory_matching, False, "matching expert training trajectories"),
        MethodInfo(
            "kip", kernel_inducing_points, False, "kernel ridge regression on a neural kernel"
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
