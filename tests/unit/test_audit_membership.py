"""Membership-inference attacks and metrics on score distributions whose answer is known."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from audits.membership import (
    MembershipAudit,
    _masked_moments,
    attack_metrics,
    cross_entropy,
    lira_offline,
    lira_online,
    logit_confidence,
    rmia_offline,
    roc_points,
    tpr_at_fpr,
)


def _labels(n_in: int, n_out: int) -> np.ndarray:
    return np.r_[np.ones(n_in, bool), np.zeros(n_out, bool)]


def test_identical_distributions_give_chance() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(size=20_000)
    metrics = attack_metrics(scores, _labels(10_000, 10_000))
    assert metrics.auc == pytest.approx(0.5, abs=0.015)
    low, high = metrics.auc_interval
    assert low < 0.5 < high and high - low < 0.03
    assert metrics.balanced_accuracy < 0.52
    assert metrics.tpr_at_fpr[0.01] < 0.02
    assert metrics.tpr_at_fpr[0.001] < 0.005


def test_separated_distributions_are_found() -> None:
    rng = np.random.default_rng(1)
    scores = np.r_[rng.normal(8.0, 1.0, 5000), rng.normal(0.0, 1.0, 5000)]
    metrics = attack_metrics(scores, _labels(5000, 5000))
    assert metrics.auc > 0.999
    assert metrics.balanced_accuracy > 0.99
    assert metrics.tpr_at_fpr[0.001] > 0.95
    payload = metrics.to_json()
    assert set(payload) >= {"auc", "tpr_at_0.1pct_fpr", "tpr_at_1pct_fpr", "balanced_accuracy"}


def test_gaussian_shift_matches_the_closed_form_auc() -> None:
    # AUC of N(mu, 1) vs N(0, 1) is Phi(mu / sqrt(2)).
    from scipy.stats import norm

    rng = np.random.default_rng(2)
    scores = np.r_[rng.normal(1.0, 1.0, 20_000), rng.normal(0.0, 1.0, 20_000)]
    assert attack_metrics(scores, _labels(20_000, 20_000)).auc == pytest.approx(
        norm.cdf(1.0 / np.sqrt(2.0)), abs=0.01
    )


def test_tpr_at_fpr_never_exceeds_the_fpr_budget() -> None:
    scores = np.array([5.0, 4.0, 3.0, 2.0, 1.0, 0.0])
    members = np.array([True, False, True, True, False, False])
    assert tpr_at_fpr(scores, members, 0.0) == pytest.approx(1 / 3)
    assert tpr_at_fpr(scores, members, 1 / 3) == pytest.approx(1.0)
    roc = roc_points(scores, members, points=5)
    assert roc.fpr[0] == pytest.approx(1 / 3) and roc.fpr[-1] == 1.0
    assert list(roc.tpr) == sorted(roc.tpr)


def test_metrics_refuse_one_sided_or_mismatched_input() -> None:
    with pytest.raises(ValueError, match="one member and one non-member"):
        attack_metrics(np.zeros(3), np.ones(3, bool))
    with pytest.raises(ValueError, match="differ in size"):
        attack_metrics(np.zeros(3), np.ones(2, bool))


def test_signals() -> None:
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]])
    labels = np.array([0, 0, 1])
    assert cross_entropy(probabilities, labels) == pytest.approx(-np.log([0.9, 0.2, 0.5]))
    assert logit_confidence(probabilities, labels) == pytest.approx(
        np.log([0.9 / 0.1, 0.2 / 0.8, 1.0])
    )
    assert np.isfinite(logit_confidence(np.array([[1.0, 0.0]]), np.array([0]))).all()


def _simulated_lira(n: int, k: int, shift: float, seed: int) -> tuple[np.ndarray, ...]:
    """Per-example difficulty d_i; a model that trained on i sees phi ~ N(d_i + shift, 1)."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0.0, 3.0, n)
    shadow_in = rng.random((k, n)) < 0.5
    shadow = difficulty + shift * shadow_in + rng.normal(size=(k, n))
    is_member = rng.random(n) < 0.5
    target = difficulty + shift * is_member + rng.normal(size=n)
    return target, shadow, shadow_in, is_member


@pytest.mark.parametrize("fixed_variance", [True, False])
def test_lira_uses_per_example_calibration(fixed_variance: bool) -> None:
    target, shadow, shadow_in, is_member = _simulated_lira(4000, 16, 1.5, seed=3)
    # Without calibration the difficulty spread (sd 3) hides the shift; LiRA removes it.
    raw = attack_metrics(target, is_member).auc
    online = attack_metrics(
        lira_online(target, shadow, shadow_in, fixed_variance=fixed_variance), is_member
    ).auc
    offline = attack_metrics(
        lira_offline(target, shadow, shadow_in, fixed_variance=fixed_variance), is_member
    ).auc
    assert raw < 0.65
    assert online > 0.8 and offline > 0.75
    assert online > raw + 0.15


def test_lira_gives_chance_without_membership_signal() -> None:
    target, shadow, shadow_in, is_member = _simulated_lira(4000, 8, 0.0, seed=4)
    assert attack_metrics(lira_online(target, shadow, shadow_in), is_member).auc == pytest.approx(
        0.5, abs=0.03
    )


def test_lira_fixed_variance_is_unbiased_however_many_means_it_fits() -> None:
    # 2,000 records, 4 shadows: each column's mean is fitted from about 2 entries. Dividing the
    # squared deviations by (entries - 1) would give about half the true variance (1.0 here).
    rng = np.random.default_rng(7)
    k, n = 4, 2000
    values = rng.normal(size=(k, n)) + rng.normal(0.0, 5.0, size=n)  # per-record means
    mask = rng.random((k, n)) < 0.5
    _, std, counts = _masked_moments(values, mask, fixed_variance=True)
    entries, fitted = int(counts.sum()), int(np.count_nonzero(counts))
    assert entries - fitted < 0.6 * entries  # many means from few entries each
    assert std[0] == pytest.approx(1.0, abs=0.05)
    assert np.all(std == std[0])


def test_metrics_report_what_this_many_non_members_can_measure() -> None:
    rng = np.random.default_rng(8)
    few = attack_metrics(rng.normal(size=150), _labels(100, 50)).to_json()
    assert few["power"] == {
        "min_fpr": pytest.approx(0.02),
        "tpr_at_0.1pct_fpr_measurable": False,
        "tpr_at_1pct_fpr_measurable": False,
    }
    many = attack_metrics(rng.normal(size=1100), _labels(100, 1000)).to_json()["power"]
    assert many["tpr_at_0.1pct_fpr_measurable"] and many["tpr_at_1pct_fpr_measurable"]
    some = attack_metrics(rng.normal(size=300), _labels(100, 200)).to_json()["power"]
    assert not some["tpr_at_0.1pct_fpr_measurable"] and some["tpr_at_1pct_fpr_measurable"]


def test_lira_handles_examples_never_out() -> None:
    target = np.array([1.0, 2.0])
    shadow = np.array([[1.0, 0.0], [1.2, 0.1]])
    shadow_in = np.array([[True, False], [True, False]])
    online = lira_online(target, shadow, shadow_in)
    offline = lira_offline(target, shadow, shadow_in)
    assert np.isfinite(online).all()
    assert offline[0] == 0.0  # never OUT: no evidence
    with pytest.raises(ValueError, match="expected target"):
        lira_online(target, shadow[:, :1], shadow_in)


def test_rmia_finds_calibrated_signal() -> None:
    rng = np.random.default_rng(5)
    n, k = 3000, 4
    difficulty = rng.uniform(0.05, 0.95, n)
    is_member = rng.random(n) < 0.5
    target = np.clip(difficulty + 0.04 * is_member + rng.normal(0, 0.01, n), 1e-3, 1)
    reference = np.clip(difficulty + rng.normal(0, 0.01, (k, n)), 1e-3, 1)
    # a = 1: p(x) is the OUT models' mean itself (the reference models are good proxies here).
    scores = rmia_offline(target, reference, target[~is_member], reference[:, ~is_member], a=1.0)
    assert attack_metrics(scores, is_member).auc > 0.9
    assert attack_metrics(target, is_member).auc < 0.6
    with pytest.raises(ValueError, match="offline scale"):
        rmia_offline(target, reference, target, reference, a=2.0)


# --- the auditor on a made-up run -------------------------------------------------------------


@dataclass
class _Records:
    ids: np.ndarray
    texts: tuple[str, ...]
    embeddings: np.ndarray
    labels: np.ndarray
    groups: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class _Release:
    texts: tuple[str, ...]
    labels: np.ndarray
    text_embeddings: np.ndarray
    vectors: np.ndarray
    targets: np.ndarray
    source: str = "private"
    epsilon: float | None = None

    @property
    def may_contain_private_rows(self) -> bool:
        return not (self.epsilon is not None and self.source == "public")


def _fit_predict(
    x: np.ndarray, targets: np.ndarray, eval_x: np.ndarray | tuple[np.ndarray, ...], seed: int
) -> np.ndarray:
    model = LogisticRegression(C=100.0, max_iter=500).fit(x, targets.argmax(axis=1))
    parts = eval_x if isinstance(eval_x, tuple) else (eval_x,)
    return np.concatenate([model.predict_proba(part) for part in parts])


def _records(rng: np.random.Generator, n: int, offset: int) -> _Records:
    labels = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 8)) + labels[:, None] * 0.3
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return _Records(np.arange(offset, offset + n), tuple(map(str, range(n))), x, labels)


@dataclass
class _Run:
    members: _Records
    nonmembers: _Records
    test: _Records
    release: _Release
    seed: int = 0
    label_names: tuple[str, ...] = ("a", "b")
    canaries: Any = None
    canary_plan: Any = None
    pool: Any = None
    delta: float = 1e-5
    shadows: int = 0
    shadow_release: Any = None
    fit_predict: Any = _fit_predict


def _coreset_run(released: int) -> _Run:
    rng = np.random.default_rng(6)
    members, nonmembers = _records(rng, 200, 0), _records(rng, 200, 200)
    rows = np.arange(released)
    eye = np.eye(2, dtype=np.float32)
    release = _Release(
        texts=tuple(members.texts[i] for i in rows),
        labels=members.labels[rows],
        text_embeddings=members.embeddings[rows],
        vectors=members.embeddings[rows],
        targets=eye[members.labels[rows]],
    )
    return _Run(members, nonmembers, _records(rng, 50, 400), release)


def test_auditor_lights_up_on_a_release_of_member_records() -> None:
    section = MembershipAudit()(_coreset_run(released=40))
    assert set(section["attacks"]) == {"loss", "confidence", "nearest_release"}
    assert section["best_attack"] == "nearest_release"
    # 40 of 200 members are released verbatim: found at zero false positives.
    assert section["tpr_at_0.1pct_fpr"] >= 0.2
    assert section["auc"] > 0.55
    assert section["shadows"] == 0


def test_auditor_runs_lira_and_rmia_with_shadows() -> None:
    run = _coreset_run(released=40)
    universe = np.concatenate([run.members.embeddings, run.nonmembers.embeddings])
    universe_labels = np.concatenate([run.members.labels, run.nonmembers.labels])
    calls: list[int] = []

    def shadow_release(in_mask: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        calls.append(seed)
        rows = np.flatnonzero(in_mask)[:40]  # the same "coreset" rule on the shadow's data
        return universe[rows], np.eye(2, dtype=np.float32)[universe_labels[rows]]

    run.shadows, run.shadow_release = 4, shadow_release
    section = MembershipAudit(shadows=4)(run)
    assert len(calls) == 4 and section["shadows"] == 4
    assert {"lira_online", "lira_offline", "rmia_offline"} <= set(section["attacks"])
    for attack in section["attacks"].values():
        assert 0.0 <= attack["auc"] <= 1.0
    assert set(section["roc"]["lira_online"]) == {"fpr", "tpr"}
