"""Leakage: exact and near duplicates of every labeled row, per part, without ids; and the
distance-to-closest-record permutation test."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

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
from tests.unit.test_audit_membership import _coreset_run, _Records, _Release, _Run

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


def test_ngram_jaccard_reads_records_in_chunks_with_the_same_answer() -> None:
    rng = np.random.default_rng(4)
    words = [f"w{i}" for i in range(60)]
    records = [" ".join(rng.choice(words, size=rng.integers(3, 12))) for _ in range(90)]
    records += [records[5]] * 3  # ties: the first record wins, as one argmax would
    queries = [records[i][:-1] + "z" for i in range(0, 40, 4)] + [records[5], "zzzzzz", "x"]
    whole = nearest_by_ngram_jaccard(queries, records, record_chunk=10_000)
    assert whole.index[len(queries) - 3] == 5 and whole.similarity[-2] == 0.0
    for record_chunk in (1, 7, 64):
        chunked = nearest_by_ngram_jaccard(queries, records, record_chunk=record_chunk)
        np.testing.assert_array_equal(chunked.similarity, whole.similarity)
        np.testing.assert_array_equal(chunked.index, whole.index)


def test_cosine_nearest() -> None:
    records = np.eye(3)
    nearest = nearest_by_cosine(np.array([[0.0, 2.0, 0.1], [1.0, 0.0, 1.0]]), records, chunk=2)
    assert nearest.index.tolist()[0] == 1
    assert nearest.similarity[0] == pytest.approx(2 / np.sqrt(4.01))
    assert nearest.similarity[1] == pytest.approx(1 / np.sqrt(2))


def test_distance_test_is_calm_for_independent_and_loud_for_copied_releases() -> None:
    rng = np.random.default_rng(0)
    members, held_out = rng.normal(size=(700, 16)), rng.normal(size=(300, 16))
    released = rng.normal(size=(200, 16))
    independent = distance_to_closest_record(released, members, held_out, seed=3)
    assert independent.expected_share == pytest.approx(0.7, abs=0.02)
    assert abs(independent.nearest_is_member_share - 0.7) < 0.1
    assert independent.p_value > 0.01 and independent.p_value_floor < 0.01
    assert independent == distance_to_closest_record(released, members, held_out, seed=3)
    copied = distance_to_closest_record(members[:50], members, held_out)
    assert copied.nearest_is_member_share == 1.0
    assert copied.p_value == pytest.approx(1 / 1000)  # (1 + 0) / (999 + 1)
    assert copied.median_distance_to_members == pytest.approx(0.0, abs=1e-9)


def test_distance_test_counts_records_not_released_texts() -> None:
    # 60 released texts that are all near ONE member are one piece of evidence, not 60: with
    # 70 % members, that record is a member by chance 70 % of the time. A binomial test over the
    # texts would say p = 0.7^60.
    rng = np.random.default_rng(1)
    members, held_out = rng.normal(size=(700, 16)), rng.normal(size=(300, 16))
    clones = members[:1] + 0.01 * rng.normal(size=(60, 16))
    test = distance_to_closest_record(clones, members, held_out)
    assert test.nearest_is_member_share == 1.0 and test.nearest_records == 1
    assert test.p_value == pytest.approx(0.7, abs=0.05)
    assert test.p_value_floor == test.p_value  # it cannot get smaller for this release
    # 10 released texts equal to 10 distinct members: the smallest p is about 0.7^10 = 0.028,
    # so this release cannot show dependence at 0.01; the floor says so.
    ten = distance_to_closest_record(members[:10], members, held_out)
    assert ten.p_value == ten.p_value_floor and 0.015 < ten.p_value_floor < 0.045


def test_distance_test_permutes_within_classes() -> None:
    # Membership rates differ by class (class 0: 90 % members, class 1: 10 %). A release of
    # class-0-like texts, independent of which class-0 records are members, is not evidence of
    # dependence on membership; unstratified, it would be.
    rng = np.random.default_rng(2)
    centers = np.eye(16)[:2] * 4
    labels = np.repeat([0, 1], 500)
    records = centers[labels] + rng.normal(size=(1000, 16))
    is_member = np.where(labels == 0, rng.random(1000) < 0.9, rng.random(1000) < 0.1)
    released = centers[0] + rng.normal(size=(100, 16))
    members, held_out = records[is_member], records[~is_member]
    member_labels, held_out_labels = labels[is_member], labels[~is_member]
    stratified = distance_to_closest_record(
        released,
        members,
        held_out,
        member_labels=member_labels,
        held_out_labels=held_out_labels,
    )
    pooled = distance_to_closest_record(released, members, held_out)
    assert stratified.expected_share == pytest.approx(0.9, abs=0.03)
    assert stratified.p_value > 0.05
    assert pooled.p_value < 0.01


def _labeled_run() -> _Run:
    """A run whose members' texts are known, with an internal pool and canaries."""
    run = _coreset_run(released=10)
    texts = [f"private record text number {i} with details" for i in range(200)]
    members = run.members
    run.members = _Records(members.ids, tuple(texts), members.embeddings, members.labels)
    rng = np.random.default_rng(3)
    pool_texts = tuple(f"pool row {i} about a different subject entirely" for i in range(30))
    pool_x = rng.normal(size=(30, 8))
    run.pool = _Records(np.arange(500, 530), pool_texts, pool_x, rng.integers(0, 2, 30))
    run.canaries = SimpleNamespace(
        texts=("a canary text that nobody wrote before",),
        embeddings=rng.normal(size=(1, 8)),
        labels=np.zeros(1, np.int64),
        included=np.ones(1, bool),
    )
    return run


def test_auditor_counts_copies_of_every_part_without_ids_or_texts() -> None:
    run = _labeled_run()
    members, pool = run.members, run.pool
    release = run.release
    run.release = _Release(
        (*members.texts[:8], "private record text number 8 with detail", pool.texts[0]),
        release.labels,
        np.r_[release.text_embeddings[:9], pool.embeddings[:1]],
        release.vectors,
        release.targets,
        source="private",
    )
    section = LeakageAudit()(run)
    assert section["exact_duplicates"] == 9  # 8 members and one pool row
    assert section["near_duplicates"] == 1  # the ninth, one letter short
    assert section["by_part"]["members"]["exact"] == 8
    assert section["by_part"]["internal_pool"] == {
        "records": 30,
        "exact": 1,
        "near": 0,
        "near_ngram": 0,
        "near_embedding": 0,
    }
    assert set(section["by_part"]) == {"members", "held_out", "test", "internal_pool", "canaries"}
    assert section["released"] == 10 and section["release_source"] == "private"
    assert section["may_contain_private_rows"] is True
    worst = section["worst"]
    fields = {"released_index", "closest_part", "ngram_jaccard", "embedding_cosine", "exact"}
    assert len(worst) == 5 and all(set(w) == fields for w in worst)
    assert {w["closest_part"] for w in worst if w["exact"]} <= {"members", "internal_pool"}
    flat = repr(section)
    assert not any(text in flat for text in members.texts)  # never a private text
    assert "private_id" not in flat and "ids" not in flat
    dcr = section["distance_to_closest_record"]
    assert dcr["nearest_is_member_share"] == 0.9 and dcr["permutations"] == 999  # 9 of 10


def test_a_dp_release_from_an_external_pool_cannot_hold_private_rows() -> None:
    run = _labeled_run()
    public = _Release(
        ("a public text", "another public text"),
        np.zeros(2, np.int64),
        np.random.default_rng(4).normal(size=(2, 8)),
        run.release.vectors,
        run.release.targets,
        source="public",
        epsilon=1.0,
    )
    run.release = public
    section = LeakageAudit()(run)
    assert section["may_contain_private_rows"] is False and section["exact_duplicates"] == 0
    # The same texts from the internal pool, or a release without DP, may hold private rows.
    run.release = replace(public, source="internal-pool")
    assert LeakageAudit()(run)["may_contain_private_rows"] is True
    run.release = replace(public, epsilon=None)
    assert LeakageAudit()(run)["may_contain_private_rows"] is True
