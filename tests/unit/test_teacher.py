"""dpsgd-teacher: a (DP-SGD) teacher labels and selects public texts; realization is exact."""

import math

import numpy as np
import pytest
import torch
from opacus.accountants import RDPAccountant

from tdd_priv.errors import ConfigError
from tdd_priv.heads import HeadTraining, predict, train_head
from tdd_priv.methods import METHODS, DistillInput, SyntheticSet, distill
from tdd_priv.methods.kip import KERNELS
from tdd_priv.methods.teacher import (
    TEACHER_STEP_BUDGET,
    TeacherConfig,
    balanced_classes,
    greedy_target_selection,
)
from tdd_priv.privacy import PrivacyLedger, calibrate_noise, compute_epsilon
from tdd_priv.privacy.access import NoisyAccess
from tdd_priv.realize import RealizationInput, realize
from tests.unit.test_learned_methods import _blobs

QUICK = {"epochs": 10, "learning_rate": 2.0, "reference": 60}


def _data() -> tuple[np.ndarray, ...]:
    """Members (120 rows), a public pool (60 rows, labels dropped), a test set (60 rows)."""
    x, y, rest_x, rest_y = _blobs()
    return x, y, rest_x[:60], rest_x[60:], rest_y[60:]


def _inputs(**options: object) -> DistillInput:
    x, y, pool, _, _ = _data()
    return DistillInput(
        x, y, 3, per_class=4, seed=3, options={**QUICK, **options}, public_embeddings=pool
    )


def _gateway(sigma: float, clip: float, ledger: PrivacyLedger) -> NoisyAccess:
    x, y, _, _, _ = _data()
    return NoisyAccess(
        x,
        y,
        3,
        noise_multiplier=sigma,
        max_norm=clip,
        generator=torch.Generator().manual_seed(5),
        ledger=ledger,
    )


def _ridge_loss(
    kernel: str, x: torch.Tensor, t: torch.Tensor, cand: torch.Tensor, ct: torch.Tensor, rows: list
) -> float:
    """Mean squared residual of kernel ridge regression fitted on candidates[rows], solved
    directly (the ridge scales with the mean kernel diagonal over all candidates)."""
    k = KERNELS[kernel]
    x, t, cand, ct = x.double(), t.double(), cand.double(), ct.double()
    ridge = 1e-3 * k(cand, cand).diagonal().mean()
    chosen = cand[rows]
    a = k(chosen, chosen) + ridge * torch.eye(len(rows), dtype=torch.float64)
    predicted = k(x, chosen) @ torch.linalg.solve(a, ct[rows])
    return float((t - predicted).square().sum(dim=1).mean())


@pytest.mark.parametrize("kernel", ["linear", "nngp"])
def test_each_greedy_pick_is_the_best_by_a_direct_solve(kernel: str) -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(40, 6, generator=generator), dim=1)
    cand = torch.nn.functional.normalize(torch.randn(25, 6, generator=generator), dim=1)
    weights = torch.randn(6, 2, generator=generator)
    t, ct = torch.softmax(x @ weights, dim=1), torch.softmax(cand @ weights, dim=1)
    classes = ct.argmax(dim=1)
    per_class = int(min(torch.bincount(classes, minlength=2)).clamp_max(3))
    selection = greedy_target_selection(x, t, cand, ct, classes, per_class=per_class, kernel=kernel)
    rows = selection.rows.tolist()
    assert sorted(torch.bincount(classes[rows], minlength=2).tolist()) == [per_class] * 2
    for step in range(len(rows)):
        chosen = rows[:step]
        full = {c for c in range(2) if sum(int(classes[r]) == c for r in chosen) == per_class}
        allowed = [r for r in range(25) if r not in chosen and int(classes[r]) not in full]
        losses = {r: _ridge_loss(kernel, x, t, cand, ct, [*chosen, r]) for r in allowed}
        assert losses[rows[step]] == pytest.approx(min(losses.values()), rel=1e-6)
        assert selection.losses[step] == pytest.approx(losses[rows[step]], rel=1e-6)


def test_balanced_classes_gives_every_class_enough_texts() -> None:
    probabilities = torch.tensor([[0.9, 0.1]] * 5 + [[0.6, 0.4], [0.7, 0.3]])
    assigned = balanced_classes(probabilities, per_class=2)
    # Class 1 is never the argmax; it takes the two texts it scores highest.
    assert assigned.tolist() == [0, 0, 0, 0, 0, 1, 1]
    with pytest.raises(ValueError, match="fewer than the 8 to choose"):
        balanced_classes(probabilities, per_class=4)


def test_non_private_run_releases_labeled_public_texts_that_train_a_classifier() -> None:
    _, _, pool, test_x, test_y = _data()
    synthetic = distill("dpsgd-teacher", _inputs())
    again = distill("dpsgd-teacher", _inputs())
    np.testing.assert_array_equal(synthetic.embeddings, again.embeddings)
    assert np.bincount(synthetic.labels).tolist() == [4, 4, 4]
    # Every released vector is a row of the public pool; the soft labels are distributions.
    assert all((pool == row).all(axis=1).any() for row in synthetic.embeddings)
    assert synthetic.soft_labels is not None
    np.testing.assert_allclose(synthetic.soft_labels.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(synthetic.soft_labels.argmax(axis=1), synthetic.labels)
    model = train_head(
        "linear", synthetic.training_arrays(3), seed=0, training=HeadTraining(steps=200)
    )
    assert np.mean(predict(model, test_x) == test_y) > 0.8


def test_a_run_without_a_public_pool_is_refused() -> None:
    x, y, _, _, _ = _data()
    with pytest.raises(ConfigError, match="public pool"):
        distill("dpsgd-teacher", DistillInput(x, y, 3, per_class=4, seed=3, options=QUICK))


def test_the_ledger_is_the_plan_and_its_epsilon_is_opacus() -> None:
    variant = METHODS["dpsgd-teacher"].private
    assert variant is not None
    plan = variant.plan(variant.options(QUICK, method="dpsgd-teacher"), 120, 3)
    sigma = calibrate_noise(target_epsilon=2.0, delta=1e-3, plan=plan)
    ledger = PrivacyLedger()
    inputs = _inputs()
    private = distill(
        "dpsgd-teacher",
        DistillInput(**{**inputs.__dict__, "gateway": _gateway(sigma, 1.0, ledger)}),
    )
    assert ledger.records == PrivacyLedger([m.at(sigma) for m in plan]).records
    (record,) = ledger.records
    accountant = RDPAccountant()
    accountant.history = [(record.noise_multiplier, record.sample_rate, record.steps)]
    epsilon = compute_epsilon(ledger.records, delta=1e-3)
    assert epsilon == pytest.approx(accountant.get_epsilon(delta=1e-3), rel=1e-9)
    assert epsilon <= 2.0
    # Noise changes the teacher, hence the selection.
    assert not np.array_equal(private.embeddings, distill("dpsgd-teacher", inputs).embeddings)


def test_no_noise_full_batches_and_no_clipping_reproduce_the_non_private_method() -> None:
    # q = 1 (one Poisson batch of every row), σ = 0 and a clip norm no gradient reaches: DP-SGD
    # takes the same steps as plain full-batch SGD, so the teacher and the selection agree.
    inputs = _inputs(batch_size=1000)
    exact = distill("dpsgd-teacher", inputs)
    gateway = _gateway(0.0, 1e6, PrivacyLedger())
    private = distill("dpsgd-teacher", DistillInput(**{**inputs.__dict__, "gateway": gateway}))
    np.testing.assert_array_equal(private.embeddings, exact.embeddings)
    assert private.soft_labels is not None and exact.soft_labels is not None
    np.testing.assert_allclose(private.soft_labels, exact.soft_labels, rtol=1e-4, atol=1e-5)
    assert math.isfinite(float(private.soft_labels.sum()))


@pytest.mark.parametrize("strategy", ["public-match", "public-nearest"])
def test_realization_returns_the_selected_texts_with_their_soft_labels(strategy: str) -> None:
    _, _, pool, _, _ = _data()
    # A duplicate text in the pool must not be released twice.
    pool = np.concatenate([pool, pool[:5]])
    synthetic = distill("dpsgd-teacher", _inputs())
    texts = [f"public text {i}" for i in range(len(pool))]
    realized = realize(strategy, synthetic, RealizationInput(texts, pool))
    np.testing.assert_array_equal(realized.embeddings, synthetic.embeddings)
    assert len(set(realized.rows.tolist())) == len(realized.rows)
    assert realized.texts == tuple(texts[i] for i in realized.rows)
    np.testing.assert_array_equal(realized.labels, synthetic.labels)
    assert realized.soft_labels is synthetic.soft_labels
    assert realized.source == "public"


def test_a_vector_selected_twice_takes_two_pool_rows_or_is_not_an_exact_match() -> None:
    _, _, pool, _, _ = _data()
    twice = np.stack([pool[3], pool[3], pool[7]])
    synthetic = SyntheticSet(twice, np.array([0, 0, 1]), None, method="made-up")
    texts = [f"public text {i}" for i in range(len(pool) + 1)]
    # The pool holds the vector twice: the two copies are released as two distinct rows.
    doubled = RealizationInput(texts, np.concatenate([pool, pool[3:4]]))
    rows = realize("public-nearest", synthetic, doubled).rows.tolist()
    assert rows == [3, len(pool), 7]
    # Once only: not an exact selection, so nearest-unused realization (never one row twice).
    rows = realize("public-nearest", synthetic, RealizationInput(texts[:-1], pool)).rows.tolist()
    assert len(set(rows)) == 3 and rows[0] == 3 and 7 in rows


def test_the_teachers_default_rate_spreads_one_step_budget_over_its_steps() -> None:
    config = TeacherConfig()  # 20 epochs, batch 1024
    assert config.learning_rate_for(14 * 1024) == pytest.approx(TEACHER_STEP_BUDGET / 280)
    assert config.learning_rate_for(2452) == pytest.approx(TEACHER_STEP_BUDGET / 60)  # 3 / epoch
    assert TeacherConfig(learning_rate=2.0).learning_rate_for(2452) == 2.0
    with pytest.raises(ConfigError, match="learning_rate"):
        TeacherConfig(learning_rate=0.0)
