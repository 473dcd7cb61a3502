import numpy as np
import pytest
import torch

from tdd_priv.evaluate import evaluate
from tdd_priv.heads import HEADS, HeadTraining, LabeledArrays, build_head, predict, train_head


def _separable(n: int = 200, seed: int = 0) -> tuple[LabeledArrays, LabeledArrays]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=2 * n)
    centers = np.eye(3, 16) * 4
    x = (centers[labels] + rng.normal(size=(2 * n, 16))).astype(np.float32)
    data = LabeledArrays.from_labels(x, labels, 3)
    return LabeledArrays(data.x[:n], data.targets[:n]), LabeledArrays(data.x[n:], data.targets[n:])


@pytest.mark.parametrize("head", sorted(HEADS))
def test_head_learns_separable_data(head: str) -> None:
    train, test = _separable()
    model = train_head(head, train, seed=1, training=HeadTraining(steps=150))
    assert np.mean(predict(model, test.x) == test.labels) > 0.9


def test_soft_labels_are_trained_towards() -> None:
    x = np.eye(2, 4, dtype=np.float32)
    targets = np.array([[0.8, 0.2], [0.3, 0.7]], dtype=np.float32)
    model = train_head(
        "linear",
        LabeledArrays(x, targets),
        seed=0,
        training=HeadTraining(steps=500, weight_decay=0),
    )
    with torch.no_grad():
        probabilities = torch.softmax(model(torch.from_numpy(x)), dim=1).numpy()
    np.testing.assert_allclose(probabilities, targets, atol=0.05)


def test_same_seed_same_model_different_seed_differs() -> None:
    train, _ = _separable()
    first = train_head("mlp", train, seed=3, training=HeadTraining(steps=5))
    again = train_head("mlp", train, seed=3, training=HeadTraining(steps=5))
    other = train_head("mlp", train, seed=4, training=HeadTraining(steps=5))
    for a, b in zip(first.parameters(), again.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    assert any(
        not torch.equal(a, b) for a, b in zip(first.parameters(), other.parameters(), strict=True)
    )


def test_evaluate_counts_models_and_summarises() -> None:
    train, test = _separable()
    utility = evaluate(
        lambda _: train,
        test,
        heads=["linear", "mlp"],
        seeds=3,
        seed=0,
        training=HeadTraining(steps=50),
        progress=False,
    )
    summary = utility.to_json()
    assert summary["n_models"] == 6
    assert set(summary["by_head"]) == {"linear", "mlp"}
    assert summary["accuracy_mean"] == pytest.approx(np.mean(utility.accuracies))
    assert summary["accuracy_mean"] > 0.9


def test_evaluate_random_labels_is_near_chance() -> None:
    train, test = _separable()
    shuffled = LabeledArrays(train.x, np.random.default_rng(0).permutation(train.targets))
    utility = evaluate(
        lambda _: shuffled,
        test,
        heads=["linear"],
        seeds=2,
        seed=0,
        training=HeadTraining(steps=50),
        progress=False,
    )
    assert utility.to_json()["accuracy_mean"] < 0.6


def test_unknown_head_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match="linear"):
        build_head("cnn", dim=4, classes=2, generator=torch.Generator())


def test_labeled_arrays_checks_shapes() -> None:
    with pytest.raises(ValueError, match="expected x"):
        LabeledArrays(np.zeros((3, 2)), np.zeros((2, 2)))
