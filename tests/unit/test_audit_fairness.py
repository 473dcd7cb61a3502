"""Fairness by group: MetricFrame results equal a recomputation by masking; small groups are
reported as such; Borkan et al.'s AUCs; the auditor on a made-up run."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from audits.fairness import FairnessAudit, bias_aucs, group_report, group_views
from tests.unit.test_audit_membership import _coreset_run, _Records


def _data(seed: int = 0, n: int = 600) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    groups = rng.choice(["a", "b", "c", "tiny"], size=n, p=[0.5, 0.3, 0.18, 0.02])
    y_true = rng.integers(0, 2, n)
    flip = rng.random(n) < np.where(groups == "b", 0.35, 0.1)  # b is served worse
    y_pred = np.where(flip, 1 - y_true, y_true)
    return y_true, y_pred, groups


def test_group_metrics_equal_a_recomputation_by_masking() -> None:
    y_true, y_pred, groups = _data()
    report = group_report(y_true, y_pred, groups, binary=True, min_group_size=20, n_boot=0)
    for group, metrics in report.by_group.items():
        mask = groups == group
        t, p = y_true[mask], y_pred[mask]
        assert metrics["n"] == mask.sum()
        assert metrics["accuracy"] == pytest.approx(np.mean(t == p))
        assert metrics["selection_rate"] == pytest.approx(np.mean(p == 1))
        assert metrics["tpr"] == pytest.approx(np.mean(p[t == 1] == 1))
        assert metrics["fpr"] == pytest.approx(np.mean(p[t == 0] == 1))
    large = [g for g in ("a", "b", "c")]
    accuracies = [np.mean(y_true[groups == g] == y_pred[groups == g]) for g in large]
    assert report.gaps["accuracy_difference"] == pytest.approx(max(accuracies) - min(accuracies))
    tprs = [np.mean(y_pred[(groups == g) & (y_true == 1)] == 1) for g in large]
    fprs = [np.mean(y_pred[(groups == g) & (y_true == 0)] == 1) for g in large]
    assert report.gaps["equal_opportunity_difference"] == pytest.approx(max(tprs) - min(tprs))
    assert report.gaps["equalized_odds_difference"] == pytest.approx(
        max(max(tprs) - min(tprs), max(fprs) - min(fprs))
    )
    selection = [np.mean(y_pred[groups == g] == 1) for g in large]
    assert report.gaps["demographic_parity_difference"] == pytest.approx(
        max(selection) - min(selection)
    )


def test_small_groups_are_listed_and_flagged_not_dropped() -> None:
    y_true, y_pred, groups = _data()
    report = group_report(y_true, y_pred, groups, binary=True, min_group_size=20, n_boot=0)
    assert report.small_groups == ["tiny"]
    assert report.by_group["tiny"]["too_few_examples"] is True
    assert report.by_group["tiny"]["n"] == int(np.sum(groups == "tiny"))
    assert report.by_group["a"]["too_few_examples"] is False


def test_rates_without_positives_are_missing_not_zero() -> None:
    y_true = np.array([0, 0, 0, 1, 1, 0] * 10)
    y_pred = np.array([0, 1, 0, 1, 0, 0] * 10)
    groups = np.array(["none", "none", "none", "x", "x", "x"] * 10)
    report = group_report(y_true, y_pred, groups, binary=True, min_group_size=5, n_boot=50)
    assert report.by_group["none"]["tpr"] is None
    assert report.gaps["equal_opportunity_difference"] is None  # one group has a TPR
    assert report.intervals["accuracy_difference"] is not None


def test_bootstrap_interval_brackets_the_gap() -> None:
    y_true, y_pred, groups = _data(seed=1, n=3000)
    report = group_report(y_true, y_pred, groups, binary=True, n_boot=300, seed=3)
    low, high = report.intervals["accuracy_difference"]  # type: ignore[misc]
    assert low < report.gaps["accuracy_difference"] < high  # type: ignore[operator]
    assert low > 0.1  # b's extra 25 % flips are a real gap


def test_multiclass_reports_accuracy_only() -> None:
    rng = np.random.default_rng(2)
    y_true, y_pred = rng.integers(0, 3, 200), rng.integers(0, 3, 200)
    groups = rng.choice(["a", "b"], 200)
    report = group_report(y_true, y_pred, groups, binary=False, n_boot=0)
    assert set(report.gaps) == {"accuracy_difference"}
    assert set(report.by_group["a"]) == {"n", "accuracy", "too_few_examples"}


def test_bias_aucs_equal_masked_roc_aucs() -> None:
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 400)
    in_group = rng.random(400) < 0.3
    scores = y + rng.normal(0, 1, 400) + 0.5 * in_group
    aucs = bias_aucs(y, scores, in_group)
    assert aucs["subgroup_auc"] == pytest.approx(roc_auc_score(y[in_group], scores[in_group]))
    bpsn = (in_group & (y == 0)) | (~in_group & (y == 1))
    bnsp = (in_group & (y == 1)) | (~in_group & (y == 0))
    assert aucs["bpsn_auc"] == pytest.approx(roc_auc_score(y[bpsn], scores[bpsn]))
    assert aucs["bnsp_auc"] == pytest.approx(roc_auc_score(y[bnsp], scores[bnsp]))
    # The group's shift up makes its negatives look positive: BPSN below BNSP.
    assert aucs["bpsn_auc"] < aucs["bnsp_auc"]  # type: ignore[operator]
    assert bias_aucs(np.zeros(4), np.arange(4.0), np.array([1, 1, 0, 0], bool))["bpsn_auc"] is None


def test_views_include_the_intersection() -> None:
    views = group_views({"g": np.array(["a", "b"]), "h": np.array(["x", "y"])})
    assert list(views) == ["g", "h", "g × h"]
    assert views["g × h"].tolist() == ["a | x", "b | y"]


def test_auditor_compares_the_release_with_full_data() -> None:
    run = _coreset_run(released=40)
    rng = np.random.default_rng(5)
    test = run.test
    groups = {"group": rng.choice(["p", "q", "r"], size=len(test.labels), p=[0.5, 0.45, 0.05])}
    run.test = _Records(test.ids, test.texts, test.embeddings, test.labels, groups)
    section = FairnessAudit(min_group_size=10, n_boot=50)(run)
    assert section["positive_label"] == "b"
    view = section["by"]["group"]
    assert set(view) == {"synthetic", "full_data", "gap_change"}
    assert view["synthetic"]["small_groups"] == ["r"]
    for metrics in view["synthetic"]["groups"].values():
        assert {"accuracy", "tpr", "fpr", "subgroup_auc", "bpsn_auc", "bnsp_auc"} <= set(metrics)
    change = view["gap_change"]["accuracy_difference"]
    assert change == pytest.approx(
        view["synthetic"]["accuracy_difference"] - view["full_data"]["accuracy_difference"]
    )
    assert section["equalized_odds_difference"] == view["synthetic"]["equalized_odds_difference"]
    run.test = test  # no group columns: no section
    assert FairnessAudit()(run) == {}
