"""EmbeddingRows: a cache entry's rows read from disk by index, equal to indexing the array."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tdd_priv.encode import EmbeddingRows
from tdd_priv.errors import ConfigError


@pytest.fixture
def stored(tmp_path: Path) -> tuple[np.ndarray, Path]:
    array = np.random.default_rng(0).normal(size=(53, 6)).astype(np.float32)
    np.save(tmp_path / "entry.npy", array)
    return array, tmp_path / "entry.npy"


def test_reads_exactly_the_rows_asked_for(stored: tuple[np.ndarray, Path]) -> None:
    array, path = stored
    rows = EmbeddingRows(path, block_rows=7)  # several blocks, the last one short
    assert rows.shape == (53, 6) and len(rows) == 53
    rng = np.random.default_rng(1)
    for index in (
        rng.permutation(53),
        rng.integers(0, 53, size=80),  # repeats, any order
        np.array([52, 0, 7, 6, 13, 14]),  # block edges
        np.zeros(0, dtype=np.int64),
    ):
        np.testing.assert_array_equal(rows[index], array[index])
    mask = rng.random(53) < 0.3
    np.testing.assert_array_equal(rows[mask], array[mask])
    np.testing.assert_array_equal(np.asarray(rows), array)
    assert rows[np.zeros(0, dtype=np.int64)].shape == (0, 6)


def test_refuses_bad_indices_and_bad_files(stored: tuple[np.ndarray, Path], tmp_path: Path) -> None:
    _, path = stored
    rows = EmbeddingRows(path)
    for bad in (np.array([53]), np.array([-1]), np.array([[0, 1]]), np.array([0.5])):
        with pytest.raises(IndexError):
            rows[bad]
    with pytest.raises(IndexError, match="mask"):
        rows[np.ones(10, dtype=bool)]
    truncated = tmp_path / "truncated.npy"
    truncated.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ConfigError, match="truncated"):
        EmbeddingRows(truncated)[np.array([52])]
    np.save(tmp_path / "ints.npy", np.zeros((3, 2), dtype=np.int64))
    with pytest.raises(ConfigError, match="not an embedding cache entry"):
        EmbeddingRows(tmp_path / "ints.npy")
    with pytest.raises(ConfigError, match="run again"):
        EmbeddingRows(tmp_path / "missing.npy")
