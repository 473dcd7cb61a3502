"""Load a labeled dataset spec into a validated `datasets.Dataset` (pipeline step 1)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import datasets
import numpy as np
from datasets.table import InMemoryTable

from tdd_priv.data._io import (
    HF_SPLIT_COLUMN,
    RawTable,
    check_scalars,
    check_texts,
    format_rows,
    format_values,
    is_missing,
    read_spec,
)
from tdd_priv.data.demo import LABELED_FILE, demo_file
from tdd_priv.errors import ConfigError, DataValidationError
from tdd_priv.fingerprint import fingerprint_strings

__all__ = ["DEMO_SPEC", "ColumnMapping", "LabeledData", "load_labeled"]

DEMO_SPEC = "demo"
UNKNOWN_GROUP = "unknown"
_RESERVED = ("text", "label", "split")
_INT = re.compile(r"[+-]?\d+")


@dataclass(frozen=True)
class ColumnMapping:
    """Which source columns hold the text, label, group(s) and split name."""

    text: str = "text"
    label: str = "label"
    groups: tuple[str, ...] = ()
    split: str | None = None


_DEFAULT_COLUMNS = ColumnMapping()
_DEMO_COLUMNS = ColumnMapping(groups=("group",), split="split")
_DEMO_LABEL_NAMES = ("non-hateful", "hateful")


@dataclass(frozen=True)
class LabeledData:
    """A validated labeled dataset.

    `dataset` has n rows in file order (minus `dropped_rows`) and columns "text" (str), "label"
    (ClassLabel, ids 0..C-1 named by `label_names`), one str column per entry of
    `group_columns`, and "split" (str) when a split column was mapped.
    """

    dataset: datasets.Dataset
    name: str
    source: str
    fingerprint: str
    label_names: tuple[str, ...]
    group_columns: tuple[str, ...]
    dropped_rows: tuple[int, ...]  # 1-based data rows (header not counted) with empty text

    @property
    def has_split_column(self) -> bool:
        return "split" in self.dataset.column_names


def load_labeled(
    spec: str,
    *,
    columns: ColumnMapping = _DEFAULT_COLUMNS,
    label_names: Sequence[str] | None = None,
    drop_empty: bool = False,
) -> LabeledData:
    """Read and validate `spec`: a .csv/.jsonl/.json/.parquet path, `hf:NAME[:CONFIG]`, or `demo`.

    Raises DataValidationError naming the source, the rows and the fix for any bad input.
    `demo` ignores `columns` and `label_names` (it has its own).
    """
    if spec == DEMO_SPEC:
        with demo_file(LABELED_FILE) as path:
            table = read_spec(str(path))
        return _validate(
            table,
            columns=_DEMO_COLUMNS,
            label_names=_DEMO_LABEL_NAMES,
            drop_empty=drop_empty,
            name="demo (HateCheck)",
        )
    _check_mapping(columns)
    needed = [columns.text, columns.label, *columns.groups]
    table = read_spec(
        spec, needed=[*needed, columns.split or HF_SPLIT_COLUMN], label_column=columns.label
    )
    if columns.split is None and table.split_names:
        # A Hugging Face DatasetDict: its split names become the split column.
        columns = ColumnMapping(columns.text, columns.label, columns.groups, HF_SPLIT_COLUMN)
    return _validate(
        table, columns=columns, label_names=label_names, drop_empty=drop_empty, name=table.name
    )


def _check_mapping(columns: ColumnMapping) -> None:
    clashes = [group for group in columns.groups if group in _RESERVED]
    if clashes:
        raise DataValidationError(
            f"group column(s) {format_values(clashes)} would clash with the output columns "
            f"{format_values(_RESERVED)}. Rename the column(s) in the data file."
        )
    if len(set(columns.groups)) != len(columns.groups):
        raise ConfigError(f"group columns {columns.groups} name a column twice.")


def _validate(
    table: RawTable,
    *,
    columns: ColumnMapping,
    label_names: Sequence[str] | None,
    drop_empty: bool,
    name: str,
) -> LabeledData:
    source = table.source
    roles = [("text", columns.text, "--text-column"), ("label", columns.label, "--label-column")]
    roles += [("group", group, "--group-column") for group in columns.groups]
    if columns.split is not None:
        roles.append(("split", columns.split, "--split-column"))
    for role, column, flag in roles:
        if column not in table.columns:
            raise DataValidationError(
                f"{source}: no column {column!r} for the {role} (columns: "
                f"{format_values(table.columns)}). Pass {flag} with the right column name."
            )

    raw_texts = table.columns[columns.text]
    check_texts(
        raw_texts,
        source=source,
        column=columns.text,
        fix="join the pieces into one (e.g. ' '.join(pieces)) or convert the column to text "
        "before loading, or pass --text-column with the column that holds the texts.",
    )
    for role, column, flag in roles[1:]:
        check_scalars(table.columns[column], source=source, column=column, role=role, flag=flag)
    empty = [i for i, text in enumerate(raw_texts) if is_missing(text)]
    if empty and not drop_empty:
        raise DataValidationError(
            f"{source}: column {columns.text!r} is empty or NaN in "
            f"{format_rows([i + 1 for i in empty])} (1-based data rows, header not counted). "
            "Clean or remove those rows, or pass --drop-empty to drop them."
        )
    keep = np.ones(table.n_rows, dtype=bool)
    keep[empty] = False
    kept = np.flatnonzero(keep)
    if kept.size == 0:
        raise DataValidationError(f"{source}: every text in column {columns.text!r} is empty.")
    row_numbers = kept + 1

    def column_values(column: str) -> list[Any]:
        values = table.columns[column]
        return [values[i] for i in kept]

    label_ids, names = _encode_labels(
        column_values(columns.label),
        row_numbers,
        label_names=label_names
        if label_names is not None
        else table.class_names.get(columns.label),
        where=f"{source}: column {columns.label!r}",
    )
    if len(names) < 2:
        raise DataValidationError(
            f"{source}: only one class ({names[0]!r}) in column {columns.label!r}; a classifier "
            "needs at least two. Check --label-column and the data's labels."
        )

    data: dict[str, list[Any]] = {
        "text": [str(text) for text in column_values(columns.text)],
        "label": label_ids.tolist(),
    }
    features = {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=list(names))}
    for group in columns.groups:
        data[group] = [UNKNOWN_GROUP if is_missing(v) else str(v) for v in column_values(group)]
        features[group] = datasets.Value("string")
    if columns.split is not None:
        data["split"] = _split_values(column_values(columns.split), row_numbers, source, columns)
        features["split"] = datasets.Value("string")

    # In memory (load_dataset would write a cache), straight from the lists to Arrow, and with
    # our content fingerprint: otherwise `datasets` pickles the whole table to make its own.
    schema = datasets.Features(features)
    fingerprint = _fingerprint(data, names, columns.groups)
    dataset = datasets.Dataset(
        InMemoryTable.from_pydict(data, schema=schema.arrow_schema),
        info=datasets.DatasetInfo(features=schema),
        fingerprint=fingerprint,
    )
    return LabeledData(
        dataset=dataset,
        name=name,
        source=source,
        fingerprint=fingerprint,
        label_names=names,
        group_columns=columns.groups,
        dropped_rows=tuple(i + 1 for i in empty),
    )


def _encode_labels(
    values: list[Any],
    row_numbers: np.ndarray,
    *,
    label_names: Sequence[str] | None,
    where: str,
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Labels -> (ids int64 (n,) in 0..C-1, C class names); ids follow sorted ids or names."""
    missing = [
        int(row) for row, value in zip(row_numbers, values, strict=True) if is_missing(value)
    ]
    if missing:
        raise DataValidationError(
            f"{where} has no label (empty or NaN) in {format_rows(missing)}. "
            "Label or remove those rows."
        )
    if label_names is not None:
        label_names = tuple(label_names)
        if not label_names or len(set(label_names)) != len(label_names):
            raise ConfigError(f"label names must be distinct and non-empty, got {label_names}.")

    numbers = [_as_number(value) for value in values]
    if None not in numbers:
        as_float = np.array(numbers, dtype=np.float64)
        fractional = row_numbers[as_float % 1 != 0]
        if fractional.size:
            raise DataValidationError(
                f"{where} holds non-integer numbers in {format_rows(fractional.tolist())}. "
                "Labels must be integer class ids or class names."
            )
        raw_ids = as_float.astype(np.int64)
        present = np.unique(raw_ids)
        if label_names is None:
            names = tuple(str(i) for i in present)
        else:
            uncovered = (raw_ids < 0) | (raw_ids >= len(label_names))
            if uncovered.any():
                raise DataValidationError(
                    f"{where}: ids {format_values(np.unique(raw_ids[uncovered]).tolist())} in "
                    f"{format_rows(row_numbers[uncovered].tolist())} have no name; the "
                    f"{len(label_names)} label names given cover ids 0..{len(label_names) - 1}. "
                    "Give one name per class id, in id order."
                )
            names = tuple(label_names[i] for i in present)
        # Non-contiguous ids (e.g. 1..4, or a class absent) are remapped in sorted order.
        return np.searchsorted(present, raw_ids).astype(np.int64), names

    strings = [str(value).strip() for value in values]
    if label_names is None:
        names = tuple(sorted(set(strings)))
    else:
        unknown = sorted(set(strings) - set(label_names))
        if unknown:
            rows = [int(r) for r, s in zip(row_numbers, strings, strict=True) if s in unknown]
            raise DataValidationError(
                f"{where}: labels {format_values(unknown)} (in {format_rows(rows)}) are not "
                f"among the label names given ({format_values(label_names)}). Add them to the "
                "label names or correct those rows."
            )
        names = tuple(name for name in label_names if name in set(strings))
    index = {name: i for i, name in enumerate(names)}
    return np.array([index[s] for s in strings], dtype=np.int64), names


def _as_number(value: Any) -> float | None:
    """A finite number (int, float or numeric string), else None; bools are names, not ids."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | np.integer):
        return float(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        text = value.strip()
        if _INT.fullmatch(text):
            return float(int(text))
        try:
            number = float(text)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _split_values(
    values: list[Any], row_numbers: np.ndarray, source: str, columns: ColumnMapping
) -> list[str]:
    missing = [
        int(row) for row, value in zip(row_numbers, values, strict=True) if is_missing(value)
    ]
    if missing:
        raise DataValidationError(
            f"{source}: split column {columns.split!r} is empty in {format_rows(missing)}. "
            "Give every row a split name (e.g. train/test), or drop --split-column."
        )
    return [str(value).strip() for value in values]


def _fingerprint(
    data: dict[str, list[Any]], label_names: tuple[str, ...], groups: tuple[str, ...]
) -> str:
    """SHA-256 over every row's text, label, groups and split, plus the column layout."""
    layout = json.dumps({"labels": label_names, "groups": groups, "split": "split" in data})
    ordered = [data["text"], [str(i) for i in data["label"]]]
    ordered += [data[group] for group in groups]
    if "split" in data:
        ordered.append(data["split"])

    def cells() -> Iterator[str]:
        for row in zip(*ordered, strict=True):
            yield from row

    return fingerprint_strings(cells(), salt=layout)
