import numpy as np
import pytest

from tdd_priv.methods import METHODS, DistillInput, coreset, distill, method_info

CORESETS = sorted(name for name, info in METHODS.items() if info.releases_private_records)


def _blobs(seed: int = 0, per_class: int = 40, dim: int = 8) -> DistillInput:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(3, dim)) * 3
    x = np.concatenate([c + rng.normal(size=(per_class, dim)) for c in centers])
    labels = np.repeat(np.arange(3), per_class)
    return DistillInput(x.astype(np.float32), labels, num_classes=3, per_class=5, seed=7)


@pytest.mark.parametrize("name", CORESETS)
def test_k_distinct_private_rows_per_class(name: str) -> None:
    inputs = _blobs()
    synthetic = distill(name, inputs)
    assert synthetic.private_rows is not None
    assert len(set(synthetic.private_rows.tolist())) == 15
    assert np.bincount(synthetic.labels).tolist() == [5, 5, 5]
    np.testing.assert_array_equal(inputs.labels[synthetic.private_rows], synthetic.labels)
    np.testing.assert_array_equal(inputs.embeddings[synthetic.private_rows], synthetic.embeddings)


@pytest.mark.parametrize("name", CORESETS)
def test_same_seed_same_set(name: str) -> None:
    first, second = distill(name, _blobs()), distill(name, _blobs())
    np.testing.assert_array_equal(first.private_rows, second.private_rows)


def test_herding_mean_is_closer_than_random() -> None:
    inputs = _blobs()
    gaps = {}
    for name in ("herding", "random"):
        synthetic = distill(name, inputs)
        gaps[name] = sum(
            np.linalg.norm(
                synthetic.embeddings[synthetic.labels == c].mean(0)
                - inputs.embeddings[inputs.labels == c].mean(0)
            )
            for c in range(3)
        )
    assert gaps["herding"] < 0.5 * gaps["random"]


def test_kcenter_covers_better_than_random() -> None:
    inputs = _blobs()

    def cover_radius(name: str) -> float:
        synthetic = distill(name, inputs)
        worst = 0.0
        for c in range(3):
            points = inputs.embeddings[inputs.labels == c]
            centers = synthetic.embeddings[synthetic.labels == c]
            distances = np.linalg.norm(points[:, None] - centers[None], axis=2).min(axis=1)
            worst = max(worst, float(distances.max()))
        return worst

    assert cover_radius("kcenter") < cover_radius("random")


def test_unknown_method_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match="herding"):
        method_info("nope")


@pytest.mark.parametrize("k", [1, 7])
def test_herding_and_kcenter_do_not_depend_on_the_chunk_size(
    monkeypatch: pytest.MonkeyPatch, k: int
) -> None:
    # They read a class a chunk at a time (memory bounded on a million rows): a reference
    # implementation over the whole class, straight from the definitions, picks the same rows.
    rng = np.random.default_rng(5)
    embeddings = rng.normal(size=(300, 8)).astype(np.float32)
    rows = np.sort(rng.choice(300, size=230, replace=False))
    points = embeddings[rows].astype(np.float64)
    herded, running = [], np.zeros(8)
    for t in range(1, k + 1):
        gaps = np.linalg.norm(points.mean(axis=0) - (running + points) / t, axis=1)
        gaps[herded] = np.inf
        herded.append(int(np.argmin(gaps)))
        running += points[herded[-1]]
    centers = [11]
    while len(centers) < k:
        gaps = np.min(
            [np.linalg.norm(embeddings[rows] - embeddings[rows[c]], axis=1) for c in centers],
            axis=0,
        )
        centers.append(int(np.argmax(gaps)))
    monkeypatch.setattr(coreset, "_CHUNK", 17)
    assert coreset._herd(embeddings, rows, k).tolist() == herded
    assert coreset._k_center(embeddings, rows, k, 11).tolist() == centers
