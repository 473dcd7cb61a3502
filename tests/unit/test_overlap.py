"""Pool hygiene's overlap finder against a brute-force count: no false positives, the near
copies found, and the same answer however the references are chunked."""

from __future__ import annotations

import numpy as np
import pytest

from tdd_priv.data.overlap import find_overlaps, normalize_text

WORDS = [f"w{i:03d}x" for i in range(400)]


def _grams(text: str, n: int = 5) -> set[str]:
    text = normalize_text(text)
    text = text if len(text) >= n else text.ljust(n)
    return {text[i : i + n] for i in range(len(text) - n + 1)}


def _brute_force(queries: list[str], references: list[str]) -> tuple[set[int], dict[int, float]]:
    """Exact matches, and each other query's best Jaccard similarity to any reference."""
    keys = {normalize_text(text) for text in references}
    exact = {i for i, text in enumerate(queries) if normalize_text(text) in keys}
    grams = [_grams(text) for text in references]
    best = {}
    for i, text in enumerate(queries):
        if i not in exact:
            mine = _grams(text)
            best[i] = max(len(mine & other) / len(mine | other) for other in grams)
    return exact, best


@pytest.fixture(scope="module")
def texts() -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(0)
    references = [" ".join(rng.choice(WORDS, size=rng.integers(12, 30))) for _ in range(500)]
    references += [references[3]] * 4  # duplicated references share every band key
    queries = []
    for i in range(60):  # copies that differ only in case and spacing
        queries.append("  " + references[i].upper().replace(" ", "\t "))
    for i in range(60, 140):  # near copies: the last word changed
        words = references[i].split()
        queries.append(" ".join([*words[:-1], "zzzzz"]))
    for i in range(140, 180):  # half the words changed: not near
        words = references[i].split()
        queries.append(" ".join(words[: len(words) // 2] + ["q" * 5] * (len(words) // 2)))
    queries += [" ".join(rng.choice(WORDS, size=20)) for _ in range(120)]  # unrelated
    queries += ["ok", "", references[3]]  # shorter than an n-gram, empty, a duplicated one
    return queries, references


def test_matches_a_brute_force_count(texts: tuple[list[str], list[str]]) -> None:
    queries, references = texts
    overlap = find_overlaps(queries, references)
    exact, best = _brute_force(queries, references)
    assert set(overlap.exact.tolist()) == exact
    assert exact >= set(range(60)) | {len(queries) - 1}
    near = set(overlap.near.tolist())
    assert all(best[i] >= 0.8 for i in near)  # every candidate is confirmed exactly
    # LSH finds a pair at similarity s with probability 1 − (1 − s⁵)²⁰: ≥ 0.99998 above 0.85
    assert {i for i, s in best.items() if s >= 0.85} <= near
    assert set(range(60, 140)) <= near and not near & set(range(140, 180))
    assert overlap.rows.tolist() == sorted(exact | near)


def test_the_answer_does_not_depend_on_chunking(texts: tuple[list[str], list[str]]) -> None:
    queries, references = texts
    whole = find_overlaps(queries, references)
    for chunk_size in (1, 7, 10_000):
        chunked = find_overlaps(queries, references, chunk_size=chunk_size)
        assert np.array_equal(chunked.exact, whole.exact)
        assert np.array_equal(chunked.near, whole.near)


def test_edge_cases() -> None:
    empty = find_overlaps([], ["a text"])
    assert empty.rows.size == 0
    assert find_overlaps(["a text"], []).rows.size == 0
    assert find_overlaps(["Same Text"], ["same   text"]).exact.tolist() == [0]
    with pytest.raises(ValueError, match="threshold"):
        find_overlaps(["a"], ["a"], threshold=0.0)
    with pytest.raises(ValueError, match="chunk_size"):
        find_overlaps(["a"], ["a"], chunk_size=0)
