"""Which public texts equal or nearly equal a labeled row: the public pool's hygiene.

A text is *exactly* a labeled row when the two are equal after normalisation (Unicode NFKC,
case folding, whitespace collapsed), and *nearly* one when their sets of character n-grams
(default 5-grams, of the normalised texts) have a Jaccard similarity of at least `threshold`
(default 0.8). Near pairs are found with MinHash locality-sensitive hashing — `bands` bands of
`rows_per_band` hashes each, so that a pair at the threshold becomes a candidate with probability
1 − (1 − 0.8⁵)²⁰ ≈ 0.9996 — and every candidate is confirmed with its exact Jaccard similarity,
so nothing is reported near that is not. The cost is linear in the total number of n-grams, so a
pool of 100k texts checks against 100k labeled rows in seconds.

The reference texts are streamed in chunks: only the queries are indexed (8 bytes per query for
the exact check, `bands` keys per query for the near one), so memory does not grow with the
number of labeled rows (a million labeled rows checked against a 20k-text pool hold ~7 MB of
index plus one chunk's n-grams).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import HashingVectorizer

__all__ = ["Overlap", "find_overlaps", "normalize_text"]

_SPACES = re.compile(r"\s+")
_PRIME = (1 << 61) - 1  # a Mersenne prime: the MinHash family (a·x + b) mod p
CHUNK_SIZE = 20_000  # reference texts shingled at a time (≈ 20 MB of n-grams for short texts)


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


def _shingles(texts: Sequence[str], ngram: int) -> sparse.csr_matrix:
    """Each text's distinct hashed character n-grams (of the normalised text): row i's
    column indices, sorted and unique."""
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
    matrix.sort_indices()
    return matrix


def _row(shingles: sparse.csr_matrix, i: int) -> np.ndarray:
    return shingles.indices[shingles.indptr[i] : shingles.indptr[i + 1]]


def _band_keys(shingles: sparse.csr_matrix, coefficients: np.ndarray, bands: int) -> np.ndarray:
    """(n, bands) uint64 LSH keys: MinHash signatures — for each hash (a·x + b) mod p, the least
    value over a text's n-grams (p where a text has none) — folded band by band into one word."""
    sizes = np.diff(shingles.indptr)
    signatures = np.full((shingles.shape[0], len(coefficients)), _PRIME, dtype=np.uint64)
    if sizes.sum():
        flat = shingles.indices.astype(np.uint64)
        starts = shingles.indptr[:-1][sizes > 0]
        for h, (a, b) in enumerate(coefficients):
            # a < 2^31 and n-gram hashes x < 2^31, so a·x + b < 2^63 never overflows uint64
            values = (np.uint64(a) * flat + np.uint64(b)) % np.uint64(_PRIME)
            signatures[sizes > 0, h] = np.minimum.reduceat(values, starts)
    keys = np.zeros((len(signatures), bands), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for band, part in enumerate(np.split(signatures, bands, axis=1)):
            for column in part.T:
                keys[:, band] = keys[:, band] * np.uint64(1_000_003) + column
    return keys


def _text_hashes(texts: Sequence[str]) -> np.ndarray:
    """64-bit digests of the normalised texts (equality is confirmed on the texts themselves)."""
    return np.fromiter(
        (
            int.from_bytes(
                hashlib.blake2b(normalize_text(t).encode(), digest_size=8).digest(), "little"
            )
            for t in texts
        ),
        dtype=np.uint64,
        count=len(texts),
    )


def _lookup(sorted_keys: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (i, position) with keys[i] == sorted_keys[position]."""
    low = np.searchsorted(sorted_keys, keys, side="left")
    counts = np.searchsorted(sorted_keys, keys, side="right") - low
    rows = np.repeat(np.arange(len(keys)), counts)
    firsts = np.repeat(low - np.cumsum(counts) + counts, counts)
    return rows, firsts + np.arange(counts.sum())


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
    shared = np.intersect1d(a, b, assume_unique=True).size
    return shared / max(a.size + b.size - shared, 1)


@dataclass
class _QueryIndex:
    """The queries not yet matched, indexed for the near check: per band, their keys sorted."""

    texts: list[str]
    positions: np.ndarray  # index into the caller's queries
    orders: list[np.ndarray]  # per band: argsort of the queries' keys
    sorted_keys: list[np.ndarray]  # per band: the keys in that order

    @classmethod
    def build(
        cls,
        texts: list[str],
        positions: np.ndarray,
        coefficients: np.ndarray,
        *,
        ngram: int,
        bands: int,
        chunk_size: int,
    ) -> _QueryIndex:
        keys = np.concatenate(
            [
                _band_keys(_shingles(texts[s : s + chunk_size], ngram), coefficients, bands)
                for s in range(0, len(texts), chunk_size)
            ]
        )
        orders = [np.argsort(keys[:, band], kind="stable") for band in range(bands)]
        return cls(texts, positions, orders, [keys[o, b] for b, o in enumerate(orders)])

    def candidates(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unique (query, reference row) pairs that share a band key, given the references'
        (m, bands) keys; queries as indices into `texts`."""
        pairs = []
        for band, (order, sorted_keys) in enumerate(
            zip(self.orders, self.sorted_keys, strict=True)
        ):
            rows, positions = _lookup(sorted_keys, keys[:, band])
            pairs.append(order[positions].astype(np.int64) * len(keys) + rows)
        unique = np.unique(np.concatenate(pairs))
        return unique // len(keys), unique % len(keys)


def find_overlaps(
    queries: Sequence[str],
    references: Sequence[str],
    *,
    threshold: float = 0.8,
    ngram: int = 5,
    bands: int = 20,
    rows_per_band: int = 5,
    seed: int = 0,
    chunk_size: int = CHUNK_SIZE,
) -> Overlap:
    """Which `queries` equal (after normalisation) or nearly equal (n-gram Jaccard ≥
    `threshold`) some text of `references`. Deterministic for a given `seed`; `references` are
    read `chunk_size` at a time."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must lie in (0, 1], got {threshold}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be ≥ 1, got {chunk_size}")
    exact = np.zeros(len(queries), dtype=bool)
    query_hashes = _text_hashes(queries)
    hash_order = np.argsort(query_hashes, kind="stable")
    sorted_hashes = query_hashes[hash_order]
    del query_hashes
    for start in range(0, len(references), chunk_size):
        chunk = references[start : start + chunk_size]
        for row, position in zip(*_lookup(sorted_hashes, _text_hashes(chunk)), strict=True):
            query = int(hash_order[position])
            if normalize_text(queries[query]) == normalize_text(chunk[int(row)]):
                exact[query] = True
    del hash_order, sorted_hashes
    rest = np.flatnonzero(~exact)
    near = np.zeros(len(queries), dtype=bool)
    if len(rest) and len(references):
        rng = np.random.default_rng([seed, 17])
        hashes = bands * rows_per_band
        coefficients = np.stack(
            [rng.integers(1, 2**31, size=hashes), rng.integers(0, _PRIME, size=hashes)], axis=1
        )
        texts = [queries[i] for i in rest.tolist()]
        index = _QueryIndex.build(
            texts, rest, coefficients, ngram=ngram, bands=bands, chunk_size=chunk_size
        )
        for start in range(0, len(references), chunk_size):
            chunk_shingles = _shingles(references[start : start + chunk_size], ngram)
            found, rows = index.candidates(_band_keys(chunk_shingles, coefficients, bands))
            pending = ~near[index.positions[found]]
            found, rows = found[pending], rows[pending]
            if not len(found):
                continue
            wanted = np.unique(found)
            query_shingles = _shingles([index.texts[i] for i in wanted], ngram)
            slot = {int(q): k for k, q in enumerate(wanted)}
            for query, row in zip(found.tolist(), rows.tolist(), strict=True):
                position = index.positions[query]
                if not near[position] and (
                    _jaccard(_row(query_shingles, slot[query]), _row(chunk_shingles, row))
                    >= threshold
                ):
                    near[position] = True
    return Overlap(np.flatnonzero(exact), np.flatnonzero(near))
