"""Prefect flow for a privacy–utility study: its cells as mapped tasks, each running the distill
flow as a subflow, then the table and figures.

Each `cell` task calls `flows.distill.distill_flow` directly, so every cell shows in Prefect as
a subflow run (named after the cell) of its task, with the usual step tasks inside: on the
local runner and on Dask workers alike (the worker process runs the subflow against the same
Prefect API, see flows/runners.py). A cell whose folder already holds a finished run of its
config is reused, not recomputed, so an interrupted study resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow, task, unmapped
from prefect.cache_policies import NO_CACHE

from flows.distill import distill_flow
from flows.runners import RUNNERS, RunnerOptions, runner, shared_prefect_api
from flows.scatter import shadow_map
from tdd_priv.study import (
    Cell,
    CellOutcome,
    Sweep,
    cell_is_complete,
    expand_cells,
    record_sweep,
    remove_partial_folders,
    write_outputs,
    write_timing,
)
from tdd_priv.threads import thread_ceiling

__all__ = ["StudyResult", "run_cell", "run_study", "study_flow"]


@task(name="cell", task_run_name="cell-{cell[id]}", cache_policy=NO_CACHE, persist_result=False)
def run_cell(cell: dict[str, Any], runner_name: str, sweep_name: str) -> dict[str, Any]:
    """Run one cell (the distill flow as a subflow) unless its folder already holds it, with
    torch's threads capped as its runner says (one per cell on Dask)."""
    spec = Cell.from_dict(cell)
    if cell_is_complete(spec):
        return CellOutcome(spec.id, "reused").to_dict()
    remove_partial_folders(spec)  # what a killed run of this cell left behind
    started = time.perf_counter()
    chosen = RUNNERS[runner_name]
    with shadow_map(chosen.shadow_map), thread_ceiling(chosen.cell_threads):
        distill_flow.with_options(flow_run_name=spec.id)(
            config=spec.config.to_dict(), artifact_name=f"{sweep_name}-{spec.id}"
        )
    wall_s = time.perf_counter() - started
    write_timing(spec, wall_s=wall_s, worker=f"{socket.gethostname()}:{os.getpid()}")
    return CellOutcome(spec.id, "ran", wall_s=round(wall_s, 3)).to_dict()


@task(name="tables", cache_policy=NO_CACHE, persist_result=False)
def write_study_outputs(
    out: str,
    sweep: dict[str, Any],
    cells: list[dict[str, Any]],
    outcomes: list[dict[str, Any]],
    runner_name: str,
) -> dict[str, Any]:
    written = write_outputs(
        Path(out),
        Sweep.from_dict(sweep),
        [Cell.from_dict(c) for c in cells],
        {o["id"]: CellOutcome.from_dict(o) for o in outcomes},
        runner=runner_name,
    )
    return {"csv": str(written.csv), "markdown": str(written.markdown)}


@flow(name="tdd-priv-study")
def study_flow(sweep: dict[str, Any], out: str, runner_name: str = "local") -> list[dict[str, Any]]:
    """Expand the sweep (Sweep.to_dict()) into cells under `out`, run them as mapped tasks on
    this flow's task runner, and write study.csv, study.md and figures/. Returns each cell's
    outcome (ran, reused or failed); failed cells leave their rows empty."""
    plan = Sweep.from_dict(sweep)
    folder = Path(out)
    cells = expand_cells(plan, folder)
    record_sweep(folder, plan)
    futures = run_cell.map(
        [cell.to_dict() for cell in cells],
        runner_name=unmapped(runner_name),
        sweep_name=unmapped(plan.name),
    )
    outcomes = []
    for cell, future in zip(cells, futures, strict=True):
        future.wait()
        state = future.state
        if state.is_completed():
            outcomes.append(future.result())
        else:
            outcomes.append(CellOutcome(cell.id, "failed", error=state.message).to_dict())
    write_study_outputs(out, plan.to_dict(), [c.to_dict() for c in cells], outcomes, runner_name)
    return outcomes


@dataclass(frozen=True)
class StudyResult:
    out: Path
    outcomes: tuple[CellOutcome, ...]
    wall_s: float

    @property
    def failed(self) -> tuple[CellOutcome, ...]:
        return tuple(o for o in self.outcomes if o.status == "failed")


def run_study(sweep: Sweep, out: Path, options: RunnerOptions) -> StudyResult:
    """Run the study flow on the runner `options` names, with one Prefect API for all."""
    chosen = runner(options)
    started = time.perf_counter()
    with shared_prefect_api(options):
        study = study_flow.with_options(task_runner=chosen.make(options))
        state = study(
            sweep=sweep.to_dict(), out=str(out), runner_name=options.name, return_state=True
        )
    wall_s = time.perf_counter() - started
    if not state.is_completed():
        state.result()  # raises the flow's error
    record = json.loads((out / "study.json").read_text(encoding="utf-8"))
    outcomes = tuple(CellOutcome.from_dict(o) for o in record["cells"])
    return StudyResult(out, outcomes, wall_s)
