"""`pe-vote`: Private Evolution's DP nearest-neighbour vote over a public pool, without an LLM.

Private Evolution (PE, Lin et al. 2024; Aug-PE for text, Xie et al. 2024) grows a synthetic set
by letting every private record vote for the synthetic samples nearest to it in an embedding
space; the vote histogram is released with Gaussian noise, samples whose noisy count clears a
threshold survive, and (in PE) a foundation model varies the survivors for the next round. Here
the candidates are the texts of the public pool and there is no variation step, so one vote
does the whole job:

1. each private record votes for its `neighbors` (K) nearest public texts (cosine similarity of
   the shared sentence embeddings) in its own class's row of a (C, N) histogram, 1/√K per vote,
   so that one record's votes have L2 norm 1 (Aug-PE's normalisation; K = 1 is PE's single
   vote). The whole table is one Gaussian mechanism of sensitivity 1
   (`tdd_priv.privacy.mechanisms.gaussian_vote_histogram`), released once through the gateway;
2. the noisy histogram is all that is read afterwards (post-processing). The survivors are the
   `survivors` most-voted texts of each class (the highest (class, text) count first, each text
   for one class only): a DP pseudo-labeled public set, PE's thresholded histogram;
3. k texts per class are chosen from the whole pool so that kernel ridge regression on them best
   predicts the survivors' labels (the greedy selection `public-match` runs against a release,
   `tdd_priv.selection`), and released with their class. `survivors=0` releases the k most-voted
   texts of each class directly instead (plain PE top-k; measured worse: docs/benchmarks/
   pe_vote.md).

Non-private, the histogram is exact (σ = 0). With `--allocation frequency|difficulty` the class
sizes come from the same noisy histogram (`profile_from_votes`), so they cost nothing more.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from tdd_priv.errors import ConfigError
from tdd_priv.methods.allocation import profile_from_votes
from tdd_priv.methods.base import DistillInput, SyntheticSet
from tdd_priv.methods.kip import KERNELS
from tdd_priv.methods.learned import parse_options
from tdd_priv.privacy.calibration import PlannedMechanism
from tdd_priv.selection import greedy_kernel_selection

__all__ = ["PEVoteConfig", "fit_survivors", "pe_vote", "pe_vote_privacy_plan", "top_voted"]


@dataclass(frozen=True)
class PEVoteConfig:
    """`neighbors`: the public texts each private record votes for (K; its vote is spread over
    them, 1/√K each). `survivors`: the most-voted texts kept per class (at most pool / classes),
    which the released k per class are fitted to by kernel ridge regression with `kernel`; 0
    releases the k most-voted texts per class directly. Defaults chosen on a validation split
    of the members (docs/benchmarks/pe_vote.md)."""

    neighbors: int = 4
    survivors: int = 400
    kernel: str = "nngp"

    def __post_init__(self) -> None:
        if self.neighbors < 1:
            raise ConfigError(f"pe-vote: neighbors must be >= 1, got {self.neighbors}")
        if self.survivors < 0:
            raise ConfigError(f"pe-vote: survivors must be >= 0, got {self.survivors}")
        if self.kernel not in KERNELS:
            raise ConfigError(f"unknown kernel {self.kernel!r}; valid: {', '.join(KERNELS)}")

    @property
    def clip_norm(self) -> float:
        """The L2 norm of one record's vote vector: the vote is bounded by construction, so
        this is the release's sensitivity rather than a clipping threshold."""
        return 1.0


def pe_vote_privacy_plan(config: PEVoteConfig, n: int, classes: int) -> list[PlannedMechanism]:
    """One release of the per-class vote histogram over all members: the whole budget."""
    return [PlannedMechanism("class_vote_histogram", sample_rate=1.0, steps=1)]


def top_voted(histogram: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows (texts) and labels of the most-voted texts: (class, text) pairs are taken in order
    of their count in `histogram` (C, N), highest first (ties: lower class, then lower text),
    skipping texts already taken and classes already full, until class c has `sizes[c]` texts.
    Returns (rows (m,), labels (m,)) int64, grouped by label, each group in the order taken."""
    h = np.asarray(histogram, dtype=np.float64)
    classes, count = h.shape
    need = np.asarray(sizes, dtype=np.int64).copy()
    if int(need.sum()) > count:
        raise ValueError(
            f"the public pool has {count} texts, fewer than the {int(need.sum())} to release; "
            "use a larger public pool or a smaller --per-class / --total-size"
        )
    order = np.argsort(-h.reshape(-1), kind="stable")  # flat (class, text) pairs
    taken = np.zeros(count, dtype=bool)
    chosen: list[list[int]] = [[] for _ in range(classes)]
    for flat in order:
        if not need.any():
            break
        label, row = divmod(int(flat), count)
        if need[label] == 0 or taken[row]:
            continue
        chosen[label].append(row)
        taken[row] = True
        need[label] -= 1
    rows = np.array([row for group in chosen for row in group], dtype=np.int64)
    labels = np.repeat(np.arange(classes), [len(group) for group in chosen]).astype(np.int64)
    return rows, labels


def fit_survivors(
    histogram: np.ndarray,
    pool: np.ndarray,
    sizes: np.ndarray,
    *,
    survivors: int,
    kernel: str,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows and labels of `sizes[c]` pool texts per class fitted by kernel ridge regression to
    the `survivors` most-voted texts of each class (labeled with their class). Reads only the
    (noisy) histogram (C, N) and the public pool (N, d): post-processing."""
    classes, count = histogram.shape
    kept = min(survivors, count // classes)
    reference_rows, reference_labels = top_voted(histogram, np.full(classes, kept))
    selection = greedy_kernel_selection(
        torch.from_numpy(np.ascontiguousarray(pool[reference_rows], dtype=np.float32)),
        torch.eye(classes)[torch.from_numpy(reference_labels)],
        torch.from_numpy(np.ascontiguousarray(pool, dtype=np.float32)),
        per_class=sizes,
        num_classes=classes,
        kernel=kernel,
        progress=progress,
    )
    order = np.argsort(selection.labels.numpy(), kind="stable")
    return selection.rows.numpy()[order], selection.labels.numpy()[order].astype(np.int64)


def pe_vote(inputs: DistillInput) -> SyntheticSet:
    config = parse_options(PEVoteConfig, inputs.options, method="pe-vote")
    public = inputs.public_embeddings
    if public is None:
        raise ConfigError(
            "pe-vote votes over the public pool, but none was given to the method "
            "(DistillInput.public_embeddings); pass the run's public pool embeddings"
        )
    if config.neighbors > len(public):
        raise ConfigError(
            f"pe-vote: neighbors = {config.neighbors} is more than the {len(public)} texts of "
            "the public pool; lower --method-option neighbors"
        )
    pool = torch.from_numpy(np.ascontiguousarray(public, dtype=np.float32))
    # The only access to private data: one (noisy) release of the vote histogram.
    histogram = inputs.access().class_vote_histogram(pool, neighbors=config.neighbors).numpy()
    profile = (
        profile_from_votes(histogram, source="the vote histogram pe-vote released")
        if inputs.allocation.needs_profile
        else None
    )
    sizes = inputs.class_sizes(profile)
    if config.survivors == 0:
        rows, labels = top_voted(histogram, sizes.sizes)
    else:
        rows, labels = fit_survivors(
            histogram,
            np.asarray(public, dtype=np.float32),
            sizes.sizes,
            survivors=config.survivors,
            kernel=config.kernel,
            progress=inputs.progress,
        )
    return SyntheticSet(
        embeddings=np.asarray(public, dtype=np.float32)[rows].copy(),
        labels=labels,
        soft_labels=None,
        method="pe-vote",
        config=dataclasses.asdict(config),
        allocation=sizes,
    )
