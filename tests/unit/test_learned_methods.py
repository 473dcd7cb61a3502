"""The four distillation families on small, well-understood data."""

import numpy as np
import pytest
import torch

from tdd_priv.errors import ConfigError
from tdd_priv.heads import HeadTraining, LabeledArrays, predict, train_head
from tdd_priv.methods import METHODS, DistillInput, distill
from tdd_priv.methods.access import ExactAccess
from tdd_priv.methods.dc import gradient_distance
from tdd_priv.methods.kip import KERNELS, krr_predict
from tdd_priv.methods.nets import build_net, cross_entropy, net_params

# The four families that learn vectors (the methods that select public texts have their own
# tests: test_teacher.py, test_pe_vote.py, test_allocation.py).
SELECT_PUBLIC_TEXTS = ("dpsgd-teacher", "pe-vote", "public-coreset")
LEARNED = sorted(
    name
    for name, info in METHODS.items()
    if not info.releases_private_records and name not in SELECT_PUBLIC_TEXTS
)
# Small budgets: these tests check behaviour, the benchmark checks quality.
QUICK = {
    "dm": {"iterations": 40},
    "dc": {"iterations": 30, "hidden": 32},
    "mtt": {"iterations": 20, "experts": 2, "expert_epochs": 4, "max_start_epoch": 2,
            "student_steps": 5, "hidden": 32},
    "kip": {"iterations": 40},
}  # fmt: skip


def _blobs(seed: int = 0, n: int = 120, dim: int = 16, classes: int = 3) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, size=2 * n)
    centers = rng.normal(size=(classes, dim))
    x = centers[labels] + 0.8 * rng.normal(size=(2 * n, dim))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return x[:n], labels[:n], x[n:], labels[n:]


def _inputs(name: str, **options: object) -> DistillInput:
    x, y, _, _ = _blobs()
    return DistillInput(
        x, y, num_classes=3, per_class=4, seed=11, options={**QUICK[name], **options}
    )


@pytest.mark.parametrize("name", LEARNED)
def test_shapes_history_and_determinism(name: str) -> None:
    first, again = distill(name, _inputs(name)), distill(name, _inputs(name))
    assert first.embeddings.shape == (12, 16)
    assert np.bincount(first.labels).tolist() == [4, 4, 4]
    assert len(first.loss_history) == QUICK[name]["iterations"]
    np.testing.assert_array_equal(first.embeddings, again.embeddings)
    assert first.private_rows is None


@pytest.mark.parametrize("name", LEARNED)
def test_a_different_seed_gives_a_different_set(name: str) -> None:
    inputs = _inputs(name)
    other = DistillInput(inputs.embeddings, inputs.labels, 3, 4, seed=12, options=inputs.options)
    assert not np.array_equal(distill(name, inputs).embeddings, distill(name, other).embeddings)


@pytest.mark.parametrize("name", LEARNED)
def test_matching_loss_goes_down(name: str) -> None:
    history = np.asarray(distill(name, _inputs(name, init="noise")).loss_history)
    assert history[-5:].mean() < history[:5].mean()


@pytest.mark.parametrize("name", LEARNED)
def test_distilled_set_trains_a_classifier(name: str) -> None:
    _, _, test_x, test_y = _blobs()
    # From pure noise, with enough steps to move it (unit-norm data in 16 dimensions).
    synthetic = distill(name, _inputs(name, init="noise", iterations=100, learning_rate=0.03))
    model = train_head(
        "linear", synthetic.training_arrays(3), seed=0, training=HeadTraining(steps=200)
    )
    # Three well-separated classes from noise initialisation: far above chance (1/3).
    assert np.mean(predict(model, test_x) == test_y) > 0.8


@pytest.mark.parametrize("name", ["dc", "mtt", "kip"])
def test_soft_labels_are_distributions(name: str) -> None:
    synthetic = distill(name, _inputs(name, soft_labels=True))
    assert synthetic.soft_labels is not None
    np.testing.assert_allclose(synthetic.soft_labels.sum(axis=1), 1.0, rtol=1e-5)
    assert isinstance(synthetic.training_arrays(3), LabeledArrays)


def test_unknown_option_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"iteration.*known: .*iterations"):
        distill("dm", _inputs("dm", iteration=3))


def test_exact_gradient_gateway_matches_autograd() -> None:
    x, y, _, _ = _blobs()
    net = build_net(16, 3, hidden=8, generator=torch.Generator().manual_seed(0))
    params = net_params(net)
    access = ExactAccess(x, y, 3)
    got = access.class_mean_gradients(
        lambda p, a, b: cross_entropy(net, p, a, b),
        params,
        batch_size=10_000,  # more than any class has: the whole class
        generator=torch.Generator(),
    )[1]
    rows = torch.from_numpy(y) == 1
    loss = torch.nn.functional.cross_entropy(
        net(torch.from_numpy(x)[rows]), torch.from_numpy(y)[rows]
    )
    expected = torch.autograd.grad(loss, list(net.parameters()))
    for (name, g), e in zip(got.gradients.items(), expected, strict=True):
        torch.testing.assert_close(g, e, msg=name)
    assert got.loss == pytest.approx(loss.item(), rel=1e-5)


def test_gradient_distance_is_zero_for_parallel_gradients() -> None:
    g = {"w": torch.randn(3, 5, generator=torch.Generator().manual_seed(0)), "b": torch.ones(3)}
    assert gradient_distance(g, {k: 2 * v for k, v in g.items()}).item() == pytest.approx(
        0, abs=1e-5
    )
    assert gradient_distance(g, {k: -v for k, v in g.items()}).item() == pytest.approx(2 * 4)


@pytest.mark.parametrize("kernel", ["ntk", "nngp"])
def test_kernel_ridge_interpolates_its_support(kernel: str) -> None:
    support = torch.nn.functional.normalize(
        torch.randn(6, 8, generator=torch.Generator().manual_seed(1)), dim=1
    )
    targets = torch.eye(3)[torch.tensor([0, 1, 2, 0, 1, 2])]
    if kernel == "linear":
        pytest.skip(
            "a rank-8 linear kernel on 6 points interpolates too, but the NTK/NNGP are the cases"
        )
    predicted = krr_predict(KERNELS[kernel], support, support, targets, 1e-8)
    torch.testing.assert_close(predicted, targets, atol=1e-3, rtol=0)
