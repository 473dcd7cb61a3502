"""Distillation methods behind one registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tdd_priv.methods.base import DistillInput, SyntheticSet
from tdd_priv.methods.coreset import herding, kcenter, random_subset

__all__ = ["METHODS", "DistillInput", "MethodInfo", "SyntheticSet", "distill", "method_info"]


@dataclass(frozen=True)
class MethodInfo:
    """A registered method. `releases_private_records`: its output rows are real records."""

    name: str
    run: Callable[[DistillInput], SyntheticSet]
    releases_private_records: bool
    summary: str


METHODS: dict[str, MethodInfo] = {
    info.name: info
    for info in (
        MethodInfo("random", random_subset, True, "k private records per class, uniformly"),
        MethodInfo("herding", herding, True, "k private records per class tracking the mean"),
        MethodInfo("kcenter", kcenter, True, "k private records per class covering the class"),
    )
}


def method_info(name: str) -> MethodInfo:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid methods: {', '.join(METHODS)}")
    return METHODS[name]


def distill(name: str, inputs: DistillInput) -> SyntheticSet:
    """Run the named method on the private training set."""
    return method_info(name).run(inputs)
