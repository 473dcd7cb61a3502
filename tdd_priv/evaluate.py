"""The evaluation protocol: train fresh heads (several seeds each) on a labeled set and test
them on the real test split. Used for the synthetic set and for every baseline alike.

A model that the training set does not allow (an empty set; for text models also a single
class or no countable word) is reported as not computable, with the reason, instead of
failing the run after its expensive steps or scoring a model that never saw data."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from tdd_priv.finetune import DEFAULT_FINETUNE, FinetuneSettings, subsample_rows
from tdd_priv.heads import DEFAULT_TRAINING, HeadTraining, LabeledArrays, predict, train_head
from tdd_priv.seeding import derive_seed
from tdd_priv.text_models import TEXT_MODELS, NotComputable, fit_predict

__all__ = [
    "HeadScores",
    "LabeledTexts",
    "TextSetSource",
    "TrainingSetSource",
    "Utility",
    "evaluate",
    "evaluate_texts",
]

# Seed -> training set. A fixed set ignores the seed; a random baseline draws a new one per seed.
TrainingSetSource = Callable[[int], LabeledArrays]


@dataclass(frozen=True)
class LabeledTexts:
    """Texts with labels (n,) int64 and, when the set has them, soft `targets` (n, C)."""

    texts: Sequence[str]
    labels: np.ndarray  # (n,) int64
    targets: np.ndarray | None = None


TextSetSource = Callable[[int], LabeledTexts]


@dataclass(frozen=True)
class HeadScores:
    """Test accuracies (fractions in [0, 1]) of one head architecture over its seeds.

    `not_computable`: why no model of this architecture could be trained on the set (then
    `accuracies` is empty). `note`: how these models were trained where it differs from the
    protocol's plain reading (a subsample, a DP-SGD fine-tune), for the report.
    """

    head: str
    accuracies: tuple[float, ...]
    not_computable: str | None = None
    note: str | None = None

    @property
    def mean(self) -> float:
        return float(np.mean(self.accuracies))

    @property
    def std(self) -> float:
        return float(np.std(self.accuracies))

    def to_json(self) -> dict[str, Any]:
        noted = {"note": self.note} if self.note else {}
        if self.not_computable is not None:
            return {"not_computable": self.not_computable, **noted}
        return {
            "accuracy_mean": self.mean,
            "accuracy_std": self.std,
            "accuracies": list(self.accuracies),
            **noted,
        }


@dataclass(frozen=True)
class Utility:
    """Accuracy over every model of every embedding head; `by_head` keeps the per-head view.

    `cross_architecture` holds models trained on the texts themselves (not in the aggregate).
    """

    by_head: tuple[HeadScores, ...]
    cross_architecture: tuple[HeadScores, ...] = ()

    def with_text_models(self, scores: tuple[HeadScores, ...]) -> Utility:
        return Utility(self.by_head, scores)

    @property
    def accuracies(self) -> tuple[float, ...]:
        return tuple(a for scores in self.by_head for a in scores.accuracies)

    def to_json(self) -> dict[str, Any]:
        accuracies = self.accuracies
        summary: dict[str, Any]
        if accuracies:
            summary = {
                "accuracy_mean": float(np.mean(accuracies)),
                "accuracy_std": float(np.std(accuracies)),
                "n_models": len(accuracies),
                "by_head": {s.head: s.to_json() for s in self.by_head},
            }
        else:  # no head could be trained on the set: the reason, no per-head numbers
            reasons = dict.fromkeys(s.not_computable for s in self.by_head if s.not_computable)
            summary = {"not_computable": "; ".join(reasons) or "no model", "n_models": 0}
        if self.cross_architecture:
            summary["cross_architecture"] = {s.head: s.to_json() for s in self.cross_architecture}
        return summary


def evaluate(
    training_set: TrainingSetSource,
    test: LabeledArrays,
    *,
    heads: Sequence[str],
    seeds: int,
    seed: int,
    training: HeadTraining = DEFAULT_TRAINING,
    label: str = "evaluate",
    progress: bool = True,
    device: torch.device | str = "cpu",
) -> Utility:
    """Train `seeds` fresh models per head on `training_set(model_seed)`; score each on `test`.

    The heads train on `device` (see tdd_priv.device: CUDA results are not bit-identical)."""
    test_labels = test.labels
    jobs = [(head, i) for head in heads for i in range(seeds)]
    accuracies: dict[str, list[float]] = {head: [] for head in heads}
    reasons: dict[str, str] = {}
    for head, i in tqdm(jobs, desc=label, unit="model", disable=not progress, leave=False):
        if head in reasons:
            continue
        model_seed = derive_seed(seed, "model", i)
        data = training_set(model_seed)
        if len(data.x) == 0:  # a head trained on nothing would score its random start
            reasons[head] = "no training examples: the set is empty"
            continue
        model = train_head(head, data, seed=model_seed, training=training, device=device)
        accuracies[head].append(float(np.mean(predict(model, test.x) == test_labels)))
    return Utility(
        tuple(
            HeadScores(head, () if head in reasons else tuple(accuracies[head]), reasons.get(head))
            for head in heads
        )
    )


def evaluate_texts(
    training_set: TextSetSource,
    test: LabeledTexts,
    *,
    models: Sequence[str],
    seeds: int,
    seed: int,
    varies_with_seed: bool,
    finetune: FinetuneSettings = DEFAULT_FINETUNE,
) -> tuple[HeadScores, ...]:
    """Text models (see `tdd_priv.text_models`) trained on `training_set(model_seed)`.

    A model that depends only on its data (TF-IDF + LR) is fitted once on a fixed set; a seeded
    one (`finetune`) once per seed. A set larger than the model's `max_train` is replaced by a
    seeded subsample of that size, and the scores' note says so.
    """
    scores = []
    for name in models:
        model = TEXT_MODELS[name]
        repeats = seeds if varies_with_seed or model.seeded else 1
        cap = model.max_train(finetune)
        accuracies: list[float] = []
        reason = None
        sizes: set[tuple[int, int]] = set()  # (texts trained on, texts in the set)
        for i in range(repeats):
            model_seed = derive_seed(seed, "model", i)
            data = training_set(model_seed)
            texts, labels, targets = data.texts, np.asarray(data.labels), data.targets
            rows = subsample_rows(len(texts), cap, seed=model_seed) if cap is not None else None
            sizes.add((len(texts) if rows is None else len(rows), len(texts)))
            if rows is not None:
                texts, labels = [texts[r] for r in rows], labels[rows]
                targets = None if targets is None else targets[rows]
            try:
                predicted = fit_predict(
                    name,
                    texts,
                    labels,
                    test.texts,
                    seed=model_seed,
                    targets=targets,
                    finetune=finetune,
                )
            except NotComputable as error:
                reason = str(error) if repeats == 1 else f"{error} (model {i + 1} of {repeats})"
                break
            accuracies.append(float(np.mean(predicted == test.labels)))
        note = None
        if any(used < total for used, total in sizes):
            used, total = max(sizes)
            note = (
                f"each model trained on a seeded subsample of {used} of the set's {total} texts "
                f"({name} trains on at most {cap})"
            )
        scores.append(HeadScores(name, () if reason else tuple(accuracies), reason, note))
    return tuple(scores)
