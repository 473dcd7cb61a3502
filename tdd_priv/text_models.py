"""Models that learn from the texts themselves, not from our sentence embeddings.

They judge a released text set by an architecture that had no part in producing it, so a set
tuned to one encoder's geometry cannot look better than it is.

Some training sets do not allow a model at all (texts without a single word TF-IDF counts, a
single class): the model then raises `NotComputable` with the reason, and the evaluation
reports that instead of failing the run after its expensive steps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

__all__ = ["TEXT_MODELS", "NotComputable", "fit_predict"]

# (train texts, train labels (n,), test texts, seed) -> predicted labels (n_test,)
TextModel = Callable[[Sequence[str], np.ndarray, Sequence[str], int], np.ndarray]


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


def _tfidf_logistic_regression(
    texts: Sequence[str], labels: np.ndarray, test_texts: Sequence[str], seed: int
) -> np.ndarray:
    _check_trainable(labels)
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    try:
        features = vectorizer.fit_transform(list(texts))
    except ValueError as error:
        analyze = vectorizer.build_analyzer()
        if any(analyze(text) for text in texts):
            raise
        raise NotComputable(
            f"empty vocabulary: none of the {len(texts)} training texts has a word of two or "
            "more letters or digits, the tokens TF-IDF counts (e.g. texts of single characters)"
        ) from error
    model = LogisticRegression(C=10.0, max_iter=2000, random_state=seed % 2**32)
    model.fit(features, labels)
    return np.asarray(model.predict(vectorizer.transform(list(test_texts))), dtype=np.int64)


TEXT_MODELS: dict[str, TextModel] = {"tfidf-lr": _tfidf_logistic_regression}


def fit_predict(
    name: str, texts: Sequence[str], labels: np.ndarray, test_texts: Sequence[str], *, seed: int
) -> np.ndarray:
    """Train the named text model on (texts, labels) and predict `test_texts`.

    Raises NotComputable when the training set does not allow the model.
    """
    if name not in TEXT_MODELS:
        raise ValueError(f"unknown text model {name!r}; valid: {', '.join(TEXT_MODELS)}")
    return TEXT_MODELS[name](texts, labels, test_texts, seed)
