"""Mechanisms: oracles (σ = 0 and C = ∞ give the plain computation), clipping bounds, noise."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch import nn
from torch.nn import functional as F

from tdd_priv.privacy.mechanisms import (
    clip_per_example,
    clip_per_example_grads,
    gaussian_class_sums,
    gaussian_sum,
    noisy_counts,
    per_example_grads,
    per_example_norms,
    poisson_sample,
)


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _norms64(t: torch.Tensor) -> np.ndarray:
    """Reference L2 norms per row, computed independently (numpy, float64, scaled)."""
    rows = t.detach().reshape(len(t), -1).numpy().astype(np.float64)
    scale = np.abs(rows).max(axis=1, initial=0.0)
    safe = np.where(scale > 0, scale, 1.0)
    return np.linalg.norm(rows / safe[:, None], axis=1) * scale


# Rows spanning zero, subnormal, ordinary and near-overflow magnitudes.
_magnitudes = st.sampled_from([0.0, 1e-40, 1e-12, 1e-3, 1.0, 7.5, 1e6, 1e20, 3e38])
_floats32 = st.floats(-1.0, 1.0, width=32, allow_nan=False, allow_infinity=False)


@st.composite
def _per_example(draw: st.DrawFn) -> torch.Tensor:
    n = draw(st.integers(1, 6))
    d = draw(st.integers(1, 9))
    base = draw(hnp.arrays(np.float32, (n, d), elements=_floats32))
    scales = np.array([draw(_magnitudes) for _ in range(n)], dtype=np.float64)
    rows = np.clip(base.astype(np.float64) * scales[:, None], -3.4e38, 3.4e38)
    return torch.from_numpy(rows.astype(np.float32))


@settings(max_examples=100, deadline=None)
@given(
    per_example=_per_example(),
    max_norm=st.sampled_from([1e-30, 1e-6, 0.1, 1.0, 3.0, 1e8]),
)
def test_clipped_norms_never_exceed_c(per_example: torch.Tensor, max_norm: float) -> None:
    clipped = clip_per_example(per_example, max_norm=max_norm)
    norms_before = _norms64(per_example)
    norms_after = _norms64(clipped)
    assert clipped.shape == per_example.shape and clipped.dtype == per_example.dtype
    assert np.all(norms_after <= max_norm)
    # Rows within C are kept; clipped rows keep their direction and end up (almost) at norm C.
    inside = norms_before <= max_norm * (1 - 1e-4)
    assert torch.equal(clipped[torch.from_numpy(inside)], per_example[torch.from_numpy(inside)])
    outside = norms_before > max_norm
    np.testing.assert_allclose(norms_after[outside], max_norm, rtol=1e-4)


@settings(max_examples=100, deadline=None)
@given(
    shapes=st.lists(st.tuples(st.integers(1, 3), st.integers(1, 4)), min_size=1, max_size=3),
    scale=_magnitudes,
    max_norm=st.sampled_from([1e-3, 0.5, 2.0]),
    seed=st.integers(0, 2**16),
)
def test_flat_clipping_of_parameter_groups_bounds_the_joint_norm(
    shapes: list[tuple[int, int]], scale: float, max_norm: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    n = 4
    grads = {
        f"p{i}": torch.from_numpy(
            np.clip(rng.normal(size=(n, *s)) * scale, -3.4e38, 3.4e38).astype(np.float32)
        )
        for i, s in enumerate(shapes)
    }
    clipped = clip_per_example_grads(grads, max_norm=max_norm)
    assert list(clipped) == list(grads)
    flat_before = torch.cat([g.reshape(n, -1) for g in grads.values()], dim=1)
    flat_after = torch.cat([g.reshape(n, -1) for g in clipped.values()], dim=1)
    assert np.all(_norms64(flat_after) <= max_norm)
    # Joint clipping: the whole example is scaled by one factor, i.e. equals clipping the
    # concatenated row.
    expected = clip_per_example(flat_before, max_norm=max_norm)
    torch.testing.assert_close(flat_after, expected)
    as_list = clip_per_example_grads(list(grads.values()), max_norm=max_norm)
    assert isinstance(as_list, list)
    for a, b in zip(as_list, clipped.values(), strict=True):
        assert torch.equal(a, b)


def test_infinite_clip_norm_leaves_rows_bit_for_bit() -> None:
    x = torch.randn(7, 3, 2, generator=_generator()) * 1e10
    assert torch.equal(clip_per_example(x, max_norm=math.inf), x)
    grads = {"w": x, "b": x[:, 0]}
    for name, clipped in clip_per_example_grads(grads, max_norm=math.inf).items():
        assert torch.equal(clipped, grads[name])


def test_clipping_rejects_non_finite_rows_and_bad_bounds() -> None:
    with pytest.raises(ValueError, match="NaN or infinity"):
        clip_per_example(torch.tensor([[1.0, math.nan]]), max_norm=1.0)
    with pytest.raises(ValueError, match="max_norm"):
        clip_per_example(torch.ones(2, 2), max_norm=0.0)
    with pytest.raises(ValueError, match="floating point"):
        clip_per_example(torch.ones(2, 2, dtype=torch.int64), max_norm=1.0)


def test_per_example_norms_over_several_tensors() -> None:
    a = torch.tensor([[3.0], [0.0]])
    b = torch.tensor([[4.0, 0.0], [0.0, 0.0]])
    torch.testing.assert_close(
        per_example_norms(a, b), torch.tensor([5.0, 0.0], dtype=torch.float64)
    )


def test_zero_noise_and_infinite_clip_give_the_exact_sum() -> None:
    x = torch.randn(50, 6, generator=_generator(1))
    generator = _generator(2)
    state = generator.get_state()
    result = gaussian_sum(x, noise_multiplier=0.0, max_norm=math.inf, generator=generator)
    assert torch.equal(result, x.sum(dim=0))
    assert torch.equal(generator.get_state(), state)  # σ = 0 draws nothing


def test_zero_noise_with_finite_clip_is_the_sum_of_clipped_rows() -> None:
    x = torch.randn(50, 6, generator=_generator(1)) * 3
    result = gaussian_sum(x, noise_multiplier=0.0, max_norm=1.0, generator=_generator())
    assert torch.equal(result, clip_per_example(x, max_norm=1.0).sum(dim=0))
    assert not torch.allclose(result, x.sum(dim=0))


def test_noise_std_matches_sigma_times_c() -> None:
    sigma, c = 1.7, 0.5
    x = torch.zeros(3, 200_000)  # zero rows: the output is pure noise
    noise = gaussian_sum(x, noise_multiplier=sigma, max_norm=c, generator=_generator(3))
    # 200k draws: the sample std is within 1% of σ·C with overwhelming probability (se ≈ 0.16%).
    assert abs(float(noise.std()) / (sigma * c) - 1) < 0.01
    assert abs(float(noise.mean())) < 5 * sigma * c / math.sqrt(noise.numel())


def test_noise_is_reproducible_from_the_generator() -> None:
    x = torch.randn(10, 4, generator=_generator())
    first = gaussian_sum(x, noise_multiplier=1.0, max_norm=1.0, generator=_generator(9))
    again = gaussian_sum(x, noise_multiplier=1.0, max_norm=1.0, generator=_generator(9))
    other = gaussian_sum(x, noise_multiplier=1.0, max_norm=1.0, generator=_generator(10))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_noise_needs_a_finite_clip_norm() -> None:
    with pytest.raises(ValueError, match="finite clip norm"):
        gaussian_sum(
            torch.ones(2, 2), noise_multiplier=1.0, max_norm=math.inf, generator=_generator()
        )


def test_class_sums_oracle_and_noise() -> None:
    x = torch.randn(40, 5, generator=_generator(4))
    labels = torch.arange(40) % 3
    exact = gaussian_class_sums(
        x, labels, 3, noise_multiplier=0.0, max_norm=math.inf, generator=_generator()
    )
    for k in range(3):
        torch.testing.assert_close(exact[k], x[labels == k].sum(dim=0))
    zeros = torch.zeros(40, 20_000)
    noise = gaussian_class_sums(
        zeros, labels, 3, noise_multiplier=2.0, max_norm=0.25, generator=_generator(5)
    )
    assert noise.shape == (3, 20_000)
    assert abs(float(noise.std()) / 0.5 - 1) < 0.01


def test_noisy_counts_oracle_and_noise() -> None:
    labels = torch.tensor([0, 2, 2, 1, 2, 0])
    exact = noisy_counts(labels, 4, noise_multiplier=0.0, generator=_generator())
    assert exact.tolist() == [2.0, 1.0, 3.0, 0.0]
    many = torch.zeros(100_000, dtype=torch.int64)
    counts = noisy_counts(many[:0], 100_000, noise_multiplier=3.0, generator=_generator(6))
    assert abs(float(counts.std()) / 3.0 - 1) < 0.01
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        noisy_counts(torch.tensor([4]), 4, noise_multiplier=1.0, generator=_generator())


def test_poisson_sample_rate_and_extremes() -> None:
    n, q = 100_000, 0.03
    index = poisson_sample(n, sample_rate=q, generator=_generator(7))
    assert index.dtype == torch.int64
    assert torch.all(index[1:] > index[:-1])  # sorted, no repeats
    # Binomial(n, q): std ≈ 54, allow 5 std.
    assert abs(len(index) - n * q) < 5 * math.sqrt(n * q * (1 - q))
    assert len(poisson_sample(10, sample_rate=1.0, generator=_generator())) == 10
    assert len(poisson_sample(10, sample_rate=0.0, generator=_generator())) == 0
    with pytest.raises(ValueError, match="sample_rate"):
        poisson_sample(10, sample_rate=1.5, generator=_generator())


def test_poisson_sample_is_reproducible() -> None:
    a = poisson_sample(1000, sample_rate=0.1, generator=_generator(8))
    b = poisson_sample(1000, sample_rate=0.1, generator=_generator(8))
    assert torch.equal(a, b)


def _mlp() -> nn.Module:
    torch.manual_seed(0)  # only for this test model's init; the code under test draws nothing
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))


def test_per_example_grads_equal_autograd_row_by_row() -> None:
    model = _mlp()
    x = torch.randn(6, 5, generator=_generator(11))
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    grads = per_example_grads(model, F.cross_entropy, x, y)
    assert set(grads) == {name for name, _ in model.named_parameters()}
    for i in range(len(x)):
        model.zero_grad()
        F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        for name, param in model.named_parameters():
            assert param.grad is not None
            torch.testing.assert_close(grads[name][i], param.grad, rtol=1e-5, atol=1e-6)


def test_per_example_grads_sum_with_zero_noise_is_the_batch_gradient() -> None:
    """Clipped (C = ∞), noised (σ = 0) per-example gradients reproduce the plain gradient."""
    model = _mlp()
    x = torch.randn(9, 5, generator=_generator(12))
    y = torch.randint(0, 3, (9,), generator=_generator(13))
    grads = clip_per_example_grads(
        per_example_grads(model, F.cross_entropy, x, y), max_norm=math.inf
    )
    model.zero_grad()
    F.cross_entropy(model(x), y, reduction="sum").backward()
    for name, param in model.named_parameters():
        total = gaussian_sum(
            grads[name], noise_multiplier=0.0, max_norm=math.inf, generator=_generator()
        )
        assert param.grad is not None
        torch.testing.assert_close(total, param.grad, rtol=1e-5, atol=1e-6)


def test_per_example_grads_for_a_subset_of_parameters() -> None:
    model = _mlp()
    x = torch.randn(4, 5, generator=_generator(14))
    y = torch.zeros(4, dtype=torch.int64)
    grads = per_example_grads(model, F.cross_entropy, x, y, params=["2.weight"])
    assert list(grads) == ["2.weight"] and grads["2.weight"].shape == (4, 3, 8)
    with pytest.raises(ValueError, match="unknown parameters"):
        per_example_grads(model, F.cross_entropy, x, y, params=["nope"])
