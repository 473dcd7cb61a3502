"""The evaluation protocol: train fresh heads (several seeds each) on a labeled set and test
them on the real test split. Used for the synthetic set and for every baseline alike.

Every model is scored by accuracy, macro-F1, balanced accuracy and its recall on each class
(`score_predictions`); a set's entry holds each as mean ± std over its models. Which of them a
report leads with (the *headline*) depends on the test split's class balance
(`choose_headline`), and a set is only worth something when its headline beats both a
majority-class predictor and chance (`headline_floor`).

A model that the training set does not allow (an empty set; for text models also a single
class or no countable word) is reported as not computable, with the reason, instead of
failing the run after its expensive steps or scoring a model that never saw data."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from sklearn.metrics import precision_recall_fscore_support
from tqdm.auto import tqdm

from tdd_priv.finetune import DEFAULT_FINETUNE, FinetuneSettings, subsample_rows
from tdd_priv.heads import DEFAULT_TRAINING, HeadTraining, LabeledArrays, predict, train_head
from tdd_priv.seeding import derive_seed
from tdd_priv.text_models import TEXT_MODELS, NotComputable, fit_predict

__all__ = [
    "IMBALANCE_SHARE",
    "METRICS",
    "PER_MODEL_KEYS",
    "Floor",
    "HeadScores",
    "Headline",
    "LabeledTexts",
    "ModelScore",
    "TextSetSource",
    "TrainingSetSource",
    "Utility",
    "choose_headline",
    "evaluate",
    "evaluate_texts",
    "headline_floor",
    "majority_class_utility",
    "score_predictions",
]

# Seed -> training set. A fixed set ignores the seed; a random baseline draws a new one per seed.
TrainingSetSource = Callable[[int], LabeledArrays]

Metric = Literal["accuracy", "macro_f1", "balanced_accuracy"]
# The scalar metrics of every model, in report order: report.json key -> name shown to people.
METRICS: dict[str, str] = {
    "accuracy": "accuracy",
    "macro_f1": "macro-F1",
    "balanced_accuracy": "balanced accuracy",
}
# Metric -> the key of its per-model values in report.json (`accuracies` predates the others).
PER_MODEL_KEYS: dict[str, str] = {
    "accuracy": "accuracies",
    "macro_f1": "macro_f1s",
    "balanced_accuracy": "balanced_accuracies",
}


@dataclass(frozen=True)
class LabeledTexts:
    """Texts with labels (n,) int64 and, when the set has them, soft `targets` (n, C)."""

    texts: Sequence[str]
    labels: np.ndarray  # (n,) int64
    targets: np.ndarray | None = None


TextSetSource = Callable[[int], LabeledTexts]


@dataclass(frozen=True)
class ModelScore:
    """One trained model on the test split; every value a fraction in [0, 1].

    `recall`: (C,) recall on each class, None for a class the test split lacks (no recall is
    defined for it). Macro-F1 and balanced accuracy average over the classes the test split
    has, so every model on one test split is averaged over the same classes.
    """

    accuracy: float
    macro_f1: float
    balanced_accuracy: float
    recall: tuple[float | None, ...]

    def value(self, metric: str) -> float:
        """The named metric of METRICS."""
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; valid: {', '.join(METRICS)}")
        return float(getattr(self, metric))


def score_predictions(true: np.ndarray, predicted: np.ndarray, num_classes: int) -> ModelScore:
    """Score predictions (n,) int64 against the true labels (n,) int64 in [0, num_classes).

    A class the model never predicts has precision and F1 0 (sklearn's zero_division=0), not
    an error: that is the failure these metrics exist to show.
    """
    true = np.asarray(true, dtype=np.int64)
    predicted = np.asarray(predicted, dtype=np.int64)
    if true.shape != predicted.shape or true.ndim != 1 or true.size == 0:
        raise ValueError(
            f"expected true and predicted labels of one shape (n,), n >= 1; got {true.shape} "
            f"and {predicted.shape}"
        )
    _, recall, f1, support = precision_recall_fscore_support(
        true, predicted, labels=np.arange(num_classes), zero_division=0
    )
    present = support > 0
    return ModelScore(
        accuracy=float(np.mean(true == predicted)),
        macro_f1=float(np.mean(f1[present])),
        balanced_accuracy=float(np.mean(recall[present])),
        recall=tuple(float(r) if here else None for r, here in zip(recall, present, strict=True)),
    )


def _names(class_names: Sequence[str] | None, num_classes: int) -> list[str]:
    if class_names is None:
        return [str(c) for c in range(num_classes)]
    if len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
    return list(class_names)


def _summary(models: Sequence[ModelScore], class_names: Sequence[str] | None) -> dict[str, Any]:
    """Mean and std over `models` of every metric, and of the recall on each class (classes
    the test split lacks are left out)."""
    summary: dict[str, Any] = {}
    for metric in METRICS:
        values = [m.value(metric) for m in models]
        summary[f"{metric}_mean"] = float(np.mean(values))
        summary[f"{metric}_std"] = float(np.std(values))
    names = _names(class_names, len(models[0].recall))
    by_class: dict[str, dict[str, float]] = {}
    for c, name in enumerate(names):
        values = [r for m in models if (r := m.recall[c]) is not None]
        if values:
            by_class[name] = {"mean": float(np.mean(values)), "std": float(np.std(values))}
    summary["recall_by_class"] = by_class
    summary["min_class_recall_mean"] = min(v["mean"] for v in by_class.values())
    return summary


@dataclass(frozen=True)
class HeadScores:
    """Test scores of one architecture over its seeds.

    `not_computable`: why no model of this architecture could be trained on the set (then
    `models` is empty). `note`: how these models were trained where it differs from the
    protocol's plain reading (a subsample, a DP-SGD fine-tune), for the report.
    """

    head: str
    models: tuple[ModelScore, ...]
    not_computable: str | None = None
    note: str | None = None

    @property
    def accuracies(self) -> tuple[float, ...]:
        return tuple(m.accuracy for m in self.models)

    @property
    def mean(self) -> float:
        """Mean test accuracy."""
        return float(np.mean(self.accuracies))

    @property
    def std(self) -> float:
        return float(np.std(self.accuracies))

    def to_json(self, class_names: Sequence[str] | None = None) -> dict[str, Any]:
        noted = {"note": self.note} if self.note else {}
        if self.not_computable is not None:
            return {"not_computable": self.not_computable, **noted}
        entry = _summary(self.models, class_names)
        for metric, key in PER_MODEL_KEYS.items():
            entry[key] = [m.value(metric) for m in self.models]
        return {**entry, **noted}


@dataclass(frozen=True)
class Utility:
    """Scores over every model of every embedding head; `by_head` keeps the per-head view.

    `cross_architecture` holds models trained on the texts themselves (not in the aggregate).
    """

    by_head: tuple[HeadScores, ...]
    cross_architecture: tuple[HeadScores, ...] = ()

    def with_text_models(self, scores: tuple[HeadScores, ...]) -> Utility:
        return Utility(self.by_head, scores)

    @property
    def models(self) -> tuple[ModelScore, ...]:
        return tuple(m for scores in self.by_head for m in scores.models)

    @property
    def accuracies(self) -> tuple[float, ...]:
        return tuple(m.accuracy for m in self.models)

    def to_json(self, class_names: Sequence[str] | None = None) -> dict[str, Any]:
        """report.json's entry for the set: `accuracy_mean`, `accuracy_std`, `n_models` (the
        contract), the other metrics' means and stds, `recall_by_class` (class name ->
        mean, std), `min_class_recall_mean`, and the same per head and per text model."""
        models = self.models
        summary: dict[str, Any]
        if models:
            summary = _summary(models, class_names)
            summary["n_models"] = len(models)
            summary["by_head"] = {s.head: s.to_json(class_names) for s in self.by_head}
        else:  # no head could be trained on the set: the reason, no per-head numbers
            reasons = dict.fromkeys(s.not_computable for s in self.by_head if s.not_computable)
            summary = {"not_computable": "; ".join(reasons) or "no model", "n_models": 0}
        if self.cross_architecture:
            summary["cross_architecture"] = {
                s.head: s.to_json(class_names) for s in self.cross_architecture
            }
        return summary


def majority_class_utility(
    train_labels: np.ndarray, test_labels: np.ndarray, num_classes: int
) -> Utility:
    """The majority-class predictor: every test row gets the most frequent class of
    `train_labels` (ties: the lowest class id). One "model" (it has no seed); the floor every
    trained set must beat."""
    counts = np.bincount(np.asarray(train_labels, dtype=np.int64), minlength=num_classes)
    majority = int(np.argmax(counts))
    test_labels = np.asarray(test_labels, dtype=np.int64)
    score = score_predictions(test_labels, np.full_like(test_labels, majority), num_classes)
    return Utility((HeadScores("majority-class", (score,)),))


# A class whose share of the test split is below this fraction of a balanced share (1/C) makes
# the headline macro-F1: a model that never predicts that class loses less than half a balanced
# class's worth of accuracy, so accuracy barely registers the failure (13 % positives: predicting
# none of them still scores 0.87), while macro-F1 counts every class as 1/C of the score.
IMBALANCE_SHARE = 0.5


@dataclass(frozen=True)
class Headline:
    """The metric a report leads with, and why (`reason`, words for people that follow
    "headline metric: macro-F1, because ...")."""

    metric: Metric
    reason: str
    rarest_class: str
    rarest_share: float  # the rarest class's fraction of the test split

    def to_json(self) -> dict[str, Any]:
        return {
            "headline_metric": self.metric,
            "headline_reason": self.reason,
            "rarest_class": self.rarest_class,
            "rarest_class_share": self.rarest_share,
        }


def choose_headline(
    test_labels: np.ndarray, num_classes: int, class_names: Sequence[str] | None = None
) -> Headline:
    """Macro-F1 when the rarest class's share of the test split is below IMBALANCE_SHARE / C
    (the classes are imbalanced), else accuracy."""
    names = _names(class_names, num_classes)
    labels = np.asarray(test_labels, dtype=np.int64)
    if labels.size == 0:
        raise ValueError("the test split is empty: no metric can be chosen or measured")
    shares = np.bincount(labels, minlength=num_classes) / labels.size
    rarest = int(np.argmin(shares))
    share, threshold = float(shares[rarest]), IMBALANCE_SHARE / num_classes
    where = (
        f"the rarest class ({names[rarest]}) is {share:.1%} of the test split; half a "
        f"balanced share (1/{num_classes} ÷ 2) is {threshold:.1%}"
    )
    if share < threshold:
        reason = (
            f"the classes are imbalanced: {where}. Accuracy would hide how the rare class is "
            "predicted; macro-F1 weighs every class equally"
        )
        return Headline("macro_f1", reason, names[rarest], share)
    reason = f"the classes are balanced enough: {where}"
    return Headline("accuracy", reason, names[rarest], share)


FloorSource = Literal["majority_class", "chance"]


@dataclass(frozen=True)
class Floor:
    """What a set's headline must beat to be worth anything: the majority-class predictor's
    score, or chance (1/C for macro-F1 and balanced accuracy), whichever is higher."""

    metric: Metric
    value: float
    source: FloorSource

    def statement(self) -> str:
        name = METRICS[self.metric]
        if self.source == "majority_class":
            return f"{name} of the majority-class predictor, {self.value:.3f}"
        return f"chance {name}, 1/C = {self.value:.3f}"

    def reached(self, value: float) -> bool:
        """True when `value` does not beat the floor (a small tolerance for float noise)."""
        return value <= self.value + 1e-9

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "source": self.source, "statement": self.statement()}


def headline_floor(
    metric: Metric, majority: Utility | None, test_labels: np.ndarray, num_classes: int
) -> Floor:
    """The floor for `metric` on this test split: the majority-class predictor's score (when
    given) and chance. Chance is 1/C' for macro-F1 and balanced accuracy (C' the classes the
    test split has: a constant or uniformly random predictor scores at most that) and 1/C' for
    accuracy too, which the majority class always reaches."""
    present = int(np.count_nonzero(np.bincount(test_labels, minlength=num_classes)))
    chance = Floor(metric, 1.0 / max(present, 1), "chance")
    if majority is None or not majority.models:
        return chance
    by_majority = Floor(metric, majority.models[0].value(metric), "majority_class")
    return by_majority if by_majority.value >= chance.value else chance


def evaluate(
    training_set: TrainingSetSource,
    test: LabeledArrays,
    *,
    heads: Sequence[str],
    seeds: int,
    seed: int,
    training: HeadTraining = DEFAULT_TRAINING,
    label: str = "evaluate",
    progress: bool = True,
    device: torch.device | str = "cpu",
) -> Utility:
    """Train `seeds` fresh models per head on `training_set(model_seed)`; score each on `test`
    (its C = `test.num_classes` classes).

    The heads train on `device` (see tdd_priv.device: CUDA results are not bit-identical)."""
    test_labels = test.labels
    jobs = [(head, i) for head in heads for i in range(seeds)]
    scores: dict[str, list[ModelScore]] = {head: [] for head in heads}
    reasons: dict[str, str] = {}
    for head, i in tqdm(jobs, desc=label, unit="model", disable=not progress, leave=False):
        if head in reasons:
            continue
        model_seed = derive_seed(seed, "model", i)
        data = training_set(model_seed)
        if len(data.x) == 0:  # a head trained on nothing would score its random start
            reasons[head] = "no training examples: the set is empty"
            continue
        model = train_head(head, data, seed=model_seed, training=training, device=device)
        predicted = predict(model, test.x)
        scores[head].append(score_predictions(test_labels, predicted, test.num_classes))
    return Utility(
        tuple(
            HeadScores(head, () if head in reasons else tuple(scores[head]), reasons.get(head))
            for head in heads
        )
    )


def evaluate_texts(
    training_set: TextSetSource,
    test: LabeledTexts,
    *,
    models: Sequence[str],
    seeds: int,
    seed: int,
    varies_with_seed: bool,
    finetune: FinetuneSettings = DEFAULT_FINETUNE,
    num_classes: int | None = None,
) -> tuple[HeadScores, ...]:
    """Text models (see `tdd_priv.text_models`) trained on `training_set(model_seed)`, scored
    on `test` over `num_classes` classes (default: the highest test label + 1).

    A model that depends only on its data (TF-IDF + LR) is fitted once on a fixed set; a seeded
    one (`finetune`) once per seed. A set larger than the model's `max_train` is replaced by a
    seeded subsample of that size, and the scores' note says so.
    """
    classes = int(np.max(test.labels)) + 1 if num_classes is None else num_classes
    scores = []
    for name in models:
        model = TEXT_MODELS[name]
        repeats = seeds if varies_with_seed or model.seeded else 1
        cap = model.max_train(finetune)
        model_scores: list[ModelScore] = []
        reason = None
        sizes: set[tuple[int, int]] = set()  # (texts trained on, texts in the set)
        for i in range(repeats):
            model_seed = derive_seed(seed, "model", i)
            data = training_set(model_seed)
            texts, labels, targets = data.texts, np.asarray(data.labels), data.targets
            rows = subsample_rows(len(texts), cap, seed=model_seed) if cap is not None else None
            sizes.add((len(texts) if rows is None else len(rows), len(texts)))
            if rows is not None:
                texts, labels = [texts[r] for r in rows], labels[rows]
                targets = None if targets is None else targets[rows]
            try:
                predicted = fit_predict(
                    name,
                    texts,
                    labels,
                    test.texts,
                    seed=model_seed,
                    targets=targets,
                    finetune=finetune,
                )
            except NotComputable as error:
                reason = str(error) if repeats == 1 else f"{error} (model {i + 1} of {repeats})"
                break
            model_scores.append(score_predictions(test.labels, predicted, classes))
        note = None
        if any(used < total for used, total in sizes):
            used, total = max(sizes)
            note = (
                f"each model trained on a seeded subsample of {used} of the set's {total} texts "
                f"({name} trains on at most {cap})"
            )
        scores.append(HeadScores(name, () if reason else tuple(model_scores), reason, note))
    return tuple(scores)
