"""Reading a release made outside tdd-priv: its shape, its labels against the data's classes, its
soft labels, its k, and which labeled rows count as its members."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest

from tdd_priv.data import LabeledData
from tdd_priv.data.release import read_release_table, release_membership, resolve_release
from tdd_priv.errors import DataValidationError
from tdd_priv.fingerprint import sha256_file

CLASSES = ("World", "Sports", "Business")


def _jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_labels_given_as_names_or_ids_map_to_the_same_classes(tmp_path: Path) -> None:
    names = tmp_path / "names.csv"
    names.write_text("text,label\na,Sports\nb,World\nc,Business\n", encoding="utf-8")
    ids = tmp_path / "ids.csv"
    ids.write_text("text,label\na,1\nb,0\nc,2\n", encoding="utf-8")
    by_name = resolve_release(read_release_table(names), CLASSES)
    by_id = resolve_release(read_release_table(ids), CLASSES)
    assert by_name.labels.tolist() == by_id.labels.tolist() == [1, 0, 2]
    assert (by_name.label_form, by_id.label_form) == ("names", "ids")
    assert by_name.sha256 == sha256_file(names) and by_name.rows == 3
    assert by_name.copy_name == "release.csv"


def test_a_label_that_is_a_class_name_is_read_as_that_name(tmp_path: Path) -> None:
    # classes named "1".."3" (ids 0..2): label "1" is the class named "1", not id 1
    release = _jsonl(tmp_path / "r.jsonl", [{"text": "a", "label": 1}, {"text": "b", "label": 3}])
    assert resolve_release(read_release_table(release), ("1", "2", "3")).labels.tolist() == [0, 2]
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("text,label\na,Sports\nb,2\n", encoding="utf-8")
    resolved = resolve_release(read_release_table(mixed), CLASSES)
    assert resolved.labels.tolist() == [1, 2] and resolved.label_form == "names-and-ids"


def test_tdd_privs_own_data_jsonl_is_read_by_its_names_and_checked_against_its_ids(
    tmp_path: Path,
) -> None:
    rows = [
        {"text": "a", "label": 2, "label_name": "Business", "soft_label": [0.1, 0.2, 0.7]},
        {"text": "b", "label": 0, "label_name": "World", "soft_label": [0.8, 0.1, 0.1]},
    ]
    release = resolve_release(read_release_table(_jsonl(tmp_path / "data.jsonl", rows)), CLASSES)
    assert release.label_form == "ids-with-names" and release.labels.tolist() == [2, 0]
    assert release.soft_labels is not None and release.soft_labels.shape == (2, 3)
    assert release.copy_name == "release.jsonl"  # never the run folder's own data.jsonl
    other_order = ("Business", "Sports", "World")
    with pytest.raises(DataValidationError, match="another order"):
        resolve_release(read_release_table(_jsonl(tmp_path / "d2.jsonl", rows)), other_order)


def test_unknown_labels_are_refused_with_the_rows_and_the_classes(tmp_path: Path) -> None:
    release = tmp_path / "r.csv"
    release.write_text("text,label\na,Sports\nb,Cooking\nc,7\nd,2\n", encoding="utf-8")
    with pytest.raises(DataValidationError) as error:
        resolve_release(read_release_table(release), CLASSES)
    message = str(error.value)
    assert "'7', 'Cooking'" in message and "rows 2, 3" in message
    assert "'World', 'Sports', 'Business'" in message and "--label-names" in message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("words,label\na,World\n", "no 'text' column"),
        ("text,category\na,World\n", "no 'label' column"),
        ("text,label\n", "no data rows"),
        ("", "empty"),
        ("text,label\na,World\n ,Sports\n", "row 2 of the release have an empty 'text'"),
        ("text,label\na,World\nb,\n", "row 2 of the release have no 'label'"),
    ],
)
def test_a_malformed_release_fails_before_any_class_is_known(
    tmp_path: Path, content: str, expected: str
) -> None:
    release = tmp_path / "bad.csv"
    release.write_text(content, encoding="utf-8")
    with pytest.raises(DataValidationError, match=expected):
        read_release_table(release)


def test_soft_labels_must_be_one_finite_number_per_class(tmp_path: Path) -> None:
    rows = [{"text": "a", "label": 0, "soft_label": [0.5, 0.5]}]
    table = read_release_table(_jsonl(tmp_path / "r.jsonl", rows))
    with pytest.raises(DataValidationError, match="list of 3 finite numbers"):
        resolve_release(table, CLASSES)
    partial = [{"text": "a", "label": 0, "soft_label": [1, 0, 0]}, {"text": "b", "label": 1}]
    with pytest.raises(DataValidationError, match="every row its soft label"):
        read_release_table(_jsonl(tmp_path / "p.jsonl", partial))


def test_baselines_get_about_as_many_examples_as_an_uneven_release(tmp_path: Path) -> None:
    release = tmp_path / "r.csv"
    release.write_text(
        "text,label\n" + "".join(f"t{i},{c}\n" for i, c in enumerate("0000000112")), "utf-8"
    )
    resolved = resolve_release(read_release_table(release), CLASSES)
    assert resolved.label_counts(3).tolist() == [7, 2, 1]
    assert resolved.per_class(3) == 3  # 10 / 3 rounded: 9 baseline examples for 10 released


def _labeled(splits: list[str] | None) -> LabeledData:
    labels = [0, 1, 2] * 4
    columns: dict[str, list[object]] = {"text": [f"t{i}" for i in range(12)], "label": labels}
    if splits is not None:
        columns["split"] = splits
    return LabeledData(
        dataset=datasets.Dataset.from_dict(columns),
        name="toy",
        source="toy.csv",
        fingerprint="f",
        label_names=CLASSES,
        group_columns=(),
        dropped_rows=(),
    )


def test_members_are_the_train_split_and_non_members_default_to_the_test_split() -> None:
    labeled = _labeled(["train"] * 6 + ["dev"] * 3 + ["test"] * 3)
    default = release_membership(
        labeled, train_split=None, test_split=None, heldout_split=None, per_class=1, seed=0
    )
    assert default.splits.members.tolist() == list(range(6))
    assert default.nonmembers.tolist() == default.splits.test.tolist() == [9, 10, 11]
    assert default.splits.audit.size == 0 and default.heldout_split == "test"
    dev = release_membership(
        labeled, train_split=None, test_split=None, heldout_split="dev", per_class=1, seed=0
    )
    assert dev.nonmembers.tolist() == dev.splits.audit.tolist() == [6, 7, 8]


def test_membership_is_refused_when_nobody_can_say_which_rows_the_maker_saw() -> None:
    with pytest.raises(DataValidationError, match=r"no split column.*--split-column"):
        release_membership(
            _labeled(None),
            train_split=None,
            test_split=None,
            heldout_split=None,
            per_class=1,
            seed=0,
        )
    labeled = _labeled(["train"] * 9 + ["test"] * 3)
    with pytest.raises(DataValidationError, match="--heldout-split is 'train'"):
        release_membership(
            labeled, train_split=None, test_split=None, heldout_split="train", per_class=1, seed=0
        )
    with pytest.raises(DataValidationError, match="k = 4 rows of every class"):
        release_membership(
            labeled, train_split=None, test_split=None, heldout_split=None, per_class=4, seed=0
        )
