"""Coreset baselines: choose k real private records per class in embedding space.

They release private records verbatim, so they carry no privacy guarantee at all. With
`--allocation frequency|difficulty` their class sizes come from the members themselves: the
class counts, and the error of a linear head trained on them.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from tdd_priv.heads import LabeledArrays, train_head
from tdd_priv.methods.allocation import ClassProfile, ClassSizes
from tdd_priv.methods.base import DistillInput, SyntheticSet
from tdd_priv.seeding import derive_seed, numpy_rng

__all__ = ["herding", "kcenter", "random_subset"]


def member_profile(inputs: DistillInput) -> ClassProfile:
    """The members' class shares and, per class, the mean probability that a linear head
    trained on all members gives to other classes on the class's members (read exactly: only
    for methods that are never private)."""
    data = inputs.exact()
    classes = inputs.num_classes
    counts = np.bincount(data.labels, minlength=classes).astype(np.float64)
    head = train_head(
        "linear",
        LabeledArrays.from_labels(data.embeddings, data.labels, classes),
        seed=derive_seed(inputs.seed, "allocation"),
    )
    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(data.embeddings, dtype=np.float32))
        own = torch.cat([torch.softmax(head(part), dim=1) for part in x.split(8192)]).numpy()[
            np.arange(len(data.labels)), data.labels
        ]
    error = np.bincount(data.labels, weights=1.0 - own, minlength=classes)
    difficulty = np.divide(error, counts, out=np.zeros(classes), where=counts > 0)
    return ClassProfile(
        counts / max(counts.sum(), 1.0),
        difficulty,
        "the private members (class counts; a linear head's error on each class)",
    )


def coreset_sizes(inputs: DistillInput) -> ClassSizes:
    """Records to take per class: the run's allocation, capped at the class's members."""
    capacity = np.bincount(inputs.exact().labels, minlength=inputs.num_classes)
    profile = member_profile(inputs) if inputs.allocation.needs_profile else None
    return inputs.class_sizes(profile, capacity=capacity)


def _coreset(
    inputs: DistillInput, method: str, chosen: list[np.ndarray], sizes: ClassSizes
) -> SyntheticSet:
    rows = np.concatenate(chosen).astype(np.int64)
    data = inputs.exact()
    return SyntheticSet(
        embeddings=data.embeddings[rows].astype(np.float32),
        labels=data.labels[rows].astype(np.int64),
        soft_labels=None,
        method=method,
        config={"per_class": inputs.per_class},
        private_rows=rows,
        allocation=sizes,
    )


def random_subset(inputs: DistillInput) -> SyntheticSet:
    """k records per class drawn uniformly without replacement."""
    rng = numpy_rng(inputs.seed, "random")
    sizes = coreset_sizes(inputs)
    chosen = [
        np.sort(rng.choice(inputs.class_rows(c), size=int(sizes.sizes[c]), replace=False))
        for c in range(inputs.num_classes)
    ]
    return _coreset(inputs, "random", chosen, sizes)


# Rows of a class handled at a time by herding and k-center: their float64 work arrays stay
# ~50 MB however large the class (a million rows would otherwise copy 3 GB per step).
_CHUNK = 16384


def _chunks(
    embeddings: np.ndarray, rows: np.ndarray, dtype: type = np.float64
) -> Iterator[tuple[int, np.ndarray]]:
    """(offset, embeddings of rows[offset : offset + _CHUNK] as `dtype`) over the class."""
    for start in range(0, len(rows), _CHUNK):
        yield start, embeddings[rows[start : start + _CHUNK]].astype(dtype, copy=False)


def _herd(embeddings: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """Greedy herding (iCaRL) over embeddings[rows]: each pick brings the running mean closest
    to the class mean. Returns positions in `rows`."""
    target = np.zeros(embeddings.shape[1])
    for _, part in _chunks(embeddings, rows):
        target += part.sum(axis=0)
    target /= len(rows)
    picked: list[int] = []
    running_sum = np.zeros_like(target)
    gaps = np.empty(len(rows))
    for t in range(1, k + 1):
        for start, part in _chunks(embeddings, rows):
            gaps[start : start + len(part)] = np.linalg.norm(
                target - (running_sum + part) / t, axis=1
            )
        gaps[picked] = np.inf
        best = int(np.argmin(gaps))
        picked.append(best)
        running_sum += embeddings[rows[best]].astype(np.float64)
    return np.asarray(picked, dtype=np.int64)


def herding(inputs: DistillInput) -> SyntheticSet:
    """k records per class whose mean tracks the class mean (deterministic)."""
    embeddings, chosen = inputs.exact().embeddings, []
    sizes = coreset_sizes(inputs)
    for c in range(inputs.num_classes):
        rows = inputs.class_rows(c)
        chosen.append(rows[_herd(embeddings, rows, int(sizes.sizes[c]))])
    return _coreset(inputs, "herding", chosen, sizes)


def _k_center(embeddings: np.ndarray, rows: np.ndarray, k: int, first: int) -> np.ndarray:
    """Greedy k-center over embeddings[rows]: repeatedly take the point farthest from those
    already taken. Returns positions in `rows`."""
    picked = [first]
    distance = np.full(len(rows), np.inf, dtype=np.float32)
    while len(picked) < k:
        center = embeddings[rows[picked[-1]]]
        for start, part in _chunks(embeddings, rows, np.float32):
            end = start + len(part)
            distance[start:end] = np.minimum(
                distance[start:end], np.linalg.norm(part - center, axis=1)
            )
        picked.append(int(np.argmax(distance)))
    return np.asarray(picked, dtype=np.int64)


def kcenter(inputs: DistillInput) -> SyntheticSet:
    """k records per class covering the class (greedy k-center from a seeded first point)."""
    rng = numpy_rng(inputs.seed, "kcenter")
    embeddings, chosen = inputs.exact().embeddings, []
    sizes = coreset_sizes(inputs)
    for c in range(inputs.num_classes):
        rows = inputs.class_rows(c)
        first = int(rng.integers(len(rows)))
        chosen.append(rows[_k_center(embeddings, rows, int(sizes.sizes[c]), first)])
    return _coreset(inputs, "kcenter", chosen, sizes)
