"""Seeded, stratified, recorded splits: members, audit non-members, test, public pool (step 2)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from tdd_priv.data._io import format_values
from tdd_priv.data.labeled import LabeledData
from tdd_priv.errors import ConfigError, DataValidationError

__all__ = ["SplitFractions", "Splits", "make_splits"]

DEFAULT_TRAIN_SPLIT = "train"
DEFAULT_TEST_SPLIT = "test"
_PARTS = ("members", "audit", "test", "public")


@dataclass(frozen=True)
class SplitFractions:
    """Shares of rows, each in [0, 1); every share > 0 gets at least one row per class."""

    test: float = 0.2  # of all rows; used only when the data has no split column
    audit: float = 0.1  # of the train split: held-out non-members for membership audits
    public: float = 0.2  # of the train split: labels dropped; only without an external pool

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"split fraction {field.name}={value} must be in [0, 1).")
        if self.audit + self.public >= 1.0:
            raise ConfigError(
                f"split fractions audit={self.audit} + public={self.public} leave no members; "
                "their sum must be below 1."
            )


_DEFAULT_FRACTIONS = SplitFractions()


@dataclass(frozen=True, eq=False)
class Splits:
    """Disjoint, sorted int64 row indices (shape (n_part,)) into `LabeledData.dataset`.

    members: the private training set; audit: held-out non-members from the train split;
    test: evaluation rows; public: train-split rows whose labels are dropped (empty when the
    public pool is external). canaries: rows of canary records (the canary audit),
    inserted into members or not, never in audit/test/public. The arrays are read-only.
    """

    members: np.ndarray
    audit: np.ndarray
    test: np.ndarray
    public: np.ndarray
    seed: int
    canaries: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __post_init__(self) -> None:
        for name in (*_PARTS, "canaries"):
            array = np.sort(np.asarray(getattr(self, name), dtype=np.int64).reshape(-1))
            array.flags.writeable = False
            object.__setattr__(self, name, array)
        joined = np.concatenate([getattr(self, name) for name in _PARTS])
        if np.unique(joined).size != joined.size:
            raise DataValidationError(
                "splits overlap: a row is in two of members/audit/test/public."
            )
        held_out = np.concatenate([self.audit, self.test, self.public])
        if np.intersect1d(self.canaries, held_out).size:
            raise DataValidationError("a canary row is in the audit, test or public split.")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Splits):
            return NotImplemented
        return self.seed == other.seed and all(
            np.array_equal(getattr(self, name), getattr(other, name))
            for name in (*_PARTS, "canaries")
        )

    __hash__ = None  # type: ignore[assignment]  # holds arrays: equality, not identity

    def to_json(self) -> dict[str, Any]:
        """{"seed", "sizes": {part: n}, part: [row, ...] for each part}: JSON-serialisable."""
        payload: dict[str, Any] = {
            "seed": self.seed,
            "sizes": {name: int(getattr(self, name).size) for name in _PARTS},
        }
        payload.update({name: getattr(self, name).tolist() for name in _PARTS})
        if self.canaries.size:  # the canary audit's rows
            payload["sizes"]["canaries"] = int(self.canaries.size)
            payload["canaries"] = self.canaries.tolist()
        return payload

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> Splits:
        missing = [key for key in ("seed", *_PARTS) if key not in payload]
        if missing:
            raise DataValidationError(f"splits record lacks {format_values(missing)}.")
        splits = cls(
            seed=int(payload["seed"]),
            canaries=payload.get("canaries", []),
            **{name: payload[name] for name in _PARTS},
        )
        sizes = payload.get("sizes", {})
        wrong = [name for name in _PARTS if name in sizes and sizes[name] != len(payload[name])]
        if wrong:
            raise DataValidationError(
                f"splits record is inconsistent: 'sizes' disagrees with {format_values(wrong)}."
            )
        return splits


def make_splits(
    data: LabeledData,
    *,
    seed: int,
    per_class: int,
    internal_public_pool: bool,
    train_split: str | None = None,
    test_split: str | None = None,
    fractions: SplitFractions = _DEFAULT_FRACTIONS,
) -> Splits:
    """Split `data` with `numpy.random.default_rng(seed)`, stratified by label.

    With a split column, test is the whole `test_split` and the rest comes from `train_split`
    (defaults "train"/"test"); otherwise test is a `fractions.test` share of every class. Within
    the train rows, each class gives `fractions.audit` to audit and, if `internal_public_pool`,
    `fractions.public` to public; shares shrink so that every class keeps `per_class` members.
    """
    if per_class < 1:
        raise ConfigError(f"--per-class must be at least 1, got {per_class}.")
    labels = _column(data, "label").astype(np.int64)
    if data.has_split_column:
        train_rows, test = _named_splits(data, train_split, test_split)
    else:
        if train_split is not None or test_split is not None:
            raise DataValidationError(
                f"{data.source}: --train-split/--test-split given, but the data has no split "
                "column. Pass --split-column with the column that holds split names, or drop "
                "--train-split/--test-split to split the data at random."
            )
        train_rows, test = np.arange(labels.size), None
    _check_per_class(data, labels[train_rows], per_class=per_class)

    rng = np.random.default_rng(seed)
    public_share = fractions.public if internal_public_pool else 0.0
    taken: dict[str, list[np.ndarray]] = {name: [] for name in _PARTS}
    for label in range(len(data.label_names)):
        rows = rng.permutation(train_rows[labels[train_rows] == label])
        want_test = _share(fractions.test, rows.size) if test is None else 0
        n_train = rows.size - want_test
        wants = [want_test, _share(fractions.audit, n_train), _share(public_share, n_train)]
        counts = _fit(wants, spare=rows.size - per_class)
        part_rows = np.split(rows, np.cumsum(counts))
        for name, chunk in zip(("test", "audit", "public", "members"), part_rows, strict=True):
            taken[name].append(chunk)
    if test is not None:
        taken["test"] = [test]
    splits = Splits(seed=seed, **{name: np.concatenate(taken[name]) for name in _PARTS})
    if splits.test.size == 0:
        raise DataValidationError(
            f"{data.source}: the test split has no rows (test fraction {fractions.test} of "
            f"{labels.size} rows, keeping {per_class} members per class). Raise the test "
            "fraction, lower --per-class, or add rows."
        )
    return splits


def _named_splits(
    data: LabeledData, train_split: str | None, test_split: str | None
) -> tuple[np.ndarray, np.ndarray]:
    names = _column(data, "split")
    present = sorted(set(names.tolist()))
    train_name = train_split or DEFAULT_TRAIN_SPLIT
    test_name = test_split or DEFAULT_TEST_SPLIT
    for flag, value in (("--train-split", train_name), ("--test-split", test_name)):
        if value not in present:
            raise DataValidationError(
                f"{data.source}: no rows with split {value!r} in the split column (values: "
                f"{format_values(present)}). Pass {flag} with one of them."
            )
    if train_name == test_name:
        raise DataValidationError(
            f"{data.source}: --train-split and --test-split are both {train_name!r}; the test "
            "rows must be apart from the training rows. Pick two different splits."
        )
    return np.flatnonzero(names == train_name), np.flatnonzero(names == test_name)


def _column(data: LabeledData, name: str) -> np.ndarray:
    """One column as a NumPy array of shape (n,), converted by Arrow, not row by row."""
    return np.asarray(data.dataset.with_format("numpy", columns=[name])[:][name])


def _check_per_class(data: LabeledData, train_labels: np.ndarray, *, per_class: int) -> None:
    counts = np.bincount(train_labels, minlength=len(data.label_names))
    short = [(data.label_names[c], int(n)) for c, n in enumerate(counts) if n < per_class]
    if short:
        listed = ", ".join(f"{name!r} has {n}" for name, n in short[:10])
        where = "in the train split" if data.has_split_column else "in the data"
        fewest = min(n for _, n in short)
        fix = (
            f"Lower --per-class to at most {fewest}, or add rows for those classes."
            if fewest
            else "Check --train-split and the labels: every class needs training rows."
        )
        raise DataValidationError(
            f"{data.source}: --per-class {per_class} needs at least {per_class} rows of every "
            f"class {where}, but {listed}. {fix}"
        )


def _share(fraction: float, n: int) -> int:
    """round(fraction * n), at least 1 when fraction > 0."""
    return max(1, math.floor(fraction * n + 0.5)) if fraction > 0.0 else 0


def _fit(wants: list[int], *, spare: int) -> list[int]:
    """Cap row counts at `spare` in total: one row for each wanted share first, then in order.

    So a class with few spare rows still gives every share (test, audit, public) a row.
    """
    got = [0] * len(wants)
    for i, want in enumerate(wants):
        if want > 0 and spare > 0:
            got[i], spare = 1, spare - 1
    for i, want in enumerate(wants):
        extra = min(want - got[i], spare)
        got[i], spare = got[i] + extra, spare - extra
    return got
