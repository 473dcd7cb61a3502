"""How a synthetic set's size is split over the classes.

`equal` (the default) gives every class `--per-class K`. `frequency` and `difficulty` split a
total (`--total-size N`, default K × classes) in proportion to a per-class estimate, with at
least one text per class, by largest remainders (Hamilton's method):

- `frequency`: the class's share of the private data;
- `difficulty`: the class's share of the expected errors, its frequency times its estimated
  error rate (the probability mass a model puts on other classes where this class's examples
  lie): texts go where a model trained on the data would make its mistakes. (The error rate
  alone gave a 6 % class two thirds of the texts on Davidson and lost 25 to 50 points of
  accuracy: docs/benchmarks/allocation.md.)

Under DP the estimate must never be read from the private data directly. Each method that
honours per-class sizes computes it from what it has already released (`ClassProfile.source`
says from what): `pe-vote` from its noisy vote histogram, `dpsgd-teacher` from its DP teacher's
predictions on the public pool. That is post-processing, so it costs no budget. The coresets
(never private) read the members directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tdd_priv.config import AllocationMode
from tdd_priv.errors import ConfigError

__all__ = [
    "Allocation",
    "AllocationMode",
    "ClassProfile",
    "ClassSizes",
    "apportion",
    "class_sizes",
    "profile_from_probabilities",
    "profile_from_votes",
]

# Texts per class whose vote shares estimate a class's difficulty from a vote histogram: its
# most-voted texts, where the noise is small against the votes.
_DIFFICULTY_TEXTS = 50


@dataclass(frozen=True)
class ClassProfile:
    """Per-class estimates an allocation is computed from. frequency: (C,) >= 0, relative class
    sizes; difficulty: (C,) in [0, 1], estimated error rates (the `difficulty` allocation
    weighs them by frequency); `source`: what they were computed from, in words (for the
    report)."""

    frequency: np.ndarray
    difficulty: np.ndarray
    source: str


@dataclass(frozen=True)
class ClassSizes:
    """(C,) int64 texts per class and how they were decided (report.json's
    `synthetic.allocation`)."""

    sizes: np.ndarray
    mode: AllocationMode
    weights: np.ndarray | None = None  # (C,) the normalised weights split by, None for equal
    source: str | None = None

    def to_json(self, label_names: tuple[str, ...] | list[str]) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "mode": self.mode,
            "total": int(self.sizes.sum()),
            "sizes": {str(name): int(n) for name, n in zip(label_names, self.sizes, strict=True)},
        }
        if self.weights is not None:
            payload["weights"] = {
                str(name): round(float(w), 6)
                for name, w in zip(label_names, self.weights, strict=True)
            }
        if self.source is not None:
            payload["estimated_from"] = self.source
        return payload


@dataclass(frozen=True)
class Allocation:
    """The run's allocation setting: `mode`, and the `total` size to split (None: per_class ×
    classes). `equal` uses per_class for every class and ignores `total`."""

    mode: AllocationMode = "equal"
    total: int | None = None

    @property
    def needs_profile(self) -> bool:
        return self.mode != "equal"

    def sizes(
        self,
        *,
        per_class: int,
        num_classes: int,
        profile: ClassProfile | None,
        capacity: np.ndarray | None = None,
    ) -> ClassSizes:
        """Texts per class: `per_class` each (equal), or the total split by the profile's
        frequency or by frequency × error rate (difficulty), at least one per class, at most
        `capacity` (C,) per class."""
        if self.mode == "equal":
            sizes = np.full(num_classes, per_class, dtype=np.int64)
            if capacity is not None and bool((sizes > capacity).any()):
                raise ConfigError(
                    f"--per-class {per_class} needs more rows than some class has "
                    f"({np.asarray(capacity).tolist()} per class); lower --per-class"
                )
            return ClassSizes(sizes, "equal")
        if profile is None:
            raise ValueError(f"--allocation {self.mode} needs a class profile")
        total = self.total if self.total is not None else per_class * num_classes
        frequency = np.clip(np.nan_to_num(np.asarray(profile.frequency, dtype=np.float64)), 0, None)
        if self.mode == "frequency":
            raw = frequency
        else:  # the class's share of the expected errors: frequency × error rate
            share = frequency / frequency.sum() if frequency.sum() > 0 else frequency
            raw = share * np.asarray(profile.difficulty, dtype=np.float64)
        weights = np.clip(np.nan_to_num(np.asarray(raw, dtype=np.float64)), 0.0, None)
        if weights.shape != (num_classes,):
            raise ValueError(f"the profile must hold {num_classes} values, got {weights.shape}")
        if not weights.sum() > 0:
            weights = np.ones(num_classes)  # nothing to tell the classes apart: equal shares
        weights = weights / weights.sum()
        sizes = apportion(total, weights, minimum=1, capacity=capacity)
        return ClassSizes(sizes, self.mode, weights, profile.source)


def apportion(
    total: int, weights: np.ndarray, *, minimum: int = 1, capacity: np.ndarray | None = None
) -> np.ndarray:
    """(C,) int64 sizes summing to `total`: `minimum` each, the rest in proportion to `weights`
    (C,) >= 0 by largest remainders (ties to the lower class id), never above `capacity`.

    A class at its capacity gives its share to the others, in proportion to their weights.
    """
    weights = np.asarray(weights, dtype=np.float64)
    count = len(weights)
    # No class can take more than the whole total, so that is "no cap".
    cap = np.full(count, max(total, 0), dtype=np.int64)
    if capacity is not None:
        cap = np.minimum(cap, np.asarray(capacity, dtype=np.int64))
    if total < minimum * count:
        raise ConfigError(
            f"--total-size {total} cannot give each of the {count} classes at least {minimum} "
            f"text(s); use --total-size {minimum * count} or more"
        )
    if int(cap.sum()) < total:
        raise ConfigError(
            f"--total-size {total} is more than the classes can provide ({cap.tolist()} per "
            "class); lower --total-size"
        )
    if bool((cap < minimum).any()):
        raise ConfigError(f"every class needs at least {minimum} row(s); some class has fewer")
    sizes = np.full(count, minimum, dtype=np.int64)
    open_ = sizes < cap
    while (left := total - int(sizes.sum())) > 0:
        share = np.where(open_, weights, 0.0)
        if not share.sum() > 0:
            share = open_.astype(np.float64)  # the rest goes equally to the classes with room
        ideal = share / share.sum() * left
        extra = np.minimum(np.floor(ideal).astype(np.int64), cap - sizes)
        remainder = left - int(extra.sum())
        if remainder > 0:
            # Largest remainders first (stable: ties to the lower id), one each, within room.
            fraction = np.where(open_ & (sizes + extra < cap), ideal - np.floor(ideal), -1.0)
            for label in np.argsort(-fraction, kind="stable")[:remainder]:
                if fraction[label] >= 0:
                    extra[label] += 1
        if not extra.any():  # only classes without weight have room: give them one each
            for label in np.flatnonzero(open_)[:left]:
                extra[label] += 1
        sizes += extra
        open_ = sizes < cap
    return sizes


def class_sizes(per_class: int | np.ndarray | Any, num_classes: int) -> np.ndarray:
    """(C,) int64 sizes: `per_class` for every class when it is one number, else the counts."""
    if isinstance(per_class, int | np.integer):
        return np.full(num_classes, int(per_class), dtype=np.int64)
    sizes = np.asarray(per_class, dtype=np.int64)
    if sizes.shape != (num_classes,) or bool((sizes < 0).any()):
        raise ValueError(f"per-class sizes must be {num_classes} counts >= 0, got {sizes.tolist()}")
    return sizes


def profile_from_probabilities(probabilities: np.ndarray, *, source: str) -> ClassProfile:
    """A profile from a model's class probabilities (N, C) on texts: the model's expected share
    of each class, Σ_t q_c(t) / N, and its expected error on each class, Σ_t q_c(t)(1 − q_c(t))
    / Σ_t q_c(t) (each text weighted by how much the model believes it belongs to the class)."""
    q = np.asarray(probabilities, dtype=np.float64)
    mass = q.sum(axis=0)
    frequency = mass / max(len(q), 1)
    difficulty = np.divide(
        (q * (1.0 - q)).sum(axis=0), mass, out=np.zeros_like(mass), where=mass > 0
    )
    return ClassProfile(frequency, difficulty, source)


def profile_from_votes(histogram: np.ndarray, *, source: str) -> ClassProfile:
    """A profile from a (noisy) vote histogram (C, N): frequency, each row's total vote (noise
    averages out over the N entries; clamped at 0); difficulty, over each class's 50 most-voted
    texts, the mean share of the votes there that came from other classes (how much its
    records' nearest texts are also other classes' nearest texts)."""
    h = np.asarray(histogram, dtype=np.float64)
    frequency = np.clip(h.sum(axis=1), 0.0, None)
    positive = np.clip(h, 0.0, None)
    column = positive.sum(axis=0)  # (N,)
    share = np.divide(positive, column, out=np.zeros_like(positive), where=column > 0)
    top = min(_DIFFICULTY_TEXTS, h.shape[1])
    best = np.argsort(-h, axis=1, kind="stable")[:, :top]  # (C, top)
    own = np.take_along_axis(share, best, axis=1)
    return ClassProfile(frequency, 1.0 - own.mean(axis=1), source)
