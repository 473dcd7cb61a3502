"""`tdd-priv benchmark`: a suite's datasets as studies (Prefect tasks on the local or Dask
runner, resumable cells), then one leaderboard over all of them.

```
DIR/suite.yaml                    the resolved suite
DIR/data/<dataset>.csv, .pool.csv  datasets whose public pool is simulated (see prepare.py)
DIR/studies/<dataset>/            one study per dataset: cells/, study.csv, figures/
DIR/leaderboard.{csv,json,md,html}  DIR/figures/*.png
DIR.private/<dataset>/<cell>/     the cells' private records, beside the benchmark folder
```
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from flows.runners import RunnerOptions, shared_prefect_api
from flows.study import StudyResult, run_study
from tdd_priv.benchmark import (
    CellResult,
    External,
    Leaderboard,
    Row,
    Suite,
    cell_result,
    dataset_sweep,
    leaderboard,
    prepare_dataset,
    study_folder,
    write_leaderboard,
)
from tdd_priv.config import RunConfig
from tdd_priv.errors import ConfigError
from tdd_priv.external import evaluate_release
from tdd_priv.report.record import source_commit
from tdd_priv.study import expand_cells
from tdd_priv.study.cells import read_report, read_timing

__all__ = ["BenchmarkResult", "check_benchmark_folder", "run_benchmark"]

SUITE_FILE = "suite.yaml"


@dataclass(frozen=True)
class BenchmarkResult:
    out: Path
    studies: tuple[StudyResult, ...]
    leaderboard: Leaderboard
    wall_s: float

    @property
    def failed(self) -> int:
        return sum(len(study.failed) for study in self.studies)


def check_benchmark_folder(out: Path) -> None:
    """Refuse a DIR that holds something other than a benchmark (a benchmark folder, one with
    suite.yaml, is resumed)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a folder; choose another --out.")
    if out.is_dir() and any(out.iterdir()) and not (out / SUITE_FILE).is_file():
        raise ConfigError(
            f"--out {out} is not empty and holds no {SUITE_FILE}, so it is not a benchmark "
            "folder to resume; choose an empty or new --out."
        )


def _external_row(external: External, base: RunConfig, metric: str) -> Row:
    """Score an outside release of `external.dataset` under the suite's protocol."""
    utility = evaluate_release(base, external.path).utilities["realized"].to_json()
    mean = utility.get(f"{metric}_mean")
    std = utility.get(f"{metric}_std")
    return Row(external.dataset, external.name, None, None, metric, 1, mean, std, kind="external")


def run_benchmark(
    suite: Suite, out: Path, options: RunnerOptions, *, externals: Sequence[External] = ()
) -> BenchmarkResult:
    """Run every cell of `suite` into `out` (finished cells are reused) and write the
    leaderboard."""
    started = time.perf_counter()
    check_benchmark_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / SUITE_FILE).write_text(yaml.safe_dump(suite.to_dict(), sort_keys=False), "utf-8")
    studies, results, bases = [], list[CellResult](), {}
    with shared_prefect_api(options):  # one Prefect API for every dataset's study
        for entry in suite.datasets:
            prepared = prepare_dataset(entry, out)
            sweep = dataset_sweep(suite, prepared, out)
            folder = study_folder(out, entry.name)
            studies.append(run_study(sweep, folder, options))
            for cell in expand_cells(sweep, folder):
                report = read_report(cell.config.out)
                if report is not None and "utility" in report:
                    timing = read_timing(cell)
                    results.append(cell_result(entry.name, cell.settings, report, timing))
            bases[entry.name] = RunConfig.from_dict(sweep.base)
    metrics = {r.dataset: r.metric for r in results}
    rows = []
    for external in externals:
        if external.dataset not in bases:
            raise ConfigError(
                f"--external {external.dataset}:{external.name}: the suite has no dataset "
                f"{external.dataset!r} (it has {', '.join(bases)})."
            )
        base = replace(bases[external.dataset], out=out / "external" / external.name)
        rows.append(_external_row(external, base, metrics.get(external.dataset, "accuracy")))
    board = leaderboard(results, rows, methods=suite.methods)
    commit, dirty = source_commit()
    wall_s = time.perf_counter() - started
    metadata = {"commit": commit, "commit_dirty": dirty, "runner": options.name, "wall_s": wall_s}
    write_leaderboard(out, board, suite.to_dict(), metadata)
    return BenchmarkResult(out, tuple(studies), board, wall_s)
