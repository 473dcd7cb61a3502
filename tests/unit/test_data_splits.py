"""Seeded, stratified splits (tdd_priv.data.make_splits)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tdd_priv.data import (
    ColumnMapping,
    LabeledData,
    SplitFractions,
    Splits,
    load_labeled,
    make_splits,
)
from tdd_priv.errors import ConfigError, DataValidationError

AG_NEWS = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "ag_news" / "ag_news.csv"
PARTS = ("members", "audit", "test", "public")


def labeled(
    tmp_path: Path, counts: dict[str, int], *, splits: dict[str, str] | None = None
) -> LabeledData:
    """A CSV with counts[label] rows per label; `splits` maps row-index parity to split names."""
    lines = ["text,label,split"]
    row = 0
    for label, count in counts.items():
        for _ in range(count):
            split = (splits or {}).get("even" if row % 2 == 0 else "odd", "")
            lines.append(f"text {row},{label},{split}")
            row += 1
    path = tmp_path / "data.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    mapping = ColumnMapping(split="split") if splits else ColumnMapping()
    return load_labeled(str(path), columns=mapping)


def labels_of(data: LabeledData, rows: np.ndarray) -> np.ndarray:
    return np.asarray(data.dataset["label"])[rows]


def test_splits_are_sorted_disjoint_and_cover_every_row(tmp_path: Path) -> None:
    data = labeled(tmp_path, {"a": 100, "b": 60})
    splits = make_splits(data, seed=0, per_class=5, internal_public_pool=True)
    joined = np.concatenate([getattr(splits, name) for name in PARTS])
    assert np.array_equal(np.sort(joined), np.arange(160))
    for name in PARTS:
        part = getattr(splits, name)
        assert part.dtype == np.int64
        assert np.all(np.diff(part) > 0)
        assert not part.flags.writeable


def test_shares_are_stratified_by_class(tmp_path: Path) -> None:
    data = labeled(tmp_path, {"a": 100, "b": 60})
    splits = make_splits(data, seed=3, per_class=5, internal_public_pool=True)
    # test: 20% of each class; audit 10% and public 20% of the remaining train rows.
    assert np.bincount(labels_of(data, splits.test)).tolist() == [20, 12]
    assert np.bincount(labels_of(data, splits.audit)).tolist() == [8, 5]
    assert np.bincount(labels_of(data, splits.public)).tolist() == [16, 10]
    assert np.bincount(labels_of(data, splits.members)).tolist() == [56, 33]


def test_same_seed_same_splits_other_seed_other_splits(tmp_path: Path) -> None:
    data = labeled(tmp_path, {"a": 50, "b": 50})
    first = make_splits(data, seed=7, per_class=5, internal_public_pool=True)
    again = make_splits(data, seed=7, per_class=5, internal_public_pool=True)
    other = make_splits(data, seed=8, per_class=5, internal_public_pool=True)
    assert first == again
    assert first != other
    assert not np.array_equal(first.members, other.members)


def test_external_public_pool_leaves_public_empty(tmp_path: Path) -> None:
    data = labeled(tmp_path, {"a": 30, "b": 30})
    splits = make_splits(data, seed=0, per_class=5, internal_public_pool=False)
    assert splits.public.size == 0
    assert splits.members.size + splits.audit.size + splits.test.size == 60


def test_shares_shrink_to_keep_per_class_members(tmp_path: Path) -> None:
    data = labeled(tmp_path, {"a": 12, "b": 40})
    splits = make_splits(data, seed=0, per_class=10, internal_public_pool=True)
    members = np.bincount(labels_of(data, splits.members))
    assert members[0] == 10  # 2 spare rows of class a: one to test, one to audit, none public
    assert np.bincount(labels_of(data, splits.test))[0] == 1
    assert np.bincount(labels_of(data, splits.audit))[0] == 1
    assert np.sum(labels_of(data, splits.public) == 0) == 0
    assert np.bincount(labels_of(data, splits.members))[1] == 40 - 8 - 3 - 6


def test_too_few_rows_for_per_class_names_the_class(tmp_path: Path) -> None:
    data = labeled(tmp_path, {"common": 40, "rare": 7})
    with pytest.raises(DataValidationError) as info:
        make_splits(data, seed=0, per_class=10, internal_public_pool=True)
    message = str(info.value)
    assert "'rare' has 7" in message
    assert "common" not in message
    assert "Lower --per-class to at most 7" in message


def test_split_column_gives_test_and_train(tmp_path: Path) -> None:
    data = labeled(tmp_path, {"a": 40, "b": 40}, splits={"even": "train", "odd": "test"})
    splits = make_splits(data, seed=0, per_class=5, internal_public_pool=True)
    names = np.asarray(data.dataset["split"])
    assert np.array_equal(splits.test, np.flatnonzero(names == "test"))
    used = np.concatenate([splits.members, splits.audit, splits.public])
    assert set(names[used]) == {"train"}
    assert used.size == 40


def test_other_split_names_and_unused_splits(tmp_path: Path) -> None:
    data = labeled(tmp_path, {"a": 40, "b": 40}, splits={"even": "fit", "odd": "dev"})
    splits = make_splits(
        data, seed=0, per_class=5, internal_public_pool=False, train_split="fit", test_split="dev"
    )
    assert splits.test.size == 40
    with pytest.raises(DataValidationError) as info:
        make_splits(data, seed=0, per_class=5, internal_public_pool=False)
    message = str(info.value)
    assert "no rows with split 'train'" in message
    assert "'dev', 'fit'" in message
    assert "--train-split" in message
    with pytest.raises(DataValidationError, match=r"--test-split"):
        make_splits(data, seed=0, per_class=5, internal_public_pool=False, train_split="fit")


def test_same_train_and_test_split_is_rejected(tmp_path: Path) -> None:
    data = labeled(tmp_path, {"a": 40, "b": 40}, splits={"even": "train", "odd": "test"})
    with pytest.raises(DataValidationError, match=r"both 'train'"):
        make_splits(data, seed=0, per_class=5, internal_public_pool=False, test_split="train")


def test_split_names_without_a_split_column(tmp_path: Path) -> None:
    data = labeled(tmp_path, {"a": 40, "b": 40})
    with pytest.raises(DataValidationError, match=r"no split column.*--split-column"):
        make_splits(data, seed=0, per_class=5, internal_public_pool=False, train_split="train")


def test_empty_test_split_is_rejected(tmp_path: Path) -> None:
    data = labeled(tmp_path, {"a": 40, "b": 40})
    with pytest.raises(DataValidationError, match=r"test split has no rows"):
        make_splits(
            data,
            seed=0,
            per_class=5,
            internal_public_pool=False,
            fractions=SplitFractions(test=0.0),
        )


def test_fractions_and_per_class_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"audit=1.0"):
        SplitFractions(audit=1.0)
    with pytest.raises(ConfigError, match=r"sum must be below 1"):
        SplitFractions(audit=0.5, public=0.5)


def test_per_class_must_be_positive(tmp_path: Path) -> None:
    data = labeled(tmp_path, {"a": 10, "b": 10})
    with pytest.raises(ConfigError, match=r"--per-class"):
        make_splits(data, seed=0, per_class=0, internal_public_pool=False)


def test_json_round_trip(tmp_path: Path) -> None:
    data = labeled(tmp_path, {"a": 30, "b": 30})
    splits = make_splits(data, seed=11, per_class=5, internal_public_pool=True)
    payload = json.loads(json.dumps(splits.to_json()))
    assert payload["seed"] == 11
    assert payload["sizes"] == {name: len(payload[name]) for name in PARTS}
    assert Splits.from_json(payload) == splits
    with pytest.raises(DataValidationError, match=r"lacks 'audit'"):
        Splits.from_json({k: v for k, v in payload.items() if k != "audit"})
    payload["sizes"]["test"] += 1
    with pytest.raises(DataValidationError, match=r"inconsistent"):
        Splits.from_json(payload)


def test_overlapping_parts_are_rejected() -> None:
    with pytest.raises(DataValidationError, match=r"overlap"):
        Splits(members=[1, 2], audit=[2], test=[3], public=[], seed=0)


def test_demo_splits_use_its_split_column() -> None:
    data = load_labeled("demo")
    splits = make_splits(data, seed=0, per_class=10, internal_public_pool=True)
    assert splits.test.size == 1003
    assert splits.members.size + splits.audit.size + splits.public.size == 2725


@pytest.mark.skipif(not AG_NEWS.exists(), reason="shared AG News copy not present")
def test_real_ag_news_splits() -> None:
    data = load_labeled(
        str(AG_NEWS),
        columns=ColumnMapping(split="split"),
        label_names=("World", "Sports", "Business", "Sci/Tech"),
    )
    splits = make_splits(data, seed=0, per_class=10, internal_public_pool=True)
    assert splits.test.size == 7600
    assert np.bincount(labels_of(data, splits.audit)).tolist() == [200] * 4
    assert np.bincount(labels_of(data, splits.public)).tolist() == [400] * 4
    assert np.bincount(labels_of(data, splits.members)).tolist() == [1400] * 4
