"""Turn a synthetic set (vectors) into readable, labeled text."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from tdd_priv.errors import ConfigError
from tdd_priv.heads import train_head
from tdd_priv.methods import SyntheticSet
from tdd_priv.methods.teacher import TeacherConfig, select_for_teacher
from tdd_priv.seeding import derive_seed, numpy_rng
from tdd_priv.selection import greedy_kernel_selection

__all__ = [
    "REALIZERS",
    "FitTarget",
    "RealizationInput",
    "RealizeSettings",
    "RealizedSet",
    "ranked_spares",
    "realize",
]

TextSource = Literal["public", "private"]
# What the released texts were fitted to, so the report can say who made them: "method" (the
# method chose these very texts or records itself: dpsgd-teacher, pe-vote, coresets),
# "release" (fitted to the method's released vectors and labels: they change with the method),
# "private-data" (selected against the private records directly: the method does not decide
# them).
FitTarget = Literal["method", "release", "private-data"]


@dataclass(frozen=True)
class RealizationInput:
    """Candidate texts with their embeddings ((n, d) float32, L2-normalised rows).

    The private fields are None under DP: realizers may then use only the public pool and the
    released synthetic set.
    """

    public_texts: Sequence[str]
    public_embeddings: np.ndarray
    private_texts: Sequence[str] | None = None
    private_embeddings: np.ndarray | None = None
    private_labels: np.ndarray | None = None


@dataclass(frozen=True)
class RealizeSettings:
    seed: int = 0
    progress: bool = False
    real_batch: int = 4000  # private examples the public-match objective is measured on
    candidates_per_vector: int = 64  # nearest public texts per synthetic vector considered
    kernel: str = "nngp"  # measured best for linear and MLP heads on AG News (bench/distill.py)
    spares_per_text: int = 64  # ranked replacements kept per released text (for the detox step)


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
    # --- toxicity screening (issue 6; see tdd_priv.detox) ---
    # (m, S) int64 rows of the same source that could stand in for each text, best first, -1
    # padding: what the detox filter replaces a toxic text with, keeping its slot and label.
    spares: np.ndarray | None = None
    # Set by the detox step: (m,) bool, scored at or above a toxicity threshold; and report.json's
    # audits.toxicity section. None when the step did not run.
    flagged: np.ndarray | None = None
    screening: Mapping[str, Any] | None = None
    fitted_to: FitTarget = "release"


def ranked_spares(
    anchors: np.ndarray, candidates: np.ndarray, limit: int, allowed: np.ndarray | None = None
) -> np.ndarray:
    """(m, S) rows of `candidates` (N, d) most similar (dot product) to each anchor (m, d), best
    first, S = min(limit, N); `allowed` (m, N) bool restricts each anchor's candidates, and
    rows with fewer than S allowed candidates are padded with -1."""
    width = min(limit, len(candidates))
    if width <= 0:
        return np.full((len(anchors), 0), -1, dtype=np.int64)
    similarity = (anchors @ candidates.T).astype(np.float64)
    if allowed is not None:
        similarity = np.where(allowed, similarity, -np.inf)
    top = np.argpartition(-similarity, width - 1, axis=1)[:, :width]
    values = np.take_along_axis(similarity, top, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")
    ranked = np.take_along_axis(top, order, axis=1).astype(np.int64)
    ranked[np.take_along_axis(values, order, axis=1) == -np.inf] = -1
    return ranked


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


def _exact_public_rows(synthetic: SyntheticSet, pool: RealizationInput) -> np.ndarray | None:
    """(m,) distinct public rows whose embeddings equal the synthetic vectors bit for bit, when
    every vector is one (a method that selected public texts itself), else None."""
    rows_of: dict[bytes, list[int]] = {}
    for row, vector in enumerate(np.asarray(pool.public_embeddings, dtype=np.float32)):
        rows_of.setdefault(vector.tobytes(), []).append(row)
    rows = []
    for vector in np.asarray(synthetic.embeddings, dtype=np.float32):
        free = rows_of.get(vector.tobytes())
        if not free:
            return None
        rows.append(free.pop(0))
    return np.array(rows, dtype=np.int64)


def public_nearest(
    synthetic: SyntheticSet, pool: RealizationInput, settings: RealizeSettings
) -> RealizedSet:
    """Each synthetic vector becomes its nearest unused public text, with the synthetic label."""
    rows = _exact_public_rows(synthetic, pool)
    if rows is not None:
        return _public_rows_set(synthetic, pool, rows, settings, strategy="public-nearest")
    rows = _nearest_unused(synthetic.embeddings, pool.public_embeddings)
    return _public_rows_set(
        synthetic, pool, rows, settings, strategy="public-nearest", fitted_to="release"
    )


def _public_rows_set(
    synthetic: SyntheticSet,
    pool: RealizationInput,
    rows: np.ndarray,
    settings: RealizeSettings,
    *,
    strategy: str,
    fitted_to: FitTarget = "method",
) -> RealizedSet:
    """Public texts `rows`, one per synthetic vector, with its label (and soft label); by
    default the rows are the method's own selection (its vectors are these texts)."""
    return RealizedSet(
        texts=tuple(pool.public_texts[i] for i in rows),
        labels=synthetic.labels.copy(),
        embeddings=pool.public_embeddings[rows],
        source="public",
        rows=rows,
        strategy=strategy,
        soft_labels=synthetic.soft_labels,
        spares=ranked_spares(
            synthetic.embeddings, pool.public_embeddings, settings.spares_per_text
        ),
        fitted_to=fitted_to,
    )


def private_coreset(
    synthetic: SyntheticSet, pool: RealizationInput, settings: RealizeSettings
) -> RealizedSet:
    """The private records themselves: the selected rows of a coreset, else the nearest ones."""
    if pool.private_texts is None or pool.private_embeddings is None:
        raise ValueError("private-coreset needs the private records, which DP runs never pass")
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
        spares=None
        if pool.private_labels is None
        else ranked_spares(  # other private records of the same class
            synthetic.embeddings,
            pool.private_embeddings,
            settings.spares_per_text,
            allowed=pool.private_labels[None, :] == synthetic.labels[:, None],
        ),
        # a coreset's rows are the method's choice; other vectors' nearest records follow them
        fitted_to="method" if synthetic.private_rows is not None else "release",
    )


def _candidates(synthetic: SyntheticSet, pool: RealizationInput, per_vector: int) -> np.ndarray:
    """Rows of the public pool among the `per_vector` nearest to some synthetic vector."""
    if per_vector <= 0 or per_vector * len(synthetic.embeddings) >= len(pool.public_embeddings):
        return np.arange(len(pool.public_embeddings))
    similarity = synthetic.embeddings @ pool.public_embeddings.T
    nearest = np.argpartition(-similarity, per_vector - 1, axis=1)[:, :per_vector]
    return np.unique(nearest)


def _kernel_choice(
    synthetic: SyntheticSet,
    pool: RealizationInput,
    settings: RealizeSettings,
    reference_x: np.ndarray,
    reference_y: np.ndarray,
    *,
    strategy: str,
    fitted_to: FitTarget,
) -> RealizedSet:
    """Labeled public texts, as many per class as the synthetic set has, chosen greedily among
    the public texts near the synthetic vectors so that kernel ridge regression on them best
    predicts the reference (x (n, d), targets (n, C))."""
    candidates = _candidates(synthetic, pool, settings.candidates_per_vector)
    classes = int(reference_y.shape[1])
    selection = greedy_kernel_selection(
        torch.from_numpy(np.ascontiguousarray(reference_x, dtype=np.float32)),
        torch.from_numpy(np.ascontiguousarray(reference_y, dtype=np.float32)),
        torch.from_numpy(pool.public_embeddings[candidates]),
        per_class=np.bincount(synthetic.labels, minlength=classes),
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
        strategy=strategy,
        spares=ranked_spares(  # the public texts nearest to each chosen one
            pool.public_embeddings[rows[order]], pool.public_embeddings, settings.spares_per_text
        ),
        fitted_to=fitted_to,
    )


def public_match(
    synthetic: SyntheticSet, pool: RealizationInput, settings: RealizeSettings
) -> RealizedSet:
    """Labeled public texts chosen greedily so that kernel ridge regression on them best predicts
    the released synthetic set (its vectors and labels); candidates are the public texts near
    the synthetic vectors. It reads only the release and the pool, with or without DP, so the
    texts are the method's: a different method gives different texts. A set whose vectors
    already are public texts (dpsgd-teacher, pe-vote select them themselves) is released as it
    is, soft labels included."""
    exact = _exact_public_rows(synthetic, pool)
    if exact is not None:
        return _public_rows_set(synthetic, pool, exact, settings, strategy="public-match")
    classes = int(synthetic.labels.max()) + 1
    return _kernel_choice(
        synthetic,
        pool,
        settings,
        synthetic.embeddings,
        synthetic.training_arrays(classes).targets,
        strategy="public-match",
        fitted_to="release",
    )


def private_match(
    synthetic: SyntheticSet, pool: RealizationInput, settings: RealizeSettings
) -> RealizedSet:
    """Non-private only: public-match's selection fitted to the private training data itself (a
    sample of `real_batch` members) instead of the release. The method contributes only the
    candidates (public texts near its vectors) and the number of texts per class, so the texts
    are not the method's: the report attributes them to the private data."""
    if pool.private_embeddings is None or pool.private_labels is None:
        raise ConfigError(
            "--realize private-match fits the texts to the private records, which a "
            "differentially private run never passes to realization; use public-match, "
            "public-teacher or public-nearest, or pass --no-dp"
        )
    rng = numpy_rng(settings.seed, "public-match")
    n = len(pool.private_labels)
    real = rng.choice(n, size=min(settings.real_batch, n), replace=False)
    classes = int(max(synthetic.labels.max(), pool.private_labels.max())) + 1
    return _kernel_choice(
        synthetic,
        pool,
        settings,
        pool.private_embeddings[real],
        np.eye(classes, dtype=np.float32)[pool.private_labels[real]],
        strategy="private-match",
        fitted_to="private-data",
    )


def public_teacher(
    synthetic: SyntheticSet, pool: RealizationInput, settings: RealizeSettings
) -> RealizedSet:
    """Public texts chosen for a teacher trained on the synthetic set: a linear head (the
    default evaluation head) is trained on the released set, scores the public pool, and its
    outputs are carried by k public texts per class chosen as `dpsgd-teacher` chooses them,
    released with the head's tempered probabilities as soft labels. It reads only the released
    set and the public pool: post-processing, with or without DP. A set whose vectors already
    are public texts is released as it is."""
    exact = _exact_public_rows(synthetic, pool)
    if exact is not None:
        return _public_rows_set(synthetic, pool, exact, settings, strategy="public-teacher")
    classes = int(synthetic.labels.max()) + 1
    head = train_head(
        "linear", synthetic.training_arrays(classes), seed=derive_seed(settings.seed, "realize")
    )
    pool_x = torch.from_numpy(np.ascontiguousarray(pool.public_embeddings, dtype=np.float32))
    with torch.no_grad():
        logits = torch.cat([head(part) for part in pool_x.split(8192)])
    chosen = select_for_teacher(
        pool_x,
        logits,
        per_class=int(np.bincount(synthetic.labels, minlength=classes).max()),
        config=TeacherConfig(),
        seed=settings.seed,
        progress=settings.progress,
    )
    return RealizedSet(
        texts=tuple(pool.public_texts[i] for i in chosen.rows),
        labels=chosen.labels,
        embeddings=pool.public_embeddings[chosen.rows],
        source="public",
        rows=chosen.rows,
        strategy="public-teacher",
        soft_labels=chosen.soft_labels,
        spares=ranked_spares(  # the public texts nearest to each chosen one
            pool.public_embeddings[chosen.rows], pool.public_embeddings, settings.spares_per_text
        ),
    )


Realizer = Callable[[SyntheticSet, RealizationInput, RealizeSettings], RealizedSet]

REALIZERS: dict[str, Realizer] = {
    "public-nearest": public_nearest,
    "public-match": public_match,
    "public-teacher": public_teacher,
    "private-coreset": private_coreset,
    "private-match": private_match,
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
