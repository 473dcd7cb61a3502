"""Loading and validating labeled data and public pools (tdd_priv.data)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import datasets
import pandas as pd
import pytest

import tdd_priv.data as data_pkg
from tdd_priv.data import (
    DEMO_SPEC,
    ColumnMapping,
    load_labeled,
    load_public_texts,
)
from tdd_priv.errors import DataValidationError

SHARED = Path(__file__).resolve().parents[3] / "shared" / "datasets"
AG_NEWS = SHARED / "ag_news" / "ag_news.csv"
AG_NAMES = ("World", "Sports", "Business", "Sci/Tech")


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def test_public_interface_is_exactly_the_documented_one() -> None:
    assert sorted(data_pkg.__all__) == sorted(
        [
            "ColumnMapping",
            "LabeledData",
            "PoolCheck",
            "PublicTexts",
            "SplitFractions",
            "Splits",
            "load_labeled",
            "load_public_texts",
            "make_splits",
            "DEMO_SPEC",
        ]
    )
    assert DEMO_SPEC == "demo"


def test_csv_with_integer_labels_and_names(tmp_path: Path) -> None:
    path = write(tmp_path, "reviews.csv", 'text,label,extra\ngood,1,x\n"bad, awful",0,y\nok,1,z\n')
    data = load_labeled(str(path), label_names=["neg", "pos"])
    assert data.name == "reviews"
    assert data.source == str(path.resolve())
    assert data.dataset.column_names == ["text", "label"]
    assert data.dataset["text"] == ["good", "bad, awful", "ok"]
    assert data.dataset["label"] == [1, 0, 1]
    assert data.dataset.features["label"].names == ["neg", "pos"]
    assert data.label_names == ("neg", "pos")
    assert data.group_columns == ()
    assert data.dropped_rows == ()
    assert not data.has_split_column
    assert len(data.fingerprint) == 64


def test_integer_labels_without_names_are_named_by_id(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", "text,label\na,0\nb,1\nc,2\n")
    assert load_labeled(str(path)).label_names == ("0", "1", "2")


def test_non_contiguous_ids_are_remapped_in_sorted_order(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", "text,label\na,7\nb,1\nc,3\nd,3\n")
    data = load_labeled(str(path))
    assert data.dataset["label"] == [2, 0, 1, 1]
    assert data.label_names == ("1", "3", "7")
    named = load_labeled(str(path), label_names=[f"c{i}" for i in range(8)])
    assert named.label_names == ("c1", "c3", "c7")
    assert named.dataset["label"] == [2, 0, 1, 1]


def test_label_names_must_cover_the_ids(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", "text,label\na,0\nb,1\nc,2\nd,5\n")
    with pytest.raises(DataValidationError) as info:
        load_labeled(str(path), label_names=["x", "y"])
    message = str(info.value)
    assert "d.csv" in message
    assert "rows 3, 4" in message
    assert "'2', '5'" in message
    assert "one name per class id" in message


def test_string_labels_sorted_or_in_given_order(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", "text,label\na,pos\nb,neg\nc, pos \nd,neutral\n")
    data = load_labeled(str(path))
    assert data.label_names == ("neg", "neutral", "pos")
    assert data.dataset["label"] == [2, 0, 2, 1]
    ordered = load_labeled(str(path), label_names=["pos", "neutral", "neg"])
    assert ordered.label_names == ("pos", "neutral", "neg")
    assert ordered.dataset["label"] == [0, 2, 0, 1]


def test_unknown_string_labels_are_listed(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", "text,label\na,pos\nb,neg\nc,meh\n")
    with pytest.raises(DataValidationError) as info:
        load_labeled(str(path), label_names=["neg", "pos"])
    assert "'meh'" in str(info.value)
    assert "row 3" in str(info.value)
    assert "Add them to the label names" in str(info.value)


def test_fractional_numeric_labels_are_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", "text,label\na,0\nb,0.5\nc,1.0\n")
    with pytest.raises(DataValidationError, match=r"non-integer numbers in row 2"):
        load_labeled(str(path))


def test_missing_file_suggests_demo(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError) as info:
        load_labeled(str(tmp_path / "nope.csv"))
    assert "nope.csv: no such file" in str(info.value)
    assert "`demo`" in str(info.value)


def test_unknown_format_lists_supported_extensions(tmp_path: Path) -> None:
    path = write(tmp_path, "d.xlsx", "whatever")
    with pytest.raises(DataValidationError) as info:
        load_labeled(str(path))
    message = str(info.value)
    assert "'.xlsx'" in message
    for suffix in (".csv", ".jsonl", ".json", ".parquet"):
        assert suffix in message


def test_a_folder_without_hf_prefix_is_explained(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match=r"hf:"):
        load_labeled(str(tmp_path))


@pytest.mark.parametrize(
    ("columns", "missing", "flag"),
    [
        (ColumnMapping(text="body"), "body", "--text-column"),
        (ColumnMapping(label="y"), "y", "--label-column"),
        (ColumnMapping(groups=("gender",)), "gender", "--group-column"),
        (ColumnMapping(split="fold"), "fold", "--split-column"),
    ],
)
def test_missing_column_names_it_the_columns_and_the_flag(
    tmp_path: Path, columns: ColumnMapping, missing: str, flag: str
) -> None:
    path = write(tmp_path, "d.csv", "text,label,topic\na,0,x\nb,1,y\n")
    with pytest.raises(DataValidationError) as info:
        load_labeled(str(path), columns=columns)
    message = str(info.value)
    assert f"no column {missing!r}" in message
    assert "'text', 'label', 'topic'" in message
    assert flag in message


def test_empty_texts_are_listed_with_the_fix(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", 'text,label\na,0\n,1\n"   ",0\nb,1\n')
    with pytest.raises(DataValidationError) as info:
        load_labeled(str(path))
    message = str(info.value)
    assert "d.csv" in message
    assert "rows 2, 3" in message
    assert "--drop-empty" in message


def test_many_bad_rows_are_summarised(tmp_path: Path) -> None:
    rows = "".join(f",{i % 2}\n" for i in range(25))
    path = write(tmp_path, "d.csv", "text,label\na,0\nb,1\n" + rows)
    with pytest.raises(DataValidationError) as info:
        load_labeled(str(path))
    assert "rows 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 and 15 more" in str(info.value)


def test_drop_empty_drops_and_records_the_rows(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", 'text,label\na,0\n,1\n"  ",0\nb,1\nc,0\n')
    data = load_labeled(str(path), drop_empty=True)
    assert data.dataset["text"] == ["a", "b", "c"]
    assert data.dataset["label"] == [0, 1, 0]
    assert data.dropped_rows == (2, 3)


def test_texts_that_look_like_missing_values_are_kept(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", "text,label\nNA,0\nnull,1\nNaN,0\n")
    assert load_labeled(str(path)).dataset["text"] == ["NA", "null", "NaN"]


def test_empty_labels_are_listed(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", "text,label\na,0\nb,\nc,1\nd, \n")
    with pytest.raises(DataValidationError) as info:
        load_labeled(str(path))
    assert "column 'label' has no label" in str(info.value)
    assert "rows 2, 4" in str(info.value)


def test_empty_labels_report_original_rows_after_dropping_texts(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", "text,label\n,0\nb,\nc,1\n")
    with pytest.raises(DataValidationError, match=r"in row 2\b"):
        load_labeled(str(path), drop_empty=True)


def test_a_single_class_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", "text,label\na,spam\nb,spam\n")
    with pytest.raises(DataValidationError) as info:
        load_labeled(str(path))
    assert "only one class ('spam')" in str(info.value)
    assert "--label-column" in str(info.value)


def test_non_utf8_bytes_name_line_and_offset(tmp_path: Path) -> None:
    raw = "text,label\nok,0\ncaf\xe9,1\n".encode("latin-1")
    path = write(tmp_path, "d.csv", raw)
    with pytest.raises(DataValidationError) as info:
        load_labeled(str(path))
    message = str(info.value)
    assert "not valid UTF-8 at line 3, byte 3" in message
    assert f"byte offset {raw.index(0xE9)}" in message
    assert "iconv -f latin1 -t utf-8" in message


def test_a_utf8_bom_does_not_rename_the_first_column(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", "\ufefftext,label\na,0\nb,1\n")
    assert load_labeled(str(path)).dataset["text"] == ["a", "b"]


def test_ragged_csv_rows_are_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", "text,label\na,0\nb, c,1\n")
    with pytest.raises(DataValidationError, match=r"data row 2 \(line 3\) has 3 fields"):
        load_labeled(str(path))


def test_header_only_file_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", "text,label\n")
    with pytest.raises(DataValidationError, match=r"no data rows"):
        load_labeled(str(path))


def test_jsonl_with_groups_and_split(tmp_path: Path) -> None:
    records = [
        {"sentence": "a", "y": "pos", "who": "x", "fold": "train"},
        {"sentence": "b", "y": "neg", "who": None, "fold": "test"},
        {"sentence": "c", "y": "pos", "who": 3, "fold": "train"},
    ]
    path = write(tmp_path, "d.jsonl", "\n".join(json.dumps(r) for r in records) + "\n\n")
    mapping = ColumnMapping(text="sentence", label="y", groups=("who",), split="fold")
    data = load_labeled(str(path), columns=mapping)
    assert data.dataset.column_names == ["text", "label", "who", "split"]
    assert data.dataset["who"] == ["x", "unknown", "3"]
    assert data.dataset["split"] == ["train", "test", "train"]
    assert data.group_columns == ("who",)
    assert data.has_split_column


def test_jsonl_null_text_and_bad_line(tmp_path: Path) -> None:
    path = write(tmp_path, "d.jsonl", '{"text": "a", "label": 0}\n{"text": null, "label": 1}\n')
    with pytest.raises(DataValidationError, match=r"empty or NaN in row 2"):
        load_labeled(str(path))
    broken = write(tmp_path, "e.json", '{"text": "a", "label": 0}\n{"text": "b", label: 1}\n')
    with pytest.raises(DataValidationError, match=r"line 2 is not valid JSON"):
        load_labeled(str(broken))


def test_json_array_and_repeated_csv_headers(tmp_path: Path) -> None:
    path = write(tmp_path, "d.json", '[{"text": "a", "label": 0}, {"text": "b", "label": 1}]')
    assert load_labeled(str(path)).dataset["text"] == ["a", "b"]
    repeated = write(tmp_path, "r.csv", "text,label,x,x,x.1\na,0,1,2,3\nb,1,4,5,6\n")
    data = load_labeled(str(repeated), columns=ColumnMapping(groups=("x", "x.1", "x.1.1")))
    assert data.dataset["x.1.1"] == ["3", "6"]


def test_parquet_with_nan_text(tmp_path: Path) -> None:
    frame = pd.DataFrame({"text": ["a", None, "c", "d"], "label": [0, 1, 1, 0]})
    path = tmp_path / "d.parquet"
    frame.to_parquet(path)
    data = load_labeled(str(path), drop_empty=True)
    assert data.dataset["text"] == ["a", "c", "d"]
    assert data.dropped_rows == (2,)
    assert data.label_names == ("0", "1")


def test_parquet_text_lists_are_refused_not_stringified(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pd.DataFrame(
        {"text": [["MARK COLVIN: a", "x", "y"], ["b"], ["c"]], "label": [0, 1, 0]}
    ).to_parquet(path)
    with pytest.raises(DataValidationError) as info:
        load_labeled(str(path))
    message = str(info.value)
    assert "column 'text' holds a list instead of text in rows 1, 2, 3" in message
    assert "join the pieces" in message and "--text-column" in message


@pytest.mark.parametrize(
    ("value", "kind"),
    [(12, "a number"), (2.5, "a number"), (True, "true/false"), ({"a": 1}, "a mapping")],
)
def test_typed_non_text_cells_are_refused_with_their_row(
    tmp_path: Path, value: object, kind: str
) -> None:
    rows = [{"text": "fine", "label": 0}, {"text": value, "label": 1}, {"text": "ok", "label": 1}]
    path = write(tmp_path, "d.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(DataValidationError, match=rf"holds {kind}.* instead of text in row 2 "):
        load_labeled(str(path))


def test_number_looking_csv_texts_are_texts(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", "text,label\n12,0\ntrue,1\n3.5,1\n")
    assert load_labeled(str(path)).dataset["text"] == ["12", "true", "3.5"]


def test_list_labels_and_groups_are_refused(tmp_path: Path) -> None:
    rows = [{"text": "a", "label": [0], "g": "x"}, {"text": "b", "label": 1, "g": ["y"]}]
    path = write(tmp_path, "d.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(DataValidationError, match=r"column 'label' holds a list in row 1"):
        load_labeled(str(path))
    with pytest.raises(DataValidationError, match=r"'g' holds a list in row 2.*--group-column"):
        load_labeled(str(path), columns=ColumnMapping(label="text", groups=("g",)))


def test_hf_sequence_text_column_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    folder = tmp_path / "corpus"
    folder.mkdir()
    rows = [{"text": ["a", "b"], "label": 0}, {"text": ["c"], "label": 1}]
    write(folder, "train.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(DataValidationError, match=r"holds a list instead of text in rows 1, 2"):
        load_labeled(f"hf:{folder}")


def test_public_pool_texts_must_be_strings(tmp_path: Path) -> None:
    path = tmp_path / "pool.parquet"
    pd.DataFrame({"text": [["a", "b"], ["c"]]}).to_parquet(path)
    with pytest.raises(DataValidationError, match=r"'text' holds a list instead of text"):
        load_public_texts(str(path))


def test_paths_that_are_not_regular_files_are_refused_unread(tmp_path: Path) -> None:
    fifo = tmp_path / "d.csv"
    os.mkfifo(fifo)
    errors: list[BaseException] = []

    def load() -> None:
        try:
            load_labeled(str(fifo))
        except DataValidationError as error:
            errors.append(error)

    reader = threading.Thread(target=load, daemon=True)  # reading a FIFO would block
    reader.start()
    reader.join(timeout=5)
    assert not reader.is_alive(), "the FIFO was opened"
    assert "d.csv: is not a regular file" in str(errors[0])
    with pytest.raises(DataValidationError, match=r"/dev/zero: is not a regular file"):
        load_labeled("/dev/zero")
    with pytest.raises(DataValidationError, match=r"is not a regular file"):
        load_public_texts("/dev/null")


def test_group_column_may_not_clash_with_output_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", "text,label,split\na,0,x\nb,1,y\n")
    with pytest.raises(DataValidationError, match=r"clash"):
        load_labeled(str(path), columns=ColumnMapping(groups=("split",)))


def test_fingerprint_follows_content(tmp_path: Path) -> None:
    first = write(tmp_path, "a.csv", "text,label\na,0\nb,1\n")
    same = write(tmp_path, "b.csv", "text,label\na,0\nb,1\n")
    relabeled = write(tmp_path, "c.csv", "text,label\na,1\nb,0\n")
    fingerprints = [load_labeled(str(p)).fingerprint for p in (first, same, relabeled)]
    assert fingerprints[0] == fingerprints[1] != fingerprints[2]


def test_hf_spec_on_a_local_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    folder = tmp_path / "corpus"
    folder.mkdir()
    write(folder, "train.csv", "sentence,label\na,0\nb,1\nc,1\n")
    write(folder, "test.csv", "sentence,label\nd,0\ne,1\n")
    spec = f"hf:{folder}"
    data = load_labeled(spec, columns=ColumnMapping(text="sentence"), label_names=["neg", "pos"])
    assert data.name == spec
    assert data.has_split_column
    assert sorted(zip(data.dataset["split"], data.dataset["text"], strict=True)) == [
        ("test", "d"),
        ("test", "e"),
        ("train", "a"),
        ("train", "b"),
        ("train", "c"),
    ]
    assert data.label_names == ("neg", "pos")
    assert (tmp_path / "hf-cache").exists()  # the cache went where the test put it
    with pytest.raises(DataValidationError, match=r"--text-column"):
        load_labeled(spec)


def test_hf_splits_without_labels_are_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    folder = tmp_path / "corpus"
    folder.mkdir()
    write(folder, "train.csv", "text,label\na,0\nb,1\n")
    write(folder, "test.csv", "text\nc\n")  # labels withheld, as on many hub test splits
    data = load_labeled(f"hf:{folder}")
    assert data.dataset["split"] == ["train", "train"]
    assert load_public_texts(f"hf:{folder}").texts == ("a", "b", "c")


def test_hf_spec_that_cannot_load_is_a_validation_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    with pytest.raises(DataValidationError, match=r"cannot load Hugging Face dataset"):
        load_labeled(f"hf:{tmp_path / 'missing-folder'}")


def test_demo_dataset() -> None:
    data = load_labeled(DEMO_SPEC, columns=ColumnMapping(text="ignored"))
    assert data.name == "demo (HateCheck)"
    assert data.label_names == ("non-hateful", "hateful")
    assert data.group_columns == ("group",)
    assert set(data.dataset["split"]) == {"train", "test"}
    assert data.dataset.num_rows == 3728
    assert "women" in set(data.dataset["group"])
    assert set(data.dataset["label"]) == {0, 1}


def test_public_texts_ignore_labels_drop_empties_and_duplicates(tmp_path: Path) -> None:
    path = write(tmp_path, "pool.csv", 'text,label\nb,0\n,1\na,\nb,1\n"  ",\nc,2\n')
    pool = load_public_texts(str(path))
    assert pool.texts == ("b", "a", "c")
    assert pool.name == "pool"
    assert len(pool.fingerprint) == 64


def test_public_texts_need_a_text(tmp_path: Path) -> None:
    empty = write(tmp_path, "empty.csv", 'text\n""\n" "\n')
    with pytest.raises(DataValidationError, match=r"every text .* is empty"):
        load_public_texts(str(empty))
    other = write(tmp_path, "other.csv", "body\nhello\n")
    with pytest.raises(DataValidationError, match=r"no column 'text' \(columns: 'body'\)"):
        load_public_texts(str(other))
    assert load_public_texts(str(other), text_column="body").texts == ("hello",)


def test_demo_public_pool() -> None:
    pool = load_public_texts(DEMO_SPEC)
    assert len(pool.texts) == 2000
    assert len(set(pool.texts)) == 2000
    assert pool.name == "demo (Davidson tweets)"


@pytest.mark.skipif(not AG_NEWS.exists(), reason="shared AG News copy not present")
def test_real_ag_news() -> None:
    data = load_labeled(str(AG_NEWS), columns=ColumnMapping(split="split"), label_names=AG_NAMES)
    assert data.name == "ag_news"
    assert data.label_names == AG_NAMES
    assert data.dataset.num_rows == 15600
    splits = data.dataset["split"]
    assert splits.count("train") == 8000
    assert splits.count("test") == 7600
