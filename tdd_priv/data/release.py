"""A synthetic labeled text set made outside tdd-priv, read for `tdd-priv audit`.

A release file is a CSV, JSON lines (or one JSON array) or Parquet file with a `text` column and
a `label` column, made by anything: an LLM prompt, a distillation paper's code, a tdd-priv run
(its `synthetic/data.jsonl`). Labels are the names of the labeled data's classes or their ids
0..C-1: a label that is a class name is read as that name, any other as an id. A `label_name`
column (tdd-priv's own format) names each row's class and must agree with its id. An optional
`soft_label` column holds C numbers per row (the targets the release's heads train on).

Reading happens in two steps so that a bad file fails before the data is even loaded:
`read_release_table` checks the file's shape (columns, empty texts, missing labels), and
`resolve_release` checks the labels against the data's classes.

`release_membership` says which labeled rows the release's maker saw (every row of the train
split: members) and which it never saw (the held-out split, by default the test split:
non-members). Without a split column nobody can say, so such data is refused.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tdd_priv.data._io import (
    check_scalars,
    check_texts,
    format_rows,
    format_values,
    is_missing,
    read_spec,
)
from tdd_priv.data.labeled import LabeledData
from tdd_priv.data.splits import DEFAULT_TEST_SPLIT, DEFAULT_TRAIN_SPLIT, Splits
from tdd_priv.errors import DataValidationError
from tdd_priv.fingerprint import sha256_file

__all__ = [
    "AuditedRelease",
    "LabelForm",
    "PoolMatches",
    "ReleaseFile",
    "ReleaseMembership",
    "ReleaseTable",
    "read_release_table",
    "release_membership",
    "resolve_release",
]

TEXT_COLUMN = "text"
LABEL_COLUMN = "label"
LABEL_NAME_COLUMN = "label_name"  # tdd-priv's synthetic/data.jsonl
SOFT_LABEL_COLUMN = "soft_label"
# How the file gave its labels: class names, class ids, or ids with their names (tdd-priv's own)
LabelForm = Literal["names", "ids", "names-and-ids", "ids-with-names"]


@dataclass(frozen=True)
class ReleaseTable:
    """A release file's rows as read: texts (m,), raw labels (m,), raw `label_name` and
    `soft_label` cells when the file has those columns. Checked for shape, not yet against the
    data's classes. sha256: of the file's bytes, which were read exactly once."""

    path: Path
    name: str
    format: str
    sha256: str
    texts: tuple[str, ...]
    labels: tuple[Any, ...]
    label_names: tuple[Any, ...] | None
    soft_labels: tuple[Any, ...] | None

    @property
    def rows(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class ReleaseFile:
    """A release checked against the labeled data: texts (m,), labels (m,) int64 class ids of
    the data, soft_labels (m, C) float32 or None. `path` is the file audited, `sha256` its
    bytes, `label_form` how the file gave its labels."""

    path: Path
    name: str
    format: str
    sha256: str
    texts: tuple[str, ...]
    labels: np.ndarray
    soft_labels: np.ndarray | None
    label_form: LabelForm

    @property
    def rows(self) -> int:
        return len(self.texts)

    @property
    def copy_name(self) -> str:
        """The file name of its byte-for-byte copy in the run folder's synthetic/ (never one of
        the folder's own files, whatever the release was called)."""
        return "release" + self.path.suffix.lower()

    def label_counts(self, num_classes: int) -> np.ndarray:
        """(C,) int64 released texts per class."""
        return np.bincount(self.labels, minlength=num_classes).astype(np.int64)

    def per_class(self, num_classes: int) -> int:
        """k for the baselines: the release's size spread evenly over the classes, m / C
        rounded half up and at least 1, so the baselines get about as many examples in all as
        the release, whether or not its classes are of even size."""
        return max(1, math.floor(self.rows / num_classes + 0.5))


def read_release_table(path: Path) -> ReleaseTable:
    """Read and shape-check a release file (writes nothing; DataValidationError on bad input)."""
    spec = str(path)
    if spec.startswith("hf:"):
        raise DataValidationError(
            f"--release {spec}: a release must be a local file (CSV, JSONL or Parquet), so that "
            "the run folder can hold the very bytes audited. Save it to a file first."
        )
    path = Path(path).expanduser()
    if not path.exists():
        raise DataValidationError(
            f"--release {spec}: no such file. Check the path (relative paths start at "
            f"{Path.cwd()})."
        )
    if not path.is_file():
        raise DataValidationError(
            f"--release {spec}: not a regular file. Pass the release's CSV, JSONL or Parquet file."
        )
    before = sha256_file(path)
    table = read_spec(str(path))
    if sha256_file(path) != before:
        raise DataValidationError(
            f"{table.source}: the file changed while it was read; audit it once it is complete."
        )
    source = table.source
    for column in (TEXT_COLUMN, LABEL_COLUMN):
        if column not in table.columns:
            raise DataValidationError(
                f"{source}: the release has no {column!r} column (columns: "
                f"{format_values(table.columns)}). A release needs a {TEXT_COLUMN!r} column of "
                f"texts and a {LABEL_COLUMN!r} column of class names or ids: rename its columns."
            )
    texts = table.columns[TEXT_COLUMN]
    check_texts(
        texts,
        source=source,
        column=TEXT_COLUMN,
        fix="each released text must be one string; convert the column to text.",
    )
    empty = [row for row, text in enumerate(texts, start=1) if is_missing(text)]
    if empty:
        raise DataValidationError(
            f"{source}: {format_rows(empty)} of the release have an empty {TEXT_COLUMN!r} "
            "(1-based data rows). A release of empty texts cannot be audited: remove those rows."
        )
    labels = table.columns[LABEL_COLUMN]
    check_scalars(labels, source=source, column=LABEL_COLUMN, role="label", flag="--release")
    unlabeled = [row for row, label in enumerate(labels, start=1) if is_missing(label)]
    if unlabeled:
        raise DataValidationError(
            f"{source}: {format_rows(unlabeled)} of the release have no {LABEL_COLUMN!r} "
            "(1-based data rows). Label every released text with a class name or id."
        )
    names = table.columns.get(LABEL_NAME_COLUMN)
    soft = table.columns.get(SOFT_LABEL_COLUMN)
    if soft is not None:
        soft = [_parse_soft_label(value) for value in soft]
        missing = [row for row, value in enumerate(soft, start=1) if value is None]
        if missing and len(missing) < len(soft):
            raise DataValidationError(
                f"{source}: {format_rows(missing)} of the release have no {SOFT_LABEL_COLUMN!r} "
                "while other rows have one. Give every row its soft label, or drop the column."
            )
        if missing:
            soft = None
    return ReleaseTable(
        path=path.resolve(),
        name=path.name,
        format=path.suffix.lower().lstrip("."),
        sha256=before,
        texts=tuple(str(text) for text in texts),
        labels=tuple(labels),
        label_names=tuple(names) if names is not None else None,
        soft_labels=tuple(soft) if soft is not None else None,
    )


def _parse_soft_label(value: Any) -> Any:
    """A soft label cell as a list (a CSV cell holds it as JSON text); None when missing."""
    if isinstance(value, str):
        if is_missing(value):
            return None
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value  # reported by resolve_release as not a list of numbers
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _as_id(value: Any) -> int | None:
    """An integral class id (int, integral float or integer text), else None; bools are not."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value.strip())
    return None


def resolve_release(table: ReleaseTable, class_names: tuple[str, ...]) -> ReleaseFile:
    """The release's labels as class ids of the labeled data (whose classes are `class_names`,
    in id order) and its soft labels as an (m, C) array; DataValidationError when a label is
    neither a class name nor a class id, or a soft label is not C finite numbers."""
    source, count = str(table.path), len(class_names)
    index = {name: i for i, name in enumerate(class_names)}
    classes = f"classes {format_values(class_names)} (ids 0..{count - 1})"
    form: LabelForm
    if table.label_names is not None:
        form = "ids-with-names"
        ids = np.array([index.get(str(name).strip(), -1) for name in table.label_names])
        unknown = [row for row, i in enumerate(ids, start=1) if i < 0]
        if unknown:
            raise DataValidationError(
                f"{source}: {LABEL_NAME_COLUMN!r} in {format_rows(unknown)} names no class of "
                f"the data, whose {classes}. Audit the release against the data it was made "
                "from, with the same --label-names."
            )
        stated = [_as_id(label) for label in table.labels]
        disagree = [row for row, (i, s) in enumerate(zip(ids, stated, strict=True), 1) if i != s]
        if disagree:
            raise DataValidationError(
                f"{source}: in {format_rows(disagree)} the {LABEL_COLUMN!r} id is not the id of "
                f"the class its {LABEL_NAME_COLUMN!r} names (the data's {classes}): the file "
                "numbers its classes in another order. Pass the --label-names it was made with."
            )
    else:
        labels = [str(label).strip() for label in table.labels]
        by_name = [label in index for label in labels]
        stated = [
            index[label] if name else _as_id(raw)
            for label, name, raw in zip(labels, by_name, table.labels, strict=True)
        ]
        unknown = [row for row, i in enumerate(stated, start=1) if i is None or not 0 <= i < count]
        if unknown:
            shown = sorted({labels[row - 1] for row in unknown})
            raise DataValidationError(
                f"{source}: labels {format_values(shown)} (in {format_rows(unknown)}) are "
                f"neither class names nor class ids of the data, whose {classes}. Relabel "
                "those rows, or pass the --label-names the release was made with."
            )
        form = "names" if all(by_name) else "ids" if not any(by_name) else "names-and-ids"
        ids = np.array(stated)
    return ReleaseFile(
        path=table.path,
        name=table.name,
        format=table.format,
        sha256=table.sha256,
        texts=table.texts,
        labels=ids.astype(np.int64),
        soft_labels=_soft_labels(table, count),
        label_form=form,
    )


def _soft_labels(table: ReleaseTable, count: int) -> np.ndarray | None:
    if table.soft_labels is None:
        return None
    wrong = []
    for row, value in enumerate(table.soft_labels, start=1):
        numbers = value if isinstance(value, list | tuple) else None
        if (
            numbers is None
            or len(numbers) != count
            or not all(
                isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
                for x in numbers
            )
        ):
            wrong.append(row)
    if wrong:
        raise DataValidationError(
            f"{table.path}: {SOFT_LABEL_COLUMN!r} in {format_rows(wrong)} is not a list of "
            f"{count} finite numbers (one per class of the data). Fix those rows, or drop the "
            "column to train on the hard labels."
        )
    return np.asarray(table.soft_labels, dtype=np.float32).reshape(-1, count)


@dataclass(frozen=True)
class ReleaseMembership:
    """Which labeled rows the release's maker saw, for the audits.

    splits.members: every row of the train split (the release was made from it); splits.test:
    the test split (utility); splits.audit: the held-out split when it is not the test split
    (else empty: `Splits` parts are disjoint); splits.public: empty. nonmembers: sorted int64 rows
    of the held-out split, which the maker never saw.
    """

    splits: Splits
    nonmembers: np.ndarray
    train_split: str
    heldout_split: str
    test_split: str


def release_membership(
    labeled: LabeledData,
    *,
    train_split: str | None,
    test_split: str | None,
    heldout_split: str | None,
    per_class: int,
    seed: int,
) -> ReleaseMembership:
    """Members, non-members and test rows of `labeled` by its split column (see
    ReleaseMembership); every class needs `per_class` members for the baselines."""
    if not labeled.has_split_column:
        raise DataValidationError(
            f"{labeled.source}: the data has no split column, so nobody can say which rows the "
            "release's maker saw: membership and leakage audits need that. Pass --split-column "
            "with the column that names each row's split, and --train-split with the split the "
            f"release was made from (default {DEFAULT_TRAIN_SPLIT!r})."
        )
    names = np.asarray(labeled.dataset["split"])
    present = sorted(set(names.tolist()))
    train = train_split or DEFAULT_TRAIN_SPLIT
    test = test_split or DEFAULT_TEST_SPLIT
    heldout = heldout_split or test
    flags = (("--train-split", train), ("--test-split", test), ("--heldout-split", heldout))
    for flag, value in flags:
        if value not in present:
            raise DataValidationError(
                f"{labeled.source}: no rows with split {value!r} in the split column (values: "
                f"{format_values(present)}). Pass {flag} with one of them."
            )
    for flag, value in (("--test-split", test), ("--heldout-split", heldout)):
        if value == train:
            raise DataValidationError(
                f"{labeled.source}: {flag} is {value!r}, the split the release was made from; "
                "those rows are the maker's input, not rows it never saw. Pick another split."
            )
    members = np.flatnonzero(names == train)
    test_rows = np.flatnonzero(names == test)
    nonmembers = np.flatnonzero(names == heldout)
    labels = np.asarray(labeled.dataset["label"], dtype=np.int64)
    counts = np.bincount(labels[members], minlength=len(labeled.label_names))
    short = [(labeled.label_names[c], int(n)) for c, n in enumerate(counts) if n < per_class]
    if short:
        listed = ", ".join(f"{name!r} has {n}" for name, n in short[:10])
        raise DataValidationError(
            f"{labeled.source}: the baselines draw k = {per_class} rows of every class from "
            f"split {train!r} (the release's size over the classes), but {listed}. Check "
            "--train-split: it must name the rows the release was made from."
        )
    splits = Splits(
        members=members,
        audit=nonmembers if heldout != test else np.zeros(0, dtype=np.int64),
        test=test_rows,
        public=np.zeros(0, dtype=np.int64),
        seed=seed,
    )
    return ReleaseMembership(
        splits=splits,
        nonmembers=splits.audit if heldout != test else splits.test,
        train_split=train,
        heldout_split=heldout,
        test_split=test,
    )


@dataclass(frozen=True)
class PoolMatches:
    """Released texts that equal (after normalisation) or nearly equal (character 5-gram
    Jaccard >= 0.8) a text of the public pool given to the audit, after the pool's texts that
    equal or nearly equal a labeled row were set aside (`pool_texts` is what remained)."""

    pool_texts: int
    exact: int
    near: int


@dataclass(frozen=True)
class AuditedRelease:
    """What the report says about a release made outside tdd-priv: the file, which labeled rows
    its maker saw, and (when a public pool was given) how many of its texts are public texts."""

    file: ReleaseFile
    membership: ReleaseMembership
    pool_matches: PoolMatches | None = None
