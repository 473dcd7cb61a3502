"""Turn a synthetic set (vectors) into readable, labeled text."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from tdd_priv.methods import SyntheticSet

__all__ = ["REALIZERS", "RealizationInput", "RealizedSet", "realize"]

TextSource = Literal["public", "private"]


@dataclass(frozen=True)
class RealizationInput:
    """Candidate texts with their embeddings ((n, d) float32, L2-normalised rows)."""

    public_texts: Sequence[str]
    public_embeddings: np.ndarray
    private_texts: Sequence[str]
    private_embeddings: np.ndarray


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


def public_nearest(synthetic: SyntheticSet, pool: RealizationInput) -> RealizedSet:
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


def private_coreset(synthetic: SyntheticSet, pool: RealizationInput) -> RealizedSet:
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


REALIZERS: dict[str, Callable[[SyntheticSet, RealizationInput], RealizedSet]] = {
    "public-nearest": public_nearest,
    "private-coreset": private_coreset,
}


def realize(strategy: str, synthetic: SyntheticSet, pool: RealizationInput) -> RealizedSet:
    if strategy not in REALIZERS:
        raise ValueError(f"unknown realization {strategy!r}; valid: {', '.join(REALIZERS)}")
    return REALIZERS[strategy](synthetic, pool)
