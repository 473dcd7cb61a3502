"""Models that learn from the texts themselves, not from our sentence embeddings.

They judge a released text set by an architecture that had no part in producing it, so a set
tuned to one encoder's geometry cannot look better than it is.

`finetune` is the field's protocol: a pretrained transformer fine-tuned end to end on the texts
(with their soft labels when the set has them; `tdd_priv.finetune`). It depends on the model
seed (initialisation, batch order), so it is fitted once per seed even on a fixed set; TF-IDF +
logistic regression is a function of its data and is fitted once.

Some training sets do not allow a model at all (texts without a single word TF-IDF counts, a
single class): the model then raises `NotComputable` with the reason, and the evaluation
reports that instead of failing the run after its expensive steps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
from sklearn.linear_model import LogisticRegression

from tdd_priv.finetune import DEFAULT_FINETUNE, FinetuneSettings

__all__ = ["TEXT_MODELS", "NotComputable", "TextModel", "TextTraining", "fit_predict"]


@dataclass(frozen=True)
class TextTraining:
    """One model's training set and settings.

    `labels` (n,) int64; `targets` (n, C) float32 soft labels (rows sum to 1) or None for hard
    labels; `finetune`: the fine-tuning checkpoint, hyperparameters and device.
    """

    texts: Sequence[str]
    labels: np.ndarray
    targets: np.ndarray | None
    seed: int
    finetune: FinetuneSettings


@dataclass(frozen=True)
class TextModel:
    """A registered text model.

    `fit_predict(training, test_texts)` -> predicted labels (n_test,) int64. `seeded`: its
    result depends on the model seed, not only on the data (a fixed set is then fitted once per
    seed). `max_train`: the most training texts it is given (None: all); a larger set is
    replaced by a seeded subsample, and the evaluation says so.
    """

    fit_predict: Callable[[TextTraining, Sequence[str]], np.ndarray]
    seeded: bool
    max_train: Callable[[FinetuneSettings], int | None] = lambda _: None


class NotComputable(Exception):
    """This model cannot be trained on this training set; the message says why (it goes into
    report.json as the model's `not_computable`)."""


def _check_trainable(labels: np.ndarray) -> None:
    """Refuse a training set no classifier can be fitted on: empty, or of a single class."""
    present = np.unique(labels)
    if present.size == 0:
        raise NotComputable("no training examples")
    if present.size < 2:
        raise NotComputable(
            f"a single class: all {labels.size} training examples have label {int(present[0])}, "
            "and a classifier needs at least two"
        )


# Word 1–2-grams are hashed into TFIDF_HASH_SPACE columns (no vocabulary is held; a few
# thousand n-grams of a released set rarely share a column), and the model keeps at most
# TFIDF_MAX_FEATURES of them, the most frequent: the solver keeps 20 vectors of features ×
# classes, so a million training texts must not bring millions of features.
TFIDF_HASH_SPACE = 2**22
TFIDF_MAX_FEATURES = 2**18


def _tfidf_logistic_regression(training: TextTraining, test_texts: Sequence[str]) -> np.ndarray:
    texts, labels, seed = training.texts, training.labels, training.seed
    _check_trainable(labels)
    hasher = HashingVectorizer(
        ngram_range=(1, 2), n_features=TFIDF_HASH_SPACE, alternate_sign=False, norm=None
    )
    counts = hasher.transform(texts)
    if counts.nnz == 0:
        raise NotComputable(
            f"empty vocabulary: none of the {len(texts)} training texts has a word of two or "
            "more letters or digits, the tokens TF-IDF counts (e.g. texts of single characters)"
        )
    # Only n-grams seen in training, as with a vocabulary: a test text's unseen n-grams must
    # not weigh in its L2 norm.
    frequency = np.bincount(counts.indices, minlength=TFIDF_HASH_SPACE)  # documents per n-gram
    kept = np.flatnonzero(frequency)
    if len(kept) > TFIDF_MAX_FEATURES:
        kept = np.sort(np.argsort(-frequency, kind="stable")[:TFIDF_MAX_FEATURES])
    # Weighted in place and the full hashed matrix dropped first: on a large set these
    # matrices are hundreds of MB each, and only the weighted one is needed by the solver.
    features = counts[:, kept]
    del counts, frequency
    tfidf = TfidfTransformer(sublinear_tf=True).fit(features)
    features = tfidf.transform(features, copy=False)
    model = LogisticRegression(C=10.0, max_iter=2000, random_state=seed % 2**32)
    model.fit(features, labels)
    test_features = tfidf.transform(hasher.transform(test_texts)[:, kept])
    return np.asarray(model.predict(test_features), dtype=np.int64)


def _finetune(training: TextTraining, test_texts: Sequence[str]) -> np.ndarray:
    from tdd_priv.finetune import finetune_predict  # torch + transformers: load on first use

    labels = np.asarray(training.labels, dtype=np.int64)
    _check_trainable(labels)
    targets = training.targets
    if targets is None:
        targets = np.eye(int(labels.max()) + 1, dtype=np.float32)[labels]
    return finetune_predict(
        training.texts, targets, test_texts, seed=training.seed, settings=training.finetune
    )


TEXT_MODELS: dict[str, TextModel] = {
    "tfidf-lr": TextModel(_tfidf_logistic_regression, seeded=False),
    "finetune": TextModel(
        _finetune, seeded=True, max_train=lambda settings: settings.max_train_texts
    ),
}


def fit_predict(
    name: str,
    texts: Sequence[str],
    labels: np.ndarray,
    test_texts: Sequence[str],
    *,
    seed: int,
    targets: np.ndarray | None = None,
    finetune: FinetuneSettings = DEFAULT_FINETUNE,
) -> np.ndarray:
    """Train the named text model on (texts, labels (n,)) and predict `test_texts` → (n_test,).

    `targets` (n, C): soft labels for the models that use them (`finetune`; TF-IDF + LR uses
    the hard `labels`). Raises NotComputable when the training set does not allow the model.
    """
    if name not in TEXT_MODELS:
        raise ValueError(f"unknown text model {name!r}; valid: {', '.join(TEXT_MODELS)}")
    if targets is not None and (targets.ndim != 2 or len(targets) != len(texts)):
        raise ValueError(f"targets must be (n, C) for {len(texts)} texts, got {targets.shape}")
    training = TextTraining(texts, np.asarray(labels), targets, seed, finetune)
    return TEXT_MODELS[name].fit_predict(training, test_texts)
