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

from tdd_priv.privacy.mechanisms import gaussian_vote_histogram, nearest_candidates

__all__ = [
    "ExactAccess",
    "ExpertTraining",
    "MeanGradient",
    "PerExampleLoss",
    "PrivateAccess",
    "Statistic",
    "Trajectory",
    "cell_ids",
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

    @property
    def device(self) -> torch.device:
        """Where the answers live; a method's own tensors and generators must be there too."""
        ...

    @property
    def size(self) -> int:
        """n, the number of private records (public under the accounting)."""
        ...

    def class_batch_means(
        self, statistic: Statistic, *, batch_size: int | None, generator: torch.Generator
    ) -> torch.Tensor:
        """(C, p) per class, the mean of `statistic` over a batch of about `batch_size` of its
        real examples (all of them when None): one release per call."""
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

    # Group-balanced matching (--fairness balanced): the same questions per (class, group) cell.
    # Each record lies in exactly one cell, as it lies in exactly one class.

    @property
    def num_groups(self) -> int: ...

    def cell_sizes(self) -> torch.Tensor:
        """(C, G) float64 rows per (class, group) cell (noisy under DP, released once)."""
        ...

    def cell_means(self, statistic: Statistic) -> torch.Tensor:
        """(C, G, p) means of `statistic` over all rows of each cell (one release)."""
        ...

    def cell_batch_means(
        self, statistic: Statistic, *, batch_size: int | None, generator: torch.Generator
    ) -> torch.Tensor:
        """(C, G, p) per cell, the mean of `statistic` over a batch of its rows."""
        ...

    def cell_mean_gradients(
        self,
        loss: PerExampleLoss,
        params: Mapping[str, torch.Tensor],
        *,
        batch_size: int,
        generator: torch.Generator,
    ) -> list[list[MeanGradient]]:
        """Per class and group, the gradient of the mean loss over a batch of the cell's rows."""
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

    def class_vote_histogram(self, candidates: torch.Tensor, *, neighbors: int) -> torch.Tensor:
        """(C, N) float64: per class, the votes of its real examples for their `neighbors`
        nearest of the public `candidates` (N, d), 1/√K per vote (Private Evolution's
        nearest-neighbour histogram; one release, noisy under DP)."""
        ...

    def sample_examples(
        self, *, label: int, count: int, generator: torch.Generator, across_groups: bool = False
    ) -> torch.Tensor:
        """(count, d) real examples of one class, for initialisation; refused under DP.
        `across_groups` (group-balanced matching): spread evenly over the class's groups."""
        ...


def cell_ids(labels: torch.Tensor, groups: np.ndarray | None, num_groups: int) -> torch.Tensor:
    """(n,) int64 cell of each row, label·G + group, in [0, C·G) (groups None: the labels)."""
    if groups is None:
        if num_groups != 1:
            raise ValueError(f"num_groups = {num_groups} needs the group of every row")
        return labels.clone()
    ids = torch.from_numpy(np.ascontiguousarray(groups, dtype=np.int64)).to(labels.device)
    if ids.shape != labels.shape:
        raise ValueError(f"groups must have shape {tuple(labels.shape)}, got {tuple(ids.shape)}")
    if len(ids) and (int(ids.min()) < 0 or int(ids.max()) >= num_groups):
        raise ValueError(f"groups must lie in [0, {num_groups})")
    return labels * num_groups + ids


def _subset(rows: torch.Tensor, batch_size: int | None, generator: torch.Generator) -> torch.Tensor:
    """All of `rows` (ascending) or, when there are more, a random `batch_size` of them."""
    if batch_size is None or batch_size >= len(rows):
        return rows
    return rows[_permutation(len(rows), generator)[:batch_size]]


def _permutation(n: int, generator: torch.Generator) -> torch.Tensor:
    """A random permutation of range(n), drawn on (and living on) the generator's device."""
    return torch.randperm(n, generator=generator, device=generator.device)


def _mean(values: torch.Tensor) -> torch.Tensor:
    """(p,) mean over the rows of (m, p) values; zeros for an empty cell (m = 0)."""
    return values.mean(dim=0) if len(values) else values.sum(dim=0)


def _flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).clone()


class ExactAccess:
    """Non-private gateway: exact means, gradients and trajectories over the real data.

    embeddings: (n, d) float32; labels: (n,) int64 in [0, num_classes); groups: (n,) int64 in
    [0, num_groups), each row's group for group-balanced matching (None: one group). They are
    copied to `device`, where every answer is computed.
    """

    def __init__(
        self,
        embeddings: np.ndarray,
        labels: np.ndarray,
        num_classes: int,
        *,
        groups: np.ndarray | None = None,
        num_groups: int = 1,
        device: torch.device | str = "cpu",
    ) -> None:
        self._device = torch.device(device)
        x = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32))
        self._x = x.to(self._device)
        self._y = torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)).to(self._device)
        self._num_classes = num_classes
        self._rows = {c: torch.nonzero(self._y == c).flatten() for c in range(num_classes)}
        self._num_groups = num_groups
        cells = cell_ids(self._y, groups, num_groups)
        self._cell_rows = [
            torch.nonzero(cells == cell).flatten() for cell in range(num_classes * num_groups)
        ]

    @property
    def num_classes(self) -> int:
        return self._num_classes

    @property
    def size(self) -> int:
        return len(self._y)

    @property
    def dim(self) -> int:
        return int(self._x.shape[1])

    @property
    def device(self) -> torch.device:
        return self._device

    def _batch(
        self, label: int | None, batch_size: int | None, generator: torch.Generator
    ) -> torch.Tensor:
        rows = (
            self._rows[label]
            if label is not None
            else torch.arange(len(self._y), device=self._device)
        )
        return _subset(rows, batch_size, generator)

    def class_batch_means(
        self, statistic: Statistic, *, batch_size: int | None, generator: torch.Generator
    ) -> torch.Tensor:
        with torch.no_grad():
            return torch.stack(
                [
                    statistic(self._x[self._batch(c, batch_size, generator)]).mean(dim=0)
                    for c in range(self.num_classes)
                ]
            )

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

    @property
    def num_groups(self) -> int:
        return self._num_groups

    def cell_sizes(self) -> torch.Tensor:
        sizes = torch.tensor(
            [len(rows) for rows in self._cell_rows], dtype=torch.float64, device=self._device
        )
        return sizes.view(self._num_classes, self._num_groups)

    def _cell_table(self, means: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(means).view(self._num_classes, self._num_groups, -1)

    def cell_means(self, statistic: Statistic) -> torch.Tensor:
        with torch.no_grad():
            return self._cell_table([_mean(statistic(self._x[r])) for r in self._cell_rows])

    def cell_batch_means(
        self, statistic: Statistic, *, batch_size: int | None, generator: torch.Generator
    ) -> torch.Tensor:
        with torch.no_grad():
            return self._cell_table(
                [
                    _mean(statistic(self._x[_subset(rows, batch_size, generator)]))
                    for rows in self._cell_rows
                ]
            )

    def cell_mean_gradients(
        self,
        loss: PerExampleLoss,
        params: Mapping[str, torch.Tensor],
        *,
        batch_size: int,
        generator: torch.Generator,
    ) -> list[list[MeanGradient]]:
        grads = [
            self._mean_gradient(loss, params, _subset(rows, batch_size, generator))
            for rows in self._cell_rows
        ]
        g = self._num_groups
        return [grads[c * g : (c + 1) * g] for c in range(self._num_classes)]

    def _mean_gradient(
        self, loss: PerExampleLoss, params: Mapping[str, torch.Tensor], rows: torch.Tensor
    ) -> MeanGradient:
        if not len(rows):  # an empty cell: no gradient (it stands in with its class's)
            return MeanGradient({name: torch.zeros_like(p) for name, p in params.items()}, None)
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
            order = _permutation(len(self._y), generator)
            for start in range(0, len(order), training.batch_size):
                rows = order[start : start + training.batch_size]
                optimizer.zero_grad(set_to_none=True)
                F.cross_entropy(model(self._x[rows]), self._y[rows]).backward()
                optimizer.step()
            trajectory.append(_flat(model))
        return trajectory

    def class_vote_histogram(self, candidates: torch.Tensor, *, neighbors: int) -> torch.Tensor:
        """The exact histogram: the mechanism at σ = 0 (it draws no noise)."""
        votes = nearest_candidates(self._x, candidates.to(self._x.device), neighbors=neighbors)
        return gaussian_vote_histogram(
            votes.cpu(),
            self._y.cpu(),
            self._num_classes,
            len(candidates),
            noise_multiplier=0.0,
            generator=torch.Generator(),
        )

    def sample_examples(
        self, *, label: int, count: int, generator: torch.Generator, across_groups: bool = False
    ) -> torch.Tensor:
        if not across_groups:
            rows = self._rows[label]
            return self._x[rows[_permutation(len(rows), generator)[:count]]].clone()
        # Round robin over the class's non-empty cells, largest first (so a remainder goes to
        # the larger groups), each in a random order: every group gets count/G while it lasts.
        g = self._num_groups
        cells = [self._cell_rows[label * g + group] for group in range(g)]
        cells = sorted((rows for rows in cells if len(rows)), key=len, reverse=True)
        shuffled = [rows[_permutation(len(rows), generator)] for rows in cells]
        picks = [
            rows[i]
            for i in range(max(map(len, cells), default=0))
            for rows in shuffled
            if i < len(rows)
        ]
        return self._x[torch.stack(picks[:count])].clone()
