"""DP-SGD baseline: deterministic, spends what it states, and learns when the budget allows."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from tdd_priv.errors import ConfigError
from tdd_priv.heads import HeadTraining, LabeledArrays, predict, train_head
from tdd_priv.privacy.dpsgd import DPSGDTraining, dpsgd_utility, train_dpsgd
from tdd_priv.privacy.ledger import compute_epsilon


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """These heads are tiny: on a busy 2-core machine torch's intra-op threads only add waiting
    (measured: 3x slower). Restored afterwards so other tests keep the default."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


FAST = DPSGDTraining(epochs=4, batch_size=50, learning_rate=0.05)


def _separable(n: int = 300, seed: int = 0) -> tuple[LabeledArrays, LabeledArrays]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=2 * n)
    x = np.eye(3, 8)[labels] * 3 + rng.normal(size=(2 * n, 8))
    x /= np.linalg.norm(x, axis=1, keepdims=True)  # unit rows, like sentence embeddings
    data = LabeledArrays.from_labels(x.astype(np.float32), labels, 3)
    return LabeledArrays(data.x[:n], data.targets[:n]), LabeledArrays(data.x[n:], data.targets[n:])


def _parameters(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def _accuracy(model: torch.nn.Module, test: LabeledArrays) -> float:
    return float(np.mean(predict(model, test.x) == test.labels))


def test_same_seed_same_model_other_seed_differs() -> None:
    train, _ = _separable()
    first = train_dpsgd("linear", train, epsilon=2.0, delta=1e-4, seed=3, training=FAST)
    again = train_dpsgd("linear", train, epsilon=2.0, delta=1e-4, seed=3, training=FAST)
    other = train_dpsgd("linear", train, epsilon=2.0, delta=1e-4, seed=4, training=FAST)
    for a, b in zip(_parameters(first.model), _parameters(again.model), strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(_parameters(first.model)[0], _parameters(other.model)[0])


def test_record_states_the_whole_run_and_spends_the_target() -> None:
    train, _ = _separable()
    result = train_dpsgd("linear", train, epsilon=2.0, delta=1e-4, seed=0, training=FAST)
    steps_per_epoch = math.ceil(len(train.x) / FAST.batch_size)
    assert result.record.name == "dp_sgd"
    assert result.record.sample_rate == pytest.approx(1 / steps_per_epoch)
    assert result.record.steps == FAST.epochs * steps_per_epoch
    assert result.record.noise_multiplier > 0
    assert result.epsilon == compute_epsilon([result.record], delta=1e-4)
    assert 2.0 * (1 - 1e-3) <= result.epsilon <= 2.0


def test_large_epsilon_approaches_non_private_accuracy() -> None:
    train, test = _separable()
    plain = _accuracy(train_head("linear", train, seed=0, training=HeadTraining(steps=100)), test)
    private = train_dpsgd("linear", train, epsilon=1e4, delta=1e-4, seed=0, training=FAST)
    assert plain > 0.9
    assert _accuracy(private.model, test) >= plain - 0.03


def _distance(a: torch.nn.Module, b: torch.nn.Module) -> float:
    pairs = zip(_parameters(a), _parameters(b), strict=True)
    return math.sqrt(sum(float((x - y).norm()) ** 2 for x, y in pairs))


def test_noise_moves_the_model_in_proportion_to_the_privacy() -> None:
    """Same seed, so the same batches: only the noise differs from the noiseless run (ε = ∞)."""
    train, _ = _separable()
    noiseless = train_dpsgd("linear", train, epsilon=math.inf, delta=1e-4, seed=0, training=FAST)
    assert noiseless.record.noise_multiplier == 0 and noiseless.epsilon == math.inf
    weak = train_dpsgd("linear", train, epsilon=1e4, delta=1e-4, seed=0, training=FAST)
    strong = train_dpsgd("linear", train, epsilon=0.3, delta=1e-4, seed=0, training=FAST)
    assert strong.record.noise_multiplier > 100 * weak.record.noise_multiplier
    assert _distance(strong.model, noiseless.model) > 10 * _distance(weak.model, noiseless.model)


def test_ghost_clipping_equals_materialised_per_example_gradients() -> None:
    train, _ = _separable(n=120)
    ghost = train_dpsgd("mlp", train, epsilon=4.0, delta=1e-3, seed=1, training=FAST)
    hooks = train_dpsgd(
        "mlp",
        train,
        epsilon=4.0,
        delta=1e-3,
        seed=1,
        training=DPSGDTraining(
            epochs=4, batch_size=50, learning_rate=0.05, grad_sample_mode="hooks"
        ),
    )
    for a, b in zip(_parameters(ghost.model), _parameters(hooks.model), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_empty_poisson_batches_still_take_a_step() -> None:
    train, _ = _separable(n=12)
    result = train_dpsgd(
        "linear",
        train,
        epsilon=8.0,
        delta=1e-3,
        seed=0,
        training=DPSGDTraining(epochs=1, batch_size=1),
    )
    assert result.record.steps == 12  # q = 1/12: many of these batches are empty


def test_delta_too_large_for_the_data_is_refused() -> None:
    train, _ = _separable(n=50)
    with pytest.raises(ConfigError, match="1/n"):
        train_dpsgd("linear", train, epsilon=1.0, delta=0.05, seed=0, training=FAST)


def test_utility_mirrors_evaluate() -> None:
    train, test = _separable()
    utility = dpsgd_utility(
        train,
        test,
        heads=["linear"],
        seeds=2,
        seed=0,
        epsilon=1e4,
        delta=1e-4,
        training=FAST,
        progress=False,
    )
    summary = utility.to_json()
    assert summary["n_models"] == 2
    assert list(summary["by_head"]) == ["linear"]
    assert summary["accuracy_mean"] > 0.85
