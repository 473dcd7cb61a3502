"""The report's utility parts: every metric, the headline named with its reason, the
majority-class row, sets marked in words when they do not beat it or chance, per-class recall;
and reports written before these metrics existed still render."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tdd_priv.evaluate import (
    HeadScores,
    ModelScore,
    Utility,
    majority_class_utility,
    score_predictions,
)
from tdd_priv.policy import schema_has_path
from tdd_priv.report import schema_errors, utility_rows
from tdd_priv.report.figures import draw_figures
from tdd_priv.report.markdown import render_markdown
from tdd_priv.report.record import utility_section
from tests.report_samples import current_schema, non_private_report

NAMES = ("ham", "spam")
# 88 ham, 12 spam: the rare class is under half a balanced share, so macro-F1 leads
TEST = np.array([0] * 88 + [1] * 12)


def _scores(predicted_spam_right: int, predicted_ham_right: int) -> ModelScore:
    """A model that gets that many spam and ham test rows right (the rest wrong)."""
    predicted = np.concatenate(
        [
            np.r_[np.zeros(predicted_ham_right), np.ones(88 - predicted_ham_right)],
            np.r_[np.ones(predicted_spam_right), np.zeros(12 - predicted_spam_right)],
        ]
    ).astype(np.int64)
    return score_predictions(TEST, predicted, 2)


def _set(*models: ModelScore) -> Utility:
    return Utility((HeadScores("linear", models),))


def _report() -> dict[str, Any]:
    utilities = {
        "synthetic": _set(_scores(9, 80), _scores(8, 82)),
        "realized": _set(_scores(7, 84), _scores(9, 80)),
        "random": _set(_scores(0, 88), _scores(0, 88)),  # never predicts spam: accuracy 0.88
        "full_data": _set(_scores(11, 86), _scores(10, 87)),
        "majority_class": majority_class_utility(np.array([0, 0, 1]), TEST, 2),
    }
    report = current_schema(non_private_report())
    report["dataset"]["classes"] = list(NAMES)
    report["utility"] = utility_section(
        utilities,
        test_labels=TEST,
        class_names=NAMES,
        protocol={"heads": ["linear"], "seeds_per_head": 2, "test_split_size": 100},
    )
    return report


def test_utility_section_is_valid_and_declares_what_policies_may_read() -> None:
    report = _report()
    assert schema_errors(report) == []
    utility = report["utility"]
    assert utility["protocol"]["headline_metric"] == "macro_f1"
    assert utility["protocol"]["headline_floor"] == {
        "value": 0.5,
        "source": "chance",
        "statement": "chance macro-F1, 1/C = 0.500",
    }
    assert utility["random"]["accuracy_mean"] == 0.88  # as good as the majority class...
    assert utility["random"]["at_or_below_floor"] is True  # ...and marked for it
    assert utility["realized"]["at_or_below_floor"] is False
    assert "at_or_below_floor" not in utility["majority_class"]
    for path in (
        "utility.realized.macro_f1_mean",
        "utility.realized.balanced_accuracy_std",
        "utility.realized.recall_by_class.spam.mean",
        "utility.realized.min_class_recall_mean",
        "utility.realized.by_head.linear.macro_f1_mean",
        "utility.majority_class.accuracy_mean",
        "utility.protocol.headline_floor.value",
        "utility.protocol.rarest_class_share",
    ):
        assert schema_has_path(path), path
    broken = _report()
    broken["utility"]["realized"]["recall_by_class"]["spam"]["mean"] = 1.5
    assert schema_errors(broken) != []


def test_report_leads_with_the_named_headline_and_marks_sets_in_words() -> None:
    markdown = render_markdown(_report())
    summary = markdown[: markdown.index("## Utility")]
    assert "test macro-F1, mean ± std" in summary
    assert "Headline metric: **macro-F1**, because the classes are imbalanced" in summary
    assert "majority-class predictor 0.468" in summary
    assert "Baselines at or below chance (1/C): random k / class." in summary
    utility = markdown[markdown.index("## Utility") :]
    header = next(line for line in utility.splitlines() if line.startswith("| trained on"))
    assert header.startswith("| trained on | macro-F1 (headline) | accuracy | balanced accuracy")
    random_row = next(line for line in utility.splitlines() if line.startswith("| random k"))
    assert "**at or below chance (1/C)**" in random_row
    assert "| majority-class predictor | 0.468 | 0.880 | 0.500 | 0.000 | constant |" in utility
    assert "| spam |" in utility  # the per-class recall table
    assert "Classes no model trained on the set gets right: random k / class: spam." in utility


def test_cli_rows_show_the_headline_first_then_every_metric_and_the_mark() -> None:
    rows = dict(utility_rows(_report()))
    assert rows["random k / class"].startswith("macro-F1 0.468 ± 0.000 · accuracy 0.880")
    assert "lowest class recall 0.000" in rows["random k / class"]
    assert rows["random k / class"].endswith("(2 models) — at or below chance (1/C)")
    assert rows["majority-class predictor"].endswith("(constant)")
    assert "—" not in rows["synthetic (texts)"]


def test_reports_without_the_new_metrics_still_render() -> None:
    report = non_private_report()  # schema 1.0.0: accuracy only, no headline, no floor
    markdown = render_markdown(report)
    assert "| trained on | accuracy (headline) | models | linear | mlp |" in markdown
    assert "macro-F1" not in markdown and "Headline metric" not in markdown
    rows = dict(utility_rows(report))
    assert rows["synthetic (vectors)"] == "accuracy 0.710 ± 0.010 (4 models)"


def test_figures_show_every_metric_and_the_recall_on_each_class(tmp_path: Path) -> None:
    drawn = draw_figures(_report(), tmp_path / "figures")
    names = [entry["name"] for entry in drawn]
    assert names[:2] == ["utility", "utility_recall"]
    for name in ("utility", "utility_recall"):
        assert (tmp_path / "figures" / f"{name}.png").stat().st_size > 10_000
    old = draw_figures(non_private_report(), tmp_path / "old")
    assert [entry["name"] for entry in old] == ["utility"]  # no recall: no recall figure
