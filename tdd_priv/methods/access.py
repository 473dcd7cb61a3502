"""The one gateway between a distillation method and the private training set.

Learned methods never index the private embeddings themselves: everything they learn from real
data is a *mean over real examples* of a per-example quantity (random features for `dm`,
classifier gradients for `dc`, kernel-regression loss gradients for `kip`) or a trajectory of a
model trained on real data (`mtt`). `ExactAccess` computes these exactly; a differentially
private gateway computes the same quantities with per-example clipping and Gaussian noise, so
swapping the gateway is all a method needs to become private.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "ExactAccess",
    "ExpertTraining",
    "MeanGradient",
    "PerExampleLoss",
    "PrivateAccess",
    "Statistic",
    "Trajectory",
]

# (n, d) real embeddings -> (n, p) per-example statistic.
Statistic = Callable[[torch.Tensor], torch.Tensor]
# (params, x (n, d), y (n,) int64) -> (n,) per-example losses.
PerExampleLoss = Callable[[Mapping[str, torch.Tensor], torch.Tensor, torch.Tensor], torch.Tensor]
# Flat parameter vectors of a model after 0, 1, ..., E epochs of training.
Trajectory = list[torch.Tensor]


@dataclass(frozen=True)
class ExpertTraining:
    """How an expert (for trajectory matching) is trained on real data: plain minibatch SGD."""

    epochs: int = 10
    learning_rate: float = 0.1
    batch_size: int = 256


@dataclass(frozen=True)
class MeanGradient:
    """Gradients (by parameter name) of the mean per-example loss over a real batch, and that
    mean loss when the gateway may reveal it (None under DP: it would leak)."""

    gradients: dict[str, torch.Tensor]
    loss: float | None


class PrivateAccess(Protocol):
    """What a learned method may ask of the private training set."""

    @property
    def num_classes(self) -> int: ...

    @property
    def dim(self) -> int: ...

    def class_mean(
        self,
        statistic: Statistic,
        *,
        label: int,
        batch_size: int | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """(p,) mean of `statistic` over (a batch of) the real examples of one class."""
        ...

    def class_means(self, statistic: Statistic) -> torch.Tensor:
        """(C, p) means of `statistic` over all real examples of each class (one release)."""
        ...

    def mean_gradient(
        self,
        loss: PerExampleLoss,
        params: Mapping[str, torch.Tensor],
        *,
        batch_size: int | None,
        generator: torch.Generator,
    ) -> MeanGradient:
        """Gradient of the mean per-example loss over a batch of real examples of all classes."""
        ...

    def class_mean_gradients(
        self,
        loss: PerExampleLoss,
        params: Mapping[str, torch.Tensor],
        *,
        batch_size: int,
        generator: torch.Generator,
    ) -> list[MeanGradient]:
        """Per class, the gradient of the mean loss over a batch of that class's examples."""
        ...

    def expert_trajectory(
        self,
        model: nn.Module,
        *,
        training: ExpertTraining,
        generator: torch.Generator,
    ) -> Trajectory:
        """Train `model` (in place) on the real data; its flat parameters after each epoch."""
        ...

    def sample_examples(
        self, *, label: int, count: int, generator: torch.Generator
    ) -> torch.Tensor:
        """(count, d) real examples of one class, for initialisation; refused under DP."""
        ...


def _flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).clone()


class ExactAccess:
    """Non-private gateway: exact means, gradients and trajectories over the real data.

    embeddings: (n, d) float32; labels: (n,) int64 in [0, num_classes).
    """

    def __init__(self, embeddings: np.ndarray, labels: np.ndarray, num_classes: int) -> None:
        self._x = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32))
        self._y = torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64))
        self._num_classes = num_classes
        self._rows = {c: torch.nonzero(self._y == c).flatten() for c in range(num_classes)}

    @property
    def num_classes(self) -> int:
        return self._num_classes

    @property
    def dim(self) -> int:
        return int(self._x.shape[1])

    def _batch(
        self, label: int | None, batch_size: int | None, generator: torch.Generator
    ) -> torch.Tensor:
        rows = self._rows[label] if label is not None else torch.arange(len(self._y))
        if batch_size is None or batch_size >= len(rows):
            return rows
        return rows[torch.randperm(len(rows), generator=generator)[:batch_size]]

    def class_mean(
        self,
        statistic: Statistic,
        *,
        label: int,
        batch_size: int | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        rows = self._batch(label, batch_size, generator)
        with torch.no_grad():
            return statistic(self._x[rows]).mean(dim=0)

    def class_means(self, statistic: Statistic) -> torch.Tensor:
        with torch.no_grad():
            return torch.stack(
                [statistic(self._x[rows]).mean(dim=0) for rows in self._rows.values()]
            )

    def mean_gradient(
        self,
        loss: PerExampleLoss,
        params: Mapping[str, torch.Tensor],
        *,
        batch_size: int | None,
        generator: torch.Generator,
    ) -> MeanGradient:
        return self._mean_gradient(loss, params, self._batch(None, batch_size, generator))

    def class_mean_gradients(
        self,
        loss: PerExampleLoss,
        params: Mapping[str, torch.Tensor],
        *,
        batch_size: int,
        generator: torch.Generator,
    ) -> list[MeanGradient]:
        return [
            self._mean_gradient(loss, params, self._batch(c, batch_size, generator))
            for c in range(self._num_classes)
        ]

    def _mean_gradient(
        self, loss: PerExampleLoss, params: Mapping[str, torch.Tensor], rows: torch.Tensor
    ) -> MeanGradient:
        leaves = {name: p.detach().requires_grad_(True) for name, p in params.items()}
        mean_loss = loss(leaves, self._x[rows], self._y[rows]).mean()
        grads = torch.autograd.grad(mean_loss, list(leaves.values()))
        gradients = {name: g.detach() for name, g in zip(leaves, grads, strict=True)}
        return MeanGradient(gradients, mean_loss.item())

    def expert_trajectory(
        self,
        model: nn.Module,
        *,
        training: ExpertTraining,
        generator: torch.Generator,
    ) -> Trajectory:
        optimizer = torch.optim.SGD(model.parameters(), lr=training.learning_rate)
        trajectory = [_flat(model)]
        for _ in range(training.epochs):
            order = torch.randperm(len(self._y), generator=generator)
            for start in range(0, len(order), training.batch_size):
                rows = order[start : start + training.batch_size]
                optimizer.zero_grad(set_to_none=True)
                F.cross_entropy(model(self._x[rows]), self._y[rows]).backward()
                optimizer.step()
            trajectory.append(_flat(model))
        return trajectory

    def sample_examples(
        self, *, label: int, count: int, generator: torch.Generator
    ) -> torch.Tensor:
        rows = self._rows[label]
        return self._x[rows[torch.randperm(len(rows), generator=generator)[:count]]].clone()
