"""DP variants: the noisy gateway is an exact gateway when σ = 0 and C = ∞; spending follows the
plan; no private record can be read through it."""

import math

import numpy as np
import pytest
import torch

from tdd_priv.errors import ConfigError
from tdd_priv.methods import METHODS, DistillInput, distill
from tdd_priv.privacy import PrivacyLedger, calibrate_noise, compute_epsilon
from tdd_priv.privacy.access import NoisyAccess
from tests.unit.test_learned_methods import QUICK, _blobs

N = 120  # rows in _blobs' training half


def _gateway(sigma: float, clip: float, ledger: PrivacyLedger) -> NoisyAccess:
    x, y, _, _ = _blobs()
    return NoisyAccess(
        x,
        y,
        3,
        noise_multiplier=sigma,
        max_norm=clip,
        generator=torch.Generator().manual_seed(5),
        ledger=ledger,
    )


def _inputs(name: str, **options: object) -> DistillInput:
    x, y, _, _ = _blobs()
    full_batch = {"batch_size": 10 * N} if name in ("dc", "kip") else {}
    private_defaults = METHODS[name].private.defaults  # type: ignore[union-attr]
    merged = {**QUICK[name], **private_defaults, **full_batch, **options}
    return DistillInput(x, y, num_classes=3, per_class=4, seed=3, options=merged)


@pytest.mark.parametrize("name", ["dm", "dc", "kip"])
def test_zero_noise_and_no_clipping_reproduce_the_non_private_method(name: str) -> None:
    # With q = 1 (batches of everything), σ = 0 and C = ∞ the noisy gateway answers exactly
    # what the exact one does, so the whole optimisation must follow the same path.
    exact = distill(name, _inputs(name))
    private = distill(
        name,
        DistillInput(
            **{**_inputs(name).__dict__, "gateway": _gateway(0.0, math.inf, PrivacyLedger())}
        ),
    )
    np.testing.assert_allclose(private.embeddings, exact.embeddings, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["dm", "dc", "kip", "mtt"])
def test_the_ledger_spends_exactly_the_plan(name: str) -> None:
    variant = METHODS[name].private
    assert variant is not None
    options = variant.options(QUICK[name], method=name)
    plan = variant.plan(options, N, 3)
    sigma = calibrate_noise(target_epsilon=2.0, delta=1e-3, plan=plan)
    ledger = PrivacyLedger()
    inputs = _inputs(name)
    distill(
        name,
        DistillInput(
            **{
                **inputs.__dict__,
                "options": {**variant.defaults, **QUICK[name]},
                "gateway": _gateway(sigma, 1.0, ledger),
            }
        ),
    )
    assert sorted(ledger.records, key=repr) == sorted(
        PrivacyLedger([m.at(sigma) for m in plan]).records, key=repr
    )
    assert compute_epsilon(ledger.records, delta=1e-3) <= 2.0


def test_noise_changes_the_set_and_the_seed_fixes_it() -> None:
    runs = [
        distill(
            "kip",
            DistillInput(
                **{**_inputs("kip").__dict__, "gateway": _gateway(sigma, 1.0, PrivacyLedger())}
            ),
        )
        for sigma in (0.0, 1.0, 1.0)
    ]
    assert not np.allclose(runs[0].embeddings, runs[1].embeddings)
    np.testing.assert_array_equal(runs[1].embeddings, runs[2].embeddings)


def test_private_records_cannot_be_read_through_the_gateway() -> None:
    gateway = _gateway(1.0, 1.0, PrivacyLedger())
    with pytest.raises(ConfigError, match="init=noise"):
        gateway.sample_examples(label=0, count=2, generator=torch.Generator())
    with pytest.raises(ConfigError, match="one-shot"):
        gateway.cell_batch_means(lambda x: x, batch_size=8, generator=torch.Generator())


PER_STEP = {"release": "per-step", "iterations": 15}


def test_per_step_dm_with_zero_noise_and_no_clipping_is_the_non_private_method() -> None:
    # batch_size · C >= n: every row in every step's batch (q = 1) on both gateways.
    options = {**PER_STEP, "batch_size": N}
    exact = distill("dm", _inputs("dm", **options))
    private = distill(
        "dm",
        DistillInput(
            **{
                **_inputs("dm", **options).__dict__,
                "gateway": _gateway(0.0, math.inf, PrivacyLedger()),
            }
        ),
    )
    np.testing.assert_allclose(private.embeddings, exact.embeddings, rtol=1e-4, atol=1e-5)


def test_per_step_dm_spends_its_plan_and_its_batches_are_subsampled() -> None:
    variant = METHODS["dm"].private
    assert variant is not None
    options = variant.options({**PER_STEP, "batch_size": 8}, method="dm")
    plan = variant.plan(options, N, 3)
    assert [(m.name, m.sample_rate, m.steps) for m in plan] == [
        ("class_counts", 1.0, 1),
        ("class_statistic_sums", 24 / N, 15),
    ]
    sigma = calibrate_noise(target_epsilon=2.0, delta=1e-3, plan=plan)
    ledger = PrivacyLedger()
    distill(
        "dm",
        DistillInput(
            **{
                **_inputs("dm", **PER_STEP, batch_size=8).__dict__,
                "gateway": _gateway(sigma, 1.0, ledger),
            }
        ),
    )
    assert ledger.records == PrivacyLedger([m.at(sigma) for m in plan]).records
    assert compute_epsilon(ledger.records, delta=1e-3) <= 2.0


def test_private_per_step_class_means_are_unbiased() -> None:
    # E[noisy sum / (q · count)] = class mean: average many releases of the identity statistic.
    x, y, _, _ = _blobs()
    assert float(np.linalg.norm(x, axis=1).max()) < 50  # C = 50 clips nothing
    gateway = _gateway(0.05, 50.0, PrivacyLedger())
    means = torch.stack(
        [
            gateway.class_batch_means(lambda rows: rows, batch_size=20, generator=torch.Generator())
            for _ in range(400)
        ]
    ).mean(dim=0)
    exact = torch.stack([torch.from_numpy(x[y == c]).mean(dim=0) for c in range(3)])
    assert torch.allclose(means.float(), exact.float(), atol=0.05)
    assert not torch.allclose(means.float(), exact.float(), atol=1e-6)


def test_balanced_per_step_dm_is_refused_before_any_release() -> None:
    variant = METHODS["dm"].private
    assert variant is not None and variant.balanced_plan is not None
    options = variant.options({"release": "per-step"}, method="dm")
    with pytest.raises(ConfigError, match="release=one-shot"):
        variant.balanced_plan(options, N, 3)
