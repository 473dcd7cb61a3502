import numpy as np
import pytest

from tdd_priv.heads import LabeledArrays, predict, train_head
from tdd_priv.methods import SyntheticSet
from tdd_priv.realize import RealizationInput, realize


def _unit(rows: list[list[float]]) -> np.ndarray:
    array = np.asarray(rows, dtype=np.float32)
    return array / np.linalg.norm(array, axis=1, keepdims=True)


POOL = RealizationInput(
    public_texts=["east", "north", "north-ish", "west"],
    public_embeddings=_unit([[1, 0], [0, 1], [0.1, 1], [-1, 0]]),
    private_texts=["p0", "p1", "p2"],
    private_embeddings=_unit([[1, 0.1], [0, 1], [-1, 0.1]]),
    private_labels=np.array([0, 1, 1]),
)


def test_public_nearest_takes_each_text_once() -> None:
    synthetic = SyntheticSet(_unit([[0, 1], [0, 1], [1, 0]]), np.array([1, 1, 0]), None, "dm")
    realized = realize("public-nearest", synthetic, POOL)
    assert realized.texts == ("north", "north-ish", "east")
    assert realized.source == "public"
    np.testing.assert_array_equal(realized.labels, [1, 1, 0])


def test_private_coreset_uses_selected_rows() -> None:
    synthetic = SyntheticSet(
        POOL.private_embeddings[[2, 0]],
        np.array([1, 0]),
        None,
        "herding",
        private_rows=np.array([2, 0]),
    )
    realized = realize("private-coreset", synthetic, POOL)
    assert realized.texts == ("p2", "p0")
    assert realized.source == "private"


def test_too_small_pool_says_how_to_fix() -> None:
    synthetic = SyntheticSet(_unit([[1, 0]] * 5), np.zeros(5, dtype=np.int64), None, "dm")
    with pytest.raises(ValueError, match="larger public pool"):
        realize("public-nearest", synthetic, POOL)


def _blob_pool(seed: int = 0) -> tuple[RealizationInput, SyntheticSet, np.ndarray, np.ndarray]:
    """Three Gaussian classes: a public pool (no private data), a synthetic set of 4 per class
    near the class centres, and a labeled test set."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, 16)) * 1.5

    def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, 3, size=n)
        x = centres[labels] + rng.normal(size=(n, 16))
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels

    pool_x, _ = sample(600)
    test_x, test_y = sample(300)
    syn_labels = np.repeat(np.arange(3), 4)
    syn_x = centres[syn_labels] + 0.3 * rng.normal(size=(12, 16))
    synthetic = SyntheticSet(
        (syn_x / np.linalg.norm(syn_x, axis=1, keepdims=True)).astype(np.float32),
        syn_labels,
        None,
        "dm",
    )
    pool = RealizationInput([f"t{i}" for i in range(600)], pool_x)
    return pool, synthetic, test_x, test_y


def test_public_teacher_releases_k_public_texts_per_class_carrying_the_sets_head() -> None:
    pool, synthetic, test_x, test_y = _blob_pool()
    realized = realize("public-teacher", synthetic, pool)
    assert realized.source == "public" and realized.strategy == "public-teacher"
    np.testing.assert_array_equal(np.bincount(realized.labels), [4, 4, 4])
    assert len(set(realized.rows.tolist())) == 12
    np.testing.assert_array_equal(realized.embeddings, pool.public_embeddings[realized.rows])
    assert realized.texts == tuple(f"t{i}" for i in realized.rows)
    assert realized.soft_labels is not None
    np.testing.assert_allclose(realized.soft_labels.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(realized.soft_labels.argmax(axis=1), realized.labels)
    head = train_head("linear", LabeledArrays(realized.embeddings, realized.soft_labels), seed=0)
    assert float(np.mean(predict(head, test_x) == test_y)) > 0.9
    again = realize("public-teacher", synthetic, pool)
    np.testing.assert_array_equal(again.rows, realized.rows)


def test_public_teacher_keeps_a_set_that_already_is_public_texts() -> None:
    pool, _, _, _ = _blob_pool()
    rows = np.array([5, 9, 1, 7])
    soft = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.1, 0.9]], dtype=np.float32)
    synthetic = SyntheticSet(pool.public_embeddings[rows], np.array([0, 0, 1, 1]), soft, "x")
    realized = realize("public-teacher", synthetic, pool)
    np.testing.assert_array_equal(realized.rows, rows)
    np.testing.assert_array_equal(realized.soft_labels, soft)
