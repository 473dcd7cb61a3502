"""`pe-vote`: Private Evolution's DP nearest-neighbour vote over a public pool, without an LLM.

Private Evolution (PE, Lin et al. 2024; Aug-PE for text, Xie et al. 2024) grows a synthetic set
by letting every private record vote for the synthetic samples nearest to it in an embedding
space; the vote histogram is released with Gaussian noise and the most-voted samples survive
(and, in PE, are varied by a foundation model for the next round). Here the candidates are the
texts of the public pool and there is no variation step, so one vote does the whole job:

1. each private record votes for its `neighbors` (K) nearest public texts (cosine similarity of
   the shared sentence embeddings) in its own class's row of a (C, N) histogram, 1/√K per vote,
   so that one record's votes have L2 norm 1 (Aug-PE's normalisation; K = 1 is PE's single
   vote). The whole table is one Gaussian mechanism of sensitivity 1
   (`tdd_priv.privacy.mechanisms.gaussian_vote_histogram`), released once through the gateway;
2. the noisy histogram is all that is read afterwards (post-processing): the texts with the
   most noisy votes are taken, the highest (class, text) count first, each text for one class
   only, until every class has its k texts;
3. the chosen texts are released with their class; with `labels=votes` they also carry soft
   labels, each text's noisy votes over the classes (clamped at 0, normalised).

Non-private, the histogram is exact (σ = 0). With `--allocation frequency|difficulty` the class
sizes come from the same noisy histogram (`profile_from_votes`), so they cost nothing more.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from tdd_priv.errors import ConfigError
from tdd_priv.methods.allocation import profile_from_votes
from tdd_priv.methods.base import DistillInput, SyntheticSet
from tdd_priv.methods.learned import parse_options
from tdd_priv.privacy.calibration import PlannedMechanism

__all__ = ["PEVoteConfig", "VoteLabels", "pe_vote", "pe_vote_privacy_plan", "top_voted"]

VoteLabels = Literal["hard", "votes"]


@dataclass(frozen=True)
class PEVoteConfig:
    """`neighbors`: the public texts each private record votes for (K; its vote is spread over
    them, 1/√K each). `labels`: `hard` releases each text with its class only; `votes` adds
    soft labels from the text's (noisy) votes over the classes."""

    neighbors: int = 8
    labels: VoteLabels = "hard"

    def __post_init__(self) -> None:
        if self.neighbors < 1:
            raise ConfigError(f"pe-vote: neighbors must be >= 1, got {self.neighbors}")
        if self.labels not in ("hard", "votes"):
            raise ConfigError(f"pe-vote: labels must be hard or votes, got {self.labels!r}")

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


def _vote_shares(histogram: np.ndarray, rows: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(m, C) float32 soft labels: each chosen text's votes over the classes, clamped at 0 and
    normalised (one-hot for its own class when no class has a positive count)."""
    votes = np.clip(np.asarray(histogram, dtype=np.float64)[:, rows].T, 0.0, None)
    total = votes.sum(axis=1, keepdims=True)
    one_hot = np.eye(histogram.shape[0])[labels]
    shares = np.where(total > 0, votes / np.where(total > 0, total, 1.0), one_hot)
    return shares.astype(np.float32)


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
    rows, labels = top_voted(histogram, sizes.sizes)
    return SyntheticSet(
        embeddings=np.asarray(public, dtype=np.float32)[rows].copy(),
        labels=labels,
        soft_labels=_vote_shares(histogram, rows, labels) if config.labels == "votes" else None,
        method="pe-vote",
        config=dataclasses.asdict(config),
        allocation=sizes,
    )
