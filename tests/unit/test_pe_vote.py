"""pe-vote: the exact vote without DP, the same vote through the DP gateway at σ = 0, a ledger
that is the plan with opacus's ε, and texts that are exactly the most-voted public ones."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from opacus.accountants import RDPAccountant

from tdd_priv.errors import ConfigError
from tdd_priv.heads import HeadTraining, predict, train_head
from tdd_priv.methods import METHODS, Allocation, DistillInput, distill
from tdd_priv.methods.pe_vote import fit_survivors, top_voted
from tdd_priv.privacy import PrivacyLedger, calibrate_noise, compute_epsilon
from tdd_priv.privacy.access import NoisyAccess
from tdd_priv.realize import RealizationInput, realize
from tests.unit.test_learned_methods import _blobs


def _data() -> tuple[np.ndarray, ...]:
    """Members (120 rows), a public pool (60 rows, labels dropped), a test set (60 rows)."""
    x, y, rest_x, rest_y = _blobs()
    return x, y, rest_x[:60], rest_x[60:], rest_y[60:]


def _inputs(**options: object) -> DistillInput:
    x, y, pool, _, _ = _data()
    return DistillInput(x, y, 3, per_class=4, seed=3, options=options, public_embeddings=pool)


def _gateway(sigma: float, ledger: PrivacyLedger) -> NoisyAccess:
    x, y, _, _, _ = _data()
    return NoisyAccess(
        x,
        y,
        3,
        noise_multiplier=sigma,
        max_norm=1.0,
        generator=torch.Generator().manual_seed(5),
        ledger=ledger,
    )


def _exact_histogram(k: int) -> np.ndarray:
    """The vote, computed independently: each member adds 1/√k to its k nearest pool rows."""
    x, y, pool, _, _ = _data()
    table = np.zeros((3, len(pool)))
    for row, label in zip(x @ pool.T, y, strict=True):
        for vote in np.argsort(-row, kind="stable")[:k]:
            table[label, vote] += 1 / math.sqrt(k)
    return table


def test_top_voted_takes_the_highest_counts_each_text_once() -> None:
    histogram = np.array(
        [
            [9.0, 8.0, 1.0, 0.0, 0.5],
            [7.0, 8.5, 6.0, -1.0, 0.0],
        ]
    )
    rows, labels = top_voted(histogram, np.array([2, 2]))
    # 9 (class 0, text 0), 8.5 (1, 1), then 8 is (0, 1): text 1 is taken, so ... 7 (1, 0) is
    # taken too; class 1 gets text 2 (6), class 0 text 2 is gone: text 4 (0.5).
    assert rows.tolist() == [0, 4, 1, 2]
    assert labels.tolist() == [0, 0, 1, 1]
    rows, labels = top_voted(histogram, np.array([1, 3]))
    assert labels.tolist() == [0, 1, 1, 1] and len(set(rows.tolist())) == 4
    with pytest.raises(ValueError, match="larger public pool"):
        top_voted(histogram, np.array([3, 3]))


@pytest.mark.parametrize("neighbors", [1, 5])
def test_non_private_pe_vote_is_the_exact_vote(neighbors: int) -> None:
    _, _, pool, _, _ = _data()
    histogram = _exact_histogram(neighbors)
    # survivors = 0: the exact top k per class, released as they are.
    synthetic = distill("pe-vote", _inputs(neighbors=neighbors, survivors=0))
    rows, labels = top_voted(histogram, np.array([4, 4, 4]))
    np.testing.assert_array_equal(synthetic.embeddings, pool[rows])
    np.testing.assert_array_equal(synthetic.labels, labels)
    assert synthetic.soft_labels is None
    assert synthetic.allocation is not None and synthetic.allocation.sizes.tolist() == [4, 4, 4]
    # The default: k per class fitted to the exact survivors.
    synthetic = distill("pe-vote", _inputs(neighbors=neighbors, survivors=10))
    rows, labels = fit_survivors(histogram, pool, np.array([4, 4, 4]), survivors=10, kernel="nngp")
    np.testing.assert_array_equal(synthetic.embeddings, pool[rows])
    np.testing.assert_array_equal(synthetic.labels, labels)


def test_survivors_are_the_most_voted_texts_of_each_class() -> None:
    histogram = np.array([[5.0, 0.0, 4.0, 1.0], [0.0, 3.0, 0.0, 2.0]])
    pool = np.eye(4, dtype=np.float32)
    # One survivor per class (texts 0 and 1), one text per class fitted to them: the same.
    rows, labels = fit_survivors(histogram, pool, np.array([1, 1]), survivors=1, kernel="linear")
    assert rows.tolist() == [0, 1] and labels.tolist() == [0, 1]


def test_zero_noise_through_the_gateway_is_the_exact_vote() -> None:
    inputs = _inputs(neighbors=3, survivors=10)
    exact = distill("pe-vote", inputs)
    private = distill(
        "pe-vote", DistillInput(**{**inputs.__dict__, "gateway": _gateway(0.0, PrivacyLedger())})
    )
    np.testing.assert_array_equal(private.embeddings, exact.embeddings)
    np.testing.assert_array_equal(private.labels, exact.labels)


def test_the_ledger_is_the_plan_and_its_epsilon_is_opacus() -> None:
    variant = METHODS["pe-vote"].private
    assert variant is not None
    plan = variant.plan(variant.options({}, method="pe-vote"), 120, 3)
    sigma = calibrate_noise(target_epsilon=2.0, delta=1e-3, plan=plan)
    ledger = PrivacyLedger()
    inputs = _inputs(survivors=10)
    private = distill(
        "pe-vote", DistillInput(**{**inputs.__dict__, "gateway": _gateway(sigma, ledger)})
    )
    assert ledger.records == PrivacyLedger([m.at(sigma) for m in plan]).records
    ((name, noise, rate, steps),) = [
        (r.name, r.noise_multiplier, r.sample_rate, r.steps) for r in ledger.records
    ]
    assert (name, rate, steps) == ("class_vote_histogram", 1.0, 1) and noise == sigma > 0
    accountant = RDPAccountant()
    accountant.history = [(noise, rate, steps)]
    epsilon = compute_epsilon(ledger.records, delta=1e-3)
    assert epsilon == pytest.approx(accountant.get_epsilon(delta=1e-3), rel=1e-9)
    assert epsilon <= 2.0
    assert np.bincount(private.labels).tolist() == [4, 4, 4]


def test_released_texts_are_pool_rows_that_realize_exactly_and_train_a_classifier() -> None:
    _, _, pool, test_x, test_y = _data()
    synthetic = distill("pe-vote", _inputs(survivors=10))
    texts = [f"public text {i}" for i in range(len(pool))]
    for strategy in ("public-match", "public-nearest"):
        realized = realize(strategy, synthetic, RealizationInput(texts, pool))
        np.testing.assert_array_equal(realized.embeddings, synthetic.embeddings)
        assert realized.fitted_to == "method"
    model = train_head(
        "linear", synthetic.training_arrays(3), seed=0, training=HeadTraining(steps=200)
    )
    assert np.mean(predict(model, test_x) == test_y) > 0.8


def test_frequency_allocation_follows_the_vote_totals() -> None:
    x, y, pool, _, _ = _data()
    keep = (y != 2) | (np.arange(len(y)) % 4 == 0)  # class 2 becomes rare
    inputs = DistillInput(
        x[keep],
        y[keep],
        3,
        per_class=4,
        seed=3,
        options={"survivors": 10},
        public_embeddings=pool,
        allocation=Allocation("frequency", total=12),
    )
    synthetic = distill("pe-vote", inputs)
    counts = np.bincount(y[keep], minlength=3)
    assert synthetic.allocation is not None
    sizes = synthetic.allocation.sizes
    assert int(sizes.sum()) == 12 and np.bincount(synthetic.labels).tolist() == sizes.tolist()
    # Exact votes: each class's total is n_c · √K, so the split is by the class counts.
    ideal = counts / counts.sum() * 12
    assert np.abs(sizes - ideal).max() < 1.0 + 1e-9
    assert sizes[2] < 4


def test_a_run_without_a_public_pool_is_refused() -> None:
    x, y, _, _, _ = _data()
    with pytest.raises(ConfigError, match="public pool"):
        distill("pe-vote", DistillInput(x, y, 3, per_class=4, seed=3))
    with pytest.raises(ConfigError, match="neighbors"):
        distill("pe-vote", _inputs(neighbors=1000))
