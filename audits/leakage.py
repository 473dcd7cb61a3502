"""Leakage: released texts that copy or nearly copy private training records.

Three views of "the same text", from strict to loose:
- exact: equal after normalisation (Unicode NFKC, case folding, whitespace collapsed), by hash;
- near (lexical): Jaccard similarity of character n-gram sets (default 5-grams) at least 0.8;
- near (semantic): cosine similarity of sentence embeddings at least 0.95.
And one distributional test, distance to closest record (DCR): if the release does not depend on
which records are members, a released text's nearest record among members ∪ held-out records is
a member with probability n_members / (n_members + n_held_out). Far more often means leakage.

The section reports counts and the ids of the worst cases (never the private texts).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse, stats
from sklearn.feature_extraction.text import HashingVectorizer

__all__ = [
    "DistanceTest",
    "LeakageAudit",
    "Nearest",
    "distance_to_closest_record",
    "exact_matches",
    "nearest_by_cosine",
    "nearest_by_ngram_jaccard",
    "normalize_text",
    "text_hash",
]

_SPACES = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """NFKC, case-folded, whitespace collapsed and stripped."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def text_hash(text: str) -> str:
    """SHA-256 (hex) of the normalised text."""
    return hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()


def exact_matches(released: Sequence[str], private: Sequence[str]) -> list[tuple[int, int]]:
    """(released index, private index) for every released text equal to a private one after
    normalisation (one private match per released text: the first)."""
    first: dict[str, int] = {}
    for j, text in enumerate(private):
        first.setdefault(text_hash(text), j)
    return [(i, first[h]) for i, h in enumerate(map(text_hash, released)) if h in first]


@dataclass(frozen=True)
class Nearest:
    """For each query row: the best similarity (n,) and the index of the record giving it."""

    similarity: np.ndarray
    index: np.ndarray


def _ngram_sets(texts: Sequence[str], n: int) -> sparse.csr_matrix:
    vectorizer = HashingVectorizer(
        analyzer="char",
        ngram_range=(n, n),
        n_features=2**22,
        alternate_sign=False,
        norm=None,
        binary=True,
        preprocessor=normalize_text,
    )
    return vectorizer.transform([text if len(text) >= n else text.ljust(n) for text in texts])


def nearest_by_ngram_jaccard(
    queries: Sequence[str], records: Sequence[str], *, n: int = 5, chunk: int = 64
) -> Nearest:
    """Largest Jaccard similarity |A ∩ B| / |A ∪ B| of character n-gram sets (after
    normalisation) between each query and any record (hashed n-grams; collisions negligible)."""
    if not records:
        return Nearest(np.zeros(len(queries)), np.full(len(queries), -1))
    record_sets = _ngram_sets(records, n)
    record_sizes = np.asarray(record_sets.sum(axis=1)).ravel()
    best, where = np.zeros(len(queries)), np.zeros(len(queries), dtype=np.int64)
    for start in range(0, len(queries), chunk):
        query_sets = _ngram_sets(queries[start : start + chunk], n)
        query_sizes = np.asarray(query_sets.sum(axis=1)).ravel()
        overlap = (query_sets @ record_sets.T).toarray()
        union = query_sizes[:, None] + record_sizes[None, :] - overlap
        jaccard = overlap / np.maximum(union, 1)
        best[start : start + chunk] = jaccard.max(axis=1)
        where[start : start + chunk] = jaccard.argmax(axis=1)
    return Nearest(best, where)


def _unit(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)


def nearest_by_cosine(queries: np.ndarray, records: np.ndarray, *, chunk: int = 4096) -> Nearest:
    """Largest cosine similarity between each query row (n, d) and any record row (m, d)."""
    if len(records) == 0:
        return Nearest(np.full(len(queries), -1.0), np.full(len(queries), -1))
    records = _unit(records)
    best, where = np.full(len(queries), -np.inf), np.zeros(len(queries), dtype=np.int64)
    for start in range(0, len(records), chunk):
        similarity = _unit(queries) @ records[start : start + chunk].T
        better = similarity.max(axis=1) > best
        best = np.where(better, similarity.max(axis=1), best)
        where = np.where(better, similarity.argmax(axis=1) + start, where)
    return Nearest(best, where)


@dataclass(frozen=True)
class DistanceTest:
    """Distance to closest record of each released text, members vs held-out records.

    nearest_is_member_share: share of released texts whose nearest record (cosine) among
    members ∪ held-out is a member; expected_share: that share if the release did not depend on
    membership; p_value: one-sided binomial test of "more often than expected".
    """

    nearest_is_member_share: float
    expected_share: float
    p_value: float
    median_distance_to_members: float
    median_distance_to_held_out: float

    def to_json(self) -> dict[str, float]:
        return {
            "nearest_is_member_share": self.nearest_is_member_share,
            "expected_share": self.expected_share,
            "p_value": self.p_value,
            "median_distance_to_members": self.median_distance_to_members,
            "median_distance_to_held_out": self.median_distance_to_held_out,
        }


def distance_to_closest_record(
    released: np.ndarray, members: np.ndarray, held_out: np.ndarray
) -> DistanceTest:
    """The DCR test for released embeddings (m, d) against member and held-out embeddings.
    Distances are cosine distances, 1 − cosine similarity."""
    if len(released) == 0 or len(members) == 0 or len(held_out) == 0:
        raise ValueError("the distance test needs released, member and held-out records")
    to_members = nearest_by_cosine(released, members).similarity
    to_held_out = nearest_by_cosine(released, held_out).similarity
    closer = int(np.sum(to_members > to_held_out))
    expected = len(members) / (len(members) + len(held_out))
    return DistanceTest(
        nearest_is_member_share=closer / len(released),
        expected_share=expected,
        p_value=float(stats.binomtest(closer, len(released), expected, "greater").pvalue),
        median_distance_to_members=float(np.median(1.0 - to_members)),
        median_distance_to_held_out=float(np.median(1.0 - to_held_out)),
    )


class LeakageAudit:
    """Exact and near duplicates of private training records among the released texts, and
    the distance-to-closest-record test. Reports counts and ids only."""

    name = "leakage"

    def __init__(
        self,
        *,
        jaccard_threshold: float = 0.8,
        cosine_threshold: float = 0.95,
        ngram: int = 5,
        worst: int = 5,
    ) -> None:
        self.jaccard_threshold = jaccard_threshold
        self.cosine_threshold = cosine_threshold
        self.ngram = ngram
        self.worst = worst

    def __call__(self, context: Any) -> dict[str, Any]:
        members, release = context.members, context.release
        private_ids = np.asarray(members.ids)
        exact = exact_matches(release.texts, members.texts)
        exact_rows = {i for i, _ in exact}
        not_exact = ~np.isin(np.arange(len(release.texts)), list(exact_rows))
        lexical = nearest_by_ngram_jaccard(release.texts, members.texts, n=self.ngram)
        semantic = nearest_by_cosine(release.text_embeddings, members.embeddings)
        near_lexical = (lexical.similarity >= self.jaccard_threshold) & not_exact
        near_semantic = (semantic.similarity >= self.cosine_threshold) & not_exact
        severity = np.maximum(lexical.similarity, semantic.similarity)
        order = np.argsort(-severity, kind="stable")[: self.worst]
        section: dict[str, Any] = {
            "exact_duplicates": len(exact),
            "near_duplicates": int(np.sum(near_lexical | near_semantic)),
            "near_duplicates_ngram": int(near_lexical.sum()),
            "near_duplicates_embedding": int(near_semantic.sum()),
            "released": len(release.texts),
            "thresholds": {
                "ngram_jaccard": self.jaccard_threshold,
                "embedding_cosine": self.cosine_threshold,
                "ngram": self.ngram,
            },
            "worst": [
                {
                    "released_index": int(i),
                    "private_id": int(private_ids[lexical.index[i]])
                    if lexical.similarity[i] >= semantic.similarity[i]
                    else int(private_ids[semantic.index[i]]),
                    "ngram_jaccard": float(lexical.similarity[i]),
                    "embedding_cosine": float(semantic.similarity[i]),
                    "exact": int(i) in exact_rows,
                }
                for i in order
            ],
        }
        if len(context.nonmembers.embeddings) and len(release.text_embeddings):
            section["distance_to_closest_record"] = distance_to_closest_record(
                release.text_embeddings, members.embeddings, context.nonmembers.embeddings
            ).to_json()
        return section
