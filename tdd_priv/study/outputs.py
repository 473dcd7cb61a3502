"""The study folder: the sweep it ran, its cells, and its table and figures.

```
DIR/sweep.yaml            the resolved sweep (every default of the base filled in)
DIR/cells/<cell-id>/      one ordinary signed run folder per cell
DIR/timings/<cell-id>.json  how long each cell took, and on which worker
DIR/study.csv  DIR/study.md  DIR/figures/*.png
DIR/study.json            the cells of the last invocation: ran, reused or failed
```
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from tdd_priv.errors import ConfigError
from tdd_priv.study.cells import CellOutcome
from tdd_priv.study.figures import draw_study_figures
from tdd_priv.study.sweep import CELLS_DIR, Cell, Sweep
from tdd_priv.study.table import StudyTable, study_table, write_csv, write_markdown

__all__ = ["SWEEP_FILE", "StudyOutputs", "check_study_folder", "record_sweep", "write_outputs"]

SWEEP_FILE = "sweep.yaml"


@dataclass(frozen=True)
class StudyOutputs:
    table: StudyTable
    csv: Path
    markdown: Path
    figures: tuple[Path, ...]


def check_study_folder(out: Path) -> None:
    """Refuse a DIR that exists and holds something other than a study (it would be mixed in);
    a study folder (one with sweep.yaml) is resumed."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a folder; choose another --out.")
    if out.is_dir() and any(out.iterdir()) and not (out / SWEEP_FILE).is_file():
        raise ConfigError(
            f"--out {out} is not empty and holds no {SWEEP_FILE}, so it is not a study folder "
            "to resume; choose an empty or new --out."
        )


def record_sweep(out: Path, sweep: Sweep) -> None:
    """Write DIR/sweep.yaml (creating DIR and DIR/cells)."""
    (out / CELLS_DIR).mkdir(parents=True, exist_ok=True)
    (out / SWEEP_FILE).write_text(yaml.safe_dump(sweep.to_dict(), sort_keys=False), "utf-8")


def write_outputs(
    out: Path,
    sweep: Sweep,
    cells: Sequence[Cell],
    outcomes: Mapping[str, CellOutcome],
    *,
    runner: str,
) -> StudyOutputs:
    """study.csv, study.md, figures/*.png and study.json from the cells' folders."""
    table = study_table(cells, outcomes)
    figures = draw_study_figures(table, out / "figures")
    counts = {
        status: sum(o.status == status for o in outcomes.values())
        for status in ("ran", "reused", "failed")
    }
    intro = [
        f"{len(cells)} cells ({counts['ran']} ran, {counts['reused']} reused, "
        f"{counts['failed']} failed in the last invocation; runner: {runner}). "
        "Each cell is a signed run folder under `cells/`; `tdd-priv verify cells/<id>` checks it.",
    ]
    if sweep.description:
        intro = [sweep.description, "", *intro]
    write_csv(table, out / "study.csv")
    write_markdown(
        table,
        out / "study.md",
        title=f"Study: {sweep.name}",
        intro=intro,
        figures=[(caption, path.relative_to(out).as_posix()) for caption, path in figures],
    )
    failed = {o.id: o.error for o in outcomes.values() if o.status == "failed"}
    (out / "study.json").write_text(
        json.dumps(
            {
                "sweep": sweep.name,
                "runner": runner,
                "cells": [outcomes[c.id].to_dict() for c in cells if c.id in outcomes],
                "failed": failed,
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    return StudyOutputs(table, out / "study.csv", out / "study.md", tuple(p for _, p in figures))
