"""A standard benchmark for text dataset distillation: suites of datasets, methods, sizes and
privacy budgets, run as studies and compared under one protocol in a leaderboard
(`tdd-priv benchmark`; orchestration in flows/benchmark.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tdd_priv.benchmark.leaderboard import (
    CellResult,
    Leaderboard,
    Row,
    cell_result,
    leaderboard,
    write_leaderboard,
)
from tdd_priv.benchmark.plan import dataset_sweep, study_folder
from tdd_priv.benchmark.prepare import PreparedDataset, prepare_dataset
from tdd_priv.benchmark.suite import BUILTIN_SUITES, DatasetEntry, SimulatedPool, Suite, load_suite
from tdd_priv.errors import ConfigError

__all__ = [
    "BUILTIN_SUITES",
    "CellResult",
    "DatasetEntry",
    "External",
    "Leaderboard",
    "PreparedDataset",
    "Row",
    "SimulatedPool",
    "Suite",
    "cell_result",
    "dataset_sweep",
    "leaderboard",
    "load_suite",
    "parse_external",
    "prepare_dataset",
    "study_folder",
    "write_leaderboard",
]


@dataclass(frozen=True)
class External:
    """A labeled synthetic text file made elsewhere, scored on `dataset` as `name`."""

    dataset: str
    name: str
    path: Path


def parse_external(text: str) -> External:
    """`DATASET:NAME=FILE` (--external) as an External; the file must exist."""
    where, sep, file = text.partition("=")
    dataset, colon, name = where.partition(":")
    if not sep or not colon or not dataset or not name or not file:
        raise ConfigError(
            f"--external {text!r}: expected DATASET:NAME=FILE, e.g. ag_news:llm=synthetic.jsonl "
            "(a CSV, JSONL or Parquet file with text and label columns)."
        )
    if not Path(file).is_file():
        raise ConfigError(f"--external {text!r}: {file} is not a file.")
    return External(dataset, name, Path(file))
