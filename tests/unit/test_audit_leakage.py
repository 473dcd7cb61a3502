"""Leakage: exact and near duplicates of private records, and the distance test."""

from __future__ import annotations

import numpy as np
import pytest

from audits.leakage import (
    LeakageAudit,
    distance_to_closest_record,
    exact_matches,
    nearest_by_cosine,
    nearest_by_ngram_jaccard,
    normalize_text,
)
from tests.unit.test_audit_membership import _coreset_run, _Records, _Release

PRIVATE = [
    "The patient reported chest pain after running.",
    "My order #1234 never arrived, please refund.",
    "Ticket about a broken login page on mobile.",
]


def test_normalisation_and_exact_matches() -> None:
    assert normalize_text("  The\tPATIENT  reported\u00a0pain ") == "the patient reported pain"
    released = ["the patient reported chest pain after running.", "something else", PRIVATE[2]]
    assert exact_matches(released, PRIVATE) == [(0, 0), (2, 2)]


def test_ngram_jaccard_finds_near_copies_and_matches_a_direct_count() -> None:
    released = ["My order #1234 never arrived, please refund!", "completely unrelated words"]
    nearest = nearest_by_ngram_jaccard(released, PRIVATE, n=5)
    assert nearest.index[0] == 1 and nearest.similarity[0] > 0.8
    assert nearest.similarity[1] < 0.1

    def grams(text: str) -> set[str]:
        text = normalize_text(text)
        return {text[i : i + 5] for i in range(len(text) - 4)}

    a, b = grams(released[0]), grams(PRIVATE[1])
    assert nearest.similarity[0] == pytest.approx(len(a & b) / len(a | b))


def test_cosine_nearest() -> None:
    records = np.eye(3)
    nearest = nearest_by_cosine(np.array([[0.0, 2.0, 0.1], [1.0, 0.0, 1.0]]), records, chunk=2)
    assert nearest.index.tolist()[0] == 1
    assert nearest.similarity[0] == pytest.approx(2 / np.sqrt(4.01))
    assert nearest.similarity[1] == pytest.approx(1 / np.sqrt(2))


def test_distance_test_is_calm_for_independent_and_loud_for_copied_releases() -> None:
    rng = np.random.default_rng(0)
    members, held_out = rng.normal(size=(700, 16)), rng.normal(size=(300, 16))
    independent = distance_to_closest_record(rng.normal(size=(200, 16)), members, held_out)
    assert independent.expected_share == pytest.approx(0.7)
    assert abs(independent.nearest_is_member_share - 0.7) < 0.1
    assert independent.p_value > 0.01
    copied = distance_to_closest_record(members[:50], members, held_out)
    assert copied.nearest_is_member_share == 1.0 and copied.p_value < 1e-6
    assert copied.median_distance_to_members == pytest.approx(0.0, abs=1e-9)


def test_auditor_counts_copies_and_reports_ids_only() -> None:
    run = _coreset_run(released=10)  # 10 member records released verbatim
    texts = [f"private record text number {i} with details" for i in range(200)]
    members = run.members
    run.members = _Records(members.ids, tuple(texts), members.embeddings, members.labels)
    release = run.release
    run.release = _Release(
        (*texts[:9], "private record text number 9 with detail"),
        release.labels,
        release.text_embeddings,
        release.vectors,
        release.targets,
    )
    section = LeakageAudit()(run)
    assert section["exact_duplicates"] == 9
    assert section["near_duplicates"] == 1  # the tenth, one letter short
    assert section["released"] == 10
    worst = section["worst"]
    assert len(worst) == 5 and {w["private_id"] for w in worst} <= set(range(10))
    flat = repr(section)
    assert not any(text in flat for text in texts)  # ids, never private texts
    assert section["distance_to_closest_record"]["nearest_is_member_share"] == 1.0
