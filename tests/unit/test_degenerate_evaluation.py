"""Evaluations that the data does not allow are reported as not computable, with the reason,
instead of failing the run after its expensive steps or scoring a model that saw nothing."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tdd_priv.evaluate import LabeledTexts, Utility, evaluate, evaluate_texts
from tdd_priv.heads import HeadTraining, LabeledArrays
from tdd_priv.report import schema_errors
from tdd_priv.report.markdown import render_markdown
from tdd_priv.text_models import NotComputable, fit_predict
from tests.report_samples import current_schema, non_private_report

LETTERS = ["a b c", "d e", "f g h", "i j"]
WORDS = ["good movie", "bad film", "great plot", "awful acting"]
TEST = LabeledTexts(["good plot", "bad acting"], np.array([0, 1]))


def test_single_character_tokens_leave_tfidf_no_vocabulary() -> None:
    with pytest.raises(NotComputable, match=r"^empty vocabulary: none of the 4 training texts"):
        fit_predict("tfidf-lr", LETTERS, np.array([0, 1, 0, 1]), TEST.texts, seed=0)
    predicted = fit_predict("tfidf-lr", WORDS, np.array([0, 1, 0, 1]), TEST.texts, seed=0)
    assert predicted.shape == (2,)


def test_a_single_class_or_no_examples_is_not_computable() -> None:
    with pytest.raises(NotComputable, match="a single class: all 4 training examples"):
        fit_predict("tfidf-lr", WORDS, np.array([1, 1, 1, 1]), TEST.texts, seed=0)
    with pytest.raises(NotComputable, match="no training examples"):
        fit_predict("tfidf-lr", [], np.zeros(0, dtype=np.int64), TEST.texts, seed=0)


def _entry(utility: Utility) -> dict[str, Any]:
    return utility.to_json()


def _valid_in_a_report(entry: dict[str, Any]) -> list[str]:
    report = current_schema(non_private_report())
    report["utility"]["random"] = entry
    return schema_errors(report)


def test_text_models_report_why_they_are_not_computable() -> None:
    (scores,) = evaluate_texts(
        lambda _: LabeledTexts(LETTERS, np.array([0, 1, 0, 1])),
        TEST,
        models=["tfidf-lr"],
        seeds=3,
        seed=0,
        varies_with_seed=True,
    )
    assert scores.accuracies == ()
    assert scores.not_computable is not None
    assert scores.not_computable.startswith("empty vocabulary")
    assert scores.not_computable.endswith("(model 1 of 3)")
    train = LabeledArrays.from_labels(np.eye(4, 8, dtype=np.float32), np.array([0, 1, 0, 1]), 2)
    test = LabeledArrays.from_labels(np.eye(2, 8, dtype=np.float32), np.array([0, 1]), 2)
    utility = evaluate(
        lambda _: train,
        test,
        heads=["linear"],
        seeds=1,
        seed=0,
        training=HeadTraining(steps=5),
        progress=False,
    ).with_text_models((scores,))
    entry = _entry(utility)
    assert entry["n_models"] == 1  # text models are not in the aggregate
    assert entry["cross_architecture"]["tfidf-lr"] == {"not_computable": scores.not_computable}
    assert _valid_in_a_report(entry) == []


def test_heads_trained_on_an_empty_set_are_not_computable_not_scored() -> None:
    empty = LabeledArrays(np.zeros((0, 8), np.float32), np.zeros((0, 2), np.float32))
    test = LabeledArrays.from_labels(np.eye(2, 8, dtype=np.float32), np.array([0, 1]), 2)
    utility = evaluate(
        lambda _: empty,
        test,
        heads=["linear", "mlp"],
        seeds=2,
        seed=0,
        training=HeadTraining(steps=5),
        progress=False,
    )
    entry = _entry(utility)
    assert "accuracy_mean" not in entry
    assert entry["n_models"] == 0
    assert entry["not_computable"] == "no training examples: the set is empty"
    assert "by_head" not in entry  # no per-head numbers for readers to mistake for scores
    assert utility.by_head[1].not_computable == entry["not_computable"]
    assert _valid_in_a_report(entry) == []


def test_the_schema_refuses_an_entry_with_neither_accuracy_nor_reason() -> None:
    assert _valid_in_a_report({"n_models": 0}) != []
    assert _valid_in_a_report({"not_computable": "x", "n_models": 2}) != []
    model_without_either = {
        "accuracy_mean": 0.5,
        "accuracy_std": 0.0,
        "n_models": 1,
        "cross_architecture": {"tfidf-lr": {}},
    }
    assert _valid_in_a_report(model_without_either) != []


def test_the_utility_section_shows_not_computable_with_the_reason() -> None:
    report = non_private_report()
    reason = "empty vocabulary: none of the 10 training texts has a word"
    for key in ("synthetic", "random"):
        report["utility"][key]["cross_architecture"] = {"tfidf-lr": {"not_computable": reason}}
    report["utility"]["full_data"]["cross_architecture"] = {
        "tfidf-lr": {"accuracy_mean": 0.75, "accuracy_std": 0.0, "accuracies": [0.75]}
    }
    markdown = render_markdown(report)
    utility = markdown[markdown.index("Utility") :]
    assert "tfidf-lr (texts)" in utility
    assert "| not computable |" in utility and "| 0.750 |" in utility
    assert "Not computable on this data" in utility
    assert f"tfidf-lr on synthetic (vectors), random k / class: {reason}" in utility
