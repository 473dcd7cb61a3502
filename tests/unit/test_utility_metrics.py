"""Every evaluated set is scored by accuracy, macro-F1, balanced accuracy and per-class recall;
the headline metric follows the test split's class balance; sets are marked against the
majority-class predictor and chance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, recall_score

from tdd_priv.evaluate import (
    IMBALANCE_SHARE,
    HeadScores,
    Utility,
    choose_headline,
    evaluate,
    headline_floor,
    majority_class_utility,
    score_predictions,
)
from tdd_priv.heads import HeadTraining, LabeledArrays


@pytest.mark.parametrize("seed", range(5))
def test_scores_equal_sklearn_on_random_predictions(seed: int) -> None:
    rng = np.random.default_rng(seed)
    classes = 6
    true = rng.integers(0, classes - 1, size=200)  # class 5 is absent from the test labels
    predicted = rng.integers(0, classes - 2, size=200)  # classes 4 and 5 never predicted
    score = score_predictions(true, predicted, classes)
    present = np.unique(true)
    assert score.accuracy == pytest.approx(accuracy_score(true, predicted))
    assert score.macro_f1 == pytest.approx(
        f1_score(true, predicted, labels=present, average="macro", zero_division=0)
    )
    recall = recall_score(true, predicted, labels=np.arange(classes), average=None, zero_division=0)
    assert score.recall[:5] == pytest.approx(recall[:5].tolist())
    assert score.recall[4] == 0.0  # present in the test split, never predicted
    assert score.recall[5] is None  # absent from the test split: no recall defined
    # sklearn's balanced accuracy averages recall over the classes of y_true, as ours does
    assert score.balanced_accuracy == pytest.approx(balanced_accuracy_score(true, predicted))


def test_a_class_nobody_predicts_scores_zero_without_error_or_warning() -> None:
    true = np.array([0, 0, 0, 1, 2, 2])
    score = score_predictions(true, np.zeros(6, dtype=np.int64), 3)  # filterwarnings=error
    assert score.accuracy == pytest.approx(0.5)
    assert score.recall == (1.0, 0.0, 0.0)
    assert score.balanced_accuracy == pytest.approx(1 / 3)
    assert score.macro_f1 == pytest.approx((2 * 0.5 / 1.5) / 3)  # class 0: P 0.5, R 1


def test_scores_refuse_mismatched_or_empty_labels() -> None:
    with pytest.raises(ValueError, match="one shape"):
        score_predictions(np.zeros(3, np.int64), np.zeros(2, np.int64), 2)
    with pytest.raises(ValueError, match="n >= 1"):
        score_predictions(np.zeros(0, np.int64), np.zeros(0, np.int64), 2)


def _separable(n: int = 150) -> tuple[LabeledArrays, LabeledArrays]:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=2 * n)
    x = (np.eye(3, 8)[labels] * 4 + rng.normal(size=(2 * n, 8))).astype(np.float32)
    data = LabeledArrays.from_labels(x, labels, 3)
    return LabeledArrays(data.x[:n], data.targets[:n]), LabeledArrays(data.x[n:], data.targets[n:])


def test_each_set_entry_holds_every_metric_overall_per_head_and_per_class() -> None:
    train, test = _separable()
    utility = evaluate(
        lambda _: train,
        test,
        heads=["linear", "mlp"],
        seeds=2,
        seed=0,
        training=HeadTraining(steps=40),
        progress=False,
    )
    names = ["a", "b", "c"]
    entry = utility.to_json(names)
    assert entry["n_models"] == 4
    for metric, values in (
        ("accuracy", "accuracies"),
        ("macro_f1", "macro_f1s"),
        ("balanced_accuracy", "balanced_accuracies"),
    ):
        per_model = [v for head in entry["by_head"].values() for v in head[values]]
        assert entry[f"{metric}_mean"] == pytest.approx(np.mean(per_model))
        assert entry[f"{metric}_std"] == pytest.approx(np.std(per_model))
    assert list(entry["recall_by_class"]) == names
    recalls = [m.recall[1] for m in utility.models]
    assert entry["recall_by_class"]["b"]["mean"] == pytest.approx(np.mean(recalls))
    assert entry["min_class_recall_mean"] == min(
        v["mean"] for v in entry["recall_by_class"].values()
    )
    assert entry["by_head"]["mlp"]["recall_by_class"].keys() == {"a", "b", "c"}


def test_a_set_that_never_predicts_a_class_shows_recall_zero_for_it() -> None:
    train, test = _separable()
    merged = np.eye(3, dtype=np.float32)[np.minimum(train.labels, 1)]  # class 2 labeled 1
    entry = evaluate(
        lambda _: LabeledArrays(train.x, merged),
        test,
        heads=["linear"],
        seeds=1,
        seed=0,
        training=HeadTraining(steps=40),
        progress=False,
    ).to_json()
    assert entry["recall_by_class"]["2"] == {"mean": 0.0, "std": 0.0}
    assert entry["min_class_recall_mean"] == 0.0
    assert entry["accuracy_mean"] > 0.5  # accuracy alone would not show it


def test_majority_class_predictor_predicts_the_members_most_frequent_class() -> None:
    members = np.array([2, 2, 1, 2, 0])
    test = np.array([0, 1, 2, 2])
    utility = majority_class_utility(members, test, 3)
    (score,) = utility.models
    assert score.accuracy == 0.5 and score.recall == (0.0, 0.0, 1.0)
    assert score.balanced_accuracy == pytest.approx(1 / 3)
    tie = majority_class_utility(np.array([1, 0]), test, 3)  # a tie goes to the lowest id
    assert tie.models[0].recall == (1.0, 0.0, 0.0)


def test_headline_is_accuracy_when_balanced_and_macro_f1_when_a_class_is_rare() -> None:
    balanced = np.repeat(np.arange(4), 25)
    assert choose_headline(balanced, 4).metric == "accuracy"
    spam = np.array([1] * 13 + [0] * 87)  # 13 % positives, the binary set a user reported
    headline = choose_headline(spam, 2, ["ham", "spam"])
    assert headline.metric == "macro_f1"
    assert headline.rarest_class == "spam" and headline.rarest_share == pytest.approx(0.13)
    assert "spam" in headline.reason and "13.0%" in headline.reason
    # the threshold: a share exactly at half a balanced share is still balanced enough
    at = np.array([0] * 25 + [1] * 75)
    assert IMBALANCE_SHARE / 2 == 0.25 and choose_headline(at, 2).metric == "accuracy"
    below = np.array([0] * 24 + [1] * 76)
    assert choose_headline(below, 2).metric == "macro_f1"
    absent = np.array([0, 1, 1, 0])  # a class the test split lacks is as rare as can be
    assert choose_headline(absent, 3).metric == "macro_f1"


def test_the_floor_is_the_majority_class_for_accuracy_and_chance_for_macro_f1() -> None:
    test = np.array([0] * 88 + [1] * 12)
    majority = majority_class_utility(np.array([0, 0, 1]), test, 2)
    accuracy_floor = headline_floor("accuracy", majority, test, 2)
    assert accuracy_floor.source == "majority_class" and accuracy_floor.value == 0.88
    assert accuracy_floor.reached(0.88) and not accuracy_floor.reached(0.9)
    f1_floor = headline_floor("macro_f1", majority, test, 2)
    # the majority predictor's macro-F1 (0.468) is below chance, 1/C
    assert f1_floor.source == "chance" and f1_floor.value == 0.5
    assert headline_floor("accuracy", None, test, 2).source == "chance"


def test_old_style_head_scores_still_read_as_accuracies() -> None:
    score = score_predictions(np.array([0, 1]), np.array([0, 0]), 2)
    scores = HeadScores("linear", (score, score))
    assert scores.accuracies == (0.5, 0.5) and scores.mean == 0.5 and scores.std == 0.0
    assert Utility((scores,)).to_json()["accuracy_mean"] == 0.5


def _csv_labels(path: Path, split: str) -> np.ndarray:
    frame = pd.read_csv(path, usecols=["label", "split"])
    return frame.label[frame.split == split].to_numpy()


def test_real_rare_class_data_gets_macro_f1_and_balanced_data_accuracy(
    shared_datasets: Path,
) -> None:
    davidson = _csv_labels(shared_datasets / "davidson_hate_offensive" / "davidson.csv", "test")
    hate = np.flatnonzero(davidson == 0)
    rare = np.concatenate([hate[:40], np.flatnonzero(davidson != 0)])  # hate: 40 of 2,417
    assert np.mean(davidson[rare] == 0) < 0.05
    headline = choose_headline(davidson[rare], 3, ["hate", "offensive", "neither"])
    assert headline.metric == "macro_f1" and headline.rarest_class == "hate"
    ag_news = _csv_labels(shared_datasets / "ag_news" / "ag_news.csv", "test")
    assert choose_headline(ag_news, 4).metric == "accuracy"
