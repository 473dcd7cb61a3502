"""The detox step's filter and flag semantics, with a scorer that reads scores from a table."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from tdd_priv.cli import _parser, _run_config
from tdd_priv.config import DetoxConfig, RunConfig
from tdd_priv.detox import Candidates, screen
from tdd_priv.errors import ConfigError
from tdd_priv.extensions import NO_EXTENSIONS, Extensions
from tdd_priv.methods import SyntheticSet
from tdd_priv.pipeline import toxicity_scorer
from tdd_priv.realize import RealizationInput, RealizedSet, ranked_spares, realize

LABELS = ("World", "Sports")


class TableScorer:
    """Scores each text from a table (unknown texts score 0); counts the texts it scored."""

    name = "table"
    version = "test"

    def __init__(self, table: dict[str, tuple[float, ...]], labels: tuple[str, ...] = ("tox",)):
        self.table = table
        self.labels = labels
        self.scored: list[str] = []

    def score(self, texts: Sequence[str]) -> np.ndarray:
        self.scored += list(texts)
        return np.array([self.table.get(t, (0.0,) * len(self.labels)) for t in texts]).reshape(
            len(texts), len(self.labels)
        )


POOL = Candidates(
    texts=[f"t{i}" for i in range(8)],
    embeddings=np.eye(8, dtype=np.float32),
    public_rows=True,  # an external public pool: its rows may be named
)


def _realized(
    rows: list[int], labels: list[int], spares: list[list[int]], source: str = "public"
) -> RealizedSet:
    return RealizedSet(
        texts=tuple(f"t{r}" for r in rows),
        labels=np.array(labels),
        embeddings=np.eye(8, dtype=np.float32)[rows],
        source=source,  # type: ignore[arg-type]
        rows=np.array(rows),
        strategy="public-nearest",
        soft_labels=np.eye(2, dtype=np.float32)[labels],
        spares=np.array([row + [-1] * (4 - len(row)) for row in spares]),  # -1 pads
    )


def test_filter_replaces_each_toxic_text_with_its_best_clean_spare() -> None:
    # t1 is toxic; its slot's spares are t1 (itself), t2 (in use), t5 (toxic), t6 (clean).
    realized = _realized([0, 1, 2, 3], [0, 0, 1, 1], [[0, 4], [1, 2, 5, 6], [2, 7], [3, 4]])
    scorer = TableScorer({"t1": (0.9,), "t5": (0.7,)})
    released = screen(realized, POOL, scorer, DetoxConfig(mode="filter"), LABELS)
    assert released.texts == ("t0", "t6", "t2", "t3")
    np.testing.assert_array_equal(released.labels, [0, 0, 1, 1])  # still k per class
    np.testing.assert_array_equal(released.embeddings, np.eye(8)[[0, 6, 2, 3]])
    np.testing.assert_array_equal(released.flagged, [False] * 4)
    section = released.screening
    assert section is not None
    assert section["counts"] == {
        "screened": 4,
        "scored": 6,  # the four realized texts, then t5 and t6
        "flagged": 1,
        "exempt_kept": 0,
        "removed": 1,
        "replaced": 1,
        "missing": 0,
        "released": 4,
        "released_over_threshold": 0,
    }
    (replacement,) = section["replacements"]
    assert replacement == {
        "released_index": 1,
        "label": "World",
        "removed_scores": {"tox": 0.9},
        "replacement_scores": {"tox": 0.0},
        "spare_rank": 3,
        "removed_public_row": 1,
        "replacement_public_row": 6,
    }
    assert "replaced by the next-best clean candidate" in section["statement"]
    assert sorted(set(scorer.scored)) == ["t0", "t1", "t2", "t3", "t5", "t6"]


def test_a_slot_without_a_clean_spare_is_dropped_and_reported_missing() -> None:
    realized = _realized([0, 1, 2, 3], [0, 0, 1, 1], [[0], [1, 5], [2], [3, 5, 4]])
    scorer = TableScorer({"t1": (0.9,), "t3": (0.6,), "t5": (0.8,), "t4": (0.95,)})
    released = screen(realized, POOL, scorer, DetoxConfig(mode="filter"), LABELS)
    assert released.texts == ("t0", "t2")
    assert released.soft_labels is not None and released.soft_labels.shape == (2, 2)
    section = released.screening
    assert section is not None
    assert section["counts"]["missing"] == 2
    assert section["counts"]["removed"] == 2
    assert section["missing_by_label"] == {"World": 1, "Sports": 1}
    assert "2 texts fewer than k per class (World 1, Sports 1)" in section["statement"]


def test_a_replacement_is_never_a_text_already_released_or_removed() -> None:
    # Both World slots are toxic and share spares: each must get a different clean one.
    realized = _realized([0, 1, 2], [0, 0, 1], [[0, 1, 4, 5], [1, 0, 4, 5], [2]])
    scorer = TableScorer({"t0": (0.9,), "t1": (0.9,)})
    released = screen(realized, POOL, scorer, DetoxConfig(mode="filter"), LABELS)
    assert released.texts == ("t4", "t5", "t2")


def test_exempt_classes_are_scored_but_never_removed() -> None:
    realized = _realized([0, 1, 2, 3], [0, 0, 1, 1], [[0, 4], [1, 5], [2, 6], [3, 7]])
    scorer = TableScorer({"t1": (0.9,), "t2": (0.9,)})
    config = DetoxConfig(mode="filter", exempt_labels=("Sports",))
    released = screen(realized, POOL, scorer, config, LABELS)
    assert released.texts == ("t0", "t5", "t2", "t3")
    np.testing.assert_array_equal(released.flagged, [False, False, True, False])
    section = released.screening
    assert section is not None
    assert section["counts"]["exempt_kept"] == 1
    assert section["counts"]["released_over_threshold"] == 1
    assert "exempt classes (Sports) were kept" in section["statement"]


def test_flag_mode_keeps_every_text_and_marks_the_toxic_ones() -> None:
    realized = _realized([0, 1, 2, 3], [0, 0, 1, 1], [[0, 4], [1, 5], [2, 6], [3, 7]])
    scorer = TableScorer({"t1": (0.9,), "t3": (0.5,)})  # at the threshold counts as over it
    released = screen(realized, POOL, scorer, DetoxConfig(mode="flag"), LABELS)
    assert released.texts == realized.texts
    np.testing.assert_array_equal(released.flagged, [False, True, False, True])
    section = released.screening
    assert section is not None
    assert section["counts"]["replaced"] == section["counts"]["removed"] == 0
    assert section["counts"]["released_over_threshold"] == 2
    assert sorted(set(scorer.scored)) == ["t0", "t1", "t2", "t3"]  # no spare was scored
    histogram = section["score_histogram"]["screened"]["tox"]
    assert sum(histogram) == 4 and histogram[18] == 1  # 0.9 lands in bin [0.90, 0.95)


def test_thresholds_apply_per_label() -> None:
    realized = _realized([0, 1], [0, 1], [[0, 4], [1, 5]])
    scorer = TableScorer({"t0": (0.3, 0.1), "t1": (0.1, 0.3)}, labels=("insult", "threat"))
    config = DetoxConfig(mode="flag", thresholds={"threat": 0.2})
    released = screen(realized, POOL, scorer, config, LABELS)
    np.testing.assert_array_equal(released.flagged, [False, True])
    assert released.screening is not None
    assert released.screening["thresholds"] == {"insult": 0.5, "threat": 0.2}


def test_unknown_threshold_labels_and_exempt_classes_are_config_errors() -> None:
    realized = _realized([0], [0], [[0]])
    with pytest.raises(ConfigError, match="its labels are tox"):
        screen(realized, POOL, TableScorer({}), DetoxConfig("flag", thresholds={"x": 0.1}), LABELS)
    with pytest.raises(ConfigError, match="its classes are World, Sports"):
        screen(realized, POOL, TableScorer({}), DetoxConfig("flag", exempt_labels=("x",)), LABELS)


def test_a_scorer_with_the_wrong_shape_is_refused() -> None:
    class Broken(TableScorer):
        def score(self, texts: Sequence[str]) -> np.ndarray:
            return np.zeros((len(texts), 3))

    with pytest.raises(ValueError, match="expected"):
        screen(_realized([0], [0], [[0]]), POOL, Broken({}), DetoxConfig("flag"), LABELS)


def test_groups_are_reported_for_private_records_and_unknown_for_public_ones() -> None:
    private = Candidates(POOL.texts, POOL.embeddings, groups={"g": ["a", "b"] * 4})  # not public
    realized = _realized([0, 1, 2, 3], [0, 0, 1, 1], [[0], [1], [2], [3]], source="private")
    section = screen(
        realized, private, TableScorer({"t1": (0.9,)}), DetoxConfig("flag"), LABELS
    ).screening
    assert section is not None
    assert section["toxic_rate_by_group"] == {"g": {"a": 0.0, "b": 0.5}}
    assert "removed_public_row" not in str(section)  # private record ids stay out
    public = screen(
        _realized([0], [0], [[0]]), POOL, TableScorer({}), DetoxConfig("flag"), LABELS
    ).screening
    assert public is not None
    assert public["toxic_rate_by_group"] is None
    assert "unknown" in public["groups_note"]


# --- spares from the realizers ---------------------------------------------------------------


def test_ranked_spares_orders_by_similarity_and_pads_disallowed() -> None:
    candidates = np.array([[1, 0], [0.9, 0.1], [0, 1], [-1, 0]], dtype=np.float32)
    anchors = np.array([[1, 0]], dtype=np.float32)
    np.testing.assert_array_equal(ranked_spares(anchors, candidates, 3), [[0, 1, 2]])
    allowed = np.array([[False, True, False, True]])
    np.testing.assert_array_equal(ranked_spares(anchors, candidates, 3, allowed), [[1, 3, -1]])


def test_realizers_give_spares_from_their_own_source_and_class() -> None:
    pool = RealizationInput(
        public_texts=["a", "b", "c"],
        public_embeddings=np.eye(3, dtype=np.float32),
        private_texts=["p0", "p1", "p2", "p3"],
        private_embeddings=np.eye(4, 3, dtype=np.float32),
        private_labels=np.array([0, 1, 0, 1]),
    )
    synthetic = SyntheticSet(
        np.eye(4, 3, dtype=np.float32)[[0, 1]],
        np.array([0, 1]),
        None,
        "herding",
        private_rows=np.array([0, 1]),
    )
    public = realize("public-nearest", synthetic, pool)
    assert public.spares is not None and public.spares.shape == (2, 3)
    assert public.spares[0, 0] == 0  # its own nearest text first
    private = realize("private-coreset", synthetic, pool)
    assert private.spares is not None
    for slot, label in enumerate(private.labels):
        rows = private.spares[slot][private.spares[slot] >= 0]
        assert set(pool.private_labels[rows]) == {label}  # same class only


# --- configuration -----------------------------------------------------------------------------


def test_detox_config_validates_mode_and_thresholds() -> None:
    with pytest.raises(ConfigError, match=r"detox\.mode"):
        DetoxConfig(mode="scrub")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="must lie in"):
        DetoxConfig(thresholds={"tox": 1.5})
    config = RunConfig.from_dict(
        {"detox": {"mode": "filter", "exempt_labels": "hateful", "thresholds": {"a": 0.3}}}
    )
    assert config.detox.exempt_labels == ("hateful",)
    assert RunConfig.from_dict(config.to_dict()) == config


def test_cli_detox_options_reach_the_config(tmp_path: Path) -> None:
    args = _parser().parse_args(
        [
            "run",
            "--detox", "filter",
            "--detox-scorer", "classifier",
            "--detox-model", "models/tox",
            "--detox-threshold", "0.3",
            "--detox-threshold", "insult=0.7",
            "--detox-exempt-labels", "hateful,other",
            "--out", str(tmp_path / "x"),
        ]
    )  # fmt: skip
    detox = _run_config(args).detox
    assert detox == DetoxConfig(
        mode="filter",
        scorer="classifier",
        model="models/tox",
        thresholds={"insult": 0.7},
        default_threshold=0.3,
        exempt_labels=("hateful", "other"),
    )


def test_a_run_asking_for_a_scorer_it_was_not_given_fails_before_it_starts() -> None:
    config = RunConfig().with_overrides({"detox.mode": "filter"})
    with pytest.raises(ConfigError, match="build_extensions"):
        toxicity_scorer(config, NO_EXTENSIONS)
    scorer = TableScorer({})
    given = Extensions(toxicity_scorers={"profanity": scorer})
    assert toxicity_scorer(config, given) is scorer
    assert toxicity_scorer(RunConfig(), given) is None  # detox off
