"""Coreset baselines: choose k real private records per class in embedding space.

They release private records verbatim, so they carry no privacy guarantee at all.
"""

from __future__ import annotations

import numpy as np

from tdd_priv.methods.base import DistillInput, SyntheticSet
from tdd_priv.seeding import numpy_rng

__all__ = ["herding", "kcenter", "random_subset"]


def _coreset(inputs: DistillInput, method: str, chosen: list[np.ndarray]) -> SyntheticSet:
    rows = np.concatenate(chosen).astype(np.int64)
    data = inputs.exact()
    return SyntheticSet(
        embeddings=data.embeddings[rows].astype(np.float32),
        labels=data.labels[rows].astype(np.int64),
        soft_labels=None,
        method=method,
        config={"per_class": inputs.per_class},
        private_rows=rows,
    )


def random_subset(inputs: DistillInput) -> SyntheticSet:
    """k records per class drawn uniformly without replacement."""
    rng = numpy_rng(inputs.seed, "random")
    chosen = [
        np.sort(rng.choice(inputs.class_rows(c), size=inputs.per_class, replace=False))
        for c in range(inputs.num_classes)
    ]
    return _coreset(inputs, "random", chosen)


def _herd(points: np.ndarray, k: int) -> np.ndarray:
    """Greedy herding (iCaRL): each pick brings the running mean closest to the class mean."""
    target = points.mean(axis=0)
    picked: list[int] = []
    running_sum = np.zeros_like(target)
    available = np.ones(len(points), dtype=bool)
    for t in range(1, k + 1):
        gaps = np.linalg.norm(target - (running_sum + points) / t, axis=1)
        gaps[~available] = np.inf
        best = int(np.argmin(gaps))
        picked.append(best)
        available[best] = False
        running_sum += points[best]
    return np.asarray(picked, dtype=np.int64)


def herding(inputs: DistillInput) -> SyntheticSet:
    """k records per class whose mean tracks the class mean (deterministic)."""
    embeddings, chosen = inputs.exact().embeddings, []
    for c in range(inputs.num_classes):
        rows = inputs.class_rows(c)
        chosen.append(rows[_herd(embeddings[rows].astype(np.float64), inputs.per_class)])
    return _coreset(inputs, "herding", chosen)


def _k_center(points: np.ndarray, k: int, first: int) -> np.ndarray:
    """Greedy k-center: repeatedly take the point farthest from those already taken."""
    picked = [first]
    distance = np.linalg.norm(points - points[first], axis=1)
    for _ in range(k - 1):
        farthest = int(np.argmax(distance))
        picked.append(farthest)
        distance = np.minimum(distance, np.linalg.norm(points - points[farthest], axis=1))
    return np.asarray(picked, dtype=np.int64)


def kcenter(inputs: DistillInput) -> SyntheticSet:
    """k records per class covering the class (greedy k-center from a seeded first point)."""
    rng = numpy_rng(inputs.seed, "kcenter")
    embeddings, chosen = inputs.exact().embeddings, []
    for c in range(inputs.num_classes):
        rows = inputs.class_rows(c)
        first = int(rng.integers(len(rows)))
        chosen.append(rows[_k_center(embeddings[rows], inputs.per_class, first)])
    return _coreset(inputs, "kcenter", chosen)
