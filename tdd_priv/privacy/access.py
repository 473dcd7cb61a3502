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
)
from tdd_priv.privacy.dpsgd import dpsgd_trajectory
from tdd_priv.privacy.ledger import PrivacyLedger
from tdd_priv.privacy.mechanisms import (
    gaussian_class_sums,
    gaussian_sum,
    noisy_counts,
    per_example_loss_grads,
    poisson_sample,
)

__all__ = ["NoisyAccess", "poisson_rate"]


def poisson_rate(expected_batch: int | None, n: int) -> float:
    """Sampling rate q giving `expected_batch` rows out of n (all rows when None)."""
    return 1.0 if expected_batch is None else min(1.0, expected_batch / n)


class NoisyAccess:
    """DP gateway with one shared noise multiplier σ and clip norm C.

    The number of private rows n is treated as public (as usual under add/remove adjacency
    accounting with a fixed expected batch); class sizes are not, and are released noisily
    (once, accounted) when a mean needs them.
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
    ) -> None:
        self._x = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32))
        self._y = torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64))
        self._num_classes = num_classes
        self._sigma = noise_multiplier
        self._max_norm = max_norm
        self._generator = generator
        self.ledger = ledger
        self._counts: torch.Tensor | None = None

    @property
    def num_classes(self) -> int:
        return self._num_classes

    @property
    def dim(self) -> int:
        return int(self._x.shape[1])

    def noisy_class_counts(self) -> torch.Tensor:
        """(C,) class counts + N(0, σ²), released once per run and reused (clamped to >= 1)."""
        if self._counts is None:
            counts = noisy_counts(
                self._y, self._num_classes, noise_multiplier=self._sigma, generator=self._generator
            )
            self.ledger.spend(
                "class_counts", noise_multiplier=self._sigma, sample_rate=1.0, steps=1
            )
            self._counts = counts.float().clamp_min(1.0)
        return self._counts

    def class_means(self, statistic: Statistic) -> torch.Tensor:
        """(C, p) class means of the clipped statistic: noisy class sums / noisy class counts."""
        with torch.no_grad():
            sums = gaussian_class_sums(
                statistic(self._x),
                self._y,
                self._num_classes,
                noise_multiplier=self._sigma,
                max_norm=self._max_norm,
                generator=self._generator,
            )
        self.ledger.spend(
            "class_statistic_sums", noise_multiplier=self._sigma, sample_rate=1.0, steps=1
        )
        return sums / self.noisy_class_counts()[:, None]

    def class_mean(
        self,
        statistic: Statistic,
        *,
        label: int,
        batch_size: int | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        raise ConfigError(
            "per-step class means are not released under DP; use the one-shot release "
            "(method option release=one-shot)"
        )

    def _noisy_gradient_sum(
        self, loss: PerExampleLoss, params: Mapping[str, torch.Tensor], rows: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """One Gaussian mechanism: per-example gradients over all parameters, flattened into one
        row each, clipped jointly to C, summed, noised. An empty Poisson batch still releases
        (pure noise), so the number of releases never depends on the data."""
        sizes = {name: p.numel() for name, p in params.items()}
        if len(rows):
            grads = per_example_loss_grads(loss, params, self._x[rows], self._y[rows])
            flat = torch.cat([grads[name].reshape(len(rows), -1) for name in sizes], dim=1)
        else:
            flat = torch.zeros(0, sum(sizes.values()))
        total = gaussian_sum(
            flat, noise_multiplier=self._sigma, max_norm=self._max_norm, generator=self._generator
        )
        parts = total.split(list(sizes.values()))
        return {name: part.view_as(params[name]) for name, part in zip(sizes, parts, strict=True)}

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
        sample_rate = poisson_rate(batch_size * self._num_classes, len(self._y))
        rows = poisson_sample(len(self._y), sample_rate=sample_rate, generator=self._generator)
        by_class = self._y[rows]
        expected = sample_rate * self.noisy_class_counts()
        results = []
        for c in range(self._num_classes):
            sums = self._noisy_gradient_sum(loss, params, rows[by_class == c])
            results.append(MeanGradient({k: v / expected[c] for k, v in sums.items()}, loss=None))
        self.ledger.spend(
            "class_gradient_sums", noise_multiplier=self._sigma, sample_rate=sample_rate, steps=1
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
            seed=int(torch.randint(2**62, (1,), generator=generator)),
        )
        self.ledger.append(record)
        return trajectory

    def sample_examples(
        self, *, label: int, count: int, generator: torch.Generator
    ) -> torch.Tensor:
        raise ConfigError(
            "initialising from real examples would release private records; under DP use "
            "init=noise (the default when privacy is on)"
        )
