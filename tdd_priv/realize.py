"""Turn a synthetic set (vectors) into readable, labeled text."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from tdd_priv.heads import train_head
from tdd_priv.methods import FitTarget, SyntheticSet
from tdd_priv.methods.teacher import TeacherConfig, select_for_teacher
from tdd_priv.seeding import derive_seed
from tdd_priv.selection import greedy_kernel_selection

__all__ = [
    "REALIZERS",
    "RealizationInput",
    "RealizeSettings",
    "RealizedSet",
    "ranked_spares",
    "realize",
]

# Where released texts come from: the public pool, private members (a coreset), or a release
# made outside tdd-priv and audited by `tdd-priv audit` (rows then index that release's file).
TextSource = Literal["public", "private", "external"]


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
    candidates_per_vector: int = 64  # nearest public texts per synthetic vector considered
    kernel: str = "nngp"  # measured best for linear and MLP heads on AG News (bench/distill.py)
    spares_per_text: int = 64  # ranked replacements kept per released text (for the detox step)
    device: torch.device | str = "cpu"  # where the kernel selection and teacher heads run


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
    # --- toxicity screening (see tdd_priv.detox) ---
    # (m, S) int64 rows of the same source that could stand in for each text, best first, -1
    # padding: what the detox filter replaces a toxic text with, keeping its slot and label.
    spares: np.ndarray | None = None
    # Set by the detox step: (m,) bool, scored at or above a toxicity threshold; and report.json's
    # audits.toxicity section. None when the step did not run.
    flagged: np.ndarray | None = None
    screening: Mapping[str, Any] | None = None
    # What the texts were fitted to, so the report can say who made them (see FitTarget).
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
    fitted_to: FitTarget | None = None,
) -> RealizedSet:
    """Public texts `rows`, one per synthetic vector, with its label (and soft label). None for
    `fitted_to`: the rows are the method's own selection (its vectors are these texts), fitted
    to what the method says (`SyntheticSet.texts_fitted_to`)."""
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
        fitted_to=fitted_to if fitted_to is not None else synthetic.texts_fitted_to,
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


def public_match(
    synthetic: SyntheticSet, pool: RealizationInput, settings: RealizeSettings
) -> RealizedSet:
    """Labeled public texts, as many per class as the synthetic set has, chosen greedily so
    that kernel ridge regression on them best predicts the released synthetic set (its vectors
    and labels); candidates are the public texts near the synthetic vectors. It reads only the
    release and the pool, with or without DP, so the texts are the method's: another method
    gives other texts. A set whose vectors already are public texts (dpsgd-teacher, pe-vote,
    public-coreset select them themselves) is released as it is, soft labels included.

    Fitting the private data directly instead is a method of its own (`public-coreset`): done
    here, it would give every method the same texts.
    """
    exact = _exact_public_rows(synthetic, pool)
    if exact is not None:
        return _public_rows_set(synthetic, pool, exact, settings, strategy="public-match")
    candidates = _candidates(synthetic, pool, settings.candidates_per_vector)
    classes = int(synthetic.labels.max()) + 1
    device = settings.device
    selection = greedy_kernel_selection(
        torch.from_numpy(np.ascontiguousarray(synthetic.embeddings, dtype=np.float32)).to(device),
        torch.from_numpy(synthetic.training_arrays(classes).targets.astype(np.float32)).to(device),
        torch.from_numpy(pool.public_embeddings[candidates]).to(device),
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
        strategy="public-match",
        spares=ranked_spares(  # the public texts nearest to each chosen one
            pool.public_embeddings[rows[order]], pool.public_embeddings, settings.spares_per_text
        ),
        fitted_to="release",
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
        "linear",
        synthetic.training_arrays(classes),
        seed=derive_seed(settings.seed, "realize"),
        device=settings.device,
    )
    pool_x = torch.from_numpy(np.ascontiguousarray(pool.public_embeddings, dtype=np.float32))
    pool_x = pool_x.to(settings.device)
    with torch.no_grad():
        logits = torch.cat([head(part) for part in pool_x.split(8192)])
    chosen = select_for_teacher(
        pool_x,
        logits,
        per_class=np.bincount(synthetic.labels, minlength=classes),
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
