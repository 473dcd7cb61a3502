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

__all__ = ["HeadScores", "TrainingSetSource", "Utility", "evaluate"]

# Seed -> training set. A fixed set ignores the seed; a random baseline draws a new one per seed.
TrainingSetSource = Callable[[int], LabeledArrays]


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


@dataclass(frozen=True)
class Utility:
    """Accuracy over every model of every head; `by_head` keeps the per-architecture view."""

    by_head: tuple[HeadScores, ...]

    @property
    def accuracies(self) -> tuple[float, ...]:
        return tuple(a for scores in self.by_head for a in scores.accuracies)

    def to_json(self) -> dict[str, Any]:
        return {
            "accuracy_mean": float(np.mean(self.accuracies)),
            "accuracy_std": float(np.std(self.accuracies)),
            "n_models": len(self.accuracies),
            "by_head": {
                s.head: {
                    "accuracy_mean": s.mean,
                    "accuracy_std": s.std,
                    "accuracies": list(s.accuracies),
                }
                for s in self.by_head
            },
        }


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
