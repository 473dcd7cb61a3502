"""`finetune` in the evaluation protocol: chosen by name, validated, fitted once per seed, capped
with a stated subsample, trained by DP-SGD for the baseline, and shown in its own column."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from tdd_priv.cli import _parser, _run_config
from tdd_priv.comparison import finetune_settings, fixed_set
from tdd_priv.config import EvalConfig, RunConfig
from tdd_priv.errors import ConfigError
from tdd_priv.evaluate import LabeledTexts, evaluate_texts
from tdd_priv.heads import LabeledArrays
from tdd_priv.report.markdown import render_markdown
from tdd_priv.text_models import TEXT_MODELS, TextModel, TextTraining
from tests.report_samples import non_private_report

TEST = LabeledTexts(["a", "b"], np.array([0, 1]))


def _spy(calls: list[TextTraining]) -> TextModel:
    def fit_predict(training: TextTraining, test_texts: Sequence[str]) -> np.ndarray:
        calls.append(training)
        return np.zeros(len(test_texts), dtype=np.int64)

    return TextModel(fit_predict, seeded=True, max_train=lambda s: s.max_train_texts)


def test_a_seeded_text_model_is_fitted_once_per_seed_even_on_a_fixed_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[TextTraining] = []
    monkeypatch.setitem(TEXT_MODELS, "spy", _spy(calls))
    texts = LabeledTexts(["x", "y", "z", "w"], np.array([0, 1, 0, 1]))
    (scores,) = evaluate_texts(
        lambda _: texts, TEST, models=["spy"], seeds=3, seed=0, varies_with_seed=False
    )
    assert len(calls) == 3 and len({call.seed for call in calls}) == 3
    assert scores.accuracies == (0.5, 0.5, 0.5) and scores.note is None


def test_a_set_over_the_cap_is_subsampled_per_model_and_the_note_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[TextTraining] = []
    monkeypatch.setitem(TEXT_MODELS, "spy", _spy(calls))
    labels = np.arange(40) % 2
    soft = np.stack([labels * 0.7 + 0.15, 0.85 - labels * 0.7], axis=1).astype(np.float32)
    texts = LabeledTexts([f"text {i}" for i in range(40)], labels, soft)
    settings = finetune_settings(EvalConfig(finetune_max_train=8))
    (scores,) = evaluate_texts(
        lambda _: texts,
        TEST,
        models=["spy"],
        seeds=2,
        seed=0,
        varies_with_seed=False,
        finetune=settings,
    )
    for call in calls:
        assert len(call.texts) == 8 and call.targets is not None
        rows = [int(text.split()[1]) for text in call.texts]  # rows keep text, label, target
        np.testing.assert_array_equal(call.labels, labels[rows])
        np.testing.assert_array_equal(call.targets, soft[rows])
    assert calls[0].texts != calls[1].texts  # each model its own seeded subsample
    assert scores.note == (
        "each model trained on a seeded subsample of 8 of the set's 40 texts (spy trains on at "
        "most 8)"
    )
    assert scores.to_json()["note"] == scores.note


def test_realized_texts_carry_their_soft_labels_to_the_text_models() -> None:
    soft = np.array([[0.9, 0.1], [0.3, 0.7]], dtype=np.float32)
    candidate = fixed_set(LabeledArrays(np.eye(2, 4, dtype=np.float32), soft), ["a", "b"])
    assert candidate.texts is not None
    texts = candidate.texts(0)
    assert texts.targets is not None
    np.testing.assert_array_equal(texts.targets, soft)
    np.testing.assert_array_equal(texts.labels, [0, 1])


def test_finetune_is_chosen_as_a_text_model_on_the_command_line(tmp_path: Path) -> None:
    args = _parser().parse_args(
        [
            "run",
            "--text-models",
            "tfidf-lr,finetune",
            "--finetune-steps",
            "7",
            "--finetune-model",
            str(tmp_path),
            "--out",
            str(tmp_path / "run"),
        ]
    )
    evaluation = _run_config(args).evaluation
    assert evaluation.text_models == ("tfidf-lr", "finetune")
    settings = finetune_settings(evaluation)
    assert settings.training.steps_for(1) == settings.training.steps_for(10_000) == 7
    assert settings.model == str(tmp_path)
    released = RunConfig(out=tmp_path / "run", evaluation=evaluation).released_dict()
    assert released["evaluation"]["finetune_model"] == tmp_path.name  # no local path released


@pytest.mark.parametrize(
    ("evaluation", "expected"),
    [
        (
            {"heads": ["linear", "finetune"]},
            "evaluation.heads[1]: 'finetune' is a text model, not an embedding head; list it in "
            "evaluation.text_models",
        ),
        ({"text_models": ["finetune"], "finetune_model": "./no/such/folder"}, "is not a folder"),
        ({"finetune_steps": 0}, "evaluation.finetune_steps: 0 is below 1"),
        ({"finetune_max_train": 1}, "evaluation.finetune_max_train: 1 is below 2"),
        ({"finetune_model": ""}, "evaluation.finetune_model: '' is empty"),
    ],
)
def test_bad_fine_tuning_settings_are_refused_with_the_fix(
    evaluation: dict[str, object], expected: str
) -> None:
    with pytest.raises(ConfigError, match=None) as caught:
        RunConfig.from_dict({"evaluation": evaluation})
    assert expected in str(caught.value)


def test_the_bundled_checkpoint_and_a_folder_are_accepted(tmp_path: Path) -> None:
    for model in ("all-MiniLM-L6-v2", str(tmp_path)):
        config = RunConfig.from_dict(
            {"evaluation": {"text_models": ["finetune"], "finetune_model": model}}
        )
        assert config.evaluation.finetune_model == model


def test_the_utility_table_shows_finetune_in_its_own_column_with_its_notes() -> None:
    report = non_private_report()
    note = "each model trained on a seeded subsample of 2000 of the set's 5000 texts"
    report["utility"]["full_data"]["cross_architecture"] = {
        "finetune": {
            "accuracy_mean": 0.812,
            "accuracy_std": 0.0,
            "accuracies": [0.812],
            "note": note,
        }
    }
    report["utility"]["random"]["cross_architecture"] = {
        "finetune": {"accuracy_mean": 0.654, "accuracy_std": 0.0, "accuracies": [0.654]}
    }
    markdown = render_markdown(report)
    utility = markdown[markdown.index("## Utility") :]
    utility = utility[: utility.index("\n## ", 4)]
    assert "finetune (texts)" in utility and "| 0.812 |" in utility and "| 0.654 |" in utility
    assert f"finetune on full private train: {note}" in utility
    assert "fine-tunes a pretrained transformer end to end" in utility
