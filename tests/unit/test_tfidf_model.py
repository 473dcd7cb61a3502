"""TF-IDF + logistic regression on hashed n-grams: the same model as a vocabulary would give,
with a bounded number of features."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

import tdd_priv.text_models as text_models
from tdd_priv.text_models import fit_predict

TOPICS = {
    0: "market stocks shares profit bank trade prices investors",
    1: "match goal team season coach players league win",
    2: "virus patients doctors hospital vaccine health study care",
}


def _texts(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=n)
    common = ["the", "a", "of", "in", "on", "today", "said", "report", "new", "week"]
    texts = [
        " ".join(rng.choice(TOPICS[int(y)].split() + common, size=rng.integers(5, 15)))
        for y in labels
    ]
    return texts, labels


def test_predictions_match_a_vocabulary_model() -> None:
    texts, labels = _texts(300, 0)
    test_texts, _ = _texts(400, 1)
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    model = LogisticRegression(C=10.0, max_iter=2000, random_state=0)
    model.fit(vectorizer.fit_transform(texts), labels)
    expected = model.predict(vectorizer.transform(test_texts))
    predicted = fit_predict("tfidf-lr", texts, labels, test_texts, seed=0)
    assert (predicted == expected).mean() > 0.98


def test_unseen_ngrams_do_not_change_a_prediction() -> None:
    texts, labels = _texts(200, 2)
    test_texts, _ = _texts(100, 3)
    plain = fit_predict("tfidf-lr", texts, labels, test_texts, seed=0)
    padded = [f"{text} zzqx1 zzqx2 zzqx3 zzqx4" for text in test_texts]
    assert np.array_equal(fit_predict("tfidf-lr", texts, labels, padded, seed=0), plain)


def test_features_are_capped_at_the_most_frequent(monkeypatch: pytest.MonkeyPatch) -> None:
    texts, labels = _texts(300, 4)
    test_texts, test_labels = _texts(300, 5)
    fitted: list[int] = []
    fit = LogisticRegression.fit

    def recording_fit(self: LogisticRegression, x: object, y: object) -> LogisticRegression:
        fitted.append(x.shape[1])  # type: ignore[attr-defined]
        return fit(self, x, y)

    monkeypatch.setattr(LogisticRegression, "fit", recording_fit)
    monkeypatch.setattr(text_models, "TFIDF_MAX_FEATURES", 30)
    predicted = fit_predict("tfidf-lr", texts, labels, test_texts, seed=0)
    assert fitted == [30]
    assert (predicted == test_labels).mean() > 0.8  # the topic words are the frequent ones
