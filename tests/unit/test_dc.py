"""DP gradient matching (dc): its DP defaults, their plan, the σ = 0 / C = ∞ oracle, options."""

import math

import numpy as np
import pytest
import torch

from tdd_priv.methods import METHODS, DistillInput, distill
from tdd_priv.methods.dc import DC_PRIVATE_DEFAULTS, gradient_distance
from tdd_priv.privacy import PrivacyLedger, calibrate_noise
from tdd_priv.privacy.release import distill_privately
from tests.unit.test_dp_methods import N, _gateway
from tests.unit.test_learned_methods import _blobs


def _inputs(**options: object) -> DistillInput:
    x, y, _, _ = _blobs()
    return DistillInput(x, y, num_classes=3, per_class=4, seed=3, options=options)


def test_dp_defaults_are_registered_and_plan_full_batch_releases() -> None:
    variant = METHODS["dc"].private
    assert variant is not None and variant.defaults == DC_PRIVATE_DEFAULTS
    options = variant.options({}, method="dc")
    assert (options.init, options.hidden, options.batch_size) == ("noise", 0, None)
    plan = {p.name: p for p in variant.plan(options, N, 3)}
    assert plan["class_gradient_sums"].sample_rate == 1.0  # batch None: every row, q = 1
    assert plan["class_gradient_sums"].steps == options.iterations
    assert (plan["class_counts"].sample_rate, plan["class_counts"].steps) == (1.0, 1)


def test_a_dp_run_with_the_defaults_spends_exactly_its_plan() -> None:
    synthetic = distill_privately("dc", _inputs(), epsilon=2.0, delta=1e-3, noise_seed=0)
    assert synthetic.privacy is not None
    variant = METHODS["dc"].private
    assert variant is not None
    plan = variant.plan(variant.options({}, method="dc"), N, 3)
    sigma = calibrate_noise(target_epsilon=2.0, delta=1e-3, plan=plan)
    spent = sorted(
        (m["name"], m["noise_multiplier"], m["sample_rate"], m["steps"])
        for m in synthetic.privacy["mechanisms"]
    )
    assert spent == sorted((p.name, sigma, p.sample_rate, p.steps) for p in plan)
    assert synthetic.privacy["epsilon"] <= 2.0
    assert synthetic.config["hidden"] == 0 and synthetic.config["batch_size"] is None


@pytest.mark.parametrize(
    "extra",
    [{}, {"per_node": True}, {"soft_labels": True, "learning_rate": 0.03}],
    ids=["defaults", "per-node", "soft-labels"],
)
def test_zero_noise_and_no_clipping_reproduce_non_private_dc_with_the_dp_defaults(
    extra: dict[str, object],
) -> None:
    # The DP defaults themselves (batch None: q = 1), no batch override: σ = 0 and C = ∞ make
    # every release the exact class-mean gradient, so the optimisation follows the same path.
    options = {**DC_PRIVATE_DEFAULTS, "iterations": 20, **extra}
    exact = distill("dc", _inputs(**options))
    private = distill(
        "dc",
        DistillInput(
            **{**_inputs(**options).__dict__, "gateway": _gateway(0.0, math.inf, PrivacyLedger())}
        ),
    )
    np.testing.assert_allclose(private.embeddings, exact.embeddings, rtol=1e-4, atol=1e-5)
    if exact.soft_labels is not None:
        assert private.soft_labels is not None
        np.testing.assert_allclose(private.soft_labels, exact.soft_labels, rtol=1e-4, atol=1e-5)


def test_noise_moves_the_dp_default_set() -> None:
    options = {**DC_PRIVATE_DEFAULTS, "iterations": 10}
    runs = [
        distill(
            "dc",
            DistillInput(
                **{**_inputs(**options).__dict__, "gateway": _gateway(s, 1.0, PrivacyLedger())}
            ),
        )
        for s in (0.0, 5.0)
    ]
    assert not np.allclose(runs[0].embeddings, runs[1].embeddings)


def test_batch_none_is_the_whole_class() -> None:
    whole = distill("dc", _inputs(iterations=10, hidden=0, batch_size=None))
    larger = distill("dc", _inputs(iterations=10, hidden=0, batch_size=10 * N))
    np.testing.assert_array_equal(whole.embeddings, larger.embeddings)
    smaller = distill("dc", _inputs(iterations=10, hidden=0, batch_size=8))
    assert not np.array_equal(whole.embeddings, smaller.embeddings)


def test_whole_layer_distance_sees_what_per_node_distance_ignores() -> None:
    # Each output node's gradient parallel but scaled differently: per node, nothing to match;
    # as one vector per layer, the directions differ.
    g = {"w": torch.randn(3, 5, generator=torch.Generator().manual_seed(0))}
    scaled = {"w": g["w"] * torch.tensor([[1.0], [5.0], [0.2]])}
    assert gradient_distance(g, scaled).item() == pytest.approx(0, abs=1e-5)
    assert gradient_distance(g, scaled, per_node=False).item() > 0.05
    assert gradient_distance(g, g, per_node=False).item() == pytest.approx(0, abs=1e-6)
