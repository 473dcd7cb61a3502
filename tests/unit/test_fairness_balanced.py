"""--fairness balanced: group-balanced matching for dm and dc (per (class, group) cell, equal
weight), its DP variant and its report."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from opacus.accountants import RDPAccountant

from tdd_priv.config import RunConfig
from tdd_priv.errors import ConfigError
from tdd_priv.methods import METHODS, DistillInput, GroupBalance, distill
from tdd_priv.methods.access import ExactAccess
from tdd_priv.methods.balance import cell_weights
from tdd_priv.methods.dm import random_embedder
from tdd_priv.privacy import PrivacyLedger, calibrate_noise
from tdd_priv.privacy.access import NoisyAccess
from tdd_priv.privacy.release import distill_privately
from tdd_priv.report.schema import schema_errors
from tests.report_samples import non_private_report
from tests.unit.test_learned_methods import QUICK, _blobs

N = 120  # rows in _blobs' training half


def _one_group() -> GroupBalance:
    return GroupBalance(np.zeros(N, dtype=np.int64), ("everyone",), ("group",))


def _skewed(min_cell_size: int = 5) -> tuple[np.ndarray, np.ndarray, GroupBalance]:
    """Two classes, each a majority group (90%) and a minority group (10%) far apart."""
    rng = np.random.default_rng(7)
    n, dim = 200, 16
    labels = np.repeat([0, 1], n // 2)
    groups = (rng.random(n) < 0.1).astype(np.int64)
    centers = rng.normal(size=(2, 2, dim)) * 2.0  # (class, group) -> centre
    x = centers[labels, groups] + 0.3 * rng.normal(size=(n, dim))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return x, labels, GroupBalance(groups, ("majority", "minority"), ("g",), min_cell_size)


def _inputs(name: str, balance: GroupBalance | None, **options: object) -> DistillInput:
    x, y, _, _ = _blobs()
    return DistillInput(
        x, y, num_classes=3, per_class=4, seed=3, options={**QUICK[name], **options},
        balance=balance,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("name", "options"),
    [("dm", {}), ("dm", {"release": "one-shot"}), ("dc", {}), ("dc", {"batch_size": 16})],
)
def test_one_group_balanced_equals_plain(name: str, options: dict[str, object]) -> None:
    plain = distill(name, _inputs(name, None, **options))
    balanced = distill(name, _inputs(name, _one_group(), **options))
    np.testing.assert_allclose(balanced.embeddings, plain.embeddings, rtol=1e-5, atol=1e-6)
    assert plain.fairness is None
    assert balanced.fairness is not None and balanced.fairness["fallback_cells"] == 0


def test_balanced_target_is_the_equal_weight_mean_of_the_cell_means() -> None:
    x, y, balance = _skewed()
    access = ExactAccess(x, y, 2, groups=balance.ids, num_groups=2)
    statistic = random_embedder(
        16, hidden=32, features=8, generator=torch.Generator().manual_seed(0)
    )
    cells = cell_weights(access, balance)
    assert cells is not None
    target = cells.combine(access.cell_means(statistic)).numpy()
    features = statistic(torch.from_numpy(x)).numpy()
    for c in range(2):
        in_class = y == c
        cell_means = [features[in_class & (balance.ids == g)].mean(0) for g in range(2)]
        np.testing.assert_allclose(target[c], np.mean(cell_means, axis=0), rtol=1e-5, atol=1e-6)
        # ... which is not the class mean, where the majority group weighs 9 times more.
        assert not np.allclose(target[c], features[in_class].mean(0), atol=1e-3)


def test_a_too_small_cell_uses_its_class_mean_and_is_reported() -> None:
    x, y, balance = _skewed()
    minority = int(((y == 1) & (balance.ids == 1)).sum())
    balance = GroupBalance(balance.ids, balance.names, balance.columns, minority + 1)
    access = ExactAccess(x, y, 2, groups=balance.ids, num_groups=2)
    cells = cell_weights(access, balance)
    assert cells is not None
    target = cells.combine(access.cell_means(lambda v: v)).numpy()
    in_class = y == 1
    majority_mean = x[in_class & (balance.ids == 0)].mean(0)
    np.testing.assert_allclose(
        target[1], (majority_mean + x[in_class].mean(0)) / 2, rtol=1e-5, atol=1e-6
    )
    report = cells.report()
    fallback = {(f["label"], f["group"]): f["size"] for f in report["fallback"]}
    assert fallback[(1, "minority")] == minority
    assert report["fallback_cells"] == len(fallback) >= 1
    assert report["cell_sizes"][1][1] == minority


def test_balanced_real_initialisation_draws_every_group_alike() -> None:
    x, y, balance = _skewed()  # class 1: about 90 majority rows, 10 minority rows
    access = ExactAccess(x, y, 2, groups=balance.ids, num_groups=2)
    drawn = access.sample_examples(
        label=1, count=6, generator=torch.Generator().manual_seed(0), across_groups=True
    ).numpy()
    rows = [int(np.flatnonzero((x == row).all(axis=1))[0]) for row in drawn]
    assert (y[rows] == 1).all()
    assert np.bincount(balance.ids[rows], minlength=2).tolist() == [3, 3]


def test_an_empty_cell_falls_back_without_nan() -> None:
    x, y, balance = _skewed()
    ids = balance.ids.copy()
    ids[y == 0] = 0  # class 0 has no minority rows
    balance = GroupBalance(ids, balance.names, balance.columns, 1)
    synthetic = distill(
        "dc", DistillInput(x, y, 2, 3, seed=0, options=QUICK["dc"], balance=balance)
    )
    assert np.isfinite(synthetic.embeddings).all()
    assert synthetic.fairness is not None
    assert synthetic.fairness["fallback"] == [{"label": 0, "group": "minority", "size": 0}]


def test_balanced_dm_moves_the_set_towards_the_minority_group() -> None:
    x, y, balance = _skewed()
    options = {"iterations": 150, "init": "noise", "learning_rate": 0.02}
    runs = {
        mode: distill("dm", DistillInput(x, y, 2, 4, seed=1, options=options, balance=b))
        for mode, b in (("plain", None), ("balanced", balance))
    }
    for c in range(2):
        minority = x[(y == c) & (balance.ids == 1)].mean(0)
        distance = {
            mode: np.linalg.norm(run.embeddings[run.labels == c].mean(0) - minority)
            for mode, run in runs.items()
        }
        assert distance["balanced"] < distance["plain"]


def _noisy(sigma: float, clip: float, balance: GroupBalance, ledger: PrivacyLedger) -> NoisyAccess:
    x, y, _, _ = _blobs()
    return NoisyAccess(
        x,
        y,
        3,
        noise_multiplier=sigma,
        max_norm=clip,
        generator=torch.Generator().manual_seed(5),
        ledger=ledger,
        groups=balance.ids,
        num_groups=len(balance.names),
    )


def _two_groups(min_cell_size: int = 5) -> GroupBalance:
    ids = (np.arange(N) % 5 == 0).astype(np.int64)  # 20% / 80%
    return GroupBalance(ids, ("a", "b"), ("group",), min_cell_size)


@pytest.mark.parametrize("name", ["dm", "dc"])
def test_zero_noise_and_no_clipping_reproduce_the_non_private_balanced_run(name: str) -> None:
    # q = 1 (every row each step), σ = 0, C = ∞: the noisy gateway's cell releases are exact.
    options = {**METHODS[name].private.defaults}  # type: ignore[union-attr]
    if name == "dc":
        options["batch_size"] = 10 * N
    exact = distill(name, _inputs(name, _two_groups(), **options))
    gateway = _noisy(0.0, math.inf, _two_groups(), PrivacyLedger())
    private = distill(
        name,
        DistillInput(**{**_inputs(name, _two_groups(), **options).__dict__, "gateway": gateway}),
    )
    np.testing.assert_allclose(private.embeddings, exact.embeddings, rtol=1e-4, atol=1e-5)
    assert private.fairness == exact.fairness


@pytest.mark.parametrize("name", ["dm", "dc"])
def test_dp_balanced_ledger_is_the_plan_and_its_epsilon_is_opacus(name: str) -> None:
    delta = 1e-3
    members = _inputs(name, _two_groups())
    synthetic = distill_privately(name, members, epsilon=2.0, delta=delta, noise_seed=0)
    assert synthetic.privacy is not None and synthetic.fairness is not None
    mechanisms = synthetic.privacy["mechanisms"]
    assert {m["name"] for m in mechanisms} == (
        {"cell_statistic_sums", "cell_counts"}
        if name == "dm"
        else {"cell_gradient_sums", "cell_counts"}
    )
    variant = METHODS[name].private
    assert variant is not None
    options = variant.options(members.options, method=name)
    plan = variant.planned(options, N, 3, balanced=True)
    sigma = calibrate_noise(target_epsilon=2.0, delta=delta, plan=plan)
    assert sorted(
        (m["name"], m["noise_multiplier"], m["sample_rate"], m["steps"]) for m in mechanisms
    ) == sorted((p.name, sigma, p.sample_rate, p.steps) for p in plan)
    opacus = RDPAccountant()
    for m in mechanisms:
        for _ in range(m["steps"]):
            opacus.step(noise_multiplier=m["noise_multiplier"], sample_rate=m["sample_rate"])
    assert synthetic.privacy["epsilon"] == pytest.approx(opacus.get_epsilon(delta=delta), rel=1e-9)
    assert synthetic.privacy["epsilon"] <= 2.0
    # Cells partition the data as classes do: balancing costs the same σ as plain matching.
    plain = calibrate_noise(target_epsilon=2.0, delta=delta, plan=variant.plan(options, N, 3))
    assert sigma == plain


@pytest.mark.parametrize("name", ["dm", "dc"])
def test_dp_balanced_run_with_an_empty_cell_releases_it_as_noise_and_falls_back(
    name: str,
) -> None:
    _, y, _, _ = _blobs()
    ids = ((np.arange(N) % 5 == 0) & (y != 0)).astype(np.int64)  # class 0: no row in group b
    balance = GroupBalance(ids, ("a", "b"), ("group",), min_cell_size=20)
    members = _inputs(name, balance)
    synthetic = distill_privately(name, members, epsilon=2.0, delta=1e-3, noise_seed=0)
    assert np.isfinite(synthetic.embeddings).all()
    assert synthetic.fairness is not None
    assert (0, "b") in {(f["label"], f["group"]) for f in synthetic.fairness["fallback"]}


def test_balance_is_refused_where_a_method_cannot_use_it() -> None:
    with pytest.raises(ConfigError, match="not available for method 'kip'"):
        distill("kip", _inputs("kip", _two_groups()))
    with pytest.raises(ConfigError, match="fairness: 'fair' is not one of 'none' or 'balanced'"):
        RunConfig(fairness="fair")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="--group-column"):
        GroupBalance.from_columns({}, np.arange(3))


def test_groups_are_the_intersection_of_the_group_columns() -> None:
    balance = GroupBalance.from_columns(
        {"gender": ["f", "m", "f", "m"], "age": ["old", "old", "young", "old"]},
        np.array([3, 0, 2]),
    )
    assert balance.names == ("f | old", "f | young", "m | old")
    assert balance.ids.tolist() == [2, 0, 1]
    assert balance.columns == ("gender", "age")


def test_schema_1_1_reads_the_fairness_record_and_1_0_reports_stay_valid(tmp_path: Path) -> None:
    old = non_private_report()
    assert old["schema_version"] == "1.0.0" and "fairness" not in old["method"]
    assert schema_errors(old) == []
    new = {**old, "schema_version": "1.1.0"}
    new["method"] = {**old["method"], "fairness": {"mode": "balanced"}}
    assert any("group_columns" in problem for problem in schema_errors(new))
    new["method"]["fairness"] = {
        "mode": "balanced",
        "group_columns": ["group"],
        "groups": ["a", "b"],
        "min_cell_size": 20,
        "cells": 4,
        "fallback_cells": 1,
        "fallback": [{"label": 1, "group": "b", "size": 3}],
        "cell_sizes": [[40, 30], [50, 3]],
    }
    assert schema_errors(new) == []
    new["method"]["fairness"]["mode"] = "fair"
    assert schema_errors(new)
