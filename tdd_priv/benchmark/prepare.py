"""Each suite dataset as the runs see it: its data settings and its public pool.

A simulated pool (`public_pool: {simulate: SHARE}`) is cut once, seeded, from the dataset's
train split: those rows are written to DIR/data/<name>.pool.csv (texts only) and left out of
DIR/data/<name>.csv, which the runs read instead of the original. So no pool text is a private
record of any run, and every run of the suite sees the same pool. (The runs' own pool hygiene
still removes pool texts that equal or nearly equal a labeled row.)
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tdd_priv.benchmark.suite import DatasetEntry, SimulatedPool
from tdd_priv.data import ColumnMapping, load_labeled

__all__ = ["PreparedDataset", "prepare_dataset"]

DATA_DIR = "data"
_SPLIT_SEED = 20_261_207  # fixed: every invocation of a suite cuts the same pool


@dataclass(frozen=True)
class PreparedDataset:
    """The run config's `data` settings (pool included) for one suite dataset."""

    name: str
    data: dict[str, Any]


def prepare_dataset(entry: DatasetEntry, out: Path) -> PreparedDataset:
    """The dataset's data settings, with a simulated pool cut and written under `out` first."""
    if not isinstance(entry.public_pool, SimulatedPool):
        return PreparedDataset(entry.name, {**entry.data, "public_pool": entry.public_pool})
    data = dict(entry.data)
    labeled = load_labeled(
        str(data["spec"]),
        columns=ColumnMapping(
            text=data.get("text_column", "text"),
            label=data.get("label_column", "label"),
            groups=tuple(data.get("group_columns", ())),
            split=data.get("split_column"),
        ),
        label_names=data.get("label_names"),
    )
    frame = labeled.dataset.to_pandas()
    frame["label"] = [labeled.label_names[i] for i in frame["label"]]
    train = frame.index.to_numpy()
    if "split" in frame.columns:
        train = np.flatnonzero(frame["split"].to_numpy() == data.get("train_split", "train"))
    rng = np.random.default_rng(_SPLIT_SEED)
    pool_rows = np.sort(
        rng.choice(train, size=round(entry.public_pool.share * len(train)), replace=False)
    )
    folder = out / DATA_DIR
    folder.mkdir(parents=True, exist_ok=True)
    data_file, pool_file = folder / f"{entry.name}.csv", folder / f"{entry.name}.pool.csv"
    _write_csv(frame.drop(index=pool_rows), data_file)
    _write_csv(frame.loc[pool_rows, ["text"]], pool_file)
    prepared = {
        **data,
        "spec": str(data_file.resolve()),
        "text_column": "text",
        "label_column": "label",
        "label_names": list(labeled.label_names),
        "public_pool": str(pool_file.resolve()),
    }
    if "split" in frame.columns:
        prepared["split_column"] = "split"
    return PreparedDataset(entry.name, prepared)


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write `frame` to `path` unless it already holds exactly that (a resumed benchmark keeps
    its files, and so the cells' cached encodings); atomically."""
    text = frame.to_csv(index=False)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
