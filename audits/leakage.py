"""Leakage: released texts that copy or nearly copy rows of the user's labeled data.

Every released text is compared with every labeled row the run holds, part by part: members,
held-out audit rows, test rows, the internal pool's rows (when the public pool was cut from the
labeled data) and the canaries. Three views of "the same text", from strict to loose:
- exact: equal after normalisation (Unicode NFKC, case folding, whitespace collapsed), by hash;
- near (lexical): Jaccard similarity of character n-gram sets (default 5-grams) at least 0.8;
- near (semantic): cosine similarity of sentence embeddings at least 0.95.
And one distributional test, distance to closest record (DCR): does the release depend on which
records are members? The share of released texts whose nearest record among members ∪ held-out
records is a member is compared with its distribution when the member/held-out labels are
permuted among those records within each class (a permutation test over records: released texts
that share a nearest record are not counted as independent evidence).

The section reports counts, the part each worst case is closest to and the similarities: never
a private text and never a row id.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import HashingVectorizer

__all__ = [
    "DistanceTest",
    "LeakageAudit",
    "Nearest",
    "PartMatches",
    "distance_to_closest_record",
    "exact_matches",
    "match_part",
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
    queries: Sequence[str],
    records: Sequence[str],
    *,
    n: int = 5,
    chunk: int = 64,
    record_chunk: int = 8192,
) -> Nearest:
    """Largest Jaccard similarity |A ∩ B| / |A ∪ B| of character n-gram sets (after
    normalisation) between each query and any record (hashed n-grams; collisions negligible).
    Records are read `record_chunk` at a time (a million records' n-grams would take GBs);
    ties go to the first record, as one argmax over all of them would."""
    if not records:
        return Nearest(np.zeros(len(queries)), np.full(len(queries), -1))
    query_sets = _ngram_sets(queries, n)
    query_sizes = np.asarray(query_sets.sum(axis=1)).ravel()
    best, where = np.full(len(queries), -1.0), np.zeros(len(queries), dtype=np.int64)
    for offset in range(0, len(records), record_chunk):
        record_sets = _ngram_sets(records[offset : offset + record_chunk], n)
        record_sizes = np.asarray(record_sets.sum(axis=1)).ravel()
        for start in range(0, len(queries), chunk):
            overlap = (query_sets[start : start + chunk] @ record_sets.T).toarray()
            union = query_sizes[start : start + chunk, None] + record_sizes[None, :] - overlap
            jaccard = overlap / np.maximum(union, 1)
            top = jaccard.argmax(axis=1)
            similarity = jaccard[np.arange(len(top)), top]
            better = similarity > best[start : start + chunk]
            rows = np.flatnonzero(better) + start
            best[rows] = similarity[better]
            where[rows] = top[better] + offset
    return Nearest(best, where)


def _unit(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)


def nearest_by_cosine(queries: np.ndarray, records: np.ndarray, *, chunk: int = 4096) -> Nearest:
    """Largest cosine similarity between each query row (n, d) and any record row (m, d)."""
    if len(records) == 0:
        return Nearest(np.full(len(queries), -1.0), np.full(len(queries), -1))
    queries = _unit(queries)
    best, where = np.full(len(queries), -np.inf), np.zeros(len(queries), dtype=np.int64)
    for start in range(0, len(records), chunk):  # never a float64 copy of all records
        similarity = queries @ _unit(records[start : start + chunk]).T
        better = similarity.max(axis=1) > best
        best = np.where(better, similarity.max(axis=1), best)
        where = np.where(better, similarity.argmax(axis=1) + start, where)
    return Nearest(best, where)


@dataclass(frozen=True)
class DistanceTest:
    """Distance to closest record of each released text, members vs held-out records.

    nearest_is_member_share: share of released texts whose nearest record (cosine) among
    members ∪ held-out is a member; expected_share: its mean when member/held-out labels are
    permuted among the records within each class; p_value: (1 + #{permutations with a share ≥
    the observed one}) / (permutations + 1); p_value_floor: the p-value had every released text's
    nearest record been a member, the smallest this test can give for this release (at or above
    a threshold, the test cannot fail); nearest_records: how many distinct records are nearest
    to some released text (the test's effective sample size).
    """

    nearest_is_member_share: float
    expected_share: float
    p_value: float
    p_value_floor: float
    permutations: int
    nearest_records: int
    median_distance_to_members: float
    median_distance_to_held_out: float

    def to_json(self) -> dict[str, Any]:
        return {
            "nearest_is_member_share": self.nearest_is_member_share,
            "expected_share": self.expected_share,
            "p_value": self.p_value,
            "p_value_floor": self.p_value_floor,
            "permutations": self.permutations,
            "nearest_records": self.nearest_records,
            "median_distance_to_members": self.median_distance_to_members,
            "median_distance_to_held_out": self.median_distance_to_held_out,
            "test": "permutation of member/held-out labels among the records, within each class",
        }


def _permuted_shares(
    nearest: np.ndarray,
    is_member: np.ndarray,
    labels: np.ndarray,
    *,
    permutations: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """(permutations,) share of released texts whose nearest record is a member, each under a
    random permutation of the member flags among the records of each class.

    Only the records that are nearest to some released text matter: under a permutation within
    a class, their member flags are a draw without replacement from that class's flags, made here
    one record at a time for all permutations at once.
    """
    records, counts = np.unique(nearest, return_counts=True)
    shares = np.zeros(permutations)
    for label in np.unique(labels[records]):
        in_class = labels == label
        remaining = int(in_class.sum())
        members_left = np.full(permutations, is_member[in_class].sum())
        for count in counts[labels[records] == label]:
            drawn = rng.random(permutations) < members_left / remaining
            shares += drawn * count
            members_left = members_left - drawn
            remaining -= 1
    return shares / len(nearest)


def distance_to_closest_record(
    released: np.ndarray,
    members: np.ndarray,
    held_out: np.ndarray,
    *,
    member_labels: np.ndarray | None = None,
    held_out_labels: np.ndarray | None = None,
    permutations: int = 999,
    seed: int = 0,
) -> DistanceTest:
    """The DCR permutation test for released embeddings (m, d) against member (n1, d) and
    held-out (n2, d) embeddings; labels (n1,), (n2,) stratify the permutations by class (None:
    one stratum). Distances are cosine distances, 1 − cosine similarity. Seeded."""
    if len(released) == 0 or len(members) == 0 or len(held_out) == 0:
        raise ValueError("the distance test needs released, member and held-out records")
    if permutations < 1:
        raise ValueError(f"permutations must be at least 1, got {permutations}")
    to_members = nearest_by_cosine(released, members)
    to_held_out = nearest_by_cosine(released, held_out)
    member_is_nearer = to_members.similarity > to_held_out.similarity
    nearest = np.where(member_is_nearer, to_members.index, len(members) + to_held_out.index)
    is_member = np.arange(len(members) + len(held_out)) < len(members)
    if member_labels is None or held_out_labels is None:
        labels = np.zeros(len(is_member), dtype=np.int64)
    else:
        labels = np.concatenate([np.asarray(member_labels), np.asarray(held_out_labels)])
    shares = _permuted_shares(
        nearest,
        is_member,
        labels,
        permutations=permutations,
        rng=np.random.default_rng([seed, 17]),
    )
    observed = float(member_is_nearer.mean())
    tolerance = 1e-12  # shares are sums of counts / m: equal values must compare equal

    def p_value(share: float) -> float:
        return float((1 + np.sum(shares >= share - tolerance)) / (permutations + 1))

    return DistanceTest(
        nearest_is_member_share=observed,
        expected_share=float(shares.mean()),
        p_value=p_value(observed),
        p_value_floor=p_value(1.0),
        permutations=permutations,
        nearest_records=int(np.unique(nearest).size),
        median_distance_to_members=float(np.median(1.0 - to_members.similarity)),
        median_distance_to_held_out=float(np.median(1.0 - to_held_out.similarity)),
    )


@dataclass(frozen=True)
class PartMatches:
    """The released texts (m,) against one part of the labeled rows: exact (m,) bool, and the
    best n-gram Jaccard and embedding cosine (m,) against any row of the part."""

    records: int
    exact: np.ndarray
    ngram_jaccard: np.ndarray
    embedding_cosine: np.ndarray

    def near(self, *, jaccard: float, cosine: float) -> tuple[np.ndarray, np.ndarray]:
        """(near by n-grams, near by embeddings), each (m,) bool and excluding exact matches."""
        return (
            (self.ngram_jaccard >= jaccard) & ~self.exact,
            (self.embedding_cosine >= cosine) & ~self.exact,
        )


def match_part(
    texts: Sequence[str],
    embeddings: np.ndarray,
    record_texts: Sequence[str],
    record_embeddings: np.ndarray,
    *,
    ngram: int = 5,
) -> PartMatches:
    """Released texts (m,) and embeddings (m, d) against one part's rows (n,) and (n, d)."""
    exact = np.zeros(len(texts), dtype=bool)
    exact[[i for i, _ in exact_matches(texts, record_texts)]] = True
    lexical = nearest_by_ngram_jaccard(texts, record_texts, n=ngram)
    semantic = nearest_by_cosine(embeddings, record_embeddings)
    return PartMatches(len(record_texts), exact, lexical.similarity, semantic.similarity)


def _labeled_parts(context: Any) -> dict[str, tuple[Sequence[str], np.ndarray]]:
    """Part name -> (texts, embeddings) of every labeled row the run holds."""
    parts = {
        "members": context.members,
        "held_out": context.nonmembers,
        "test": context.test,
        "internal_pool": context.pool,
        "canaries": context.canaries,
    }
    return {
        name: (records.texts, records.embeddings)
        for name, records in parts.items()
        if records is not None and len(records.texts)
    }


class LeakageAudit:
    """Released texts against every labeled row (members, held-out, test, internal pool,
    canaries): exact and near duplicates per part, and the distance-to-closest-record
    permutation test. Reports counts, parts and similarities: no texts, no row ids."""

    name = "leakage"

    def __init__(
        self,
        *,
        jaccard_threshold: float = 0.8,
        cosine_threshold: float = 0.95,
        ngram: int = 5,
        worst: int = 5,
        permutations: int = 999,
    ) -> None:
        self.jaccard_threshold = jaccard_threshold
        self.cosine_threshold = cosine_threshold
        self.ngram = ngram
        self.worst = worst
        self.permutations = permutations

    def __call__(self, context: Any) -> dict[str, Any]:
        release = context.release
        m = len(release.texts)
        parts = {
            name: match_part(
                release.texts, release.text_embeddings, texts, embeddings, ngram=self.ngram
            )
            for name, (texts, embeddings) in _labeled_parts(context).items()
        }
        exact = np.zeros(m, dtype=bool)
        near_lexical, near_semantic = np.zeros(m, dtype=bool), np.zeros(m, dtype=bool)
        by_part: dict[str, dict[str, int]] = {}
        for name, matches in parts.items():
            lexical, semantic = matches.near(
                jaccard=self.jaccard_threshold, cosine=self.cosine_threshold
            )
            exact |= matches.exact
            near_lexical |= lexical
            near_semantic |= semantic
            by_part[name] = {
                "records": matches.records,
                "exact": int(matches.exact.sum()),
                "near": int((lexical | semantic).sum()),
                "near_ngram": int(lexical.sum()),
                "near_embedding": int(semantic.sum()),
            }
        near_lexical &= ~exact
        near_semantic &= ~exact
        section: dict[str, Any] = {
            "released": m,
            "release_source": release.source,
            "may_contain_private_rows": bool(release.may_contain_private_rows),
            "exact_duplicates": int(exact.sum()),
            "near_duplicates": int((near_lexical | near_semantic).sum()),
            "near_duplicates_ngram": int(near_lexical.sum()),
            "near_duplicates_embedding": int(near_semantic.sum()),
            "by_part": by_part,
            "thresholds": {
                "ngram_jaccard": self.jaccard_threshold,
                "embedding_cosine": self.cosine_threshold,
                "ngram": self.ngram,
            },
            "worst": self._worst(parts, m),
        }
        nonmembers = context.nonmembers
        if len(nonmembers.embeddings) and len(context.members.embeddings) and m:
            section["distance_to_closest_record"] = distance_to_closest_record(
                release.text_embeddings,
                context.members.embeddings,
                nonmembers.embeddings,
                member_labels=context.members.labels,
                held_out_labels=nonmembers.labels,
                permutations=self.permutations,
                seed=context.seed,
            ).to_json()
        return section

    def _worst(self, parts: dict[str, PartMatches], m: int) -> list[dict[str, Any]]:
        """The released texts closest to some labeled row: index, part, similarities."""
        if not parts or m == 0:
            return []
        names = list(parts)
        # (parts, m): exact matches first, then the larger of the two similarities
        severity = np.stack(
            [
                np.maximum(p.ngram_jaccard, p.embedding_cosine) + 2.0 * p.exact
                for p in parts.values()
            ]
        )
        closest = severity.argmax(axis=0)
        order = np.argsort(-severity.max(axis=0), kind="stable")[: self.worst]
        return [
            {
                "released_index": int(i),
                "closest_part": names[closest[i]],
                "ngram_jaccard": float(parts[names[closest[i]]].ngram_jaccard[i]),
                "embedding_cosine": float(parts[names[closest[i]]].embedding_cosine[i]),
                "exact": bool(parts[names[closest[i]]].exact[i]),
            }
            for i in order
        ]
