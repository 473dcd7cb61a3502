"""The canary audit: generation, and ε lower bounds that stay below the true ε (coverage)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from scipy import optimize, stats

from audits.canaries import (
    CanaryAudit,
    CanaryGenerator,
    clopper_pearson_epsilon,
    epsilon_lower_bounds,
    generate_canaries,
    guess_counts,
    one_run_epsilon,
    one_run_p_value,
)
from tests.unit.test_audit_membership import _coreset_run

PUBLIC = [f"public sentence number {i} about topic {i % 7} and more words" for i in range(60)]


def gaussian_dp_epsilon(mu: float, delta: float) -> float:
    """ε of μ-Gaussian DP at δ (Dong, Roth & Su 2019, Corollary 2.13)."""

    def gap(eps: float) -> float:
        tail = stats.norm.cdf(-eps / mu + mu / 2) - np.exp(eps) * stats.norm.cdf(-eps / mu - mu / 2)
        return float(tail - delta)

    return float(optimize.brentq(gap, 0.0, 200.0))


def test_generation_is_seeded_distinct_and_new() -> None:
    for kind in ("spliced", "random-tokens"):
        draw = generate_canaries(PUBLIC, count=200, num_classes=3, seed=4, kind=kind)  # type: ignore[arg-type]
        again = generate_canaries(PUBLIC, count=200, num_classes=3, seed=4, kind=kind)  # type: ignore[arg-type]
        assert draw.texts == again.texts
        assert np.array_equal(draw.included, again.included)
        assert len(set(draw.texts)) == 200 and not set(draw.texts) & set(PUBLIC)
        assert set(draw.labels.tolist()) == {0, 1, 2}
        assert 0.35 < draw.included.mean() < 0.65
    other = CanaryGenerator()(PUBLIC, num_classes=3, count=200, seed=5)
    assert other.texts != draw.texts
    with pytest.raises(ValueError, match="unknown canary kind"):
        generate_canaries(PUBLIC, count=3, num_classes=2, seed=0, kind="poems")  # type: ignore[arg-type]


def test_p_value_and_bound_agree() -> None:
    m, r, v, delta = 1000, 250, 200, 1e-5
    epsilon = one_run_epsilon(m, r, v, delta=delta, significance=0.05)
    assert epsilon > 0.5
    assert one_run_p_value(m, r, v, epsilon, delta) == pytest.approx(0.05, abs=1e-3)
    assert one_run_p_value(m, r, v, epsilon + 0.2, delta) > 0.05
    # Half right is what a coin does: no evidence against any ε.
    assert one_run_epsilon(m, 250, 125, delta=delta, significance=0.05) == 0.0
    assert clopper_pearson_epsilon(50, 500, 50, 500, delta=delta, significance=0.05) == 0.0
    assert guess_counts(256) == (4, 8, 16, 32, 64, 128)


@pytest.mark.parametrize("mu", [1.0, 2.0])
def test_bounds_cover_the_true_epsilon_of_gaussian_dp_scores(mu: float) -> None:
    # Each canary's score is N(mu, 1) when inserted, N(0, 1) otherwise: mu-GDP per canary.
    delta, trials = 1e-5, 60
    true_epsilon = gaussian_dp_epsilon(mu, delta)
    rng = np.random.default_rng(int(mu * 10))
    one_run, cp = [], []
    for _ in range(trials):
        included = rng.random(500) < 0.5
        bounds = epsilon_lower_bounds(rng.normal(mu * included, 1.0), included, delta=delta)
        one_run.append(bounds.one_run.epsilon)
        cp.append(bounds.clopper_pearson.epsilon)
    assert np.mean(np.array(one_run) <= true_epsilon) >= 0.95
    assert np.mean(np.array(cp) <= true_epsilon) >= 0.95
    assert np.mean(one_run) > 0.3  # and the bound is not vacuous


def test_one_run_bound_covers_randomized_response_tightly() -> None:
    # Randomized response with ε = 1: the guess is right with probability e/(1+e). The bound
    # must stay below 1 in at least 95 % of runs, and come reasonably close to it.
    epsilon, trials = 1.0, 100
    rng = np.random.default_rng(11)
    bounds = []
    for _ in range(trials):
        included = rng.random(2000) < 0.5
        truthful = rng.random(2000) < np.exp(epsilon) / (1 + np.exp(epsilon))
        guess = np.where(truthful, included, ~included).astype(float)
        bounds.append(epsilon_lower_bounds(guess, included, delta=0.0).one_run.epsilon)
    assert np.mean(np.array(bounds) <= epsilon) >= 0.95
    assert np.median(bounds) > 0.5


def test_bound_is_high_for_a_release_of_the_records_themselves() -> None:
    rng = np.random.default_rng(12)
    included = rng.random(1000) < 0.5
    # The release contains exactly the inserted canaries: scores reveal membership.
    bounds = epsilon_lower_bounds(included.astype(float), included, delta=1e-5)
    assert bounds.one_run.epsilon > 4.0
    assert bounds.clopper_pearson.epsilon > 4.0
    assert bounds.one_run.correct == bounds.one_run.guesses


@dataclass
class _Canaries:
    texts: tuple[str, ...]
    labels: np.ndarray
    embeddings: np.ndarray
    included: np.ndarray


def test_auditor_scores_canaries_against_the_release() -> None:
    run = _coreset_run(released=10)
    rng = np.random.default_rng(13)
    m = 256
    embeddings = rng.normal(size=(m, 8))
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    included = rng.random(m) < 0.5
    labels = rng.integers(0, 2, m)
    run.canaries = _Canaries(tuple(map(str, range(m))), labels, embeddings, included)
    private = run.release
    # Non-private: every inserted canary is released verbatim.
    leaky = type(private)(
        texts=private.texts + tuple(str(i) for i in np.flatnonzero(included)),
        labels=np.r_[private.labels, labels[included]],
        text_embeddings=np.r_[private.text_embeddings, embeddings[included]],
        vectors=np.r_[private.vectors, embeddings[included]],
        targets=np.r_[private.targets, np.eye(2, dtype=np.float32)[labels[included]]],
    )
    run.release = leaky
    section = CanaryAudit()(run)
    assert section["canaries"] == m and section["inserted"] == int(included.sum())
    # 256 canaries cannot show more than about 2.4 (every guess right): this is at the ceiling.
    assert section["epsilon_lower_bound"] > 2.0
    assert section["epsilon_lower_bound"] == pytest.approx(section["epsilon_ceiling"], rel=0.05)
    assert section["one_run"]["score"] == "nearest_release"
    # A release that never saw the canaries: nothing to find.
    run.release = private
    assert CanaryAudit()(run)["epsilon_lower_bound"] < 0.5
    run.canaries = None
    assert CanaryAudit()(run) == {}
