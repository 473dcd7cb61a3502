"""Models that learn from the texts themselves, not from our sentence embeddings.

They judge a released text set by an architecture that had no part in producing it, so a set
tuned to one encoder's geometry cannot look better than it is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

__all__ = ["TEXT_MODELS", "fit_predict"]

# (train texts, train labels (n,), test texts, seed) -> predicted labels (n_test,)
TextModel = Callable[[Sequence[str], np.ndarray, Sequence[str], int], np.ndarray]


def _tfidf_logistic_regression(
    texts: Sequence[str], labels: np.ndarray, test_texts: Sequence[str], seed: int
) -> np.ndarray:
    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
        LogisticRegression(C=10.0, max_iter=2000, random_state=seed % 2**32),
    )
    model.fit(list(texts), labels)
    return np.asarray(model.predict(list(test_texts)), dtype=np.int64)


TEXT_MODELS: dict[str, TextModel] = {"tfidf-lr": _tfidf_logistic_regression}


def fit_predict(
    name: str, texts: Sequence[str], labels: np.ndarray, test_texts: Sequence[str], *, seed: int
) -> np.ndarray:
    """Train the named text model on (texts, labels) and predict `test_texts`."""
    if name not in TEXT_MODELS:
        raise ValueError(f"unknown text model {name!r}; valid: {', '.join(TEXT_MODELS)}")
    return TEXT_MODELS[name](texts, labels, test_texts, seed)
