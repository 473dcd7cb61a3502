"""Per-class sizes: largest remainders with a floor and caps, estimates from a release only."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tdd_priv.config import RunConfig
from tdd_priv.errors import ConfigError
from tdd_priv.methods import Allocation, DistillInput, distill
from tdd_priv.methods.allocation import (
    ClassProfile,
    apportion,
    profile_from_probabilities,
    profile_from_votes,
)
from tests.unit.test_learned_methods import _blobs


def test_apportion_is_hamilton_with_a_floor_of_one() -> None:
    # 40 texts by shares 0.06 / 0.77 / 0.17: 1 each, then 37 by the shares: 2.22, 28.49, 6.29
    # -> 2, 28, 6 and the one left over to the largest remainder (class 1): 1 + 2, 1 + 29, 1 + 6.
    sizes = apportion(40, np.array([0.06, 0.77, 0.17]))
    assert sizes.tolist() == [3, 30, 7]
    assert apportion(3, np.array([0.0, 1.0, 0.0])).tolist() == [1, 1, 1]
    assert apportion(10, np.array([1.0, 1.0])).tolist() == [5, 5]
    assert apportion(11, np.array([1.0, 1.0])).tolist() == [6, 5]  # tie: the lower id


def test_apportion_respects_capacity_and_refuses_what_cannot_be_done() -> None:
    assert apportion(10, np.array([0.9, 0.1]), capacity=np.array([4, 50])).tolist() == [4, 6]
    with pytest.raises(ConfigError, match="at least 1"):
        apportion(2, np.ones(3))
    with pytest.raises(ConfigError, match="lower --total-size"):
        apportion(10, np.ones(2), capacity=np.array([3, 3]))


@settings(max_examples=100, deadline=None)
@given(
    weights=st.lists(st.floats(0, 100, allow_nan=False), min_size=1, max_size=6),
    extra=st.integers(0, 60),
    caps=st.lists(st.integers(1, 30), min_size=6, max_size=6),
)
def test_apportion_sums_to_the_total_within_floor_and_caps(
    weights: list[float], extra: int, caps: list[int]
) -> None:
    capacity = np.array(caps[: len(weights)])
    total = min(len(weights) + extra, int(capacity.sum()))
    sizes = apportion(total, np.array(weights), capacity=capacity)
    assert int(sizes.sum()) == total
    assert (sizes >= 1).all() and (sizes <= capacity).all()


def test_profiles_from_a_release() -> None:
    probabilities = np.array([[0.9, 0.1], [0.8, 0.2], [0.5, 0.5]])
    profile = profile_from_probabilities(probabilities, source="x")
    np.testing.assert_allclose(profile.frequency, [2.2 / 3, 0.8 / 3])
    np.testing.assert_allclose(profile.difficulty, [(0.09 + 0.16 + 0.25) / 2.2, 0.5 / 0.8])
    # Class 0's texts are its own; class 1 shares text 2 with class 0.
    votes = np.array([[5.0, 4.0, 1.0], [0.0, 0.0, 3.0]])
    profile = profile_from_votes(votes, source="y")
    np.testing.assert_allclose(profile.frequency, [10.0, 3.0])
    # Each class's texts by its votes: class 0 (0, 1, 2) own shares 1, 1, 0.25; class 1 (2, 0,
    # 1) own shares 0.75, 0, 0.
    np.testing.assert_allclose(profile.difficulty, [1 - 2.25 / 3, 1 - 0.75 / 3])


def test_total_size_without_an_allocation_is_refused() -> None:
    with pytest.raises(ConfigError, match="--allocation frequency"):
        RunConfig(total_size=30)
    with pytest.raises(ConfigError, match="not available for method 'kip'"):
        RunConfig().with_overrides({"method": "kip", "allocation": "difficulty"})


def test_a_learned_method_refuses_class_sizes_and_coresets_honour_them() -> None:
    x, y, _, _ = _blobs()
    inputs = DistillInput(x, y, 3, per_class=4, seed=0, allocation=Allocation("frequency", total=9))
    with pytest.raises(ConfigError, match="--allocation frequency is not available"):
        distill("dm", inputs)
    counts = np.bincount(y, minlength=3)
    for method in ("random", "herding"):
        synthetic = distill(method, inputs)
        assert synthetic.allocation is not None
        sizes = synthetic.allocation.sizes
        assert np.bincount(synthetic.labels, minlength=3).tolist() == sizes.tolist()
        assert int(sizes.sum()) == 9
        assert np.abs(sizes - counts / counts.sum() * 9).max() < 1.0 + 1e-9


def test_difficulty_splits_by_each_classs_share_of_the_expected_errors() -> None:
    # Shares 0.1 / 0.6 / 0.3, error rates 0.6 / 0.05 / 0.2: expected errors 0.06 / 0.03 /
    # 0.06, so a rare hard class gets as much as a common one with as many errors.
    profile = ClassProfile(np.array([10.0, 60.0, 30.0]), np.array([0.6, 0.05, 0.2]), "test")
    sizes = Allocation("difficulty", total=23).sizes(per_class=5, num_classes=3, profile=profile)
    assert sizes.sizes.tolist() == apportion(23, np.array([0.06, 0.03, 0.06])).tolist()
    assert sizes.sizes.tolist() == [9, 5, 9]
    assert sizes.source == "test" and sizes.weights is not None
    np.testing.assert_allclose(sizes.weights, [0.4, 0.2, 0.4])
    frequency = Allocation("frequency", total=23).sizes(per_class=5, num_classes=3, profile=profile)
    assert frequency.sizes.tolist() == apportion(23, np.array([0.1, 0.6, 0.3])).tolist()
