"""`public-coreset`: labeled public texts chosen against the private records (never private).

The public-pool counterpart of the coresets: k texts per class are chosen from the public pool,
one (text, label) pair at a time, so that kernel ridge regression fitted on them best predicts
the labels of a sample of the private members (`tdd_priv.selection.greedy_kernel_selection`,
the selection `public-match` runs against a method's release). It reads the private records
directly, so it has no DP variant; its texts are public, but what they were fitted to is the
private data, and the report says so (`texts_fitted_to: private-data`).

Without DP this is what `public-match` did for every learned method before it fitted the
release: the same texts whatever the method (docs/benchmarks/attribution.md). As a method of its
own it is one row in a comparison, not four.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from tdd_priv.errors import ConfigError
from tdd_priv.methods.base import DistillInput, SyntheticSet
from tdd_priv.methods.coreset import coreset_sizes
from tdd_priv.methods.kip import KERNELS
from tdd_priv.methods.learned import parse_options
from tdd_priv.privacy.mechanisms import nearest_candidates
from tdd_priv.seeding import numpy_rng
from tdd_priv.selection import greedy_kernel_selection

__all__ = ["PublicCoresetConfig", "public_coreset", "voted_candidates"]


@dataclass(frozen=True)
class PublicCoresetConfig:
    """`reference`: private members the ridge loss is measured on (a seeded sample);
    `candidates`: at most this many pool texts are considered (all of a smaller pool), those
    most often among the reference records' `neighbors` nearest; `kernel` of the ridge
    regression (nngp: measured best for linear and MLP heads on AG News)."""

    reference: int = 4000
    candidates: int = 4096
    neighbors: int = 8
    kernel: str = "nngp"

    def __post_init__(self) -> None:
        if self.kernel not in KERNELS:
            raise ConfigError(f"unknown kernel {self.kernel!r}; valid: {', '.join(KERNELS)}")
        for name in ("reference", "candidates", "neighbors"):
            if getattr(self, name) < 1:
                raise ConfigError(f"public-coreset: {name} must be >= 1")


def voted_candidates(
    reference: np.ndarray, pool: np.ndarray, *, limit: int, neighbors: int
) -> np.ndarray:
    """(m,) ascending rows of `pool` (N, d): all of it when N <= limit, else the `limit` texts
    most often among the `neighbors` nearest of the `reference` rows (n, d), ties to the lower
    row."""
    if len(pool) <= limit:
        return np.arange(len(pool))
    votes = nearest_candidates(
        torch.from_numpy(np.ascontiguousarray(reference, dtype=np.float32)),
        torch.from_numpy(np.ascontiguousarray(pool, dtype=np.float32)),
        neighbors=min(neighbors, len(pool)),
    )
    counts = np.bincount(votes.numpy().reshape(-1), minlength=len(pool))
    return np.sort(np.argsort(-counts, kind="stable")[:limit])


def public_coreset(inputs: DistillInput) -> SyntheticSet:
    config = parse_options(PublicCoresetConfig, inputs.options, method="public-coreset")
    public = inputs.public_embeddings
    if public is None:
        raise ConfigError(
            "public-coreset selects texts from the public pool, but none was given to the "
            "method (DistillInput.public_embeddings); pass the run's public pool embeddings"
        )
    data = inputs.exact()  # refused under DP: this method reads the private records
    rng = numpy_rng(inputs.seed, "public-coreset")
    n = len(data.labels)
    sample = np.sort(rng.choice(n, size=min(config.reference, n), replace=False))
    reference_x = data.embeddings[sample]
    reference_y = np.eye(inputs.num_classes, dtype=np.float32)[data.labels[sample]]
    candidates = voted_candidates(
        reference_x, public, limit=config.candidates, neighbors=config.neighbors
    )
    sizes = coreset_sizes(inputs)
    selection = greedy_kernel_selection(
        torch.from_numpy(np.ascontiguousarray(reference_x, dtype=np.float32)),
        torch.from_numpy(reference_y),
        torch.from_numpy(np.ascontiguousarray(public[candidates], dtype=np.float32)),
        per_class=sizes.sizes,
        num_classes=inputs.num_classes,
        kernel=config.kernel,
        progress=inputs.progress,
    )
    order = np.argsort(selection.labels.numpy(), kind="stable")
    rows = candidates[selection.rows.numpy()[order]]
    return SyntheticSet(
        embeddings=np.asarray(public, dtype=np.float32)[rows].copy(),
        labels=selection.labels.numpy()[order].astype(np.int64),
        soft_labels=None,
        method="public-coreset",
        config=dataclasses.asdict(config),
        loss_history=selection.losses,
        allocation=sizes,
        texts_fitted_to="private-data",
    )
