"""Fairness by group: who does a model trained on the released set serve worse?

For each sensitive-group column (and their intersection when there are several), fairlearn's
`MetricFrame` breaks accuracy, selection rate, true- and false-positive rate down by group, for a
model trained on the released set and one trained on the full private training data. Gaps
between groups (max − min over groups with enough examples):
- accuracy difference;
- demographic-parity difference: of selection rates (share predicted positive);
- equal-opportunity difference: of TPRs;
- equalized-odds difference: the larger of the TPR and FPR differences;
each with a percentile bootstrap confidence interval. For binary tasks, per group also the
subgroup AUC, BPSN and BNSP AUCs of Borkan et al. (2019, "Nuanced Metrics for Measuring
Unintended Bias with Real Data for Text Classification"). Groups with fewer than
`min_group_size` test examples are listed with their metrics and flagged, but take no part in
the gaps. Binary tasks take label id 1 as the positive class.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from fairlearn.metrics import MetricFrame, false_positive_rate, selection_rate, true_positive_rate
from sklearn.metrics import accuracy_score, roc_auc_score

__all__ = [
    "FairnessAudit",
    "GroupReport",
    "bias_aucs",
    "group_report",
    "group_views",
]

POSITIVE_LABEL = 1
_GAPS = (
    "accuracy_difference",
    "demographic_parity_difference",
    "equal_opportunity_difference",
    "equalized_odds_difference",
)


def group_views(groups: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each group column on its own, plus their intersection ("a × b" -> "x | y") when there
    are several columns."""
    views = {name: np.asarray(values).astype(str) for name, values in groups.items()}
    if len(views) > 1:
        columns = list(views.values())
        joined = np.array([" | ".join(parts) for parts in zip(*columns, strict=True)])
        views[" × ".join(views)] = joined
    return views


def _rate(metric: Callable[..., float], *, needs: int) -> Callable[[np.ndarray, np.ndarray], float]:
    """A fairlearn rate that is NaN (not 0) when the group has no true example of class `needs`
    (fairlearn returns 0 for a TPR without positives, which would fake a gap)."""

    def rate(y_true: np.ndarray, y_pred: np.ndarray) -> float:
        if not np.any(np.asarray(y_true) == needs):
            return float("nan")
        return float(metric(y_true, y_pred, pos_label=POSITIVE_LABEL))

    return rate


def _metrics(binary: bool) -> dict[str, Callable[[np.ndarray, np.ndarray], float]]:
    metrics: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {"accuracy": accuracy_score}
    if binary:
        metrics["selection_rate"] = lambda t, p: float(
            selection_rate(t, p, pos_label=POSITIVE_LABEL)
        )
        metrics["tpr"] = _rate(true_positive_rate, needs=POSITIVE_LABEL)
        metrics["fpr"] = _rate(false_positive_rate, needs=1 - POSITIVE_LABEL)
    return metrics


def _gaps(by_group: Mapping[str, Mapping[str, float]], binary: bool) -> dict[str, float | None]:
    def spread(metric: str) -> float | None:
        values = [v[metric] for v in by_group.values() if not np.isnan(v[metric])]
        return float(max(values) - min(values)) if len(values) >= 2 else None

    gaps: dict[str, float | None] = {"accuracy_difference": spread("accuracy")}
    if binary:
        tpr, fpr = spread("tpr"), spread("fpr")
        gaps["demographic_parity_difference"] = spread("selection_rate")
        gaps["equal_opportunity_difference"] = tpr
        present = [g for g in (tpr, fpr) if g is not None]
        gaps["equalized_odds_difference"] = max(present) if present else None
    return gaps


def _bootstrap_gaps(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    sensitive: np.ndarray,
    groups: list[str],
    *,
    binary: bool,
    n_boot: int,
    confidence: float,
    seed: int,
) -> dict[str, list[float] | None]:
    """Percentile bootstrap intervals of each gap, resampling test rows with replacement."""
    rng = np.random.default_rng([seed, 11])
    index = rng.integers(0, len(y_true), size=(n_boot, len(y_true)))
    t, p, s = y_true[index], y_pred[index], sensitive[index]
    per_group: dict[str, dict[str, np.ndarray]] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for group in groups:
            member = s == group
            metrics = {"accuracy": (member & (t == p)).sum(1) / member.sum(1)}
            if binary:
                positive, negative = member & (t == POSITIVE_LABEL), member & (t != POSITIVE_LABEL)
                predicted = p == POSITIVE_LABEL
                metrics["selection_rate"] = (member & predicted).sum(1) / member.sum(1)
                metrics["tpr"] = (positive & predicted).sum(1) / positive.sum(1)
                metrics["fpr"] = (negative & predicted).sum(1) / negative.sum(1)
            per_group[group] = metrics

    def spread(metric: str) -> np.ndarray:
        stacked = np.stack([per_group[g][metric] for g in groups])  # (groups, n_boot)
        valid = ~np.isnan(stacked)
        high = np.where(valid, stacked, -np.inf).max(0)
        low = np.where(valid, stacked, np.inf).min(0)
        return np.where(valid.sum(0) >= 2, high - low, np.nan)

    samples = {"accuracy_difference": spread("accuracy")}
    if binary:
        samples["demographic_parity_difference"] = spread("selection_rate")
        samples["equal_opportunity_difference"] = spread("tpr")
        samples["equalized_odds_difference"] = np.fmax(spread("tpr"), spread("fpr"))
    tail = (1.0 - confidence) / 2.0
    intervals: dict[str, list[float] | None] = {}
    for name, values in samples.items():
        values = values[~np.isnan(values)]
        intervals[name] = (
            [float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail))]
            if values.size
            else None
        )
    return intervals


@dataclass(frozen=True)
class GroupReport:
    """Metrics per group (every group, small ones flagged), the gaps between the groups with
    at least `min_group_size` examples, and bootstrap intervals of the gaps."""

    by_group: dict[str, dict[str, Any]]
    gaps: dict[str, float | None]
    intervals: dict[str, list[float] | None]
    small_groups: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "groups": self.by_group,
            **self.gaps,
            "confidence_intervals": self.intervals,
            "small_groups": self.small_groups,
        }


def group_report(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    sensitive: np.ndarray,
    *,
    binary: bool,
    min_group_size: int = 20,
    n_boot: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
) -> GroupReport:
    """Per-group metrics of predictions `y_pred` (n,) against `y_true` (n,) for the group names
    `sensitive` (n,), via fairlearn's MetricFrame; gaps over the groups large enough."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    sensitive = np.asarray(sensitive).astype(str)
    frame = MetricFrame(
        metrics=_metrics(binary), y_true=y_true, y_pred=y_pred, sensitive_features=sensitive
    )
    table = frame.by_group
    counts = {
        str(g): int(n) for g, n in zip(*np.unique(sensitive, return_counts=True), strict=True)
    }
    by_group: dict[str, dict[str, Any]] = {}
    for group, row in table.iterrows():
        name = str(group)
        values = {k: (None if np.isnan(v) else float(v)) for k, v in row.items()}
        by_group[name] = {
            "n": counts[name],
            **values,
            "too_few_examples": counts[name] < min_group_size,
        }
    large = [g for g in by_group if not by_group[g]["too_few_examples"]]
    nan_filled = {
        g: {k: (np.nan if v is None else v) for k, v in by_group[g].items()} for g in large
    }
    gaps = _gaps(nan_filled, binary)
    intervals: dict[str, list[float] | None] = dict.fromkeys(gaps)
    if len(large) >= 2 and n_boot > 0:
        rows = np.isin(sensitive, large)
        intervals = _bootstrap_gaps(
            y_true[rows],
            y_pred[rows],
            sensitive[rows],
            large,
            binary=binary,
            n_boot=n_boot,
            confidence=confidence,
            seed=seed,
        )
    small = sorted(g for g in by_group if by_group[g]["too_few_examples"])
    return GroupReport(by_group, gaps, intervals, small)


def _auc(y: np.ndarray, scores: np.ndarray) -> float | None:
    return float(roc_auc_score(y, scores)) if 0 < y.sum() < len(y) else None


def bias_aucs(
    y_true: np.ndarray, scores: np.ndarray, in_group: np.ndarray
) -> dict[str, float | None]:
    """Borkan et al. (2019): subgroup AUC (within the group), BPSN (background positives vs
    subgroup negatives) and BNSP (background negatives vs subgroup positives). None where a
    side has no examples of a class."""
    y = np.asarray(y_true) == POSITIVE_LABEL
    scores, in_group = np.asarray(scores, dtype=np.float64), np.asarray(in_group, dtype=bool)
    bpsn = (in_group & ~y) | (~in_group & y)
    bnsp = (in_group & y) | (~in_group & ~y)
    return {
        "subgroup_auc": _auc(y[in_group], scores[in_group]),
        "bpsn_auc": _auc(y[bpsn], scores[bpsn]),
        "bnsp_auc": _auc(y[bnsp], scores[bnsp]),
    }


class FairnessAudit:
    """Group metrics of a model trained on the released set vs one trained on full data, on
    the test split, for every group column of the data (and their intersection)."""

    name = "fairness"

    def __init__(
        self, *, min_group_size: int = 20, n_boot: int = 200, confidence: float = 0.95
    ) -> None:
        self.min_group_size = min_group_size
        self.n_boot = n_boot
        self.confidence = confidence

    def __call__(self, context: Any) -> dict[str, Any]:
        test = context.test
        if not test.groups:
            return {}
        binary = len(context.label_names) == 2
        classes = len(context.label_names)
        members, release = context.members, context.release
        full_targets = np.eye(classes, dtype=np.float32)[np.asarray(members.labels, np.int64)]
        probabilities = {
            "synthetic": context.fit_predict(
                release.vectors, release.targets, test.embeddings, context.seed
            ),
            "full_data": context.fit_predict(
                members.embeddings, full_targets, test.embeddings, context.seed
            ),
        }
        y_true = np.asarray(test.labels, dtype=np.int64)
        views: dict[str, Any] = {}
        for view, sensitive in group_views(test.groups).items():
            entry: dict[str, Any] = {}
            for model, probs in probabilities.items():
                report = group_report(
                    y_true,
                    probs.argmax(axis=1),
                    sensitive,
                    binary=binary,
                    min_group_size=self.min_group_size,
                    n_boot=self.n_boot,
                    confidence=self.confidence,
                    seed=context.seed,
                ).to_json()
                if binary:
                    for group, metrics in report["groups"].items():
                        metrics.update(bias_aucs(y_true, probs[:, 1], sensitive == group))
                entry[model] = report
            entry["gap_change"] = {
                gap: (
                    entry["synthetic"][gap] - entry["full_data"][gap]
                    if entry["synthetic"].get(gap) is not None
                    and entry["full_data"].get(gap) is not None
                    else None
                )
                for gap in _GAPS
                if gap in entry["synthetic"]
            }
            views[view] = entry
        section: dict[str, Any] = {
            "positive_label": context.label_names[POSITIVE_LABEL] if binary else None,
            "min_group_size": self.min_group_size,
            "confidence": self.confidence,
        }
        # Headline gaps: the worst over the group views, for the model trained on the release,
        # with the bootstrap interval of the view that gave it.
        intervals: dict[str, list[float] | None] = {}
        for gap in _GAPS:
            if gap not in next(iter(views.values()))["synthetic"]:
                continue
            reports = [view["synthetic"] for view in views.values()]
            present = [report for report in reports if report.get(gap) is not None]
            worst = max(present, key=lambda report: report[gap], default=None)
            section[gap] = None if worst is None else worst[gap]
            intervals[gap] = None if worst is None else worst["confidence_intervals"].get(gap)
        section["confidence_intervals"] = intervals
        section["by"] = views
        return section
