"""Canary insertion for the canary audit: part of the split step.

The canaries themselves (texts, random labels, which to insert) come from the auditors'
canary maker (`tdd_priv.extensions.CanaryMaker`); here they become rows of the labeled data,
and the inserted ones join the private training split. `Splits.canaries` records every canary
row, so the private folder's splits.json (never released) says which were inserted.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import datasets
import numpy as np

from tdd_priv.data.labeled import LabeledData
from tdd_priv.data.splits import Splits
from tdd_priv.extensions import CanaryDraw

__all__ = ["CANARY_GROUP", "insert_canaries"]

CANARY_GROUP = "canary"  # group-column value (and split name) of canary rows


def insert_canaries(
    labeled: LabeledData, splits: Splits, draw: CanaryDraw
) -> tuple[LabeledData, Splits]:
    """`labeled` with the canaries appended as rows (group columns and split set to "canary"),
    and `splits` with the inserted ones added to the members and all of them recorded.
    Canaries whose text already is a row of the data are dropped."""
    texts = list(draw.texts)
    labels = np.asarray(draw.labels, dtype=np.int64)
    included = np.asarray(draw.included, dtype=bool)
    classes = len(labeled.label_names)
    if not (len(texts) == labels.size == included.size):
        raise ValueError("canary texts, labels and inclusion differ in length")
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(f"canary labels must lie in [0, {classes})")
    # A canary must be a new record: one equal to a row of the data (possible when spliced from
    # templated texts) is dropped. Dropping depends on the text only, never on the inclusion
    # draw, so the remaining canaries are still included independently with probability 1/2.
    existing = set(labeled.dataset["text"])
    keep = np.array([text not in existing for text in texts], dtype=bool)
    texts = [text for text, kept in zip(texts, keep, strict=True) if kept]
    labels, included = labels[keep], included[keep]
    columns: dict[str, list[Any]] = {"text": texts, "label": labels.tolist()}
    for column in labeled.dataset.column_names:
        if column not in columns:
            columns[column] = [CANARY_GROUP] * len(texts)
    extra = datasets.Dataset.from_dict(columns, features=labeled.dataset.features)
    start = len(labeled.dataset)
    dataset = datasets.concatenate_datasets([labeled.dataset, extra])
    rows = np.arange(start, start + len(texts), dtype=np.int64)
    augmented = replace(
        splits,
        members=np.concatenate([splits.members, rows[included]]),
        canaries=rows,
    )
    return replace(labeled, dataset=dataset), augmented
