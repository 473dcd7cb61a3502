"""The differentially private gateway to the private training set.

It answers the same questions as `tdd_priv.methods.access.ExactAccess`, but every answer is a
Gaussian mechanism from `tdd_priv.privacy.mechanisms` on clipped per-example quantities, and
every mechanism it applies is recorded in its ledger. Methods therefore become private by being
handed this gateway instead of the exact one; what they do with the answers is post-processing.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from tdd_priv.errors import ConfigError
from tdd_priv.methods.access import (
    ExpertTraining,
    MeanGradient,
    PerExampleLoss,
    Statistic,
    Trajectory,
    cell_ids,
)
from tdd_priv.privacy.dpsgd import dpsgd_trajectory
from tdd_priv.privacy.ledger import PrivacyLedger
from tdd_priv.privacy.mechanisms import (
    gaussian_class_sums,
    gaussian_sum,
    gaussian_vote_histogram,
    nearest_candidates,
    noisy_counts,
    per_example_loss_grads,
    poisson_sample,
)

__all__ = ["NoisyAccess", "poisson_rate"]


def poisson_rate(expected_batch: int | None, n: int) -> float:
    """Sampling rate q giving `expected_batch` rows out of n (all rows when None)."""
    return 1.0 if expected_batch is None else min(1.0, expected_batch / n)


def _unflatten(flat: torch.Tensor, params: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """(P,) -> {name: tensor shaped like params[name]}, in the order of `params`."""
    parts = flat.split([p.numel() for p in params.values()])
    return {name: part.view_as(p) for (name, p), part in zip(params.items(), parts, strict=True)}


class NoisyAccess:
    """DP gateway with one shared noise multiplier σ and clip norm C.

    The number of private rows n is treated as public (as usual under add/remove adjacency
    accounting with a fixed expected batch); class sizes are not, and are released noisily
    (once, accounted) when a mean needs them. `groups` ((n,) int64 in [0, num_groups), or None
    for one group) place each row in a (class, group) cell for group-balanced matching; cell
    sizes, like class sizes, are released noisily once.

    The private rows live on `device`, where the per-example statistics and gradients are
    computed; the gateway's own mechanisms (clipping, sums, Poisson sampling, noise) run on
    the CPU with the CPU `generator`, so their noise is the same on every device. DP-SGD
    (`expert_trajectory`, through opacus) draws its noise on the device.
    """

    def __init__(
        self,
        embeddings: np.ndarray,
        labels: np.ndarray,
        num_classes: int,
        *,
        noise_multiplier: float,
        max_norm: float,
        generator: torch.Generator,
        ledger: PrivacyLedger,
        groups: np.ndarray | None = None,
        num_groups: int = 1,
        device: torch.device | str = "cpu",
    ) -> None:
        self._device = torch.device(device)
        self._x = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32))
        self._x = self._x.to(self._device)
        # Labels on the CPU for the mechanisms, and on the device to train experts with.
        self._labels = torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64))
        self._y = self._labels.to(self._device)
        self._num_classes = num_classes
        self._sigma = noise_multiplier
        self._max_norm = max_norm
        self._generator = generator
        self.ledger = ledger
        self._counts: torch.Tensor | None = None
        self._num_groups = num_groups
        self._cells = cell_ids(self._labels, groups, num_groups)  # on the CPU
        self._cell_counts: torch.Tensor | None = None

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

    def _on_device(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.to(self._device)

    def noisy_class_counts(self) -> torch.Tensor:
        """(C,) class counts + N(0, σ²), released once per run and reused (clamped to >= 1)."""
        if self._counts is None:
            counts = noisy_counts(
                self._labels,
                self._num_classes,
                noise_multiplier=self._sigma,
                generator=self._generator,
            )
            self.ledger.spend(
                "class_counts", noise_multiplier=self._sigma, sample_rate=1.0, steps=1
            )
            self._counts = self._on_device(counts.float().clamp_min(1.0))
        return self._counts

    def class_means(self, statistic: Statistic) -> torch.Tensor:
        """(C, p) class means of the clipped statistic: noisy class sums / noisy class counts."""
        with torch.no_grad():
            sums = gaussian_class_sums(
                statistic(self._x).cpu(),
                self._labels,
                self._num_classes,
                noise_multiplier=self._sigma,
                max_norm=self._max_norm,
                generator=self._generator,
            )
        self.ledger.spend(
            "class_statistic_sums", noise_multiplier=self._sigma, sample_rate=1.0, steps=1
        )
        return self._on_device(sums) / self.noisy_class_counts()[:, None]

    def _class_batch(self, batch_size: int | None) -> tuple[float, torch.Tensor, torch.Tensor]:
        """A Poisson batch over all classes at q = batch_size·C / n (all rows when None): q, the
        sampled rows (on the CPU), and the expected batch per class q · (noisy class count)."""
        sample_rate = poisson_rate(
            None if batch_size is None else batch_size * self._num_classes, len(self._y)
        )
        rows = poisson_sample(len(self._y), sample_rate=sample_rate, generator=self._generator)
        return sample_rate, rows, sample_rate * self.noisy_class_counts()

    def class_batch_means(
        self, statistic: Statistic, *, batch_size: int | None, generator: torch.Generator
    ) -> torch.Tensor:
        """(C, p) per-step class means (DP-DM with a fresh statistic each step): a Poisson
        batch at q = batch_size·C / n (an expected `batch_size` per class; all rows when None),
        noisy class sums of the clipped statistic, divided by the expected batch per class
        q · (noisy class count). The classes partition the data: one mechanism per call."""
        sample_rate, rows, expected = self._class_batch(batch_size)
        with torch.no_grad():
            sums = gaussian_class_sums(
                statistic(self._x[self._on_device(rows)]).cpu(),
                self._labels[rows],
                self._num_classes,
                noise_multiplier=self._sigma,
                max_norm=self._max_norm,
                generator=self._generator,
            )
        self.ledger.spend(
            "class_statistic_sums", noise_multiplier=self._sigma, sample_rate=sample_rate, steps=1
        )
        return self._on_device(sums) / expected[:, None]

    def _noisy_gradient_sum(
        self, loss: PerExampleLoss, params: Mapping[str, torch.Tensor], rows: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """One Gaussian mechanism: per-example gradients over all parameters, flattened into one
        row each, clipped jointly to C, summed, noised. An empty Poisson batch still releases
        (pure noise), so the number of releases never depends on the data."""
        total = gaussian_sum(
            self._flat_gradients(loss, params, rows).cpu(),
            noise_multiplier=self._sigma,
            max_norm=self._max_norm,
            generator=self._generator,
        )
        return _unflatten(self._on_device(total), params)

    def _flat_gradients(
        self, loss: PerExampleLoss, params: Mapping[str, torch.Tensor], rows: torch.Tensor
    ) -> torch.Tensor:
        """(len(rows), P) per-example gradients over all parameters, one flat row each, on the
        device (`rows` may be on the CPU)."""
        if not len(rows):
            return torch.zeros(0, sum(p.numel() for p in params.values()), device=self._device)
        rows = self._on_device(rows)
        grads = per_example_loss_grads(loss, params, self._x[rows], self._y[rows])
        return torch.cat([grads[name].reshape(len(rows), -1) for name in params], dim=1)

    def mean_gradient(
        self,
        loss: PerExampleLoss,
        params: Mapping[str, torch.Tensor],
        *,
        batch_size: int | None,
        generator: torch.Generator,
    ) -> MeanGradient:
        """Poisson-sampled (q = batch_size / n) clipped noisy gradient sum / (q·n)."""
        n = len(self._y)
        rate = poisson_rate(batch_size, n)
        rows = poisson_sample(n, sample_rate=rate, generator=self._generator)
        sums = self._noisy_gradient_sum(loss, params, rows)
        self.ledger.spend("gradient_sums", noise_multiplier=self._sigma, sample_rate=rate, steps=1)
        return MeanGradient({k: v / (rate * n) for k, v in sums.items()}, loss=None)

    def class_mean_gradients(
        self,
        loss: PerExampleLoss,
        params: Mapping[str, torch.Tensor],
        *,
        batch_size: int,
        generator: torch.Generator,
    ) -> list[MeanGradient]:
        """Per class: Poisson-sampled clipped noisy gradient sums, at q = batch_size·C / n (an
        expected `batch_size` per class). The classes partition the data, so all of them
        together are one release of the subsampled Gaussian mechanism."""
        sample_rate, rows, expected = self._class_batch(batch_size)
        by_class = self._labels[rows]
        results = []
        for c in range(self._num_classes):
            sums = self._noisy_gradient_sum(loss, params, rows[by_class == c])
            results.append(MeanGradient({k: v / expected[c] for k, v in sums.items()}, loss=None))
        self.ledger.spend(
            "class_gradient_sums", noise_multiplier=self._sigma, sample_rate=sample_rate, steps=1
        )
        return results

    # --- group-balanced matching: the same releases per (class, group) cell -------------------
    # Each record lies in exactly one cell, just as it lies in exactly one class: adding or
    # removing it changes one cell's clipped sum by at most C (and one cell count by 1) and leaves
    # every other cell alone. A table of per-cell sums therefore has the same L2 sensitivity as
    # the table of per-class sums, and each such table is still ONE Gaussian mechanism at the
    # same σ, recorded once: balancing changes what is released, not what it costs.

    @property
    def num_groups(self) -> int:
        return self._num_groups

    def cell_sizes(self) -> torch.Tensor:
        """(C, G) cell counts + N(0, σ²), released once per run and reused (clamped to >= 1)."""
        if self._cell_counts is None:
            counts = noisy_counts(
                self._cells,
                self._num_classes * self._num_groups,
                noise_multiplier=self._sigma,
                generator=self._generator,
            )
            self.ledger.spend("cell_counts", noise_multiplier=self._sigma, sample_rate=1.0, steps=1)
            cells = counts.clamp_min(1.0).view(self._num_classes, self._num_groups)
            self._cell_counts = self._on_device(cells)
        return self._cell_counts

    def cell_means(self, statistic: Statistic) -> torch.Tensor:
        """(C, G, p) cell means of the clipped statistic: noisy cell sums / noisy cell counts."""
        with torch.no_grad():
            sums = gaussian_class_sums(
                statistic(self._x).cpu(),
                self._cells,
                self._num_classes * self._num_groups,
                noise_multiplier=self._sigma,
                max_norm=self._max_norm,
                generator=self._generator,
            )
        self.ledger.spend(
            "cell_statistic_sums", noise_multiplier=self._sigma, sample_rate=1.0, steps=1
        )
        table = self._on_device(sums).view(self._num_classes, self._num_groups, -1)
        return table / self.cell_sizes()[:, :, None].to(table.dtype)

    def cell_batch_means(
        self, statistic: Statistic, *, batch_size: int | None, generator: torch.Generator
    ) -> torch.Tensor:
        raise ConfigError(
            "per-step cell means are not released under DP; use the one-shot release "
            "(method option release=one-shot)"
        )

    def cell_mean_gradients(
        self,
        loss: PerExampleLoss,
        params: Mapping[str, torch.Tensor],
        *,
        batch_size: int,
        generator: torch.Generator,
    ) -> list[list[MeanGradient]]:
        """Per (class, group) cell: Poisson-sampled clipped noisy gradient sums, at the per-class
        release's q = batch_size·C / n, each divided by its expected batch q·(noisy cell count).
        The cells partition the sample as the classes do: one release of the subsampled
        Gaussian mechanism (one table of per-cell sums: `gaussian_class_sums` over cell ids).
        Empty cell batches still release (pure noise)."""
        sample_rate = poisson_rate(batch_size * self._num_classes, len(self._y))
        rows = poisson_sample(len(self._y), sample_rate=sample_rate, generator=self._generator)
        groups = self._num_groups
        sums = gaussian_class_sums(
            self._flat_gradients(loss, params, rows).cpu(),
            self._cells[rows],
            self._num_classes * groups,
            noise_multiplier=self._sigma,
            max_norm=self._max_norm,
            generator=self._generator,
        )
        sums = self._on_device(sums)
        expected = (sample_rate * self.cell_sizes()).flatten().to(sums.dtype)
        means = [_unflatten(total, params) for total in sums / expected[:, None]]
        results = [
            [MeanGradient(means[c * groups + g], loss=None) for g in range(groups)]
            for c in range(self._num_classes)
        ]
        self.ledger.spend(
            "cell_gradient_sums", noise_multiplier=self._sigma, sample_rate=sample_rate, steps=1
        )
        return results

    def expert_trajectory(
        self, model: nn.Module, *, training: ExpertTraining, generator: torch.Generator
    ) -> Trajectory:
        """DP-SGD (opacus) training of the expert; its parameters after every epoch."""
        trajectory, record = dpsgd_trajectory(
            model,
            self._x,
            self._y,
            noise_multiplier=self._sigma,
            max_grad_norm=self._max_norm,
            epochs=training.epochs,
            batch_size=training.batch_size,
            learning_rate=training.learning_rate,
            # From the noise generator (secret), not the method's (seeded from the public seed).
            seed=int(torch.randint(2**62, (1,), generator=self._generator, device="cpu")),
        )
        self.ledger.append(record)
        return trajectory

    def class_vote_histogram(self, candidates: torch.Tensor, *, neighbors: int) -> torch.Tensor:
        """(C, N) per-class nearest-neighbour vote histogram over the public `candidates`, each
        entry + N(0, σ²): every record's vote vector has L2 norm 1 (1/√K on each of its K
        nearest candidates) and lands in its own class's row, so the table is one Gaussian
        mechanism of sensitivity 1 at noise multiplier σ, recorded once. The clip norm C plays
        no part: the votes are bounded by construction."""
        # The nearest candidates on the device; the histogram and its noise on the CPU.
        votes = nearest_candidates(self._x, candidates.to(self._device), neighbors=neighbors)
        histogram = gaussian_vote_histogram(
            votes.cpu(),
            self._labels,
            self._num_classes,
            len(candidates),
            noise_multiplier=self._sigma,
            generator=self._generator,
        )
        self.ledger.spend(
            "class_vote_histogram", noise_multiplier=self._sigma, sample_rate=1.0, steps=1
        )
        return histogram

    def sample_examples(
        self, *, label: int, count: int, generator: torch.Generator, across_groups: bool = False
    ) -> torch.Tensor:
        raise ConfigError(
            "initialising from real examples would release private records; under DP use "
            "init=noise (the default when privacy is on)"
        )
