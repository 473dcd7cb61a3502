"""The nearest-neighbour vote histogram mechanism: σ = 0 is the exact histogram, one record's
effect is bounded by 1 for any input, noise is σ per entry and comes from the generator only."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tdd_priv.privacy.mechanisms import gaussian_vote_histogram, nearest_candidates


def _brute_nearest(x: np.ndarray, candidates: np.ndarray, k: int) -> np.ndarray:
    """Reference: a stable descending sort of the float32 similarities, row by row."""
    similarity = x.astype(np.float32) @ candidates.astype(np.float32).T
    return np.stack([np.argsort(-row, kind="stable")[:k] for row in similarity])


def _brute_histogram(votes: np.ndarray, labels: np.ndarray, classes: int, bins: int) -> np.ndarray:
    table = np.zeros((classes, bins))
    for row, label in zip(votes, labels, strict=True):
        for vote in row:
            table[label, vote] += 1 / math.sqrt(len(row))
    return table


def test_nearest_candidates_are_the_most_similar_ties_to_the_lower_index() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 8)).astype(np.float32)
    pool = rng.normal(size=(30, 8))
    pool = (pool / np.linalg.norm(pool, axis=1, keepdims=True)).astype(np.float32)
    pool = np.concatenate([pool, pool[:10]])  # duplicates: exact ties
    for k in (1, 4, 11, 40):
        got = nearest_candidates(torch.from_numpy(x), torch.from_numpy(pool), neighbors=k)
        np.testing.assert_array_equal(got.numpy(), _brute_nearest(x, pool, k))
    # A unit row is nearest to itself; its copy comes right after it, never before.
    got = nearest_candidates(torch.from_numpy(pool[:10]), torch.from_numpy(pool), neighbors=2)
    assert got.tolist() == [[i, 30 + i] for i in range(10)]
    blocks = nearest_candidates(
        torch.from_numpy(x), torch.from_numpy(pool), neighbors=3, block_rows=7
    )
    np.testing.assert_array_equal(blocks.numpy(), _brute_nearest(x, pool, 3))


def test_zero_noise_gives_the_exact_histogram_and_draws_nothing() -> None:
    rng = np.random.default_rng(1)
    votes = np.stack([rng.choice(12, size=3, replace=False) for _ in range(40)])
    labels = rng.integers(0, 4, size=40)
    generator = torch.Generator().manual_seed(3)
    state = generator.get_state()
    table = gaussian_vote_histogram(
        torch.from_numpy(votes),
        torch.from_numpy(labels),
        4,
        12,
        noise_multiplier=0.0,
        generator=generator,
    )
    assert table.dtype == torch.float64 and table.shape == (4, 12)
    np.testing.assert_allclose(table.numpy(), _brute_histogram(votes, labels, 4, 12), atol=1e-12)
    assert torch.equal(generator.get_state(), state)
    # Every record contributes a vote vector of norm 1: row sums are n_c · √K.
    np.testing.assert_allclose(
        table.sum(dim=1).numpy(), np.bincount(labels, minlength=4) * math.sqrt(3)
    )


@st.composite
def _votes(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int, int]:
    classes = draw(st.integers(1, 4))
    bins = draw(st.integers(1, 12))
    k = draw(st.integers(1, bins))
    n = draw(st.integers(1, 8))
    votes = np.array(
        [draw(st.permutations(range(bins)))[:k] for _ in range(n)], dtype=np.int64
    ).reshape(n, k)
    labels = np.array(draw(st.lists(st.integers(0, classes - 1), min_size=n, max_size=n)))
    return votes, labels, classes, bins


@settings(max_examples=150, deadline=None)
@given(data=_votes(), removed=st.integers(0, 7))
def test_one_record_moves_the_histogram_by_at_most_one(
    data: tuple[np.ndarray, np.ndarray, int, int], removed: int
) -> None:
    votes, labels, classes, bins = data
    i = removed % len(votes)
    keep = np.arange(len(votes)) != i

    def table(rows: np.ndarray) -> torch.Tensor:
        return gaussian_vote_histogram(
            torch.from_numpy(votes[rows]),
            torch.from_numpy(labels[rows]),
            classes,
            bins,
            noise_multiplier=0.0,
            generator=torch.Generator(),
        )

    difference = table(np.ones(len(votes), dtype=bool)) - table(keep)
    assert float(torch.linalg.vector_norm(difference)) <= 1.0 + 1e-12
    # ... and only in the record's own class.
    others = [c for c in range(classes) if c != labels[i]]
    assert float(difference[others].abs().sum()) == 0.0


def test_noise_has_standard_deviation_sigma_and_comes_from_the_generator() -> None:
    votes = torch.zeros((0, 1), dtype=torch.int64)
    labels = torch.zeros(0, dtype=torch.int64)

    def noisy(seed: int) -> torch.Tensor:
        return gaussian_vote_histogram(
            votes,
            labels,
            2,
            20_000,
            noise_multiplier=2.5,
            generator=torch.Generator().manual_seed(seed),
        )

    first = noisy(7)
    assert float(first.std()) == pytest.approx(2.5, rel=0.02)
    assert float(first.mean()) == pytest.approx(0.0, abs=0.05)
    assert torch.equal(first, noisy(7))
    assert not torch.equal(first, noisy(8))


def test_votes_that_could_exceed_norm_one_are_refused() -> None:
    generator = torch.Generator()
    with pytest.raises(ValueError, match="distinct"):
        gaussian_vote_histogram(
            torch.tensor([[1, 1]]),
            torch.tensor([0]),
            1,
            3,
            noise_multiplier=1.0,
            generator=generator,
        )
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        gaussian_vote_histogram(
            torch.tensor([[3]]), torch.tensor([0]), 1, 3, noise_multiplier=1.0, generator=generator
        )
    with pytest.raises(ValueError, match="noise_multiplier"):
        gaussian_vote_histogram(
            torch.tensor([[0]]), torch.tensor([0]), 1, 3, noise_multiplier=-1, generator=generator
        )
    with pytest.raises(ValueError, match="neighbors K"):
        nearest_candidates(torch.zeros(2, 3), torch.zeros(4, 3), neighbors=5)
