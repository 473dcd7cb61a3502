import numpy as np
import pytest

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
