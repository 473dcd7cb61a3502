"""The evaluation protocol: train fresh heads (several seeds each) on a labeled set and test
them on the real test split. Used for the synthetic set and for every baseline alike."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from tdd_priv.heads import DEFAULT_TRAINING, HeadTraining, LabeledArrays, predict, train_head
from tdd_priv.seeding import derive_seed
from tdd_priv.text_models import fit_predict

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
    texts: Sequence[str]
    labels: np.ndarray  # (n,) int64


TextSetSource = Callable[[int], LabeledTexts]


@dataclass(frozen=True)
class HeadScores:
    """Test accuracies (fractions in [0, 1]) of one head architecture over its seeds."""

    head: str
    accuracies: tuple[float, ...]

    @property
    def mean(self) -> float:
        return float(np.mean(self.accuracies))

    @property
    def std(self) -> float:
        return float(np.std(self.accuracies))

    def to_json(self) -> dict[str, Any]:
        return {
            "accuracy_mean": self.mean,
            "accuracy_std": self.std,
            "accuracies": list(self.accuracies),
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
        summary: dict[str, Any] = {
            "accuracy_mean": float(np.mean(self.accuracies)),
            "accuracy_std": float(np.std(self.accuracies)),
            "n_models": len(self.accuracies),
            "by_head": {s.head: s.to_json() for s in self.by_head},
        }
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
) -> Utility:
    """Train `seeds` fresh models per head on `training_set(model_seed)`; score each on `test`."""
    test_labels = test.labels
    jobs = [(head, i) for head in heads for i in range(seeds)]
    accuracies: dict[str, list[float]] = {head: [] for head in heads}
    for head, i in tqdm(jobs, desc=label, unit="model", disable=not progress, leave=False):
        model_seed = derive_seed(seed, "model", i)
        model = train_head(head, training_set(model_seed), seed=model_seed, training=training)
        accuracies[head].append(float(np.mean(predict(model, test.x) == test_labels)))
    return Utility(tuple(HeadScores(head, tuple(accuracies[head])) for head in heads))


def evaluate_texts(
    training_set: TextSetSource,
    test: LabeledTexts,
    *,
    models: Sequence[str],
    seeds: int,
    seed: int,
    varies_with_seed: bool,
) -> tuple[HeadScores, ...]:
    """Text models (see `tdd_priv.text_models`) trained on `training_set(model_seed)`.

    Text models are deterministic given their data, so a fixed set is fitted once.
    """
    repeats = seeds if varies_with_seed else 1
    scores = []
    for name in models:
        accuracies = []
        for i in range(repeats):
            model_seed = derive_seed(seed, "model", i)
            data = training_set(model_seed)
            predicted = fit_predict(name, data.texts, data.labels, test.texts, seed=model_seed)
            accuracies.append(float(np.mean(predicted == test.labels)))
        scores.append(HeadScores(name, tuple(accuracies)))
    return tuple(scores)
