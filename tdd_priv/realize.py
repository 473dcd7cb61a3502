"""Turn a synthetic set (vectors) into readable, labeled text."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from tdd_priv.methods import SyntheticSet
from tdd_priv.seeding import numpy_rng
from tdd_priv.selection import greedy_kernel_selection

__all__ = ["REALIZERS", "RealizationInput", "RealizeSettings", "RealizedSet", "realize"]

TextSource = Literal["public", "private"]


@dataclass(frozen=True)
class RealizationInput:
    """Candidate texts with their embeddings ((n, d) float32, L2-normalised rows), and the
    private training set's labels (public-match optimises against them: not private)."""

    public_texts: Sequence[str]
    public_embeddings: np.ndarray
    private_texts: Sequence[str]
    private_embeddings: np.ndarray
    private_labels: np.ndarray


@dataclass(frozen=True)
class RealizeSettings:
    seed: int = 0
    progress: bool = False
    real_batch: int = 4000  # private examples the public-match objective is measured on
    candidates_per_vector: int = 64  # nearest public texts per synthetic vector considered
    kernel: str = "nngp"  # measured best for linear and MLP heads on AG News (bench/distill.py)


@dataclass(frozen=True)
class RealizedSet:
    """Released texts. `rows` index the source named by `source`; embeddings (m, d)."""

    texts: tuple[str, ...]
    labels: np.ndarray
    embeddings: np.ndarray
    source: TextSource
    rows: np.ndarray
    strategy: str
    soft_labels: np.ndarray | None = None  # (m, C) when the synthetic set learned them


def _nearest_unused(queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """For each query in turn, the most cosine-similar candidate not taken by an earlier one."""
    if len(candidates) < len(queries):
        raise ValueError(
            f"the candidate pool has {len(candidates)} texts but {len(queries)} are needed; "
            "use a larger public pool or a smaller --per-class"
        )
    similarity = queries @ candidates.T
    taken = np.zeros(len(candidates), dtype=bool)
    rows = np.empty(len(queries), dtype=np.int64)
    for i, row in enumerate(similarity):
        best = int(np.argmax(np.where(taken, -np.inf, row)))
        rows[i] = best
        taken[best] = True
    return rows


def public_nearest(
    synthetic: SyntheticSet, pool: RealizationInput, settings: RealizeSettings
) -> RealizedSet:
    """Each synthetic vector becomes its nearest unused public text, with the synthetic label."""
    rows = _nearest_unused(synthetic.embeddings, pool.public_embeddings)
    return RealizedSet(
        texts=tuple(pool.public_texts[i] for i in rows),
        labels=synthetic.labels.copy(),
        embeddings=pool.public_embeddings[rows],
        source="public",
        rows=rows,
        strategy="public-nearest",
        soft_labels=synthetic.soft_labels,
    )


def private_coreset(
    synthetic: SyntheticSet, pool: RealizationInput, settings: RealizeSettings
) -> RealizedSet:
    """The private records themselves: the selected rows of a coreset, else the nearest ones."""
    rows = (
        synthetic.private_rows
        if synthetic.private_rows is not None
        else _nearest_unused(synthetic.embeddings, pool.private_embeddings)
    )
    return RealizedSet(
        texts=tuple(pool.private_texts[i] for i in rows),
        labels=synthetic.labels.copy(),
        embeddings=pool.private_embeddings[rows],
        source="private",
        rows=rows,
        strategy="private-coreset",
        soft_labels=synthetic.soft_labels,
    )


def _candidates(synthetic: SyntheticSet, pool: RealizationInput, per_vector: int) -> np.ndarray:
    """Rows of the public pool among the `per_vector` nearest to some synthetic vector."""
    if per_vector <= 0 or per_vector * len(synthetic.embeddings) >= len(pool.public_embeddings):
        return np.arange(len(pool.public_embeddings))
    similarity = synthetic.embeddings @ pool.public_embeddings.T
    nearest = np.argpartition(-similarity, per_vector - 1, axis=1)[:, :per_vector]
    return np.unique(nearest)


def public_match(
    synthetic: SyntheticSet, pool: RealizationInput, settings: RealizeSettings
) -> RealizedSet:
    """Labeled public texts chosen greedily so that kernel ridge regression on them predicts the
    private training labels best; candidates are the public texts near the synthetic set."""
    candidates = _candidates(synthetic, pool, settings.candidates_per_vector)
    rng = numpy_rng(settings.seed, "public-match")
    real = rng.choice(
        len(pool.private_labels),
        size=min(settings.real_batch, len(pool.private_labels)),
        replace=False,
    )
    classes = int(synthetic.labels.max()) + 1
    selection = greedy_kernel_selection(
        torch.from_numpy(pool.private_embeddings[real]),
        torch.from_numpy(pool.private_labels[real]),
        torch.from_numpy(pool.public_embeddings[candidates]),
        per_class=int(np.bincount(synthetic.labels).max()),
        num_classes=classes,
        kernel=settings.kernel,
        progress=settings.progress,
    )
    rows = candidates[selection.rows.numpy()]
    order = np.argsort(selection.labels.numpy(), kind="stable")
    return RealizedSet(
        texts=tuple(pool.public_texts[i] for i in rows[order]),
        labels=selection.labels.numpy()[order],
        embeddings=pool.public_embeddings[rows[order]],
        source="public",
        rows=rows[order],
        strategy="public-match",
    )


Realizer = Callable[[SyntheticSet, RealizationInput, RealizeSettings], RealizedSet]

REALIZERS: dict[str, Realizer] = {
    "public-nearest": public_nearest,
    "public-match": public_match,
    "private-coreset": private_coreset,
}


def realize(
    strategy: str,
    synthetic: SyntheticSet,
    pool: RealizationInput,
    settings: RealizeSettings = RealizeSettings(),
) -> RealizedSet:
    if strategy not in REALIZERS:
        raise ValueError(f"unknown realization {strategy!r}; valid: {', '.join(REALIZERS)}")
    return REALIZERS[strategy](synthetic, pool, settings)
