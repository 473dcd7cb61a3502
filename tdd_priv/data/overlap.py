"""Which public texts equal or nearly equal a labeled row: the public pool's hygiene.

A text is *exactly* a labeled row when the two are equal after normalisation (Unicode NFKC,
case folding, whitespace collapsed), and *nearly* one when their sets of character n-grams
(default 5-grams, of the normalised texts) have a Jaccard similarity of at least `threshold`
(default 0.8). Near pairs are found with MinHash locality-sensitive hashing — `bands` bands of
`rows_per_band` hashes each, so that a pair at the threshold becomes a candidate with probability
1 − (1 − 0.8⁵)²⁰ ≈ 0.9996 — and every candidate is confirmed with its exact Jaccard similarity,
so nothing is reported near that is not. The cost is linear in the total number of n-grams, so a
pool of 100k texts checks against 100k labeled rows in seconds.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.feature_extraction.text import HashingVectorizer

__all__ = ["Overlap", "find_overlaps", "normalize_text"]

_SPACES = re.compile(r"\s+")
_PRIME = (1 << 61) - 1  # a Mersenne prime: the MinHash family (a·x + b) mod p


def normalize_text(text: str) -> str:
    """NFKC, case-folded, whitespace collapsed and stripped."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


@dataclass(frozen=True)
class Overlap:
    """Indices (sorted, int64) of the query texts that equal a reference text after
    normalisation (`exact`), and of the others whose n-gram Jaccard similarity to some
    reference text reaches the threshold (`near`)."""

    exact: np.ndarray
    near: np.ndarray

    @property
    def rows(self) -> np.ndarray:
        """Every overlapping query index, sorted."""
        return np.union1d(self.exact, self.near)


def _shingles(texts: Sequence[str], ngram: int) -> list[np.ndarray]:
    """Each text's distinct hashed character n-grams (of the normalised text) as uint64."""
    vectorizer = HashingVectorizer(
        analyzer="char",
        ngram_range=(ngram, ngram),
        n_features=2**31 - 1,
        alternate_sign=False,
        norm=None,
        binary=True,
        preprocessor=normalize_text,
    )
    padded = [text if len(text) >= ngram else text.ljust(ngram) for text in texts]
    matrix = vectorizer.transform(padded).tocsr()
    return [
        matrix.indices[matrix.indptr[i] : matrix.indptr[i + 1]].astype(np.uint64)
        for i in range(matrix.shape[0])
    ]


def _signatures(shingles: list[np.ndarray], coefficients: np.ndarray) -> np.ndarray:
    """(n, H) MinHash signatures: for each hash (a·x + b) mod p, the least value over a text's
    n-grams (p where a text has none)."""
    sizes = np.array([len(s) for s in shingles])
    signatures = np.full((len(shingles), len(coefficients)), _PRIME, dtype=np.uint64)
    if not sizes.sum():
        return signatures
    flat = np.concatenate(shingles)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])[sizes > 0]
    for h, (a, b) in enumerate(coefficients):
        # a < 2^31 and n-gram hashes x < 2^31, so a·x + b < 2^63 never overflows uint64
        values = (np.uint64(a) * flat + np.uint64(b)) % np.uint64(_PRIME)
        signatures[sizes > 0, h] = np.minimum.reduceat(values, starts)
    return signatures


def _band_keys(signatures: np.ndarray, band: int, width: int) -> np.ndarray:
    """(n,) uint64 key of one band: its `width` hashes folded into one word."""
    part = signatures[:, band * width : (band + 1) * width]
    keys = np.zeros(len(signatures), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for column in part.T:
            keys = keys * np.uint64(1_000_003) + column
    return keys


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
    shared = np.intersect1d(a, b, assume_unique=True).size
    return shared / max(a.size + b.size - shared, 1)


def find_overlaps(
    queries: Sequence[str],
    references: Sequence[str],
    *,
    threshold: float = 0.8,
    ngram: int = 5,
    bands: int = 20,
    rows_per_band: int = 5,
    seed: int = 0,
) -> Overlap:
    """Which `queries` equal (after normalisation) or nearly equal (n-gram Jaccard ≥
    `threshold`) some text of `references`. Deterministic for a given `seed`."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must lie in (0, 1], got {threshold}")
    reference_keys = {normalize_text(text) for text in references}
    exact = np.array(
        [i for i, text in enumerate(queries) if normalize_text(text) in reference_keys],
        dtype=np.int64,
    )
    rest = np.setdiff1d(np.arange(len(queries)), exact)
    if not len(rest) or not len(references):
        return Overlap(exact, np.zeros(0, dtype=np.int64))
    query_shingles = _shingles([queries[i] for i in rest], ngram)
    reference_shingles = _shingles(references, ngram)
    rng = np.random.default_rng([seed, 17])
    hashes = bands * rows_per_band
    coefficients = np.stack(
        [rng.integers(1, 2**31, size=hashes), rng.integers(0, _PRIME, size=hashes)], axis=1
    )
    query_signatures = _signatures(query_shingles, coefficients)
    reference_signatures = _signatures(reference_shingles, coefficients)
    candidates: dict[int, set[int]] = {}
    for band in range(bands):
        query_keys = _band_keys(query_signatures, band, rows_per_band)
        reference_keys_band = _band_keys(reference_signatures, band, rows_per_band)
        order = np.argsort(reference_keys_band, kind="stable")
        sorted_keys = reference_keys_band[order]
        low = np.searchsorted(sorted_keys, query_keys, side="left")
        high = np.searchsorted(sorted_keys, query_keys, side="right")
        for i in np.flatnonzero(high > low):
            candidates.setdefault(int(i), set()).update(order[low[i] : high[i]].tolist())
    near = [
        int(rest[i])
        for i, found in sorted(candidates.items())
        if any(_jaccard(query_shingles[i], reference_shingles[j]) >= threshold for j in found)
    ]
    return Overlap(exact, np.array(near, dtype=np.int64))
